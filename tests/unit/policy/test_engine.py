"""Tier resolution: default deny, deny beats allow at the same level, specific beats general.
The truth table below is the one in access_policies/README.md."""

from __future__ import annotations

import pytest

from portal.errors import NotFound
from portal.policy.engine import resolve_tier
from portal.policy.model import DatasetPolicy
from tests.factories import release_shape

_TABLES = {
    "person": (("person_id", "year_of_birth", "month_of_birth", "person_source_value"),
               "person_id"),
    "visit": (("person_id", "visit_date", "visit_source_value"), "person_id"),
    "concept": (("concept_id", "concept_name"), None),
}
RELEASE = release_shape("v1", _TABLES)


def policy(tables: dict) -> DatasetPolicy:
    return DatasetPolicy.model_validate({
        "dataset": "demo", "terms": "t",
        "tiers": {"t": {"description": "d", "result_mode": "rows", "max_rows": 5,
                        "budget": {"per_minute": 1, "per_day": 1}, "max_grant_days": 1,
                        "tables": tables}}})


def exposed(tables: dict, table: str, column: str) -> bool:
    resolved = resolve_tier(policy(tables), "t", RELEASE)
    return table in resolved.tables and column in resolved.tables[table].columns


STAR_ALL = {"allow_columns": ["*"]}

TRUTH_TABLE = [
    # --- default deny: nothing named, nothing exposed
    ({"person": {"allow_columns": ["person_id"]}}, "visit", "visit_date", False),
    ({"person": {"allow_columns": ["person_id"]}}, "person", "year_of_birth", False),
    ({"person": {}}, "person", "person_id", False),
    # --- allow by name, by pattern, by "*"
    ({"person": {"allow_columns": ["year_of_birth"]}}, "person", "year_of_birth", True),
    ({"person": {"allow_columns": ["*_of_birth"]}}, "person", "month_of_birth", True),
    ({"*": STAR_ALL}, "concept", "concept_name", True),
    # --- deny beats allow at the same level
    ({"person": {"allow_columns": ["year_of_birth"], "deny_columns": ["year_of_birth"]}},
     "person", "year_of_birth", False),
    ({"*": {"allow_columns": ["*"], "deny_columns": ["*"]}}, "person", "person_id", False),
    ({"person": {"allow_columns": ["*"], "deny": True}}, "person", "person_id", False),
    # --- a more specific column rule beats a less specific one
    ({"person": {"allow_columns": ["*"], "deny_columns": ["person_source_value"]}},
     "person", "person_source_value", False),
    ({"person": {"allow_columns": ["*"], "deny_columns": ["person_source_value"]}},
     "person", "year_of_birth", True),
    ({"person": {"allow_columns": ["year_of_birth"], "deny_columns": ["*"]}},
     "person", "year_of_birth", True),
    ({"person": {"allow_columns": ["year_of_birth"], "deny_columns": ["*"]}},
     "person", "month_of_birth", False),
    ({"person": {"allow_columns": ["*"], "deny_columns": ["*_of_birth"]}},
     "person", "month_of_birth", False),
    ({"person": {"allow_columns": ["year_of_birth"], "deny_columns": ["*_of_birth"]}},
     "person", "year_of_birth", True),
    # --- a named table beats "*" (tables)
    ({"*": {"deny": True}, "person": {"allow_columns": ["person_id"]}},
     "person", "person_id", True),
    ({"*": {"deny": True}, "person": {"allow_columns": ["person_id"]}},
     "visit", "person_id", False),
    ({"*": STAR_ALL, "visit": {"deny": True}}, "visit", "visit_date", False),
    ({"*": STAR_ALL, "visit": {"deny": True}}, "person", "year_of_birth", True),
    # --- columns across levels: column specificity first, then table specificity
    ({"*": {"allow_columns": ["*"], "deny_columns": ["*_source_value"]}},
     "visit", "visit_source_value", False),
    ({"*": {"allow_columns": ["*"], "deny_columns": ["*_source_value"]},
      "person": {"allow_columns": ["*"]}}, "person", "person_source_value", False),
    ({"*": {"allow_columns": ["*"], "deny_columns": ["person_source_value"]},
      "person": {"allow_columns": ["person_source_value"]}}, "person", "person_source_value",
     True),
    ({"*": STAR_ALL, "person": {"allow_columns": ["person_id"]}},
     "person", "month_of_birth", True),
    ({"*": STAR_ALL, "person": {"allow_columns": ["person_id"], "deny_columns": ["*"]}},
     "person", "month_of_birth", False),
    # --- a table with no exposed column is absent
    ({"concept": {"deny_columns": ["*"]}}, "concept", "concept_id", False),
]


@pytest.mark.parametrize(("tables", "table", "column", "expected"), TRUTH_TABLE)
def test_resolution_truth_table(tables, table, column, expected):
    assert exposed(tables, table, column) is expected


def test_resolved_tier_keeps_release_column_order_and_row_filter():
    resolved = resolve_tier(policy({"person": {"allow_columns": ["year_of_birth", "person_id"],
                                               "row_filter": "year_of_birth > 1930"}}),
                            "t", RELEASE)
    table = resolved.tables["person"]
    assert table.columns == ("person_id", "year_of_birth")
    assert table.row_filter == "year_of_birth > 1930"
    assert list(resolved.tables) == ["person"]


def test_named_transform_beats_star_transform():
    resolved = resolve_tier(policy({
        "*": {"allow_columns": ["*"], "transforms": {"year_of_birth": {"band": 10}}},
        "person": {"allow_columns": ["*"], "transforms": {"year_of_birth": {"band": 5}}}}),
        "t", RELEASE)
    assert resolved.tables["person"].transforms == {"year_of_birth": {"band": 5}}


def test_spec_json_is_deterministic_and_key_changes_with_release_and_spec():
    tables = {"*": STAR_ALL}
    a = resolve_tier(policy(tables), "t", RELEASE)
    b = resolve_tier(policy(dict(reversed(list({"*": STAR_ALL}.items())))), "t", RELEASE)
    assert a.spec_json() == b.spec_json()
    assert a.extract_key() == b.extract_key()
    other_release = resolve_tier(policy(tables), "t", release_shape("v2", _TABLES))
    assert other_release.extract_key() != a.extract_key()
    narrower = resolve_tier(policy({"*": {"allow_columns": ["*"],
                                          "deny_columns": ["visit_date"]}}), "t", RELEASE)
    assert narrower.extract_key() != a.extract_key()


def test_unknown_tier_is_not_found():
    with pytest.raises(NotFound) as info:
        resolve_tier(policy({"*": STAR_ALL}), "nope", RELEASE)
    assert info.value.code == "unknown_tier"
