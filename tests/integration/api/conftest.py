"""The API served over real HTTP on a home holding real releases (wdbc, eunomia) and people."""

from __future__ import annotations

import pytest

from tests.integration.api.helpers import LiveApi
from tests.integration.sandbox import helpers as sandbox_helpers


@pytest.fixture
def people(released_ctx):
    """(acme-health member, beta-bio member, staff) on the released home."""
    return sandbox_helpers.people(released_ctx)


@pytest.fixture
def live_api(released_ctx):
    api = LiveApi(released_ctx.settings)
    yield api
    api.stop()
