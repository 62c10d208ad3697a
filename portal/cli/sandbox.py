"""`portal sandbox ...`: validation tasks, submissions, runs, reports, review and workers."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from portal.cli import args as types
from portal.cli import output
from portal.config import Settings
from portal.errors import InvalidInput

if TYPE_CHECKING:
    from portal.identity import Principal
    from portal.services.context import Context


def _open(settings: Settings):
    """The sandbox use cases and a store context (imported here: ONNX checks load onnx)."""
    from portal.services import sandbox as services
    from portal.services.context import Context

    return services, Context.open(settings)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sandbox", help="validation sandbox: tasks, model submissions, reports")
    s = p.add_subparsers(dest="sandbox_command", required=True)

    tasks = s.add_parser("tasks", help="list validation tasks")
    output.add_format(tasks)
    tasks.set_defaults(func=cmd_tasks)

    for name, func, help_text in (("submit", cmd_submit, "submit an ONNX model for validation"),
                                  ("dry-run", cmd_dry_run,
                                   "score a model on the task's synthetic twin (no quota)")):
        q = s.add_parser(name, help=help_text)
        q.add_argument("--user", required=True, help="e-mail of the submitting team member")
        q.add_argument("--task", required=True)
        q.add_argument("--model", required=True, type=Path, help="path of the .onnx file")
        q.add_argument("--name", help="model card: name (default: the file name)")
        q.add_argument("--model-version", default="1", help="model card: version")
        q.add_argument("--intended-use", default="not stated", help="model card: intended use")
        q.add_argument("--training-data", default="not stated",
                       help="model card: training data description")
        if name == "submit":
            q.add_argument("--final", action="store_true",
                           help="a final submission: the full released report (the task card "
                                "limits how many per task version; see 'sandbox budget')")
        output.add_format(q)
        q.set_defaults(func=func, audit_action=f"sandbox.{name.replace('-', '_')}")

    status = s.add_parser("status", help="a run's status")
    status.add_argument("run_id", type=types.record_id)
    status.add_argument("--user", help="act as this user (default: operator)")
    output.add_format(status)
    status.set_defaults(func=cmd_status)

    budget = s.add_parser("budget", help="a team's quotas, final reports left and Ladder on a "
                                         "task")
    budget.add_argument("task")
    budget.add_argument("--user", required=True, help="e-mail of a team member")
    output.add_format(budget)
    budget.set_defaults(func=cmd_budget, audit_action="sandbox.quota")

    runs = s.add_parser("runs", help="list runs")
    runs.add_argument("--user")
    runs.add_argument("--task")
    runs.add_argument("--status")
    output.add_format(runs)
    runs.set_defaults(func=cmd_runs)

    report = s.add_parser("report", help="print a run's report")
    report.add_argument("run_id", type=types.record_id)
    report.add_argument("--user")
    report.add_argument("--format", choices=["json", "html"], default="json")
    report.add_argument("--view", choices=["released", "exact"],
                        help="released: what the team sees; exact: full precision (staff). "
                             "Default: exact for staff, released for members")
    report.set_defaults(func=cmd_report)

    release = s.add_parser("release", help="release a run's report to its team (staff)")
    release.add_argument("run_id", type=types.record_id)
    release.add_argument("--by", required=True, help="staff e-mail")
    output.add_format(release)
    release.set_defaults(func=cmd_release)

    withhold = s.add_parser("withhold", help="withhold a run's report, with a reason (staff)")
    withhold.add_argument("run_id", type=types.record_id)
    withhold.add_argument("--by", required=True, help="staff e-mail")
    withhold.add_argument("--reason", required=True)
    output.add_format(withhold)
    withhold.set_defaults(func=cmd_withhold)

    rerun = s.add_parser("rerun", help="re-run every team's latest released model (staff)")
    rerun.add_argument("task")
    rerun.add_argument("--by", required=True, help="staff e-mail")
    output.add_format(rerun)
    rerun.set_defaults(func=cmd_rerun)

    holdout = s.add_parser("holdout", help="export a task's held-out features and labels "
                                           "(staff; audited)")
    holdout.add_argument("task")
    holdout.add_argument("--user", required=True, help="staff e-mail")
    holdout.add_argument("--out", required=True, type=Path, help="Parquet file to write")
    output.add_format(holdout)
    holdout.set_defaults(func=cmd_holdout)

    verify = s.add_parser("verify", help="check a report's signed receipt")
    verify.add_argument("report", type=Path)
    output.add_format(verify)
    verify.set_defaults(func=cmd_verify)

    work = s.add_parser("work", help="run a validation worker")
    work.add_argument("--once", action="store_true", help="stop when the queue is empty")
    output.add_format(work)
    work.set_defaults(func=cmd_work)


def _who(ctx: Context, email: str | None) -> Principal:
    from portal.identity import principal_for_email

    return principal_for_email(ctx.conn, email) if email else output.operator()


def _emit(data: dict, fmt: str) -> None:
    if fmt == "json":
        output.emit_json(data)
    else:
        output.emit_rows(["field", "value"], [[k, v] for k, v in data.items()], "table")


def cmd_tasks(args: argparse.Namespace, settings: Settings) -> int:
    services, ctx = _open(settings)
    cards = [services.task_summary(c) for c in services.tasks(ctx).values()]
    if args.format == "json":
        output.emit_json(cards)
    else:
        output.emit_rows(["id", "version", "dataset", "title", "protocol_hash"],
                         [[c["id"], c["version"], c["dataset"], c["title"],
                           c["protocol_hash"][:16]] for c in cards], "table")
    return 0


def _open_model(path: Path) -> BinaryIO:
    """The model file, opened for streaming; a FIFO or device is refused rather than read.
    Raises InvalidInput(``model_file_unreadable``)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        raise InvalidInput("model_file_unreadable", "The model file cannot be read.") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InvalidInput("model_file_unreadable", "The model is not a regular file.")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _submit(args: argparse.Namespace, settings: Settings, kind: str) -> int:
    services, ctx = _open(settings)
    principal = _who(ctx, args.user)
    card = {"name": args.name or args.model.name[:100], "version": args.model_version,
            "intended_use": args.intended_use, "training_data": args.training_data}
    with _open_model(args.model) as fh:
        if kind == "validation":
            run_id = services.submit(ctx, principal, args.task, fh, card, args.model.name,
                                     final=args.final)
            result = services.run_status(ctx, principal, run_id)
        else:
            result = services.dry_run(ctx, principal, args.task, fh, card, args.model.name)
    if args.format == "json":
        output.emit_json(result)
    else:
        print(result["id"] if kind == "validation" else f"{result['id']} {result['status']}: "
              f"{result['message'] or ''}")
    return 0 if result["status"] != "failed" else 3


