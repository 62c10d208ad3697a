"""Held-out labels a team can read per day from validation reports, by the best attacks in the
tests, from the exact report (the baseline: what teams saw before release control) against the
released report (what they see now), measured in the same run on a real wdbc release.

A day is the card's valid runs per day (5 on wdbc). The attacker knows the features of the
cases it targets, and its models give them codes (tests/security/label_attacks.py): the Brier
code over 20 known cases per run (0.5 - 2^-(k+2)); the one case scored high; and the final
pair (40 cases scored high, then the same plus one, differencing two reports' counts). Staff
withhold runs the singling-out check flags (the figure is also shown as if they released them
anyway). With the
released reports the first ``final_reports`` runs of the task version get the full released
report and the rest the Ladder's figure only. Targets are drawn at random from the held-out set
for every simulated day; where a report says nothing the attacker guesses the majority class
(known from the prevalence every report gives), and "beyond guessing" subtracts what that
guess alone gets right on the same targets. Goal: 0 beyond guessing from released
reports.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _held_out(home: Path):
    from portal.catalog.releases import current_release
    from portal.config import Settings
    from portal.services import sandbox as services
    from portal.services.context import Context
    from sandbox import features
    from tests.integration.sandbox.helpers import build_releases

    settings = Settings.from_env({"PORTAL_HOME": str(home), "PORTAL_ENV": "development"})
    build_releases(settings, ("wdbc",))
    ctx = Context.open(settings)
    try:
        card = services.get_task(ctx, "wdbc-malignancy")
        release = current_release(ctx.conn, settings, card.dataset)
        return card, features.build_holdout(card, release.holdout_path)
    finally:
        ctx.close()


def _exact(card, labels: np.ndarray, scores: np.ndarray, groups) -> dict:
    from sandbox import metrics

    figures = metrics.compute(labels, scores, list(card.thresholds), groups,
                              card.subgroups.min_size)
    return {"run": {"id": 1}, "model": {"sha256": "0" * 64}, "release": {"version": "v"},
            "task": {"protocol_hash": card.protocol_hash}, "code_version": "bench",
            "data": {"rows": len(labels), "synthetic": False}, "scoring": {"isolated": True},
            "primary": {"metric": card.primary_metric,
                        "value": figures["overall"][card.primary_metric]["value"]},
            "metrics": figures}


def _released(card, exact: dict, final: bool, best: float | None) -> tuple[dict, float | None]:
    from sandbox import disclosure, publish

    step = disclosure.grid_step(exact["metrics"]["overall"]["n"])
    margin = card.disclosure.ladder_margin or step
    best, improved = disclosure.ladder_step(best, exact["primary"]["value"], card.primary_metric,
                                            margin, step)
    ladder = {"metric": card.primary_metric, "best": best, "improved": improved,
              "submissions": 1, "updates": int(improved), "margin": margin}
    body = publish.released_body(exact, final=final, min_cell=card.min_cell, ladder=ladder,
                                 budget={"final_reports_used": 0, "final_reports_limit": 0},
                                 generated_at="bench")
    return body, best


def _attack_runs(attack: str, rows: int, runs: int, rng):
    """The attacker's submissions for one day: (scores, targets, decode) per run, where decode
    reads the targets' labels from (this run's report, the previous run's report)."""
    from tests.security import label_attacks as attacks

    if attack == "final-pair":  # a group scored high, then the same group plus one case
        group = rng.choice(rows, size=40 + runs, replace=False).tolist()
        for run in range(runs):
            high = group[:40 + run]
            scores = np.full(rows, attacks.ONE_CASE_LOW)
            scores[high] = attacks.ONE_CASE_HIGH
            yield scores, ([high[-1]] if run else []), attacks.read_added_case
        return
    for _ in range(runs):
        k = 20 if attack == "brier" else 1
        targets = rng.choice(rows, size=k, replace=False).tolist()
        if attack == "brier":
            yield (attacks.brier_code_scores(rows, targets), targets,
                   lambda report, previous, k=k: attacks.decode_brier(report, k))
        else:
            yield (attacks.one_case_scores(rows, targets[0]), targets,
                   lambda report, previous: [attacks.read_one_case(report)])


