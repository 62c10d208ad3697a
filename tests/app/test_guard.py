"""Every page runs its own guard, also when its file is opened directly: signed-out, unknown,
suspended and wrong-role visitors see nothing of the page."""

from __future__ import annotations

import pytest

from portal import audit
from portal.store.db import transaction
from portal.ui import nav
from tests.app.helpers import ROOT, app, claims, error_codes, texts

# Every file in pages/, the sandbox pages included: a page left out here would be unguarded
# for all the test knows.
OWN_PAGES = sorted(p.name for p in (ROOT / "pages").glob("*.py"))
_STAFF_NAV = {spec[0] for spec in nav.STAFF_PAGES}
_MEMBER_NAV = {spec[0] for spec in nav.STARTUP_PAGES}
STAFF_ONLY = _STAFF_NAV - _MEMBER_NAV
MEMBER_ONLY = _MEMBER_NAV - _STAFF_NAV
FOUNDER = "founder@gamma-ai.example"
STAFF = "staff@platform.example"


@pytest.mark.parametrize("page", OWN_PAGES)
def test_signed_out_visitor_sees_only_the_sign_in_prompt(seeded, page):
    at = app(page)
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in"]
    assert [t.value for t in at.title] == ["Accelerator Portal"]
    assert not at.dataframe and not at.sidebar.button


@pytest.mark.parametrize("page", OWN_PAGES)
def test_unknown_person_sees_how_to_join(seeded, page):
    at = app(page, claims("stranger@elsewhere.example"))
    at.run()
    assert not at.exception
    assert [t.value for t in at.title] == ["How to join the Accelerator Portal"]
    assert not at.dataframe and not at.text_area and not at.selectbox


@pytest.mark.parametrize("page", OWN_PAGES)
def test_suspended_user_is_refused_and_the_refusal_audited(seeded, page):
    with transaction(seeded.conn):
        seeded.conn.execute("UPDATE users SET status = 'suspended' WHERE email = ?", (FOUNDER,))
    at = app(page, claims(FOUNDER))
    at.run()
    assert not at.exception
    assert error_codes(at) == ["user_suspended"]
    assert not at.dataframe and not at.text_area and not at.selectbox
    assert audit.list_events(seeded.conn, action="identity.sign_in", decision="denied")


@pytest.mark.parametrize("page", OWN_PAGES)
def test_expired_session_is_refused(seeded, page):
    at = app(page, claims(FOUNDER, iat=1_000_000_000))
    at.run()
    assert error_codes(at) == ["session_expired"]
    assert "Sign in again" in [b.label for b in at.button]


@pytest.mark.parametrize("page", sorted(STAFF_ONLY))
def test_member_opening_a_staff_page_directly_is_refused_and_audited(seeded, page):
    at = app(page, claims(FOUNDER))
    at.run()
    assert not at.exception
    assert error_codes(at) == ["staff_only"]
    assert not at.dataframe and not at.text_area and not at.selectbox
    events = audit.list_events(seeded.conn, action="ui.page", decision="denied")
    assert events and events[0].actor == FOUNDER


def test_the_matrix_covers_every_page_and_both_sandbox_pages():
    assert {"model_validation.py", "validation_runs.py"} <= set(OWN_PAGES)
    assert "validation_runs.py" in STAFF_ONLY and "model_validation.py" in MEMBER_ONLY
    assert set(OWN_PAGES) == _STAFF_NAV | _MEMBER_NAV | {"welcome.py"}


@pytest.mark.parametrize("page", sorted(MEMBER_ONLY))
def test_staff_opening_a_startup_page_directly_is_refused(seeded, page):
    at = app(page, claims(STAFF))
    at.run()
    assert error_codes(at) == ["member_only"]
    assert not at.text_area and not at.selectbox


def test_router_gives_a_signed_out_visitor_only_the_welcome_page(seeded):
    at = app(None)
    at.run()
    assert [b.label for b in at.button] == ["Sign in"]
    with pytest.raises(ValueError):
        at.switch_page(str(ROOT / "pages" / "audit_log.py")).run()


def test_development_banner_is_shown_in_development(seeded):
    at = app("home.py", claims(FOUNDER))
    at.run()
    assert any("Development sign-in" in w.value for w in at.warning)


def test_home_shows_the_team_of_the_signed_in_member(seeded):
    at = app("home.py", claims(FOUNDER))
    at.run()
    assert not at.exception
    assert "gamma-ai" in texts(at)


def test_router_gives_a_member_startup_pages_only(seeded):
    at = app(None, claims(FOUNDER))
    at.run()
    assert [t.value for t in at.title] == ["Home"]
    at.switch_page(str(ROOT / "pages" / "request_access.py")).run()
    assert [t.value for t in at.title] == ["Request access"]
    with pytest.raises(ValueError):
        at.switch_page(str(ROOT / "pages" / "review_queue.py")).run()


def test_router_gives_staff_the_staff_pages_only(seeded):
    at = app(None, claims(STAFF))
    at.run()
    at.switch_page(str(ROOT / "pages" / "audit_log.py")).run()
    assert [t.value for t in at.title] == ["Audit"]
    with pytest.raises(ValueError):
        at.switch_page(str(ROOT / "pages" / "workspace.py")).run()


def test_router_shows_an_unknown_person_how_to_join(seeded):
    at = app(None, claims("stranger@elsewhere.example"))
    at.run()
    assert [t.value for t in at.title] == ["How to join the Accelerator Portal"]
    assert [b.label for b in at.button] == ["Sign out"]


def test_invited_member_is_bound_at_first_sign_in_and_sees_home(seeded):
    from portal.store import people as store_people

    with transaction(seeded.conn):
        team = store_people.get_team(seeded.conn, "gamma-ai")
        uid = store_people.ensure_user(seeded.conn, email="new@gamma-ai.example", role="member",
                                       status="invited")
        store_people.set_membership(seeded.conn, uid, team["id"])
    at = app("home.py", claims("new@gamma-ai.example"))
    at.run()
    assert [t.value for t in at.title] == ["Home"]
    assert audit.list_events(seeded.conn, action="identity.bind")


def test_sign_in_refusal_is_audited_once_per_session(seeded):
    with transaction(seeded.conn):
        seeded.conn.execute("UPDATE users SET status = 'suspended' WHERE email = ?", (FOUNDER,))
    at = app("home.py", claims(FOUNDER))
    at.run()
    at.run()
    assert len(audit.list_events(seeded.conn, action="identity.sign_in")) == 1


def test_development_sign_in_lists_the_personas_to_a_signed_out_visitor(seeded):
    at = app("home.py")
    at.run()
    assert "founder-gamma-ai" in texts(at)


def test_without_development_sign_in_there_is_no_banner_and_no_persona_list(seeded, monkeypatch):
    monkeypatch.setenv("PORTAL_DEV_SIGN_IN", "false")
    at = app("home.py")
    at.run()
    assert not at.warning
    assert "founder-gamma-ai" not in texts(at)
    assert [b.label for b in at.button] == ["Sign in"]


def test_member_without_a_team_sees_how_to_join(seeded):
    from portal.store import people as store_people

    with transaction(seeded.conn):
        store_people.ensure_user(seeded.conn, email="loner@nowhere.example", role="member")
    at = app(None, claims("loner@nowhere.example"))
    at.run()
    assert [t.value for t in at.title] == ["How to join the Accelerator Portal"]
