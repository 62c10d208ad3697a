"""Governed SQL against raw DuckDB on the same extract file, on an omop_synth release.

Measured in one run, on one machine:
- per analytic query: the governed path (``run_query``: grant check, budget, preflight, worker
  process on the locked extract, bounded fetch, audit event) against raw DuckDB opening the same
  extract file in this process with the same thread count. Median of ``--repeat`` runs after a
  warm-up, raw and governed runs alternating (the machine may be shared). Goals: at most 1.2x
  for queries that take raw DuckDB over 100 ms; at most 30 ms added for light ones;
- extract build time for the ``row-level`` tier against a plain DuckDB copy of the same tables;
- queries per second with 8 concurrent users against raw DuckDB with 8 threads.

``--persons`` sets the release size (default 1,000,000); ``--home`` reuses a home that already
holds an omop_synth release (skipping the build).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import duckdb

from portal.catalog.builder import build_release
from portal.config import Settings
from portal.query.extracts import build_extract, extract_path
from portal.services import query as q
from portal.services.context import Context
from portal.services.policies import resolved_tier
from tests.factories import make_user
from tests.factories_access import make_grant

DATASET, TIER = "omop_synth", "row-level"
LIGHT_MS = 100.0


def queries(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    top_condition = con.execute("SELECT condition_concept_id FROM condition_occurrence "
                                "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
    top_drug = con.execute("SELECT drug_concept_id FROM drug_exposure "
                           "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
    return {
        "count persons (light)": "SELECT count(*) FROM person",
        "one person's rows (light)":
            "SELECT * FROM condition_occurrence WHERE person_id = 42 ORDER BY 1",
        "counts by demographics":
            "SELECT gender_concept_id, year_of_birth // 10 * 10 AS decade, count(*) AS n "
            "FROM person GROUP BY ALL ORDER BY ALL",
        "drugs x conditions x persons":
            "SELECT p.gender_concept_id, count(DISTINCT p.person_id) AS persons "
            "FROM person p JOIN drug_exposure d ON d.person_id = p.person_id "
            f"JOIN condition_occurrence c ON c.person_id = p.person_id "
            f"WHERE d.drug_concept_id = {top_drug} AND c.condition_concept_id = {top_condition} "
            "AND c.condition_start_date >= d.drug_exposure_start_date GROUP BY 1 ORDER BY 1",
        "top-N by condition":
            "SELECT condition_concept_id, count(*) AS n, count(DISTINCT person_id) AS persons "
            "FROM condition_occurrence GROUP BY 1 ORDER BY n DESC LIMIT 20",
    }


def paired_medians(raw, governed, repeat: int) -> tuple[float, float]:
    """Median ms of each, measured alternately so that load from other processes on a shared
    machine falls on both alike."""
    raw()
    governed()  # warm-up
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for fn, bucket in ((raw, times[0]), (governed, times[1])):
            t0 = time.perf_counter()
            fn()
            bucket.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


def prepare_home(args: argparse.Namespace, tmp: str) -> Settings:
    home = Path(args.home) if args.home else Path(tmp) / "home"
    settings = Settings.from_env({"PORTAL_HOME": str(home)})
    ctx = Context.open(settings)
    try:
        has_release = ctx.conn.execute("SELECT 1 FROM releases WHERE dataset_id = ? AND "
                                       "status = 'current'", (DATASET,)).fetchone()
        if not has_release:
            t0 = time.perf_counter()
            build_release(settings, ctx.conn, DATASET, actor="bench", persons=args.persons)
            print(f"(release of {args.persons:,} persons built in "
                  f"{time.perf_counter() - t0:.1f} s; not part of any ratio)")
    finally:
        ctx.close()
    return settings


def bench_extract_build(ctx: Context) -> Path:
    release, resolved = resolved_tier(ctx, DATASET, TIER)
    target = extract_path(ctx.settings, resolved)
    target.unlink(missing_ok=True)
    t0 = time.perf_counter()
    path = build_extract(ctx.settings, release, resolved)
    build_s = time.perf_counter() - t0
    copy = Path(ctx.settings.home) / "plain-copy.duckdb"
    copy.unlink(missing_ok=True)
    con = duckdb.connect(str(copy))
    t0 = time.perf_counter()
    con.execute(f"ATTACH '{release.dev_path}' AS rel (READ_ONLY)")
    for table in resolved.tables:
        con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM rel."{table}"')
    con.execute("DETACH rel")
    con.execute("CHECKPOINT")
    copy_s = time.perf_counter() - t0
    con.close()
    copy.unlink(missing_ok=True)
    print(f"extract build ({TIER}): {build_s:.2f} s; plain copy of the same tables "
          f"{copy_s:.2f} s; ratio {build_s / copy_s:.2f}x")
    return path


def bench_queries(ctx: Context, users: list, path: Path, threads: int, repeat: int) -> None:
    raw = duckdb.connect(str(path), read_only=True, config={"threads": threads})
    print(f"{'query':32} {'raw ms':>9} {'governed':>9} {'ratio':>6} {'added':>8}  goal")
    for name, sql in queries(raw).items():
        raw_ms, gov_ms = paired_medians(lambda sql=sql: raw.execute(sql).fetchall(),
                                        lambda sql=sql: q.run_query(ctx, users[0], DATASET, sql),
                                        repeat)
        added = gov_ms - raw_ms
        if raw_ms > LIGHT_MS:
            verdict = "ok" if gov_ms <= 1.2 * raw_ms else "MISSED (<=1.2x)"
        else:
            verdict = "ok" if added <= 30 else "MISSED (<=30 ms added)"
        print(f"{name:32} {raw_ms:9.1f} {gov_ms:9.1f} {gov_ms / raw_ms:5.2f}x {added:7.1f}ms  "
              f"{verdict}")
    raw.close()


def bench_concurrency(settings: Settings, users: list, path: Path, seconds: float,
                      threads: int) -> None:
    sql = "SELECT count(*) FROM person WHERE year_of_birth = 1970"

    def run_users(work) -> float:
        done = [0] * len(users)
        stop = time.perf_counter() + seconds

        def loop(i: int) -> None:
            state = work(i)
            while time.perf_counter() < stop:
                state()
                done[i] += 1

        pool = [threading.Thread(target=loop, args=(i,)) for i in range(len(users))]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return sum(done) / seconds

    raw = duckdb.connect(str(path), read_only=True, config={"threads": threads})

    def raw_user(_i: int):
        cursor = raw.cursor()
        return lambda: cursor.execute(sql).fetchall()

    def governed_user(i: int):
        ctx = Context.open(settings)
        return lambda: q.run_query(ctx, users[i], DATASET, sql)

    raw_qps = run_users(raw_user)
    gov_qps = run_users(governed_user)
    raw.close()
    print(f"8 concurrent users, light query: governed {gov_qps:.0f} q/s; raw DuckDB "
          f"{raw_qps:.0f} q/s; ratio {gov_qps / raw_qps:.2f} "
          f"({settings.query_workers} workers)")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench query")
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--home", help="reuse a home holding an omop_synth release")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp:
        settings = prepare_home(args, tmp)
        ctx = Context.open(settings)
        users = [make_user(ctx, f"bench{i}@bench-team.example", team="bench-team")
                 for i in range(8)]
        if not ctx.conn.execute("SELECT 1 FROM grants g JOIN teams t ON t.id = g.team_id "
                                "WHERE t.slug = 'bench-team' AND g.status = 'active'").fetchone():
            make_grant(ctx, "bench-team", DATASET, TIER, days=30)
        print(f"bench query: omop_synth, tier {TIER}, {settings.query_workers} workers x "
              f"{settings.query_threads} threads")
        path = bench_extract_build(ctx)
        bench_queries(ctx, users, path, settings.query_threads, args.repeat)
        bench_concurrency(settings, users, path, args.seconds, settings.query_threads)
        ctx.close()
