"""AppTest of the API tokens page: a member makes a token (its text shown once), lists and
revokes it; refusals shown with their code; another member's tokens are not shown."""

from __future__ import annotations

from portal import audit
from portal.services import tokens
from tests.app.helpers import app, claims, error_codes, texts

FOUNDER = "founder@gamma-ai.example"
ANALYST = "analyst@acme-health.example"


def _principal(ctx, email):
    from portal.identity import principal_for_email

    return principal_for_email(ctx.conn, email)


def create(at, name="CI", datasets=("wdbc",), actions=("sandbox:read", "sandbox:submit")):
    at.text_input(key="token_name").input(name)
    for dataset in datasets:
        at.multiselect(key="token_datasets").select(dataset)
    for action in actions:
        at.multiselect(key="token_actions").select(action)
    next(b for b in at.button if b.label == "Create token").click().run()
    return at


def test_a_member_creates_a_token_shown_once_then_revokes_it(seeded):
    at = app("api_tokens.py", claims(FOUNDER))
    at.run()
    assert not at.exception and "You have no tokens yet." in texts(at)
    create(at)
    assert not at.exception and not at.error
    [secret] = [c.value for c in at.code if c.value.startswith(tokens.PREFIX)]
    caller = tokens.authenticate(seeded, secret, "sandbox:submit", "wdbc")
    assert caller.principal.email == FOUNDER
    assert caller.token.token_id in texts(at)

    at.run()  # the next rerun: the token text is gone for good
    assert secret not in texts(at) and caller.token.token_id in texts(at)

    at.selectbox(key="revoke_token").select(caller.token.token_id)
    next(b for b in at.button if b.label == "Revoke").click().run()
    assert not at.exception
    assert any("revoked" in str(s.value) for s in at.success)
    assert tokens.list_tokens(seeded, _principal(seeded, FOUNDER))[0].status == "revoked"
    assert [e.action for e in audit.list_events(seeded.conn, actor=FOUNDER)
            if e.action.startswith("token.")] == ["token.revoke", "token.create"]


def test_a_token_without_datasets_is_refused_with_its_code(seeded):
    at = app("api_tokens.py", claims(FOUNDER))
    at.run()
    create(at, datasets=())
    assert error_codes(at) == ["invalid_scope"]
    assert not [c for c in at.code if c.value.startswith(tokens.PREFIX)]


def test_members_see_only_their_own_tokens(seeded):
    other = tokens.create_token(seeded, _principal(seeded, ANALYST), "theirs", ["wdbc"],
                                ["sandbox:read"])
    at = app("api_tokens.py", claims(FOUNDER))
    at.run()
    assert other.info.token_id not in texts(at) and "theirs" not in texts(at)
