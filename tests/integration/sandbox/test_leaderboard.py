"""Leaderboards on a real wdbc release: the platform's reference model (fitted on dev rows),
two teams' models, who sees which entry, and the paired DeLong comparison with the leader."""

from __future__ import annotations

import numpy as np
import pytest

from portal.errors import Denied, NotFound
from portal.services import leaderboard as boards
from portal.services import sandbox as services
from sandbox import features
from tests.factories import make_user
from tests.integration.sandbox.helpers import dev_training_data, need_isolation, people, run_queue
from tests.unit.sandbox import factories
from tests.unit.sandbox.factories import MODEL_CARD

TASK = "wdbc-malignancy"


def _weak_model(ctx) -> bytes:
    X, y = dev_training_data(ctx, TASK)
    return _one_feature(X, y, 9)


def _one_feature(X, y, column):
    # a model that only sees mean_fractal_dimension: far weaker than the full regression
    masked = np.zeros_like(X)
    masked[:, column] = X[:, column]
    return factories.logistic_onnx(masked, y)


@pytest.fixture
def board(released_ctx):
    need_isolation()
    ctx = released_ctx
    member, other, staff = people(ctx)
    X, y = dev_training_data(ctx, TASK)
    strong = services.submit(ctx, member, TASK, factories.logistic_onnx(X, y), MODEL_CARD)
    weak = services.submit(ctx, other, TASK, _weak_model(ctx), MODEL_CARD)
    queued = boards.seed_reference_models(ctx)
    assert TASK in queued
    run_queue(ctx)
    return ctx, member, other, staff, strong, weak, queued[TASK]


def test_reference_model_is_fitted_on_dev_rows_only(released_ctx, monkeypatch):
    read = []
    real = features.build_holdout
    monkeypatch.setattr(features, "build_holdout",
                        lambda card, path: read.append(path.name) or real(card, path))
    queued = boards.seed_reference_models(released_ctx)
    assert set(queued) >= {TASK, "eunomia-gi-bleed"}
    assert read and set(read) == {"dev.duckdb"}
    again = boards.seed_reference_models(released_ctx)
    assert again == {}  # idempotent


def test_member_sees_the_reference_and_own_entries_but_not_unreleased_rivals(board):
    ctx, member, other, staff, strong, weak, reference = board
    seen = boards.leaderboard(ctx, member, TASK)
    assert seen["release_version"] and seen["metric"] == "auroc"
    ids = {e["run_id"] for e in seen["entries"]}
    # the team's own awaiting-review run is not visible to it yet; the reference is
    assert ids == {reference}
    services.release_run(ctx, staff, strong)
    seen = boards.leaderboard(ctx, member, TASK)
    assert {e["run_id"] for e in seen["entries"]} == {reference, strong}
    assert next(e for e in seen["entries"] if e["run_id"] == strong)["own"]
    assert weak not in {e["run_id"] for e in boards.leaderboard(ctx, member, TASK)["entries"]}


def test_staff_see_every_entry_ranked_with_paired_comparisons_to_the_leader(board):
    ctx, member, other, staff, strong, weak, reference = board
    seen = boards.leaderboard(ctx, staff, TASK)
    entries = {e["run_id"]: e for e in seen["entries"]}
    assert set(entries) == {strong, weak, reference}
    values = [e["value"] for e in seen["entries"]]
    assert values == sorted(values, reverse=True)
    leader = entries[seen["leader"]]
    assert leader["rank"] == 1 and leader["statement"] == "leader"
    assert entries[weak]["comparison"]["distinguishable"]
    assert "distinguishable from the leader" in entries[weak]["statement"]
    for e in seen["entries"]:
        assert e["lower"] <= e["value"] <= e["upper"]


def test_comparison_equals_delong_on_the_held_out_predictions(board):
    ctx, member, other, staff, strong, weak, reference = board
    seen = boards.leaderboard(ctx, staff, TASK)
    entries = {e["run_id"]: e for e in seen["entries"]}
    leader = entries[seen["leader"]]
    weak_entry = entries[weak]
    # the difference is the two AUROCs the reports give
    assert weak_entry["comparison"]["difference"] == pytest.approx(
        leader["value"] - weak_entry["value"], abs=1e-9)
    assert 0 <= weak_entry["comparison"]["p_value"] < 0.05


def test_leaderboard_refuses_visitors_without_a_role_and_unknown_releases(board):
    ctx, member, *_ = board
    nobody = make_user(ctx, "nobody@example.org")
    with pytest.raises(Denied):
        boards.leaderboard(ctx, nobody, TASK)
    with pytest.raises(NotFound):
        boards.leaderboard(ctx, member, TASK, release_version="no-such-release")


def test_members_cannot_publish_reference_models(board):
    ctx, member, *_ = board
    with pytest.raises(Denied):
        boards.publish_reference(ctx, member, TASK, b"x", MODEL_CARD)
