"""Fixtures shared by the hostile-input tests of the access workflow."""

from __future__ import annotations

import pytest

from tests.factories import make_user
from tests.factories_access import policy_ctx


@pytest.fixture
def actx(ctx, tmp_path):
    return policy_ctx(ctx, tmp_path / "policies")


@pytest.fixture
def who(actx):
    return {
        "acme": make_user(actx, "analyst@acme-health.example", team="acme-health"),
        "gamma": make_user(actx, "founder@gamma-ai.example", team="gamma-ai"),
        "staff": make_user(actx, "staff@platform.example", role="staff"),
        "reviewer": make_user(actx, "reviewer@platform.example", role="staff"),
    }
