"""Task cards: bundled cards load strictly; bad cards are refused with file:line problems;
the protocol hash covers the protocol and changing it needs a new version."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.errors import ConfigError
from portal.services import sandbox as services
from sandbox import store
from sandbox.tasks import load_card, load_cards

TASKS = Path(__file__).resolve().parents[3] / "sandbox" / "tasks"


def _wdbc_text() -> str:
    return (TASKS / "wdbc_malignancy.yaml").read_text(encoding="utf-8")


def test_bundled_task_cards_load_with_distinct_protocol_hashes():
    cards = load_cards(TASKS)
    assert {"wdbc-malignancy", "eunomia-gi-bleed"} <= set(cards)
    assert {c.dataset for c in cards.values()} >= {"wdbc", "eunomia"}
    hashes = {c.protocol_hash for c in cards.values()}
    assert len(hashes) == len(cards) and all(len(h) == 64 for h in hashes)


def test_eunomia_card_has_every_listed_subgroup():
    card = load_cards(TASKS)["eunomia-gi-bleed"]
    assert {g.name for g in card.subgroups.groups} == {"sex", "age_band", "race", "ethnicity"}


@pytest.mark.parametrize("old,new,problem", [
    ("review_required: true", "review_required: true\nsurprise: 1", "unknown key"),
    ("primary_metric: auroc", "primary_metric: accuracy", "primary_metric"),
    ("thresholds: [0.1, 0.3, 0.5]", "thresholds: [0.1, 1.5]", "thresholds"),
    ("version: 1", "version: \"1\"", "version"),
    ("review_required: true", "review_required: yes", "ambiguous value"),
    ("dataset: wdbc", "dataset: wdbc\ndataset: eunomia", "duplicate key"),
])
def test_bad_task_cards_are_refused_with_the_line(old, new, problem):
    with pytest.raises(ConfigError) as exc:
        load_card(_wdbc_text().replace(old, new, 1), name="bad.yaml")
    assert any(problem in p and p.startswith("bad.yaml") for p in exc.value.problems), \
        exc.value.problems


def test_protocol_hash_changes_with_the_feature_sql_but_not_with_quotas():
    base = load_card(_wdbc_text())
    changed_sql = load_card(_wdbc_text().replace("FROM cases c JOIN population p",
                                                 "FROM cases AS c JOIN population p"))
    changed_quota = load_card(_wdbc_text().replace("attempts_per_day: 20",
                                                   "attempts_per_day: 30"))
    assert changed_sql.protocol_hash != base.protocol_hash
    assert changed_quota.protocol_hash == base.protocol_hash


def test_changed_protocol_under_the_same_version_is_refused(ctx):
    base = load_card(_wdbc_text())
    changed = load_card(_wdbc_text().replace("thresholds: [0.1, 0.3, 0.5]",
                                             "thresholds: [0.2, 0.5]"))
    assert store.register_task(ctx.conn, base)
    with pytest.raises(ConfigError) as exc:
        store.register_task(ctx.conn, changed)
    assert exc.value.code == "task_protocol_changed"
    bumped = load_card(_wdbc_text().replace("thresholds: [0.1, 0.3, 0.5]",
                                            "thresholds: [0.2, 0.5]").replace("version: 1",
                                                                              "version: 2"))
    assert store.register_task(ctx.conn, bumped)


def test_task_summary_publishes_the_feature_sql_and_input_shape(ctx):
    card = services.get_task(ctx, "wdbc-malignancy")
    summary = services.task_summary(card)
    assert summary["feature_sql"] == card.features.sql
    assert summary["input"] == {"name": "input", "dtype": "float32", "shape": ["N", 30]}


def test_omop_synth_task_sql_runs_over_the_generated_omop_schema(tmp_path):
    """The card's SQL against the synthetic OMOP generator's own tables (same schema as the
    release), so the task stays runnable while its release is being built elsewhere."""
    from portal.catalog import synth
    from sandbox import features

    path = tmp_path / "synth.duckdb"
    synth.generate(path, persons=1500, seed=7)
    card = load_cards(TASKS)["omop-synth-mortality"]
    held = features.build_holdout(card, path)
    assert held.rows > 1000 and held.features.shape[1] == card.width
    assert 0 < held.labels.mean() < 1
    assert set(held.groups) == {"sex", "age_band", "race", "ethnicity"}


def test_every_bundled_card_says_what_its_label_means_and_which_public_copies_overlap():
    cards = load_cards(TASKS)
    assert all(len(c.label_meaning) > 20 for c in cards.values())
    wdbc = cards["wdbc-malignancy"]
    sklearn_copy = [p for p in wdbc.public_copies if "load_breast_cancer" in p.where]
    assert sklearn_copy and sklearn_copy[0].overlap == "contains_holdout"
    assert any(p.overlap == "contains_holdout" for p in cards["eunomia-gi-bleed"].public_copies)


@pytest.mark.parametrize("task_id", ["eunomia-gi-bleed", "omop-synth-mortality"])
def test_question_and_label_sql_agree_on_the_outcome_window(task_id):
    from sandbox.tasks import window_disagreement

    card = load_cards(TASKS)[task_id]
    assert card.outcome_window_days is not None
    assert window_disagreement(card) is None
    assert f"{card.outcome_window_days} days" in " ".join(card.question.split())


def test_mortality_card_asks_about_five_years_as_its_label_sql_counts():
    card = load_cards(TASKS)["omop-synth-mortality"]
    assert card.outcome_window_days == 1825 and "1825 days" in card.question
    assert "365" not in card.question


def test_a_card_whose_question_and_label_disagree_is_refused(tmp_path):
    text = (TASKS / "omop_synth_mortality.yaml").read_text(encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_card(text.replace("following 1825 days", "following 365 days"), name="bad.yaml")
    assert "question states [365] days" in " ".join(err.value.problems)
    with pytest.raises(ConfigError):
        load_card(text.replace("INTERVAL 1825 DAY", "INTERVAL 365 DAY"), name="bad.yaml")


def test_the_mortality_protocol_is_unchanged_by_the_descriptive_fields():
    # the question and descriptive fields are not protocol: version 1 keeps its hash
    card = load_cards(TASKS)["omop-synth-mortality"]
    assert "question" not in card.protocol() and "label_meaning" not in card.protocol()
