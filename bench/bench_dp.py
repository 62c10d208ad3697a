"""Differentially private aggregate SQL at the demo parameters, on an omop_synth release.

Measured in one run, on one machine, from real governed queries against exact answers computed
by DuckDB on the same extract:

- utility: the 95th percentile of |noisy − exact| / exact of person counts, per group size
  (goals: within 1% for groups of at least 1,000 persons, within 10% for 100–1,000 persons), at
  ρ 0.5 per query; each query is run ``--runs`` times, each time as a new query (a new charge,
  not a replay);
- cost per query (ρ, and ε of one query at the tier's δ);
- overhead: the same query through the DP tier (time padding off) against the exact
  (suppression-mode) tier, paired medians (goal at most 1.3x); the padded latency is reported
  on its own.

``--persons`` sets the release size (default 20,000); ``--home`` reuses a home that holds an
omop_synth release.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from bench.bench_query import paired_medians
from portal.catalog.builder import build_release
from portal.config import Settings
from portal.query.extracts import build_extract
from portal.services import query as q
from portal.services.context import Context
from portal.services.policies import resolved_tier
from portal.store import dp_ledger
from tests.factories import make_user
from tests.factories_access import make_grant
from tests.factories_query import DP_LINES, SUPPRESSION, dp_tier

DATASET, TIER = "omop_synth", "aggregate"
UTILITY_QUERIES = {
    # one row per person: no contribution-bounding bias, only noise
    "by sex, race, ethnicity (public keys)":
        "SELECT gender_concept_id, race_concept_id, ethnicity_concept_id, "
        "count(DISTINCT person_id) AS n FROM person WHERE {salt} GROUP BY ALL",
    "by year of birth (partition selection)":
        "SELECT year_of_birth, count(DISTINCT person_id) AS n FROM person WHERE {salt} "
        "GROUP BY 1",
    "all persons": "SELECT count(DISTINCT person_id) AS n FROM person WHERE {salt}",
}
OVERHEAD_QUERIES = {
    "persons by sex": "SELECT gender_concept_id, count(DISTINCT person_id) FROM person "
                      "WHERE {salt} GROUP BY 1",
    "conditions x persons": "SELECT c.condition_concept_id, count(DISTINCT p.person_id) "
                            "FROM person p JOIN condition_occurrence c ON c.person_id = "
                            "p.person_id WHERE {salt} GROUP BY 1",
}


def _policies(settings: Settings, folder: Path, replacements: dict[str, str]) -> Settings:
    bundled = Path(__file__).resolve().parents[1] / "access_policies" / f"{DATASET}.yaml"
    text = bundled.read_text(encoding="utf-8")
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{DATASET}.yaml").write_text(text, encoding="utf-8")
    return dataclasses.replace(settings, policies_dir=folder)


def _home(args: argparse.Namespace, tmp: str) -> Settings:
    home = Path(args.home) if args.home else Path(tmp) / "home"
    settings = Settings.from_env({"PORTAL_HOME": str(home)})
    ctx = Context.open(settings)
    try:
        if not ctx.conn.execute("SELECT 1 FROM releases WHERE dataset_id = ? AND status = "
                                "'current'", (DATASET,)).fetchone():
            t0 = time.perf_counter()
            build_release(settings, ctx.conn, DATASET, actor="bench", persons=args.persons)
            print(f"(release of {args.persons:,} persons built in "
                  f"{time.perf_counter() - t0:.1f} s; not part of any figure)")
    finally:
        ctx.close()
    return settings


class Salts:
    """A different always-true filter per run, so every run is a new, charged query."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, sql: str) -> str:
        self.n += 1
        return sql.format(salt=f"{self.n} = {self.n}")


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else float("nan")


