"""Tier resolution: default deny, deny beats allow at the same level, specific beats general.
The truth table is read from access_policies/README.md, so the documented table is the tested
one."""

from __future__ import annotations

import re
from pathlib import Path

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

README = Path(__file__).resolve().parents[3] / "access_policies" / "README.md"


def _columns(text: str) -> list[str]:
    inner = text.strip()
    if not (inner.startswith("[") and inner.endswith("]")):
        raise ValueError(f"not a column list: {text!r}")
    return [c.strip().strip('"') for c in inner[1:-1].split(",") if c.strip()]


def parse_rules(text: str) -> dict:
    """README rule text (``person: allow [a, b], deny ["*"]; "*": deny: true``) → tables."""
    tables: dict = {}
    for part in text.split(";"):
        name, _, clauses = part.strip().partition(": ")
        rule: dict = {}
        for clause in re.split(r",\s*(?=allow |deny)", clauses.strip()):
            if clause == "deny: true":
                rule["deny"] = True
            elif clause.startswith("allow "):
                rule["allow_columns"] = _columns(clause[len("allow "):])
            elif clause.startswith("deny "):
                rule["deny_columns"] = _columns(clause[len("deny "):])
            else:
                raise ValueError(f"unknown clause {clause!r} in {text!r}")
        tables[name.strip('"')] = rule
    return tables


def readme_truth_table() -> list[tuple[dict, str, str, bool]]:
    """The rows of the truth table in access_policies/README.md, parsed strictly."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("The truth table"):text.index("## Bundled tiers")]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        table, _, column = cells[1].strip("`").partition(".")
        if cells[2] not in ("yes", "no"):
            raise ValueError(f"exposed must be yes or no: {line!r}")
        rows.append((parse_rules(cells[0].strip("`")), table, column, cells[2] == "yes"))
    return rows


TRUTH_TABLE = readme_truth_table()


def test_the_readme_truth_table_is_parsed_whole():
    text = README.read_text(encoding="utf-8")
    section = text[text.index("The truth table"):text.index("## Bundled tiers")]
    written = [ln for ln in section.splitlines() if ln.startswith("| `")]
    assert len(TRUTH_TABLE) == len(written) >= 25
    assert parse_rules('"*": allow ["*"], deny [*_source_value]; person: allow ["*"]') == {
        "*": {"allow_columns": ["*"], "deny_columns": ["*_source_value"]},
        "person": {"allow_columns": ["*"]}}


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
