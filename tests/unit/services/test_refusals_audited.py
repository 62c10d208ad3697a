"""Every use case is declared, and a refused (or failed) attempt at any of them writes exactly one
audit event: the refusal's code as the reason, no second event from an outer attempt, and an
internal failure recorded as ``failed`` with its cause while the caller gets a generic error."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import portal.services
from portal import audit
from portal.errors import InternalError, PortalError, UserError
from portal.identity import ANONYMOUS, principal_for_email
from portal.services import (
    access,
    admin,
    attempts,
    catalog,
    demo,
    people,
    query,
    sandbox,
    tokens,
    workspace,
)
from tests.factories import make_validation_run

STAFF, MEMBER, OTHER = ("staff@platform.example", "founder@gamma-ai.example",
                        "analyst@acme-health.example")

# Public functions of portal/services that are not use cases: checks and predicates used by
# use cases, pure helpers, and operator entry points the CLI runs inside its own attempt.
HELPERS = {
    "access": {"audited_attempt", "seed_demo_grants", "access_ended"},
    "attempts": {"attempt", "decision_for", "describe_failure", "ref", "use_case"},
    "catalog": {"check_manifests", "report_summary"},
    "context": set(),
    "demo": {"seed_people", "seed"},
    "policies": {"policies", "current_releases", "check_policies", "dataset_policy",
                 "resolved_tier"},
    "query": {"check_budget", "budget_use", "can_download", "extract_for", "governed_error",
              "close_abandoned_runs", "privacy_budget", "privacy_status"},
    "sandbox": {"tasks", "get_task", "task_summary", "clean_model_card", "verify_report",
                "process_queue"},
    "workspace": set(),
    "tokens": {"authenticate", "check_scope", "known_datasets", "owner_of", "token_hash",
               "token_id_of"},
}


def _public_functions():
    for info in pkgutil.iter_modules(portal.services.__path__):
        module = importlib.import_module(f"portal.services.{info.name}")
        for name, func in inspect.getmembers(module, inspect.isfunction):
            if not name.startswith("_") and func.__module__ == module.__name__:
                yield info.name, name, func


def _ctx_with_people_and_a_run(ctx):
    demo.seed_people(ctx)
    return make_validation_run(ctx, "acme-health", OTHER)


# (use case, action recorded, the refused call). `m`: a member of a team with no grants and
# nothing of its own; `s`: staff; `run`: a run of another team; `tmp`: a folder outside home.
REFUSALS = {
    ("access", "submit_request"): ("request.submit", lambda c, m, s, run, tmp:
        access.submit_request(c, s, "eunomia", "aggregate", "x" * 60, True)),
    ("access", "withdraw_request"): ("request.withdraw", lambda c, m, s, run, tmp:
        access.withdraw_request(c, m, 999_999)),
    ("access", "reconfirm_request"): ("request.reconfirm", lambda c, m, s, run, tmp:
        access.reconfirm_request(c, m, 999_999, True)),
    ("access", "get_request"): ("request.view", lambda c, m, s, run, tmp:
        access.get_request(c, m, 999_999)),
    ("access", "list_requests"): ("request.list", lambda c, m, s, run, tmp:
        access.list_requests(c, ANONYMOUS)),
    ("access", "list_requests_for_operator"): ("request.list", lambda c, m, s, run, tmp:
        access.list_requests_for_operator(c, status="bogus")),
    ("access", "review_queue"): ("request.queue", lambda c, m, s, run, tmp:
        access.review_queue(c, m)),
    ("access", "approve_request"): ("request.approve", lambda c, m, s, run, tmp:
        access.approve_request(c, m, 1, 30)),
    ("access", "deny_request"): ("request.deny", lambda c, m, s, run, tmp:
        access.deny_request(c, m, 1, "no")),
    ("access", "grant_access"): ("grant.create", lambda c, m, s, run, tmp:
        access.grant_access(c, m, "gamma-ai", "eunomia", "aggregate", 30)),
    ("access", "revoke_grant"): ("grant.revoke", lambda c, m, s, run, tmp:
        access.revoke_grant(c, m, 1, "ended")),
    ("access", "list_grants"): ("grant.list", lambda c, m, s, run, tmp:
        access.list_grants(c, ANONYMOUS)),
    ("access", "list_grants_for_operator"): ("grant.list", lambda c, m, s, run, tmp:
        access.list_grants_for_operator(c, bucket="bogus")),
    ("access", "expire_grants"): ("grant.expire", lambda c, m, s, run, tmp:
        access.expire_grants(c, now="not a time")),
    ("access", "team_overview"): ("team.overview", lambda c, m, s, run, tmp:
        access.team_overview(c, s)),
    ("admin", "rebuild_extracts"): ("extracts.rebuild", lambda c, m, s, run, tmp:
        admin.rebuild_extracts(c, m, "eunomia")),
    ("admin", "audit_events"): ("audit.view", lambda c, m, s, run, tmp:
        admin.audit_events(c, m)),
    ("admin", "audit_filter_options"): ("audit.view", lambda c, m, s, run, tmp:
        admin.audit_filter_options(c, m)),
    ("admin", "record_audit_export"): ("audit.export", lambda c, m, s, run, tmp:
        admin.record_audit_export(c, m, {}, 1)),
    ("admin", "audit_chain_status"): ("audit.chain.status", lambda c, m, s, run, tmp:
        admin.audit_chain_status(c, m)),
    ("admin", "verify_audit_chain"): ("audit.verify", lambda c, m, s, run, tmp:
        admin.verify_audit_chain(c, m)),
    ("admin", "write_audit_checkpoint"): ("audit.checkpoint", lambda c, m, s, run, tmp:
        admin.write_audit_checkpoint(c, s, c.settings.home / "checkpoint.json")),
    ("catalog", "list_datasets"): ("catalog.list", lambda c, m, s, run, tmp:
        catalog.list_datasets(c, ANONYMOUS)),
    ("catalog", "describe_dataset"): ("catalog.describe", lambda c, m, s, run, tmp:
        catalog.describe_dataset(c, m, "no-such-dataset")),
    # demographics reads the data card through describe_dataset: the innermost use case records
    ("catalog", "demographics"): ("catalog.describe", lambda c, m, s, run, tmp:
        catalog.demographics(c, ANONYMOUS, "eunomia")),
    ("catalog", "build_releases"): ("release.build", lambda c, m, s, run, tmp:
        catalog.build_releases(c, m, ["wdbc"])),
    ("people", "onboard_team"): ("team.onboard", lambda c, m, s, run, tmp:
        people.onboard_team(c, m, "delta-dx", "Delta")),
    ("people", "invite_member"): ("member.invite", lambda c, m, s, run, tmp:
        people.invite_member(c, m, "gamma-ai", "new@gamma-ai.example")),
    ("people", "suspend_member"): ("member.suspend", lambda c, m, s, run, tmp:
        people.suspend_member(c, m, OTHER, "because")),
    ("people", "reactivate_member"): ("member.reactivate", lambda c, m, s, run, tmp:
        people.reactivate_member(c, m, OTHER)),
    ("people", "remove_member"): ("member.remove", lambda c, m, s, run, tmp:
        people.remove_member(c, m, OTHER, "because")),
    ("people", "suspend_team"): ("team.suspend", lambda c, m, s, run, tmp:
        people.suspend_team(c, m, "acme-health", "because")),
    ("people", "reactivate_team"): ("team.reactivate", lambda c, m, s, run, tmp:
        people.reactivate_team(c, m, "acme-health")),
    ("people", "list_teams"): ("team.list", lambda c, m, s, run, tmp:
        people.list_teams(c, m)),
    ("query", "run_query"): ("query.run", lambda c, m, s, run, tmp:
        query.run_query(c, m, "eunomia", "SELECT 1")),
    ("query", "query_history"): ("query.history", lambda c, m, s, run, tmp:
        query.query_history(c, m, limit="lots")),
    ("query", "save_query"): ("query.save", lambda c, m, s, run, tmp:
        query.save_query(c, m, "eunomia", "", "SELECT 1")),
    ("query", "list_saved_queries"): ("query.saved.list", lambda c, m, s, run, tmp:
        query.list_saved_queries(c, m, dataset_id={"not": "an id"})),
    ("query", "delete_saved_query"): ("query.saved.delete", lambda c, m, s, run, tmp:
        query.delete_saved_query(c, m, 999_999)),
    ("query", "schema_for"): ("query.schema", lambda c, m, s, run, tmp:
        query.schema_for(c, m, "eunomia")),
    ("query", "download_result"): ("query.download", lambda c, m, s, run, tmp:
        query.download_result(c, m, "eunomia", None)),
    ("query", "prune_extracts"): ("extracts.prune", lambda c, m, s, run, tmp:
        query.prune_extracts(c, m)),
    ("query", "query_budget"): ("query.budget", lambda c, m, s, run, tmp:
        query.query_budget(c, m, "eunomia")),
    ("query", "preview_query"): ("query.preview", lambda c, m, s, run, tmp:
        query.preview_query(c, m, "eunomia", "SELECT count(*) FROM person")),
    ("query", "share_saved_query"): ("query.saved.share", lambda c, m, s, run, tmp:
        query.share_saved_query(c, m, 999_999)),
    ("workspace", "schema_overview"): ("query.schema.overview", lambda c, m, s, run, tmp:
        workspace.schema_overview(c, m, "eunomia")),
    ("workspace", "search_concepts"): ("query.concepts", lambda c, m, s, run, tmp:
        workspace.search_concepts(c, m, "eunomia", "bleeding")),
    ("tokens", "create_token"): ("token.create", lambda c, m, s, run, tmp:
        tokens.create_token(c, s, "ci", ["eunomia"], ["query:run"])),
    ("tokens", "list_tokens"): ("token.list", lambda c, m, s, run, tmp:
        tokens.list_tokens(c, m, everyone=True)),
    ("tokens", "revoke_token"): ("token.revoke", lambda c, m, s, run, tmp:
        tokens.revoke_token(c, m, "0123456789abcdef")),
    ("sandbox", "quota_status"): ("sandbox.quota", lambda c, m, s, run, tmp:
        sandbox.quota_status(c, m, None)),
    ("sandbox", "submit"): ("sandbox.submit", lambda c, m, s, run, tmp:
        sandbox.submit(c, m, "no-such-task", b"", {})),
    ("sandbox", "dry_run"): ("sandbox.dry_run", lambda c, m, s, run, tmp:
        sandbox.dry_run(c, m, "no-such-task", b"", {})),
    ("sandbox", "run_status"): ("sandbox.run.view", lambda c, m, s, run, tmp:
        sandbox.run_status(c, m, run)),
    ("sandbox", "list_runs"): ("sandbox.runs.list", lambda c, m, s, run, tmp:
        sandbox.list_runs(c, ANONYMOUS)),
    ("sandbox", "report"): ("sandbox.report.view", lambda c, m, s, run, tmp:
        sandbox.report(c, m, run)),
    ("sandbox", "released_report"): ("sandbox.report.view", lambda c, m, s, run, tmp:
        sandbox.released_report(c, m, run)),
    ("sandbox", "staff_report"): ("sandbox.report.view", lambda c, m, s, run, tmp:
        sandbox.staff_report(c, m, run)),
    ("sandbox", "release_run"): ("sandbox.run.release", lambda c, m, s, run, tmp:
        sandbox.release_run(c, m, run)),
    ("sandbox", "withhold_run"): ("sandbox.run.withhold", lambda c, m, s, run, tmp:
        sandbox.withhold_run(c, m, run, "not good enough")),
    ("sandbox", "rerun_latest"): ("sandbox.rerun", lambda c, m, s, run, tmp:
        sandbox.rerun_latest(c, m, "wdbc-malignancy")),
    ("sandbox", "export_holdout"): ("sandbox.holdout.export", lambda c, m, s, run, tmp:
        sandbox.export_holdout(c, m, "wdbc-malignancy", tmp / "h.parquet")),
}


def test_every_public_service_function_is_a_declared_use_case_or_a_named_helper():
    undeclared, unknown_helpers = [], []
    for module, name, func in _public_functions():
        declared = hasattr(func, "audit_action")
        if declared == (name in HELPERS.get(module, set())):
            (unknown_helpers if declared else undeclared).append(f"{module}.{name}")
    assert undeclared == [] and unknown_helpers == []


def test_every_declared_use_case_has_a_refusal_case():
    declared = {(m, n) for m, n, f in _public_functions() if hasattr(f, "audit_action")}
    assert declared == set(REFUSALS)


@pytest.mark.parametrize(("use_case", "expected"), sorted(REFUSALS.items()),
                         ids=[f"{m}.{n}" for m, n in sorted(REFUSALS)])
def test_a_refused_attempt_writes_exactly_one_event(ctx, tmp_path, use_case, expected):
    run = _ctx_with_people_and_a_run(ctx)
    member, staff = principal_for_email(ctx.conn, MEMBER), principal_for_email(ctx.conn, STAFF)
    action, call = expected
    before = ctx.conn.execute("SELECT max(id) FROM audit_events").fetchone()[0]
    with pytest.raises(PortalError) as raised:
        call(ctx, member, staff, run, tmp_path)
    events = [e for e in audit.list_events(ctx.conn) if e.id > before]
    assert len(events) == 1, [(e.action, e.decision, e.reason) for e in events]
    event, error = events[0], raised.value
    assert event.action == action and event.decision == attempts.decision_for(error)
    if isinstance(error, UserError):
        assert event.reason == error.code
    else:  # an internal failure: the cause for staff, a generic message for the caller
        assert isinstance(error, InternalError) and error.reference
        assert event.details["reference"] == error.reference and event.details["cause"]
        assert "Staff have been notified" in error.message and "/" not in error.message
    assert audit.verify(ctx.conn).ok


def test_nested_use_cases_write_one_event_for_the_innermost_refusal(ctx):
    run = _ctx_with_people_and_a_run(ctx)
    staff = principal_for_email(ctx.conn, STAFF)
    before = ctx.conn.execute("SELECT max(id) FROM audit_events").fetchone()[0]
    with pytest.raises(UserError):  # release_run calls run_status inside it
        sandbox.release_run(ctx, staff, run)
    events = [e for e in audit.list_events(ctx.conn) if e.id > before]
    assert [(e.action, e.reason) for e in events] == [("sandbox.run.release",
                                                       "invalid_transition")]


def test_a_use_case_that_audits_its_own_refusal_gets_no_second_event(ctx):
    demo.seed_people(ctx)
    member = principal_for_email(ctx.conn, MEMBER)
    before = ctx.conn.execute("SELECT max(id) FROM audit_events").fetchone()[0]
    with pytest.raises(UserError):
        query.run_query(ctx, member, "eunomia", "SELECT 1")
    events = [e for e in audit.list_events(ctx.conn) if e.id > before]
    assert len(events) == 1 and events[0].details["sql"] == "SELECT 1"


def test_an_allowed_read_writes_no_event(ctx):
    demo.seed_people(ctx)
    staff = principal_for_email(ctx.conn, STAFF)
    before = ctx.conn.execute("SELECT count(*) FROM audit_events").fetchone()[0]
    people.list_teams(ctx, staff)
    access.review_queue(ctx, staff)
    sandbox.list_runs(ctx, staff)
    assert ctx.conn.execute("SELECT count(*) FROM audit_events").fetchone()[0] == before


def test_an_internal_failure_records_where_it_happened_without_values(ctx):
    demo.seed_people(ctx)
    member = principal_for_email(ctx.conn, MEMBER)
    with pytest.raises(InternalError):
        query.query_history(ctx, member, limit="secret-value-42")
    event = audit.list_events(ctx.conn, decision="failed")[0]
    assert event.details["cause"] == "builtins.ValueError"
    assert event.details["where"].startswith("portal/services/query.py:")
    assert "secret-value-42" not in str(event.to_dict())


@pytest.mark.parametrize(("call", "action", "reason"), [
    (lambda c, s: sandbox.release_run(c, s, 999_999), "sandbox.run.release", "run_not_found"),
    (lambda c, s: sandbox.withhold_run(c, s, 999_999, "not good"), "sandbox.run.withhold",
     "run_not_found"),
    (lambda c, s: sandbox.rerun_latest(c, s, "no-such-task"), "sandbox.rerun", "task_not_found"),
], ids=["release", "withhold", "rerun"])
def test_staff_acting_on_an_unknown_run_or_task_is_audited_once(ctx, call, action, reason):
    demo.seed_people(ctx)
    staff = principal_for_email(ctx.conn, STAFF)
    before = ctx.conn.execute("SELECT max(id) FROM audit_events").fetchone()[0]
    with pytest.raises(UserError):
        call(ctx, staff)
    events = [e for e in audit.list_events(ctx.conn) if e.id > before]
    assert [(e.action, e.decision, e.reason) for e in events] == [(action, "denied", reason)]


def test_a_configuration_failure_is_generic_for_members_and_detailed_for_staff(ctx, tmp_path):
    from dataclasses import replace

    from portal.errors import ConfigError

    demo.seed_people(ctx)
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "broken.yaml").write_text("id: broken\nunknown_key: 1\n")
    broken = replace(ctx, settings=replace(ctx.settings, datasets_dir=cards))
    member, staff = principal_for_email(ctx.conn, MEMBER), principal_for_email(ctx.conn, STAFF)
    with pytest.raises(InternalError) as shown_to_member:
        catalog.describe_dataset(broken, member, "broken")
    assert "broken.yaml" not in shown_to_member.value.message
    with pytest.raises(ConfigError, match="broken.yaml"):
        catalog.describe_dataset(broken, staff, "broken")
    events = audit.list_events(ctx.conn, action="catalog.describe")
    assert [(e.actor, e.decision) for e in events] == [(STAFF, "failed"), (MEMBER, "failed")]
    assert events[1].details["reference"] == shown_to_member.value.reference
    assert "broken.yaml" in events[1].details["message"]  # the cause, for staff
