"""Real wdbc and eunomia releases, built once per session (and store engine) for the sandbox
tests (the shared template also builds omop_synth, which these tests do not need)."""

from __future__ import annotations

import pytest

from portal.services.context import Context
from tests.conftest import TemplateHomes
from tests.integration.sandbox.helpers import build_releases


@pytest.fixture(scope="session")
def sandbox_templates(tmp_path_factory) -> TemplateHomes:
    return TemplateHomes(tmp_path_factory, lambda s: build_releases(s, ("wdbc", "eunomia")))


@pytest.fixture(scope="session")
def sandbox_template_home(sandbox_templates):
    return sandbox_templates.get("sqlite")[0]


@pytest.fixture
def released_ctx(settings, store_engine, sandbox_templates):
    context = Context.open(sandbox_templates.copy_into(store_engine, settings))
    yield context
    context.close()
