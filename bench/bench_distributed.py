"""Growing past one machine: the PostgreSQL store against SQLite, and validation on the job
engine.

1. Store operations (grant check, grant approval, audit append) on PostgreSQL against SQLite,
   as ratios (same machine, same run).
2. The job engine's overhead per validation run: a run dispatched through procrastinate
   (deferred, fetched by a worker, claimed, executed, finished) against calling the runner
   directly on the same claimed run (goal: overhead ≤ 50 ms per run).
3. Validation throughput with 1, 2 and 3 ``portal worker`` processes on PostgreSQL (runs/min,
   ratio to 1 worker).

Needs ``PORTAL_BENCH_POSTGRES_URL`` (or ``PORTAL_TEST_POSTGRES_URL``): a role that may create
databases. The bench creates and drops its own databases.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
TASK = "wdbc-malignancy"


def _admin_url() -> str | None:
    return os.environ.get("PORTAL_BENCH_POSTGRES_URL") or os.environ.get(
        "PORTAL_TEST_POSTGRES_URL")


def _new_database(admin: str) -> tuple[str, str]:
    import psycopg

    name = f"portal_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", "")), name


def _drop_database(admin: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _settings(home: Path, url: str | None, **extra: str):
    from portal.config import Settings

    env = {"PORTAL_HOME": str(home), "PORTAL_ENV": "development",
           "PORTAL_SANDBOX_ALLOW_UNISOLATED": "1", "PORTAL_REVALIDATE_CRON": "", **extra}
    if url:
        env["PORTAL_DATABASE_URL"] = url
    return Settings.from_env(env)


def _time_each(fn, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - started) / n * 1000


def store_operations(home: Path, url: str | None, n: int) -> dict[str, float]:
    """Milliseconds per grant check, grant approval and audit append."""
    from portal import audit
    from portal.access import grants
    from portal.identity import principal_for_email
    from portal.services.context import Context
    from portal.store import people
    from portal.store.db import transaction

    ctx = Context.open(_settings(home, url))
    with transaction(ctx.conn):
        staff = people.ensure_user(ctx.conn, email="staff@bench.example", role="staff")
        user = people.ensure_user(ctx.conn, email="member@bench.example", role="member")
        team = people.ensure_team(ctx.conn, "bench-team", "Bench")
        people.set_membership(ctx.conn, user, team)
    grants.create_grant(ctx.conn, actor="staff@bench.example", team_id=team, dataset_id="wdbc",
                        tier="aggregate", purpose="benchmark", approved_by=staff, days=30)
    member = principal_for_email(ctx.conn, "member@bench.example")
    figures = {
        "grant check": _time_each(
            lambda _: grants.check_active_grant(ctx.conn, member, "wdbc"), n),
        "grant approve": _time_each(
            lambda i: grants.create_grant(ctx.conn, actor="staff@bench.example", team_id=team,
                                          dataset_id=f"ds{i % 50}", tier="aggregate",
                                          purpose="benchmark", approved_by=staff, days=30), n),
        "audit append": _time_each(
            lambda i: audit.record(ctx.conn, actor="bench", action="bench.append",
                                   decision="done", details={"i": i}), n),
    }
    ctx.close()
    return figures


def _prepare_validation(settings):
    """A store with a wdbc release, a member and a model; returns (ctx, principal, model)."""
    from portal.catalog.builder import build_release
    from portal.identity import principal_for_email
    from portal.services.context import Context
    from portal.store import people
    from portal.store.db import transaction
    from tests.integration.sandbox.helpers import wdbc_model

    ctx = Context.open(settings)
    build_release(settings, ctx.conn, "wdbc", actor="system")
    with transaction(ctx.conn):
        user = people.ensure_user(ctx.conn, email="member@bench.example", role="member")
        people.set_membership(ctx.conn, user, people.ensure_team(ctx.conn, "bench", "Bench"))
    return ctx, principal_for_email(ctx.conn, "member@bench.example"), wdbc_model(ctx)


def _queue(ctx, member, model: bytes, count: int) -> list[int]:
    from portal.services import sandbox as services
    from tests.unit.sandbox.factories import MODEL_CARD

    return [services.submit(ctx, member, TASK, model, MODEL_CARD) for _ in range(count)]


def _fast_cards(home: Path) -> Path:
    """Task cards with quotas high enough for a benchmark (quotas are not the protocol)."""
    import re

    folder = home.parent / f"{home.name}-tasks"
    folder.mkdir(parents=True, exist_ok=True)
    for card in (ROOT / "sandbox" / "tasks").glob("*.yaml"):
        text = re.sub(r"valid_runs_per_day: \d+", "valid_runs_per_day: 1000", card.read_text())
        (folder / card.name).write_text(re.sub(r"attempts_per_day: \d+",
                                               "attempts_per_day: 1000", text))
    return folder


def job_overhead(home: Path, url: str, runs: int) -> tuple[float, float]:
    """(ms per run through the job engine, ms per run calling the runner directly)."""
    from portal import jobs
    from sandbox import runner, store, worker

    settings = _settings(home, url, PORTAL_TASKS_DIR=str(_fast_cards(home)))
    ctx, member, model = _prepare_validation(settings)
    _queue(ctx, member, model, 2)  # warm-up: imports, extract of the features, scorer
    jobs.run_worker(settings, once=True)
    def direct_batch() -> float:
        took = []
        for run_id in _queue(ctx, member, model, runs):
            store.claim(ctx.conn, "bench-direct", 300, only_id=run_id)
            started = time.perf_counter()
            result = runner.execute(settings, ctx.conn, store.get_run(ctx.conn, run_id))
            report = runner.write_report(settings, run_id, result.report)
            worker.finish(ctx.conn, run_id, "bench-direct", result, report)
            took.append(time.perf_counter() - started)
        return sum(took) / len(took)

    direct = [direct_batch()]
    started = time.perf_counter()
    jobs.run_worker(settings, once=True)  # an empty queue: worker start-up and sweep only
    startup = time.perf_counter() - started
    _queue(ctx, member, model, runs)
    started = time.perf_counter()
    done = jobs.run_worker(settings, once=True)
    through_jobs = (time.perf_counter() - started - startup) / max(1, done)
    direct.append(direct_batch())  # before and after, against drift on a shared machine
    ctx.close()
    return through_jobs * 1000, min(direct) * 1000


def throughput(home: Path, url: str, runs: int, worker_counts: tuple[int, ...]
               ) -> dict[int, float]:
    """Runs per minute with N `portal worker` processes started before the runs are queued."""
    cards = _fast_cards(home)
    settings = _settings(home, url, PORTAL_TASKS_DIR=str(cards))
    ctx, member, model = _prepare_validation(settings)
    rates = {}
    env = {**os.environ, "PORTAL_DATABASE_URL": url, "PORTAL_STORAGE_ROOT": str(home),
           "PORTAL_SECRETS_DIR": str(settings.secrets_dir), "PORTAL_TASKS_DIR": str(cards),
           "PORTAL_SANDBOX_ALLOW_UNISOLATED": "1", "PORTAL_REVALIDATE_CRON": ""}
    code = "import sys; from portal.cli import main; sys.exit(main(['worker']))"
    for count in worker_counts:
        procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT,
                                  env={**env, "PORTAL_HOME": str(home / f"w{count}-{i}")},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for i in range(count)]
        time.sleep(4)  # let them start and listen
        started = time.perf_counter()
        ids = _queue(ctx, member, model, runs)
        marks = ", ".join("?" for _ in ids)
        while ctx.conn.execute(f"SELECT count(*) FROM sandbox_runs WHERE id IN ({marks}) AND"
                               " status IN ('queued', 'running')", ids).fetchone()[0]:
            time.sleep(0.05)
        rates[count] = runs / (time.perf_counter() - started) * 60
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
    ctx.close()
    return rates


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench distributed")
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--runs", type=int, default=12)
    args = parser.parse_args(argv)
    admin = _admin_url()
    if not admin:
        print("skipped: set PORTAL_BENCH_POSTGRES_URL (a role that may create databases)")
        return
    made: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            url, name = _new_database(admin)
            made.append(name)
            lite = store_operations(Path(tmp) / "sqlite", None, args.ops)
            pg = store_operations(Path(tmp) / "pg", url, args.ops)
            print(f"store operations ({args.ops} each, ms per operation):")
            for op in lite:
                print(f"  {op:14s} sqlite {lite[op]:7.3f}  postgresql {pg[op]:7.3f}"
                      f"  ratio {pg[op] / lite[op]:5.2f}x")
            url, name = _new_database(admin)
            made.append(name)
            jobs_ms, direct_ms = job_overhead(Path(tmp) / "overhead", url, args.runs)
            overhead = jobs_ms - direct_ms
            print(f"validation run: direct {direct_ms:.1f} ms, through the job engine "
                  f"{jobs_ms:.1f} ms; overhead {overhead:.1f} ms per run "
                  f"(goal <= 50 ms: {'met' if overhead <= 50 else 'NOT met'}; the direct figure is"
                  f" the better of two batches, one before and one after)")
            url, name = _new_database(admin)
            made.append(name)
            rates = throughput(Path(tmp) / "throughput", url, args.runs, (1, 2, 3))
            print(f"validation throughput on PostgreSQL ({args.runs} runs, {os.cpu_count()} "
                  f"cores):")
            for count, rate in rates.items():
                print(f"  {count} worker(s): {rate:6.1f} runs/min  ratio {rate / rates[1]:4.2f}x")
        finally:
            for name in made:
                _drop_database(admin, name)
