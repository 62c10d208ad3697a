"""AppTest fixtures: a home with the demo people (unbound; the first sign-in binds them)."""

from __future__ import annotations

import pytest

from portal.services import demo


@pytest.fixture
def seeded(ctx):
    demo.seed_people(ctx)
    return ctx


@pytest.fixture
def released(released_ctx):
    """Real releases of the bundled datasets plus the demo people."""
    demo.seed_people(released_ctx)
    return released_ctx
