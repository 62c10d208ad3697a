"""The de-identification report as screen sections (streamlit-free)."""

from __future__ import annotations

import copy

from portal.ui import deid_report

REPORT = {
    "dataset": "eunomia", "version": "3", "passed": True, "failures": [],
    "persons": {"total": 2694, "dev": 2160, "holdout": 495, "suppressed": 39},
    "tables": {
        "person": {"source_rows": 2694, "dev_rows": 2160, "holdout_rows": 495,
                   "rows_of_unknown_persons": 0, "rows_of_suppressed_persons": 39},
        "observation_period": {"source_rows": 5343, "dev_rows": 2160, "holdout_rows": 495,
                               "rows_of_unknown_persons": 2649,
                               "rows_of_suppressed_persons": 39},
        "concept": {"source_rows": 442, "dev_rows": 442, "holdout_rows": 442},
    },
    "dropped": [{"table": "person", "column": "person_source_value",
                 "classification": "direct_identifier", "values_removed": 2694}],
    "transformed": [{"table": "person", "column": "year_of_birth",
                     "classification": "quasi_identifier", "transform": "birth_year_cap",
                     "counts": {"capped": 173, "non_null": 2694}}],
    "generalised": [{"table": "person", "column": "year_of_birth", "band_width": 5}],
    "k_anonymity": {
        "applicable": True, "quasi_identifiers": ["year_of_birth", "gender_concept_id"],
        "k_target": 5, "below_k_policy": "generalise",
        "before": {"classes": 406, "smallest_class": 1, "records_below_k": 530},
        "treatment": [{"action": "generalise", "column": "year_of_birth", "band_width": 5,
                       "records_below_k_after": 39}, {"action": "suppress", "persons": 39}],
        "suppressed_fraction": 0.0145, "max_suppressed_fraction": 0.05,
        "release": {"classes": 88, "smallest_class": 5, "records_below_k": 0}},
    "residual_scan": [{"table": "drug_exposure", "column": "drug_source_value",
                       "pattern": "mrn_like", "distinct_values": 25, "allowed": True,
                       "reason": "numeric vocabulary codes"}],
    "scan_patterns": ["email", "mrn_like"],
}


def test_split_counts_dev_holdout_and_suppressed_persons_and_rows():
    split = deid_report.split(REPORT)
    assert split["persons"] == {"dev": 2160, "holdout": 495, "suppressed": 39, "total": 2694}
    assert split["rows"] == {"dev": 2160 + 2160 + 442, "holdout": 495 + 495 + 442,
                             "suppressed": 78, "unknown_person": 2649}


def test_sections_follow_the_guide_and_carry_the_figures():
    shown = deid_report.sections(REPORT)
    assert [s.title for s in shown] == ["Result", "Persons and rows", "Columns dropped",
                                        "Columns transformed", "k-anonymity",
                                        "Residual identifier scan"]
    by_title = {s.title: s for s in shown}
    assert by_title["Result"].level == "ok"
    assert by_title["Result"].lines[0].startswith("De-identification checks passed")
    assert "2,160 in the dev partition" in by_title["Persons and rows"].lines[0]
    assert "495 held out" in by_title["Persons and rows"].lines[0]
    assert "39 suppressed" in by_title["Persons and rows"].lines[0]
    assert by_title["Columns transformed"].rows[0]["counts"] == "capped 173, non null 2,694"
    kanon = by_title["k-anonymity"]
    assert [r["stage"] for r in kanon.rows] == ["before treatment",
                                                "year_of_birth in 5-year bands",
                                                "39 person(s) suppressed",
                                                "in the release files"]
    assert kanon.level == "ok" and "1.45%" in kanon.lines[1]
    assert kanon.rows[1]["equivalence classes"] == "—" and kanon.rows[0]["records below k"] == "530"
    assert by_title["Residual identifier scan"].rows[0]["allowed"] == "yes"
    # no section is the raw Markdown summary
    assert not any(line.startswith("#") for s in shown for line in s.lines)


def test_a_failed_report_and_a_disallowed_match_are_problems():
    failed = copy.deepcopy(REPORT)
    failed.update(passed=False, failures=["person.x: 3 distinct value(s) look like email"])
    failed["residual_scan"][0]["allowed"] = False
    shown = {s.title: s for s in deid_report.sections(failed)}
    assert shown["Result"].level == "problem"
    assert shown["Result"].lines[1] == "Failed: person.x: 3 distinct value(s) look like email"
    assert shown["Residual identifier scan"].level == "problem"
    assert shown["Residual identifier scan"].rows[0]["allowed"] == "NO"


def test_kanonymity_not_applicable_says_why():
    plain = copy.deepcopy(REPORT)
    plain["k_anonymity"] = {"applicable": False, "reason": "the card declares no "
                                                          "quasi-identifiers"}
    section = deid_report.kanon_section(plain)
    assert section.lines == ["Not applicable: the card declares no quasi-identifiers."]
    assert section.rows == []
