"""sign_in: OIDC claims → Principal, re-read from the store on every call."""

from __future__ import annotations

import time

import pytest

from portal import audit
from portal.errors import Denied
from portal.identity import bind_identity, check_session_age, record_refused_sign_in, sign_in
from portal.store import people
from portal.store.db import transaction
from tests.factories import make_user

ISSUER = "http://127.0.0.1:9400"


def claims(email: str, sub: str = "sub-1", **extra) -> dict:
    base = {"iss": ISSUER, "sub": sub, "email": email, "email_verified": True,
            "iat": int(time.time())}
    base.update(extra)
    return base


def test_first_sign_in_with_verified_email_binds_the_invited_user(ctx, settings):
    make_user(ctx, "a@acme.example", team="acme-health", status="invited")
    principal = sign_in(ctx, claims("A@acme.example"), settings)
    assert principal.role == "member" and principal.team == "acme-health"
    assert (principal.issuer, principal.subject) == (ISSUER, "sub-1")
    events = audit.list_events(ctx.conn, action="identity.bind")
    assert len(events) == 1 and events[0].target == "user:a@acme.example"


def test_later_sign_in_is_keyed_by_issuer_and_subject_not_email(ctx, settings):
    make_user(ctx, "a@acme.example", team="acme-health")
    sign_in(ctx, claims("a@acme.example"), settings)
    # Same subject, e-mail changed at the provider: still the same user.
    again = sign_in(ctx, claims("new@acme.example"), settings)
    assert again.email == "a@acme.example"


def test_unverified_email_does_not_bind_and_gives_an_unknown_principal(ctx, settings):
    make_user(ctx, "a@acme.example", team="acme-health")
    principal = sign_in(ctx, claims("a@acme.example", email_verified=False), settings)
    assert principal.is_unknown and principal.role == "anonymous"
    assert people.get_user_by_email(ctx.conn, "a@acme.example")["subject"] is None


def test_unknown_person_gets_an_unknown_principal(ctx, settings):
    principal = sign_in(ctx, claims("stranger@else.example"), settings)
    assert principal.is_unknown and principal.role == "anonymous"
    assert people.get_user_by_email(ctx.conn, "stranger@else.example") is None


def test_email_bound_to_another_identity_is_refused(ctx, settings):
    make_user(ctx, "a@acme.example", team="acme-health")
    sign_in(ctx, claims("a@acme.example", sub="first"), settings)
    with pytest.raises(Denied) as err:
        sign_in(ctx, claims("a@acme.example", sub="attacker"), settings)
    assert err.value.code == "identity_conflict"


def test_staff_group_claim_creates_a_bound_staff_user(ctx, settings):
    principal = sign_in(ctx, claims("ops@platform.example", groups=[settings.staff_group]),
                        settings)
    assert principal.role == "staff" and principal.user_id is not None
    assert audit.list_events(ctx.conn, action="identity.staff_from_group")


def test_staff_group_claim_does_not_turn_a_member_into_staff(ctx, settings):
    make_user(ctx, "a@acme.example", team="acme-health")
    principal = sign_in(ctx, claims("a@acme.example", groups=[settings.staff_group]), settings)
    assert principal.role == "member"


def test_suspended_user_is_refused_at_the_next_call(ctx, settings):
    make_user(ctx, "a@acme.example", team="acme-health")
    assert sign_in(ctx, claims("a@acme.example"), settings).role == "member"
    with transaction(ctx.conn):
        ctx.conn.execute("UPDATE users SET status = 'suspended' WHERE email = 'a@acme.example'")
    with pytest.raises(Denied) as err:
        sign_in(ctx, claims("a@acme.example"), settings)
    assert err.value.code == "user_suspended"


def test_member_of_a_suspended_team_is_refused(ctx, settings):
    make_user(ctx, "a@acme.example", team="acme-health")
    with transaction(ctx.conn):
        ctx.conn.execute("UPDATE teams SET status = 'suspended' WHERE slug = 'acme-health'")
    with pytest.raises(Denied) as err:
        sign_in(ctx, claims("a@acme.example"), settings)
    assert err.value.code == "user_suspended"


def test_session_older_than_the_maximum_age_is_refused(ctx, settings):
    make_user(ctx, "a@acme.example", team="acme-health")
    old = int(time.time()) - (settings.session_max_age_hours * 3600 + 60)
    with pytest.raises(Denied) as err:
        sign_in(ctx, claims("a@acme.example", iat=old), settings)
    assert err.value.code == "session_expired"


