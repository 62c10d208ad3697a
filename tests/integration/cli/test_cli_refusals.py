"""Every `portal` command, refused, writes exactly one audit event and exits with one clear error:
a table with one refused invocation per command (checked complete against the parser), and a
bad option for every command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portal import audit
from portal.cli import leaf_commands, main
from portal.services import demo
from portal.services.context import Context
from tests.factories import make_validation_run

STAFF, MEMBER, OTHER = ("staff@platform.example", "founder@gamma-ai.example",
                        "analyst@acme-health.example")


@pytest.fixture
def home(settings):
    """The demo people and grants, and a validation run of another team (acme-health)."""
    ctx = Context.open(settings)
    demo.seed(ctx)
    run_id = make_validation_run(ctx, "acme-health", OTHER)
    ctx.close()
    return settings, run_id


def _broken_policies(tmp: Path) -> dict[str, str]:
    folder = tmp / "policies"
    folder.mkdir(exist_ok=True)
    (folder / "eunomia.yaml").write_text("dataset: eunomia\nterms: x\ntiers: {}\nextra: 1\n")
    return {"PORTAL_POLICIES_DIR": str(folder)}


def _broken_tasks(tmp: Path) -> dict[str, str]:
    folder = tmp / "tasks"
    folder.mkdir(exist_ok=True)
    (folder / "bad.yaml").write_text("id: bad\nunknown_key: 1\n")
    return {"PORTAL_TASKS_DIR": str(folder)}


def _break_chain(settings) -> None:
    ctx = Context.open(settings)
    ctx.conn.execute("DROP TRIGGER audit_events_no_update")
    ctx.conn.execute("UPDATE audit_events SET actor = 'someone-else' WHERE id = 1")
    ctx.close()


# command → (arguments, extra environment or set-up, exit code, action, decision). `{run}` is a
# run of another team, `{home}` the portal's home, `{tmp}` a folder outside it.
USAGE = (["--no-such-option"], None, 2, "cli.usage", "rejected")
CASES = {
    "audit verify": ([], _break_chain, 3, "audit.verify", "failed"),
    "audit checkpoint": (["--out", "{home}/checkpoint.json"], None, 2, "audit.checkpoint",
                         "rejected"),
    "audit list": (["--user", MEMBER], None, 2, "audit.view", "denied"),
    "demo seed": USAGE,
    "datasets list": (["--user", "nobody@x.example"], None, 2, "identity.resolve", "denied"),
    "datasets describe": (["no-such-dataset"], None, 2, "catalog.describe", "denied"),
    "datasets build": (["wdbc", "--user", MEMBER], None, 2, "release.build", "denied"),
    "datasets check": (["no-such-dataset"], None, 2, "cli.datasets.check", "failed"),
    "policies check": ([], _broken_policies, 2, "cli.policies.check", "failed"),
    "policies prune-extracts": (["--by", MEMBER], None, 2, "extracts.prune", "denied"),
    "access grant": (["--team", "gamma-ai", "--dataset", "eunomia", "--tier", "aggregate",
                      "--days", "30", "--by", MEMBER], None, 2, "grant.create", "denied"),
    "access revoke": (["999", "--by", STAFF, "--reason", "ended"], None, 2, "grant.revoke",
                      "denied"),
    "access list": (["--user", "nobody@x.example"], None, 2, "identity.resolve", "denied"),
    "access request": (["--user", STAFF, "--dataset", "eunomia", "--tier", "aggregate",
                        "--purpose", "x" * 60, "--agree-terms"], None, 2, "request.submit",
                       "denied"),
    "access requests": (["--user", MEMBER, "--status", "bogus"], None, 2, "request.list",
                        "rejected"),
    "access queue": (["--by", MEMBER], None, 2, "request.queue", "denied"),
    "access approve": (["999", "--by", MEMBER, "--days", "30"], None, 2, "request.approve",
                       "denied"),
    "access deny": (["999", "--by", MEMBER, "--reason", "no"], None, 2, "request.deny",
                    "denied"),
    "access withdraw": (["999", "--user", MEMBER], None, 2, "request.withdraw", "denied"),
    "access reconfirm": (["999", "--user", MEMBER, "--agree-terms"], None, 2,
                         "request.reconfirm", "denied"),
    "access expire": USAGE,
    "access diagram": USAGE,
    "teams list": (["--by", MEMBER], None, 2, "team.list", "denied"),
    "teams onboard": (["delta-dx", "--name", "Delta", "--by", MEMBER], None, 2, "team.onboard",
                      "denied"),
    "teams invite": (["gamma-ai", "new@gamma-ai.example", "--by", MEMBER], None, 2,
                     "member.invite", "denied"),
    "teams suspend": ([OTHER, "--by", MEMBER, "--reason", "r"], None, 2, "member.suspend",
                      "denied"),
    "teams reactivate": ([OTHER, "--by", MEMBER], None, 2, "member.reactivate", "denied"),
    "teams remove": ([OTHER, "--by", MEMBER, "--reason", "r"], None, 2, "member.remove",
                     "denied"),
    "teams suspend-team": (["acme-health", "--by", MEMBER, "--reason", "r"], None, 2,
                           "team.suspend", "denied"),
    "teams reactivate-team": (["acme-health", "--by", MEMBER], None, 2, "team.reactivate",
                              "denied"),
    "query": (["--user", MEMBER, "--dataset", "eunomia", "--sql", "SELECT 1"], None, 2,
              "query.run", "denied"),
    "sandbox tasks": ([], _broken_tasks, 2, "cli.sandbox.tasks", "failed"),
    "sandbox submit": (["--user", MEMBER, "--task", "wdbc-malignancy", "--model",
                        "{tmp}/missing.onnx"], None, 2, "sandbox.submit", "rejected"),
    "sandbox dry-run": (["--user", MEMBER, "--task", "wdbc-malignancy", "--model",
                         "{tmp}/missing.onnx"], None, 2, "sandbox.dry_run", "rejected"),
    "sandbox status": (["{run}", "--user", MEMBER], None, 2, "sandbox.run.view", "denied"),
    "sandbox runs": (["--user", "nobody@x.example"], None, 2, "identity.resolve", "denied"),
    "sandbox report": (["{run}", "--user", MEMBER], None, 2, "sandbox.report.view", "denied"),
    "sandbox budget": (["no-such-task", "--user", MEMBER], None, 2, "sandbox.quota",
                       "denied"),
    "sandbox release": (["{run}", "--by", MEMBER], None, 2, "sandbox.run.release", "denied"),
    "sandbox withhold": (["{run}", "--by", MEMBER, "--reason", "not good enough"], None, 2,
                         "sandbox.run.withhold", "denied"),
    "sandbox rerun": (["wdbc-malignancy", "--by", MEMBER], None, 2, "sandbox.rerun", "denied"),
    "sandbox holdout": (["wdbc-malignancy", "--user", STAFF, "--out", "{home}/portal.db"], None,
                        2, "sandbox.holdout.export", "rejected"),
    "sandbox verify": (["{tmp}/not-a-report.json"], None, 3, "sandbox.report.verify", "failed"),
    "sandbox work": USAGE,
    "worker": USAGE,
    "api": USAGE,
    "tokens create": (["--user", STAFF, "--name", "ci", "--dataset", "eunomia", "--action",
                       "query:run"], None, 2, "token.create", "denied"),
    "tokens list": (["--user", MEMBER, "--all"], None, 2, "token.list", "denied"),
    "tokens revoke": (["0123456789abcdef", "--user", MEMBER], None, 2, "token.revoke",
                      "denied"),
}


def _events(settings) -> list[audit.AuditEvent]:
    ctx = Context.open(settings)
    try:
        return audit.list_events(ctx.conn, limit=100_000)
    finally:
        ctx.close()


def test_the_table_names_every_command():
    assert sorted(CASES) == sorted(leaf_commands())


@pytest.mark.parametrize("command", sorted(CASES))
def test_a_refused_command_writes_exactly_one_event(home, tmp_path, capsys, command):
    settings, run_id = home
    arguments, setup, exit_code, action, decision = CASES[command]
    environ = {"PORTAL_HOME": str(settings.home), "PORTAL_ENV": "development"}
    if setup is _break_chain:
        setup(settings)
    elif setup is not None:
        environ |= setup(tmp_path)
    (tmp_path / "not-a-report.json").write_text("{not json")
    argv = [*command.split(), *[a.format(run=run_id, home=settings.home, tmp=tmp_path)
                                for a in arguments], "--format", "json"]
    before = max((e.id for e in _events(settings)), default=0)
    assert main(argv, environ) == exit_code
    captured = capsys.readouterr()
    new = [e for e in _events(settings) if e.id > before]
    assert [(e.action, e.decision) for e in new] == [(action, decision)]
    if exit_code == 2:
        shown = json.loads(captured.out)
        code = shown["error"]["code"]
        assert new[0].reason == code and captured.err == ""
    assert str(settings.home) not in captured.out + captured.err  # no paths of the portal's


@pytest.mark.parametrize("command", sorted(CASES))
def test_every_command_refuses_a_bad_option_in_one_audited_line(home, capsys, command):
    settings, _ = home
    environ = {"PORTAL_HOME": str(settings.home)}
    before = max((e.id for e in _events(settings)), default=0)
    assert main([*command.split(), "--no-such-option"], environ) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error [invalid_arguments]: portal")
    new = [e for e in _events(settings) if e.id > before]
    assert [(e.action, e.decision, e.reason) for e in new] == [
        ("cli.usage", "rejected", "invalid_arguments")]


def test_a_mistyped_command_without_an_installation_creates_nothing(tmp_path, capsys):
    home = tmp_path / "nowhere"
    assert main(["no-such-command"], {"PORTAL_HOME": str(home)}) == 2
    assert not home.exists() and "invalid_arguments" in capsys.readouterr().err
