"""The release mechanism for validation reports, on real metrics of real predictions: rounding
grids, score cells, subgroups with complementary suppression, the Ladder, the singling-out
check — and the two label-reading attacks, which read labels from the exact figures and
nothing beyond guessing from the released ones."""

from __future__ import annotations

import numpy as np
import pytest

from sandbox import disclosure, metrics
from tests.security import label_attacks as attacks

THRESHOLDS = [0.1, 0.3, 0.5]
MIN = 10


def _wdbc_like(rows: int = 142, seed: int = 0):
    """scikit-learn's breast cancer data: a logistic regression fitted on the rest, scored on
    ``rows`` held-out cases (float32, as the scorer returns them)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    y = 1 - y  # malignant = 1
    order = np.random.default_rng(seed).permutation(len(y))
    held, dev = order[:rows], order[rows:]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X[dev], y[dev])
    p = model.predict_proba(X[held])[:, 1].astype(np.float32).astype(float)
    size = np.where(X[held, 0] < 12, "small", np.where(X[held, 0] < 16, "medium", "large"))
    return y[held].astype(float), p, {"size": size}


def _noisy(rows: int = 600, seed: int = 1):
    """A moderately good model on a larger set: cells and thresholds survive."""
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.4).astype(float)
    p = 1 / (1 + np.exp(-(rng.normal(size=rows) + 1.2 * (y - 0.4))))
    groups = {"band": np.where(rng.random(rows) < 0.5, "a", np.where(rng.random(rows) < 0.8,
                                                                      "b", "c"))}
    return y, p, groups


@pytest.mark.parametrize(("n", "step"), [(142, 0.05), (400, 0.05), (399, 0.05), (401, 0.02),
                                         (10_000, 0.01), (25, 0.2), (1, 0.2),
                                         (10_000_000, 0.001)])
def test_grid_step_is_the_largest_nice_step_not_above_one_over_root_n(n, step):
    assert disclosure.grid_step(n) == step


def test_released_summary_has_every_figure_on_its_grid_and_no_standard_error():
    y, p, groups = _wdbc_like()
    exact = metrics.compute(y, p, THRESHOLDS, groups, MIN)
    released = disclosure.release_summary(exact["overall"])
    assert released["grid_step"] == 0.05
    for figure in ("auroc", "auprc", "brier"):
        value = released[figure]["value"]
        assert value == disclosure.on_grid(exact["overall"][figure]["value"], 0.05)
        assert abs(value / 0.05 - round(value / 0.05)) < 1e-9
    assert "se" not in released["auroc"] and exact["overall"]["auroc"]["se"] > 0


def test_every_released_count_over_scores_has_the_minimum_of_each_outcome():
    y, p, groups = _noisy()
    exact = metrics.compute(y, p, THRESHOLDS, groups, MIN)
    released = disclosure.release_figures(exact, MIN)
    cells = disclosure.merge_cells(exact["score_cells"], MIN, frozenset(THRESHOLDS))
    assert len(cells) > 3  # a useful partition survives on a moderate model
    for cell in cells:
        assert cell.n == 0 or (cell.positives >= MIN and cell.negatives >= MIN)
    assert sum(c.n for c in cells) == len(y)
    kept = [t for t in released["thresholds"] if not t["suppressed"]]
    assert kept
    for row in kept:  # the released counts are the exact ones at that threshold
        exact_row = next(t for t in exact["thresholds"] if t["threshold"] == row["threshold"])
        assert row["counts"] == exact_row["counts"]
    for row in released["reliability"]:
        assert row["count"] >= 2 * MIN
    assert released["curves"]["roc"]["x"][0] == 0.0 and released["curves"]["roc"]["y"][-1] == 1


def test_differencing_two_released_thresholds_gives_a_cell_with_the_minimum():
    """A model puts a handful of cases between two thresholds: each threshold alone has large
    cells, but their difference is the handful — one of the two is suppressed."""
    y, p, groups = _noisy()
    p = np.where(p >= 0.3, 0.9, 0.05)
    p[:3] = 0.4  # three cases between 0.3 and 0.5
    exact = metrics.compute(y, p, THRESHOLDS, groups, MIN)
    at = {t["threshold"]: t["counts"] for t in exact["thresholds"]}
    assert at[0.3]["tp"] - at[0.5]["tp"] + at[0.3]["fp"] - at[0.5]["fp"] == 3
    released = {t["threshold"]: t for t in disclosure.release_figures(exact, MIN)["thresholds"]}
    assert released[0.3]["suppressed"] or released[0.5]["suppressed"]


def test_subgroups_need_positives_and_negatives_and_are_suppressed_in_pairs():
    y, p, _ = _noisy(rows=600)
    level = np.array(["a"] * 300 + ["b"] * 280 + ["c"] * 20)
    y[580:] = 0  # level c: 20 cases, all negative — enough cases, no positives
    exact = metrics.compute(y, p, THRESHOLDS, {"g": level}, MIN)
    assert not next(s for s in exact["subgroups"] if s["level"] == "c")["suppressed"]
    released = {s["level"]: s for s in disclosure.release_subgroups(exact["subgroups"], MIN)}
    assert released["c"]["suppressed"]
    # complementary suppression: otherwise c would be the total minus a and b
    assert sum(s["suppressed"] for s in released.values()) >= 2
    assert all("n" not in s for s in released.values() if s["suppressed"])


def test_the_ladder_moves_only_by_more_than_the_margin_and_at_most_span_over_margin_times():
    best, moves = None, 0
    rng = np.random.default_rng(3)
    for value in rng.uniform(0.4, 1.0, 500):  # an adaptive sequence of many submissions
        new, improved = disclosure.ladder_step(best, float(value), "auroc", 0.05, 0.05)
        if improved:
            assert best is None or value - best > 0.05
            moves += 1
        else:
            assert new == best
        best = new
    assert moves <= 1 / 0.05 + 1
    assert disclosure.ladder_step(0.2, 0.1, "brier", 0.05, 0.05) == (0.1, True)
    assert disclosure.ladder_step(0.2, 0.16, "brier", 0.05, 0.05) == (0.2, False)


def test_a_real_model_is_not_flagged_as_singling_out():
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier

    y, p, _ = _wdbc_like()
    assert disclosure.singling_out(p, THRESHOLDS, MIN)["flagged"] is False
    X, labels = load_breast_cancer(return_X_y=True)
    boosted = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X[142:],
                                                                             labels[142:])
    scores = boosted.predict_proba(X[:142])[:, 1].astype(np.float32).astype(float)
    assert disclosure.singling_out(scores, THRESHOLDS, MIN)["flagged"] is False


def test_the_one_case_model_and_the_brier_code_are_flagged():
    one = disclosure.singling_out(attacks.one_case_scores(142, 7), THRESHOLDS, MIN)
    assert one["flagged"] and one["signals"]["threshold_tails"] == THRESHOLDS
    code = disclosure.singling_out(attacks.brier_code_scores(142, list(range(20))), THRESHOLDS,
                                   MIN)
    assert code["flagged"] and code["signals"]["tiny_gaps"] >= 2
    assert code["signals"]["mode_share"] > 0.5


def _reports(y, p, groups):
    exact = metrics.compute(y, p, THRESHOLDS, groups, MIN)
    return {"metrics": exact}, {"metrics": disclosure.release_figures(exact, MIN)}


def test_one_case_attack_reads_the_label_from_exact_counts_and_nothing_from_released():
    y, _, groups = _wdbc_like()
    for target in (int(np.flatnonzero(y == 1)[0]), int(np.flatnonzero(y == 0)[0])):
        exact, released = _reports(y, attacks.one_case_scores(len(y), target), groups)
        assert attacks.read_one_case(exact) == int(y[target])  # the attack works on exact
        assert attacks.read_one_case(released) is None
        assert all(t["suppressed"] for t in released["metrics"]["thresholds"])


def test_brier_code_attack_decodes_twenty_labels_from_exact_and_none_beyond_guessing():
    """Whatever the 20 targets' labels are, the exact Brier score gives them all; the released
    report is the same for every assignment, so what it "decodes" does not depend on them."""
    y, _, groups = _wdbc_like()
    targets = [*np.flatnonzero(y == 1)[:10], *np.flatnonzero(y == 0)[:10]]
    scores = attacks.brier_code_scores(len(y), targets)
    rng = np.random.default_rng(5)
    assignments = [[int(y[t]) for t in targets], [0] * 20, [1] * 20,
                   *[rng.integers(0, 2, 20).tolist() for _ in range(5)]]
    decoded_from_released = set()
    for truth in assignments:
        labels = y.copy()
        labels[targets] = truth
        exact, released = _reports(labels, scores, groups)
        assert attacks.decode_brier(exact, 20) == truth  # 20 of 20 from the exact Brier
        decoded_from_released.add(tuple(attacks.decode_brier(released, 20)))
        assert released["metrics"]["overall"]["brier"]["value"] == 0.25
    assert len(decoded_from_released) == 1  # the same guesses whatever the labels


def test_max_bits_is_a_finite_bound_that_grows_with_what_is_released():
    y, p, groups = _noisy()
    released = disclosure.release_figures(metrics.compute(y, p, THRESHOLDS, groups, MIN), MIN)
    bound = disclosure.max_bits(released)
    assert 0 < bound < 1000
    fewer = dict(released, thresholds=[dict(t, suppressed=True) for t in released["thresholds"]])
    assert disclosure.max_bits(fewer) < bound


def test_differencing_flags_a_final_that_moves_fewer_than_the_minimum_across_an_edge():
    y, p, _ = _noisy()
    edges = disclosure.fixed_edges(THRESHOLDS)
    assert edges == sorted({0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9})
    earlier = disclosure.score_sides(p, edges)
    moved = p.copy()
    moved[np.flatnonzero((p >= 0.4) & (p < 0.5))[:3]] = 0.55  # three rows cross 0.5 only
    reasons = disclosure.differencing(disclosure.score_sides(moved, edges), {7: earlier}, MIN)
    assert len(reasons) == 1 and "3 row(s) moved across 0.5 since final run 7" in reasons[0]
    assert disclosure.differencing(earlier, {7: earlier}, MIN) == []  # the same model again
    shifted = np.clip(p + 0.2, 0, 1)  # a different model: many rows cross
    assert disclosure.differencing(disclosure.score_sides(shifted, edges), {7: earlier},
                                   MIN) == []
