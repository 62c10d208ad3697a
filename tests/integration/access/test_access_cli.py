"""The `portal access` and `portal teams` commands end to end: real store file, real policies."""

import json

import pytest

from portal import audit
from portal.cli import main
from portal.services.context import Context
from portal.services.demo import seed
from tests.factories_access import PURPOSE, write_policy


@pytest.fixture
def env(settings, tmp_path):
    policies = tmp_path / "policies"
    write_policy(policies)
    environ = {"PORTAL_HOME": str(settings.home), "PORTAL_POLICIES_DIR": str(policies)}
    ctx = Context.open(settings)
    seed(ctx)  # the demo teams, personas and grants
    ctx.close()
    return environ


def run(capsys, environ, *argv):
    code = main(list(argv), environ)
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip().startswith(("{", "[")) else out


def test_grant_list_revoke_round_trip_in_json(capsys, env):
    code, made = run(capsys, env, "access", "grant", "--team", "gamma-ai", "--dataset",
                     "eunomia", "--tier", "aggregate", "--days", "30", "--by",
                     "staff@platform.example", "--purpose", "Cohort sizing for the triage study",
                     "--terms-agreed", "--format", "json")
    assert code == 0 and made["team"] == "gamma-ai" and made["days_left"] == 30
    code, listed = run(capsys, env, "access", "list", "--format", "json")
    assert code == 0 and made["id"] in [g["id"] for g in listed]
    assert all("extract_path" in g for g in listed)
    code, revoked = run(capsys, env, "access", "revoke", str(made["id"]), "--by",
                        "reviewer@platform.example", "--reason", "Project ended", "--format",
                        "json")
    assert code == 0 and revoked["status"] == "revoked"


def test_grant_by_member_exits_2_with_error_code(capsys, env):
    code, out = run(capsys, env, "access", "grant", "--team", "gamma-ai", "--dataset",
                    "eunomia", "--tier", "aggregate", "--days", "30", "--by",
                    "founder@gamma-ai.example", "--format", "json")
    assert code == 2 and out["error"]["code"] == "staff_only"


def test_grant_longer_than_policy_allows_is_refused(capsys, env):
    code, out = run(capsys, env, "access", "grant", "--team", "gamma-ai", "--dataset",
                    "eunomia", "--tier", "row-level", "--days", "400", "--by",
                    "staff@platform.example", "--format", "json")
    assert code == 2 and out["error"]["code"] == "duration_exceeds_policy"


def test_direct_grant_without_a_long_enough_purpose_exits_2_and_grants_nothing(capsys, env):
    code, out = run(capsys, env, "access", "grant", "--team", "gamma-ai", "--dataset",
                    "eunomia", "--tier", "aggregate", "--days", "30", "--by",
                    "staff@platform.example", "--terms-agreed", "--format", "json")
    assert code == 2 and out["error"]["code"] == "purpose_too_short"
    code, listed = run(capsys, env, "access", "list", "--format", "json")
    assert code == 0 and [g for g in listed if g["team"] == "gamma-ai"] == []


def test_approving_a_short_aggregate_request_at_row_level_exits_2(capsys, env):
    code, made = run(capsys, env, "access", "request", "--user", "founder@gamma-ai.example",
                     "--dataset", "eunomia", "--tier", "aggregate", "--purpose",
                     "Cohort sizing for the triage study", "--agree-terms", "--format", "json")
    assert code == 0
    code, out = run(capsys, env, "access", "approve", str(made["id"]), "--by",
                    "staff@platform.example", "--days", "30", "--tier", "row-level",
                    "--format", "json")
    assert code == 2 and out["error"]["code"] == "purpose_too_short"


def test_request_approve_flow_from_the_cli(capsys, env):
    code, made = run(capsys, env, "access", "request", "--user", "founder@gamma-ai.example",
                     "--dataset", "eunomia", "--tier", "row-level", "--purpose", PURPOSE,
                     "--agree-terms", "--format", "json")
    assert code == 0 and made["status"] == "submitted"
    code, queue = run(capsys, env, "access", "queue", "--by", "staff@platform.example",
                      "--format", "json")
    assert [r["id"] for r in queue] == [made["id"]]
    code, done = run(capsys, env, "access", "approve", str(made["id"]), "--by",
                     "staff@platform.example", "--days", "30", "--format", "json")
    assert code == 0 and done["status"] == "approved" and done["grant_id"]
    code, mine = run(capsys, env, "access", "requests", "--user", "founder@gamma-ai.example",
                     "--format", "json")
    assert mine[0]["status"] == "approved"
    code, everything = run(capsys, env, "access", "requests", "--status", "approved",
                           "--format", "json")
    assert code == 0 and [r["id"] for r in everything] == [made["id"]]
    assert "team_history" in everything[0]


