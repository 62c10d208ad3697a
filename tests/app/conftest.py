"""AppTest fixtures: a home with the demo people (unbound; the first sign-in binds them)."""

from __future__ import annotations

import pytest

from portal.services import demo


@pytest.fixture
def seeded(ctx):
    demo.seed_people(ctx)
    return ctx
