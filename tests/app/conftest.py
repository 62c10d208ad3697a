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


@pytest.fixture(scope="session")
def wdbc_home(tmp_path_factory):
    """A built wdbc release (once per test session), copied into each test's home."""
    from tests.integration.sandbox.helpers import build_template

    home = tmp_path_factory.mktemp("wdbc-pages") / "home"
    build_template(home, ("wdbc",))
    return home


@pytest.fixture
def home(settings, wdbc_home):
    """A home on the real wdbc release with the demo people (the sandbox and run pages)."""
    from tests.integration.sandbox.helpers import copy_template

    ctx = copy_template(wdbc_home, settings)
    demo.seed_people(ctx)
    yield ctx
    ctx.close()