def test_request_without_terms_agreement_exits_2(capsys, env):
    code, out = run(capsys, env, "access", "request", "--user", "founder@gamma-ai.example",
                    "--dataset", "eunomia", "--tier", "row-level", "--purpose", PURPOSE,
                    "--format", "json")
    assert code == 2 and out["error"]["code"] == "terms_not_agreed"


def test_deny_and_withdraw_from_the_cli(capsys, env):
    _, first = run(capsys, env, "access", "request", "--user", "founder@gamma-ai.example",
                   "--dataset", "eunomia", "--tier", "row-level", "--purpose", PURPOSE,
                   "--agree-terms", "--format", "json")
    code, denied = run(capsys, env, "access", "deny", str(first["id"]), "--by",
                       "reviewer@platform.example", "--reason", "Too broad", "--format", "json")
    assert code == 0 and denied["status"] == "denied"
    _, second = run(capsys, env, "access", "request", "--user", "founder@gamma-ai.example",
                    "--dataset", "eunomia", "--tier", "aggregate", "--purpose", PURPOSE,
                    "--agree-terms", "--format", "json")
    code, gone = run(capsys, env, "access", "withdraw", str(second["id"]), "--user",
                     "founder@gamma-ai.example", "--format", "json")
    assert code == 0 and gone["status"] == "withdrawn"


def test_expire_and_diagram_commands(capsys, env):
    code, out = run(capsys, env, "access", "expire", "--format", "json")
    assert code == 0 and out == {"expired": []}
    code, text = run(capsys, env, "access", "diagram")
    assert code == 0 and "stateDiagram-v2" in text


def test_teams_commands_onboard_invite_suspend_list(capsys, env):
    staff = ["--by", "staff@platform.example", "--format", "json"]
    code, made = run(capsys, env, "teams", "onboard", "delta-dx", "--name", "Delta Dx",
                     "--invite", "lead@delta.example", *staff)
    assert code == 0 and made["invited"] == ["lead@delta.example"]
    code, _ = run(capsys, env, "teams", "invite", "delta-dx", "cto@delta.example", *staff)
    assert code == 0
    code, out = run(capsys, env, "teams", "suspend", "analyst@acme-health.example",
                    "--reason", "Shared credentials", *staff)
    assert code == 0 and out["status"] == "suspended"
    code, out = run(capsys, env, "teams", "reactivate", "analyst@acme-health.example", *staff)
    assert out["status"] in ("active", "invited")
    code, out = run(capsys, env, "teams", "suspend-team", "beta-bio", "--reason", "Paused",
                    *staff)
    assert out["status"] == "suspended"
    code, teams = run(capsys, env, "teams", "list", *staff)
    by_slug = {t["team"]: t for t in teams}
    assert {m["email"] for m in by_slug["delta-dx"]["members"]} == {
        "lead@delta.example", "cto@delta.example"}
    assert by_slug["beta-bio"]["status"] == "suspended"


def test_demo_seed_grants_acme_and_beta_not_gamma_and_is_idempotent(settings):
    ctx = Context.open(settings)
    first = seed(ctx)["seed_demo_grants"]
    assert len(first["created"]) == 2 and first["skipped"] == []
    assert seed(ctx)["seed_demo_grants"] == {"created": [], "skipped": []}
    rows = ctx.conn.execute(
        "SELECT t.slug, g.tier, g.status FROM grants g JOIN teams t ON t.id = g.team_id"
        " ORDER BY t.slug").fetchall()
    assert [tuple(r) for r in rows] == [("acme-health", "row-level", "active"),
                                        ("beta-bio", "aggregate", "active")]
    assert len(audit.list_events(ctx.conn, action="grant.create")) == 2
    ctx.close()


def test_staff_grant_list_shows_extract_path_for_active_grants_with_a_release(ctx, tmp_path):
    from portal.services import access as access_services
    from tests.factories import make_release, make_user
    from tests.factories_access import make_grant, policy_ctx

    actx = policy_ctx(ctx, tmp_path / "policies")
    make_release(actx, "eunomia", {
        "person": "SELECT range AS person_id, 1950 + range % 40 AS year_of_birth FROM range(50)"})
    staff = make_user(actx, "staff@platform.example", role="staff")
    active = make_grant(actx, "acme-health", "eunomia", "row-level")
    revoked = make_grant(actx, "beta-bio", "eunomia", "aggregate", status="revoked")
    listed = {g["id"]: g for g in access_services.list_grants(actx, staff)}
    path = listed[active.id]["extract_path"]
    assert path.startswith(str(actx.settings.extracts_dir)) and path.endswith(".duckdb")
    assert listed[revoked.id]["extract_path"] is None