def _day(card, held, rng, attack: str) -> dict[str, float]:
    """One day of ``valid_runs_per_day`` attack runs (the first ``final_reports`` of them
    final): labels read correctly from exact reports, from released reports when staff withhold
    flagged runs, from released reports when staff release even those, and by guessing."""
    from sandbox import disclosure
    from tests.security import label_attacks as attacks

    labels = held.labels.astype(float)
    majority = int(float(labels.mean()) >= 0.5)
    minimum = card.min_cell
    edges = disclosure.fixed_edges(list(card.thresholds))

    def read(guesses: list[int | None], truth: list[int]) -> int:
        # where a report says nothing, the attacker guesses the majority class
        return attacks.correct([majority if g is None else g for g in guesses], truth)

    out = {"exact": 0.0, "withheld": 0.0, "released": 0.0, "guess": 0.0}
    best, finals = None, {}
    previous: dict[str, dict | None] = {"exact": None, "withheld": None, "released": None}
    runs = card.quotas.valid_runs_per_day
    for run, (scores, targets, decode) in enumerate(_attack_runs(attack, held.rows, runs, rng)):
        final = run < card.disclosure.final_reports
        truth = [int(labels[t]) for t in targets]
        exact = _exact(card, labels, scores, held.groups)
        released, best = _released(card, exact, final, best)
        sides = disclosure.score_sides(scores, edges)
        flagged = disclosure.singling_out(scores, list(card.thresholds), minimum)["flagged"] \
            or (final and bool(disclosure.differencing(sides, finals, minimum)))
        if final:
            finals[run] = sides
        reports = {"exact": exact, "released": released,
                   "withheld": None if flagged else released}
        for view, report in reports.items():
            guesses = decode(report, previous[view]) if report is not None and truth else \
                [None] * len(truth)
            out[view] += read(guesses, truth)
            previous[view] = report
        out["guess"] += read([None] * len(truth), truth)  # the majority guess alone
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench labels")
    parser.add_argument("--days", type=int, default=40)
    args, _ = parser.parse_known_args(argv or [])
    with tempfile.TemporaryDirectory() as tmp:
        card, held = _held_out(Path(tmp) / "home")
    rng = np.random.default_rng(20261202)
    print(f"wdbc held-out rows {held.rows}, prevalence {held.labels.mean():.3f}, "
          f"{card.quotas.valid_runs_per_day} valid runs/day, {card.disclosure.final_reports} "
          f"final reports per task version, {args.days} simulated days", flush=True)
    started = time.perf_counter()
    worst = best_exact = 0.0
    for attack in ("brier", "one-case", "final-pair"):
        days = [_day(card, held, rng, attack) for _ in range(args.days)]
        mean = {key: float(np.mean([d[key] for d in days])) for key in days[0]}
        beyond = {key: mean[key] - mean["guess"] for key in ("exact", "withheld", "released")}
        worst = max(worst, beyond["withheld"])
        best_exact = max(best_exact, beyond["exact"])
        print(f"{attack:>10} attack, labels per team per day beyond guessing "
              f"({mean['guess']:.1f} by guessing): exact report {beyond['exact']:+.1f} "
              f"({mean['exact']:.1f} correct); released report {beyond['withheld']:+.1f} "
              f"(flagged runs withheld), {beyond['released']:+.1f} (flagged runs released "
              f"anyway)", flush=True)
    print(f"labels recoverable per team per day beyond guessing (best attack): exact report "
          f"(baseline) {best_exact:.1f}, released report {max(worst, 0.0):.1f} (goal 0) — "
          f"{time.perf_counter() - started:.1f}s", flush=True)


if __name__ == "__main__":
    main()