def test_auth_time_wins_over_iat_for_the_session_age():
    now = time.time()
    with pytest.raises(Denied):
        check_session_age({"auth_time": now - 13 * 3600, "iat": now}, 12, now)
    check_session_age({"auth_time": now - 11 * 3600, "iat": now - 20 * 3600}, 12, now)


@pytest.mark.parametrize("bad", [{}, {"iat": "yesterday"}, {"iat": True}])
def test_sign_in_without_a_usable_time_is_refused(bad):
    with pytest.raises(Denied) as err:
        check_session_age(bad, 12)
    assert err.value.code == "session_expired"


def test_sign_in_from_the_future_is_refused():
    with pytest.raises(Denied) as err:
        check_session_age({"iat": time.time() + 3600}, 12)
    assert err.value.code == "invalid_identity"


@pytest.mark.parametrize("missing", ["iss", "sub"])
def test_claims_without_issuer_or_subject_are_refused(ctx, settings, missing):
    c = claims("a@acme.example")
    del c[missing]
    with pytest.raises(Denied) as err:
        sign_in(ctx, c, settings)
    assert err.value.code == "invalid_identity"


def test_refused_sign_in_is_audited_without_internals(ctx, settings):
    record_refused_sign_in(ctx, claims("a@acme.example"), Denied("user_suspended", "x"))
    event = audit.list_events(ctx.conn, action="identity.sign_in")[0]
    assert event.decision == "denied" and event.reason == "user_suspended"
    assert event.actor == "a@acme.example"


def test_bind_identity_rebinds_a_demo_persona_and_audits(ctx, settings):
    make_user(ctx, "a@acme.example", team="acme-health")
    bind_identity(ctx, "a@acme.example", ISSUER, "persona-sub", actor="devserver")
    assert sign_in(ctx, claims("whatever@x", sub="persona-sub"), settings).email == "a@acme.example"
    bind_identity(ctx, "a@acme.example", ISSUER, "persona-sub", actor="devserver")  # idempotent
    assert len(audit.list_events(ctx.conn, action="identity.bind")) == 1


def test_unknown_or_suspended_users_named_on_the_cli_are_refused_and_audited(ctx):
    from portal import audit
    from portal.errors import Denied, NotFound
    from portal.identity import principal_for_email
    from tests.factories import make_user

    make_user(ctx, "gone@x.example", team="acme-health", status="suspended")
    with pytest.raises(NotFound) as unknown:
        principal_for_email(ctx.conn, "nobody@x.example")
    with pytest.raises(Denied) as suspended:
        principal_for_email(ctx.conn, "gone@x.example")
    assert (unknown.value.code, suspended.value.code) == ("unknown_user", "user_suspended")
    events = audit.list_events(ctx.conn, action="identity.resolve")
    assert {(e.actor, e.reason) for e in events} == {
        ("nobody@x.example", "unknown_user"), ("gone@x.example", "user_suspended")}


def test_an_issuer_not_on_the_allowlist_is_refused(ctx, settings):
    from dataclasses import replace

    make_user(ctx, "a@acme.example", team="acme-health")
    strict = replace(settings, oidc_allowed_issuers=("https://idp.hospital.example/",))
    with pytest.raises(Denied) as info:
        sign_in(ctx, claims("a@acme.example", iss="https://evil.example"), strict)
    assert info.value.code == "issuer_not_allowed"
    ok = sign_in(ctx, claims("a@acme.example", iss="https://idp.hospital.example"), strict)
    assert ok.role == "member"


def test_a_required_claim_missing_or_empty_is_refused_naming_it(ctx, settings):
    from dataclasses import replace

    needs_groups = replace(settings, oidc_required_claims=("iss", "sub", "iat", "groups"))
    for missing in (claims("a@acme.example"), claims("a@acme.example", groups=[])):
        with pytest.raises(Denied) as info:
            sign_in(ctx, missing, needs_groups)
        assert info.value.code == "invalid_identity" and "'groups'" in info.value.message
    without_iat = {k: v for k, v in claims("a@acme.example").items() if k != "iat"}
    with pytest.raises(Denied) as info:
        sign_in(ctx, {**without_iat, "auth_time": int(time.time())}, settings)
    assert info.value.code == "invalid_identity"