def cmd_submit(args: argparse.Namespace, settings: Settings) -> int:
    return _submit(args, settings, "validation")


def cmd_dry_run(args: argparse.Namespace, settings: Settings) -> int:
    return _submit(args, settings, "dry_run")


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    services, ctx = _open(settings)
    _emit(services.run_status(ctx, _who(ctx, args.user), args.run_id), args.format)
    return 0


def cmd_runs(args: argparse.Namespace, settings: Settings) -> int:
    services, ctx = _open(settings)
    rows = services.list_runs(ctx, _who(ctx, args.user), args.task, args.status)
    columns = ["id", "kind", "task", "team", "status", "outcome", "release_version", "model"]
    output.emit_rows(columns, [[r[c] for c in columns] for r in rows], args.format)
    return 0


def cmd_budget(args: argparse.Namespace, settings: Settings) -> int:
    services, ctx = _open(settings)
    principal = _who(ctx, args.user)
    _emit(services.quota_status(ctx, principal, services.get_task(ctx, args.task)),
          args.format)
    return 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    services, ctx = _open(settings)
    principal = _who(ctx, args.user)
    from portal.authz import can_staff_or_operator

    view = args.view or ("exact" if can_staff_or_operator(ctx.conn, principal) else "released")
    read = services.staff_report if view == "exact" else services.released_report
    document = read(ctx, principal, args.run_id, args.format)
    if args.format == "json":
        output.emit_json(document)
    else:
        sys.stdout.write(document)
    return 0


def cmd_release(args: argparse.Namespace, settings: Settings) -> int:
    services, ctx = _open(settings)
    _emit(services.release_run(ctx, _who(ctx, args.by), args.run_id),
          args.format)
    return 0


def cmd_withhold(args: argparse.Namespace, settings: Settings) -> int:
    services, ctx = _open(settings)
    _emit(services.withhold_run(ctx, _who(ctx, args.by), args.run_id,
                                args.reason), args.format)
    return 0


def cmd_rerun(args: argparse.Namespace, settings: Settings) -> int:
    services, ctx = _open(settings)
    ids = services.rerun_latest(ctx, _who(ctx, args.by), args.task)
    _emit({"queued_runs": ids}, args.format)
    return 0


def cmd_holdout(args: argparse.Namespace, settings: Settings) -> int:
    services, ctx = _open(settings)
    rows = services.export_holdout(ctx, _who(ctx, args.user), args.task,
                                   args.out)
    _emit({"rows": rows, "out": str(args.out)}, args.format)
    return 0


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    services, ctx = _open(settings)
    result = services.verify_report(ctx, args.report)
    if args.format == "json":
        output.emit_json(result)
    else:
        print(("VALID: " if result["ok"] else "INVALID: ") + result["reason"])
    return 0 if result["ok"] else 3


def cmd_work(args: argparse.Namespace, settings: Settings) -> int:
    services, ctx = _open(settings)
    try:
        done = services.process_queue(ctx, once=args.once)
    except KeyboardInterrupt:  # stopping a worker by hand; a run in flight is retried later
        return 0
    _emit({"processed": done}, args.format)
    return 0
