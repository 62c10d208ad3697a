"""Personal access tokens: shown once, stored as a keyed hash, scoped, expiring, revocable, and
re-checked with their owner and team on every use; every refusal audited."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac

import pytest

from portal import audit
from portal.errors import Denied, InvalidInput, NotFound, Rejected
from portal.services import people, tokens
from portal.store.db import transaction
from tests.factories import make_user

MEMBER = "analyst@acme-health.example"
OTHER = "analyst@beta-bio.example"
STAFF = "staff@platform.example"
ALL_ACTIONS = list(tokens.ACTIONS)


def make_token(ctx, principal, datasets=("wdbc",), actions=ALL_ACTIONS, days=None,
               name="CI"):
    return tokens.create_token(ctx, principal, name, list(datasets), list(actions), days)


def refusals(ctx, reason=None):
    return [e for e in audit.list_events(ctx.conn, action="token.use", decision="denied")
            if reason is None or e.reason == reason]


@pytest.fixture
def member(ctx):
    return make_user(ctx, MEMBER, team="acme-health")


def test_created_token_has_the_scanner_prefix_and_256_random_bits(ctx, member):
    created = make_token(ctx, member)
    assert created.secret.startswith("acpat_")
    match = tokens.TOKEN_PATTERN.fullmatch(created.secret)
    assert match and match.group(1) == created.info.token_id
    assert len(match.group(2)) == 43  # 32 bytes, base64url
    assert make_token(ctx, member).secret != created.secret


def test_the_store_holds_only_a_keyed_hash_of_the_token(ctx, member):
    created = make_token(ctx, member)
    row = ctx.conn.execute("SELECT * FROM api_tokens").fetchone()
    stored = " ".join(str(v) for v in tuple(row))
    assert created.secret not in stored and created.secret.split("_")[2] not in stored
    key = ctx.settings.secret(tokens.KEY_NAME)
    expected = hmac.new(key, created.secret.encode(), hashlib.sha256).hexdigest()
    assert row["secret_hash"] == expected
    assert row["secret_hash"] != hashlib.sha256(created.secret.encode()).hexdigest()


def test_listing_never_shows_a_secret_or_hash(ctx, member):
    created = make_token(ctx, member)
    listed = tokens.list_tokens(ctx, member)
    text = repr([t.to_dict() for t in listed])
    assert [t.token_id for t in listed] == [created.info.token_id]
    assert created.secret not in text and "hash" not in text


def test_creation_is_audited_with_its_scopes(ctx, member):
    created = make_token(ctx, member, datasets=("wdbc", "eunomia"), actions=["sandbox:read"])
    [event] = audit.list_events(ctx.conn, action="token.create")
    assert (event.actor, event.team, event.decision) == (MEMBER, "acme-health", "done")
    assert event.target == f"token:{created.info.token_id}"
    assert event.details["datasets"] == ["wdbc", "eunomia"]
    assert created.secret not in repr(event.to_dict())


def test_authenticate_returns_the_owner_re_read_from_the_store(ctx, member):
    created = make_token(ctx, member)
    caller = tokens.authenticate(ctx, created.secret, "sandbox:read", "wdbc")
    assert caller.principal.email == MEMBER and caller.principal.team == "acme-health"
    assert caller.token.token_id == created.info.token_id
    assert tokens.list_tokens(ctx, member)[0].last_used_at is not None


@pytest.mark.parametrize(("days", "code"), [(0, "invalid_lifetime"), (31, "invalid_lifetime"),
                                            (True, "invalid_lifetime")])
def test_lifetime_is_capped_by_the_setting(ctx, member, days, code):
    with pytest.raises(InvalidInput) as caught:
        make_token(ctx, member, days=days)
    assert caught.value.code == code
    [event] = audit.list_events(ctx.conn, action="token.create")
    assert (event.decision, event.reason) == ("rejected", code)


def test_default_lifetime_is_short(ctx, member):
    info = make_token(ctx, member).info
    assert info.expires_at[:10] > info.created_at[:10]
    assert tokens.DEFAULT_DAYS <= ctx.settings.api_token_max_days <= 30


@pytest.mark.parametrize(("datasets", "actions"), [
    ((), ["sandbox:read"]),                      # no dataset
    (("wdbc",), []),                             # no action
    (("no-such-dataset",), ["sandbox:read"]),    # unknown dataset
    (("wdbc",), ["admin:everything"]),           # unknown action
])
def test_scopes_must_be_known_and_not_empty(ctx, member, datasets, actions):
    with pytest.raises(InvalidInput) as caught:
        make_token(ctx, member, datasets=datasets, actions=actions)
    assert caught.value.code == "invalid_scope"
    assert ctx.conn.execute("SELECT count(*) FROM api_tokens").fetchone()[0] == 0


def test_staff_cannot_make_tokens_and_the_refusal_is_audited(ctx):
    staff = make_user(ctx, STAFF, role="staff")
    with pytest.raises(Denied) as caught:
        make_token(ctx, staff)
    assert caught.value.code == "not_a_member"
    [event] = audit.list_events(ctx.conn, action="token.create")
    assert (event.actor, event.decision) == (STAFF, "denied")


def test_a_member_has_a_bounded_number_of_active_tokens(ctx, member, monkeypatch):
    monkeypatch.setattr(tokens, "MAX_ACTIVE_TOKENS", 2)
    make_token(ctx, member)
    make_token(ctx, member)
    with pytest.raises(Rejected) as caught:
        make_token(ctx, member)
    assert caught.value.code == "too_many_tokens"


@pytest.mark.parametrize("raw", [None, "", "Bearer", "acpat_", "not-a-token",
                                 "acpat_0123456789abcdef_" + "A" * 43,
                                 "acpat_0123456789ABCDEF_" + "A" * 43])
def test_missing_malformed_and_unknown_tokens_are_refused_and_audited(ctx, member, raw):
    with pytest.raises(Denied) as caught:
        tokens.authenticate(ctx, raw, "sandbox:read", endpoint="GET /api/v1/runs")
    expected = "token_missing" if not raw else "token_invalid"
    assert caught.value.code == expected and caught.value.code in tokens.UNAUTHENTICATED
    [event] = refusals(ctx)
    assert (event.actor, event.reason) == ("anonymous", expected)
    assert event.details["endpoint"] == "GET /api/v1/runs"


def test_right_id_with_a_wrong_secret_is_invalid(ctx, member):
    created = make_token(ctx, member)
    forged = created.secret[:-4] + ("AAAA" if not created.secret.endswith("AAAA") else "BBBB")
    with pytest.raises(Denied) as caught:
        tokens.authenticate(ctx, forged, "sandbox:read")
    assert caught.value.code == "token_invalid"
    [event] = refusals(ctx)
    assert event.actor == "anonymous" and event.target == f"token:{created.info.token_id}"
    assert forged not in repr(event.to_dict())


def test_expired_token_is_refused(ctx, member):
    created = make_token(ctx, member)
    with transaction(ctx.conn):
        ctx.conn.execute("UPDATE api_tokens SET expires_at = '2020-01-01T00:00:00Z'")
    with pytest.raises(Denied) as caught:
        tokens.authenticate(ctx, created.secret, "sandbox:read")
    assert caught.value.code == "token_expired"
    [event] = refusals(ctx)
    assert (event.actor, event.team, event.reason) == (MEMBER, "acme-health", "token_expired")
    assert tokens.list_tokens(ctx, member)[0].status == "expired"


def test_revoked_token_is_refused_from_the_next_use(ctx, member):
    created = make_token(ctx, member)
    tokens.authenticate(ctx, created.secret, "sandbox:read")
    revoked = tokens.revoke_token(ctx, member, created.info.token_id)
    assert revoked.status == "revoked" and revoked.revoked_by == MEMBER
    with pytest.raises(Denied) as caught:
        tokens.authenticate(ctx, created.secret, "sandbox:read")
    assert caught.value.code == "token_revoked"
    assert [e.reason for e in refusals(ctx)] == ["token_revoked"]
    [event] = audit.list_events(ctx.conn, action="token.revoke")
    assert (event.actor, event.decision) == (MEMBER, "done")


@pytest.mark.parametrize(("action", "dataset"), [("query:run", "wdbc"),
                                                 ("sandbox:read", "eunomia")])
def test_scope_outside_the_token_is_denied(ctx, member, action, dataset):
    created = make_token(ctx, member, datasets=("wdbc",), actions=["sandbox:read"])
    with pytest.raises(Denied) as caught:
        tokens.authenticate(ctx, created.secret, action, dataset)
    assert caught.value.code == "token_scope" and "token_scope" not in tokens.UNAUTHENTICATED
    [event] = refusals(ctx)
    assert (event.actor, event.details["action"]) == (MEMBER, action)


@pytest.mark.parametrize("change", ["suspend_member", "suspend_team", "remove_member"])
def test_a_suspension_stops_the_token_at_its_next_use(ctx, member, change):
    created = make_token(ctx, member)
    staff = make_user(ctx, STAFF, role="staff")
    if change == "suspend_team":
        people.suspend_team(ctx, staff, "acme-health", "audit finding")
        expected = "team_suspended"
    elif change == "suspend_member":
        people.suspend_member(ctx, staff, MEMBER, "audit finding")
        expected = "user_suspended"
    else:
        people.remove_member(ctx, staff, MEMBER, "left the company")
        expected = "not_a_member"
    with pytest.raises(Denied) as caught:
        tokens.authenticate(ctx, created.secret, "sandbox:read")
    assert caught.value.code == expected
    assert [e.reason for e in refusals(ctx)] == [expected]


def test_a_token_stops_when_its_owner_moves_to_another_team(ctx, member):
    created = make_token(ctx, member)
    make_user(ctx, OTHER, team="beta-bio")
    with transaction(ctx.conn):
        team_id = ctx.conn.execute("SELECT id FROM teams WHERE slug = 'beta-bio'").fetchone()[0]
        ctx.conn.execute("UPDATE memberships SET team_id = ? WHERE user_id = ?",
                         (team_id, member.user_id))
    with pytest.raises(Denied) as caught:
        tokens.authenticate(ctx, created.secret, "sandbox:read")
    assert caught.value.code == "token_team_changed"


def test_members_revoke_only_their_own_tokens_and_staff_any(ctx, member):
    created = make_token(ctx, member)
    other = make_user(ctx, OTHER, team="beta-bio")
    with pytest.raises(NotFound):
        tokens.revoke_token(ctx, other, created.info.token_id)
    assert tokens.list_tokens(ctx, member)[0].status == "active"
    staff = make_user(ctx, STAFF, role="staff")
    assert [t.token_id for t in tokens.list_tokens(ctx, staff, everyone=True)] == \
        [created.info.token_id]
    with pytest.raises(Denied):
        tokens.list_tokens(ctx, other, everyone=True)
    # a leaked token can be revoked by pasting the whole text
    assert tokens.revoke_token(ctx, staff, created.secret).status == "revoked"
    with pytest.raises(Rejected) as caught:
        tokens.revoke_token(ctx, staff, created.info.token_id)
    assert caught.value.code == "already_revoked"
    decisions = [(e.actor, e.decision) for e in audit.list_events(ctx.conn,
                                                                  action="token.revoke")]
    assert decisions == [(STAFF, "rejected"), (STAFF, "done"), (OTHER, "denied")]


def test_the_hash_key_is_per_installation(ctx, member, tmp_path):
    make_token(ctx, member)
    other_home = dataclasses.replace(ctx.settings, home=tmp_path / "other",
                                     shared_secrets_dir=tmp_path / "other" / "secrets")
    assert other_home.secret(tokens.KEY_NAME) != ctx.settings.secret(tokens.KEY_NAME)
