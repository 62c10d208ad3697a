"""Held-out labels a team can read per day from validation reports, by the best attacks in the
tests, from the exact report (the baseline: what teams saw before release control) against the
released report (what they see now), measured in the same run on a real wdbc release.

A day is the card's valid runs per day (5 on wdbc). The attacker knows the features of the
cases it targets, and its models give them codes (tests/security/label_attacks.py): the Brier
code over 20 known cases per run (0.5 - 2^-(k+2)), and the one case scored high. With the
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


def _day(card, held, rng, attack: str) -> dict[str, float]:
    """One day of ``valid_runs_per_day`` attack runs; labels read (correct) and what guessing
    would get, from exact and from released reports."""
    from tests.security import label_attacks as attacks

    labels = held.labels.astype(float)
    prevalence = float(labels.mean())
    majority = int(prevalence >= 0.5)

    def read(guesses: list[int | None], truth: list[int]) -> int:
        # where a report says nothing, the attacker guesses the majority class
        return attacks.correct([majority if g is None else g for g in guesses], truth)

    out = {"exact": 0.0, "released": 0.0, "guess": 0.0}
    best = None
    for run in range(card.quotas.valid_runs_per_day):
        k = 20 if attack == "brier" else 1
        targets = rng.choice(held.rows, size=k, replace=False).tolist()
        truth = [int(labels[t]) for t in targets]
        if attack == "brier":
            scores = attacks.brier_code_scores(held.rows, targets)
            decode = lambda report, k=k: attacks.decode_brier(report, k)  # noqa: E731
        else:
            scores = attacks.one_case_scores(held.rows, targets[0])
            decode = lambda report: [attacks.read_one_case(report)]  # noqa: E731
        exact = _exact(card, labels, scores, held.groups)
        released, best = _released(card, exact, run < card.disclosure.final_reports, best)
        out["exact"] += read(decode(exact), truth)
        out["released"] += read(decode(released), truth)
        out["guess"] += read([None] * k, truth)  # the majority guess on the same targets
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
    for attack in ("brier", "one-case"):
        days = [_day(card, held, rng, attack) for _ in range(args.days)]
        mean = {key: float(np.mean([d[key] for d in days])) for key in days[0]}
        exact_beyond = mean["exact"] - mean["guess"]
        released_beyond = mean["released"] - mean["guess"]
        worst = max(worst, released_beyond)
        best_exact = max(best_exact, exact_beyond)
        print(f"{attack:>9} attack, labels read correctly per team per day: exact report "
              f"{mean['exact']:.1f} ({exact_beyond:+.1f} beyond guessing {mean['guess']:.1f}); "
              f"released report {mean['released']:.1f} ({released_beyond:+.1f} beyond "
              f"guessing)", flush=True)
    print(f"labels recoverable per team per day beyond guessing (best attack): exact report "
          f"(baseline) {best_exact:.1f}, released report {max(worst, 0.0):.1f} (goal 0) — "
          f"{time.perf_counter() - started:.1f}s", flush=True)


if __name__ == "__main__":
    main()
