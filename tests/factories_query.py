"""Plain factory functions for governed-SQL tests: a small OMOP-shaped release whose columns
match access_policies/eunomia.yaml, and a team member holding a grant on it.

Dev partition: persons 1..200 (person 6 alone born in 1920), three conditions each. Held-out
partition: persons 1001..1050 whose conditions all have concept 999999 and whose source values
say HOLDOUT — a test that sees either has found a leak."""

from __future__ import annotations

from portal.catalog.releases import Release
from portal.identity import Principal
from portal.services.context import Context
from tests.factories import make_release, make_user
from tests.factories_access import make_grant

PERSON_SQL = """
SELECT range::BIGINT AS person_id,
       CASE WHEN range % 2 = 0 THEN 8507 ELSE 8532 END::BIGINT AS gender_concept_id,
       CASE WHEN range = 6 THEN 1920 ELSE 1950 + (range % 40) END::BIGINT AS year_of_birth,
       (1 + range % 12)::BIGINT AS month_of_birth,
       8527::BIGINT AS race_concept_id,
       38003564::BIGINT AS ethnicity_concept_id,
       'SRC-' || range::VARCHAR AS person_source_value
FROM range({lo}, {hi})
"""
CONDITION_SQL = """
SELECT (p.range * 10 + k.range)::BIGINT AS condition_occurrence_id,
       p.range::BIGINT AS person_id,
       {concept} AS condition_concept_id,
       DATE '2015-01-01' + CAST(p.range + k.range AS INTEGER) AS condition_start_date,
       {source} AS condition_source_value,
       NULL::VARCHAR AS stop_reason
FROM range({lo}, {hi}) p, range(3) k
"""
# Public key sets and clipping bounds, as the eunomia data card declares them.
DP_COLUMNS = {"gender_concept_id": {"dp_keys": [8507, 8532]},
              "year_of_birth": {"dp_bounds": [1900, 2020]}}
DEV_CONCEPT = "(ARRAY[192671, 4112343, 81893])[k.range + 1]::BIGINT"
DEV_SOURCE = "'K92.' || k.range::VARCHAR"


def make_omop_release(ctx: Context, dataset_id: str = "eunomia", version: str = "v1") -> Release:
    """A small OMOP-shaped release (person, condition_occurrence) with a held-out partition."""
    dev = {
        "person": PERSON_SQL.format(lo=1, hi=201),
        "condition_occurrence": CONDITION_SQL.format(lo=1, hi=201, concept=DEV_CONCEPT,
                                                     source=DEV_SOURCE),
    }
    holdout = {
        "person": PERSON_SQL.format(lo=1001, hi=1051).replace("'SRC-'", "'HOLDOUT-'"),
        "condition_occurrence": CONDITION_SQL.format(lo=1001, hi=1051, concept="999999::BIGINT",
                                                     source="'HOLDOUT'"),
    }
    return make_release(ctx, dataset_id, dev, holdout_sql=holdout, version=version,
                        person_columns={"person": "person_id",
                                        "condition_occurrence": "person_id"},
                        dp_columns=DP_COLUMNS)


def make_analyst(ctx: Context, team: str = "acme-health", dataset: str = "eunomia",
                 tier: str | None = "row-level", email: str | None = None,
                 **grant_options) -> Principal:
    """A member of ``team`` whose team holds an active grant at ``tier`` (None: no grant)."""
    user = make_user(ctx, email or f"analyst@{team}.example", team=team)
    if tier:
        make_grant(ctx, team, dataset, tier, **grant_options)
    return user


def settings_with_policies(settings, folder, replacements: dict[str, str] | None = None,
                           dataset: str = "eunomia"):
    """Settings whose policies folder holds a copy of the bundled policy of ``dataset`` with
    text replacements applied (e.g. a shorter time limit)."""
    import dataclasses
    from pathlib import Path

    bundled = Path(__file__).resolve().parents[1] / "access_policies" / f"{dataset}.yaml"
    text = bundled.read_text(encoding="utf-8")
    for old, new in (replacements or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{dataset}.yaml").write_text(text, encoding="utf-8")
    return dataclasses.replace(settings, policies_dir=folder)


DP_LINES = ("    disclosure: dp\n    dp: {rho_per_query: 0.5, budget_rho: 5.0, delta: 1.0e-6, "
            "max_rows_per_group: 1, max_groups_per_person: 4, time_bucket_seconds: 0.5}\n")
# The bundled aggregate tier in suppression mode (exact aggregates, small groups suppressed).
SUPPRESSION = {DP_LINES: ""}


def _yaml_number(value: float) -> str:
    """YAML 1.1 reads 1e-06 as text: write exponents with a decimal point."""
    text = repr(value)
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{int(exponent)}"
    return text


def dp_tier(budget_rho: float = 5.0, time_bucket: float = 0.0, **options) -> dict[str, str]:
    """Replacements giving the bundled aggregate tier other DP parameters (by default no time
    padding, so tests run fast; tests of the padding set it)."""
    settings = {"rho_per_query": 0.5, "budget_rho": budget_rho, "delta": 1.0e-6,
                "max_rows_per_group": 1, "max_groups_per_person": 4,
                "time_bucket_seconds": time_bucket, **options}
    body = ", ".join(f"{k}: {_yaml_number(v)}" for k, v in settings.items())
    return {DP_LINES: f"    disclosure: dp\n    dp: {{{body}}}\n"}


def fast_limits(settings, folder, disclosure: dict[str, str] | None = None):
    """Bundled eunomia tiers with a 2-second time limit and roomy budgets (hostile-input tests);
    ``disclosure``: replacements for the aggregate tier's disclosure mode (:data:`SUPPRESSION`,
    :func:`dp_tier`), the bundled DP settings when None."""
    return settings_with_policies(settings, folder, {
        "time_limit_seconds: 30": "time_limit_seconds: 2",
        "time_limit_seconds: 60": "time_limit_seconds: 2",
        "per_minute: 30": "per_minute: 1000",
        **(disclosure or {}),
    })