def bench_utility(ctx: Context, member, exact: duckdb.DuckDBPyConnection, runs: int,
                  salts: Salts) -> None:
    errors: dict[str, list[float]] = {"≥1000": [], "100–1000": []}
    for sql in UTILITY_QUERIES.values():
        truth = {tuple(r[:-1]): r[-1] for r in exact.execute(sql.format(salt="true")).fetchall()}
        for _ in range(runs):
            result = q.run_query(ctx, member, DATASET, salts(sql))
            for row in result.rows:
                true = truth.get(tuple(row[:-1]))
                if not true or true < 100:
                    continue
                errors["≥1000" if true >= 1000 else "100–1000"].append(abs(row[-1] - true) / true)
    for label, goal in (("≥1000", 0.01), ("100–1000", 0.10)):
        p95 = _p95(errors[label])
        verdict = "ok" if p95 <= goal else f"MISSED (<= {goal:.0%})"
        print(f"count of persons, groups of {label:>8} persons: p95 relative error "
              f"{p95:.2%} over {len(errors[label])} cells  {verdict}")


def bench_cost(ctx: Context, member) -> None:
    status = q.privacy_status(ctx, member, DATASET)
    rho, delta = status["rho_per_query"], status["delta"] / 2
    print(f"cost per query: ρ {rho:g} (ε {dp_ledger.epsilon(rho, delta):.2f} at δ {delta:g}); "
          f"budget ρ {status['budget_rho']:g} per team per dataset "
          f"({int(status['budget_rho'] / rho)} queries)")


def bench_overhead(dp_ctx: Context, exact_ctx: Context, dp_member, exact_member,
                   repeat: int, salts: Salts) -> None:
    print(f"{'query':24} {'exact ms':>9} {'DP ms':>9} {'ratio':>6}  goal")
    for name, sql in OVERHEAD_QUERIES.items():
        exact_ms, dp_ms = paired_medians(
            lambda sql=sql: q.run_query(exact_ctx, exact_member, DATASET, salts(sql)),
            lambda sql=sql: q.run_query(dp_ctx, dp_member, DATASET, salts(sql)), repeat)
        verdict = "ok" if dp_ms <= 1.3 * exact_ms else "MISSED (<=1.3x)"
        print(f"{name:24} {exact_ms:9.1f} {dp_ms:9.1f} {dp_ms / exact_ms:5.2f}x  {verdict}")


def bench_padding(ctx: Context, member, salts: Salts) -> None:
    sql = OVERHEAD_QUERIES["persons by sex"]
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        q.run_query(ctx, member, DATASET, salts(sql))
        times.append((time.perf_counter() - t0) * 1000)
    print(f"with the demo time bucket (0.5 s): median {statistics.median(times):.0f} ms per "
          f"query (padding, by design)")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench dp")
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--home", help="reuse a home holding an omop_synth release")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--runs", type=int, default=10)
    args, _ = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-dp-") as tmp:
        settings = _home(args, tmp)
        big_budget = dp_tier(budget_rho=200.0)  # demo costs, more queries
        dp_ctx = Context.open(_policies(settings, Path(tmp) / "dp", big_budget))
        exact_ctx = Context(_policies(settings, Path(tmp) / "exact", SUPPRESSION), dp_ctx.conn)
        padded_ctx = Context(_policies(settings, Path(tmp) / "padded", {DP_LINES: DP_LINES}),
                             dp_ctx.conn)
        members = {}
        for team, tier_ctx in (("bench-dp", dp_ctx), ("bench-exact", exact_ctx),
                               ("bench-padded", padded_ctx)):
            members[team] = make_user(tier_ctx, f"analyst@{team}.example", team=team)
            make_grant(tier_ctx, team, DATASET, TIER, days=30)
        release, resolved = resolved_tier(dp_ctx, DATASET, TIER)
        exact = duckdb.connect(str(build_extract(dp_ctx.settings, release, resolved)),
                               read_only=True)
        persons = exact.execute("SELECT count(*) FROM person").fetchone()[0]
        print(f"bench dp: {DATASET} ({persons:,} persons in the extract), ρ 0.5 per query, "
              f"{args.runs} runs per utility query")
        salts = Salts()
        bench_utility(dp_ctx, members["bench-dp"], exact, args.runs, salts)
        bench_cost(padded_ctx, members["bench-padded"])
        bench_overhead(dp_ctx, exact_ctx, members["bench-dp"], members["bench-exact"],
                       args.repeat, salts)
        bench_padding(padded_ctx, members["bench-padded"], salts)
        exact.close()
        dp_ctx.close()
