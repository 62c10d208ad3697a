"""Real wdbc and eunomia releases, built once per session for the sandbox tests (the shared
template also builds omop_synth, which these tests do not need)."""

from __future__ import annotations

import pytest

from tests.integration.sandbox.helpers import build_template, copy_template


@pytest.fixture(scope="session")
def sandbox_template_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("sandbox-template") / "home"
    build_template(home, ("wdbc", "eunomia"))
    return home


@pytest.fixture
def released_ctx(settings, sandbox_template_home):
    context = copy_template(sandbox_template_home, settings)
    yield context
    context.close()
