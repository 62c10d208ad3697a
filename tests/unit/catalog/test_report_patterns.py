"""The residual scan's identifier patterns, as a truth table in DuckDB's regex engine."""

from __future__ import annotations

import duckdb
import pytest

from portal.catalog.report import SCAN_PATTERNS


@pytest.mark.parametrize(("text", "pattern", "matches"), [
    ("contact jane.doe@example.org", "email", True),
    ("user at example dot org", "email", False),
    ("call 617-555-0199", "phone", True),
    ("(617) 555-0199", "phone", True),
    ("+1 617 555 0199", "phone", True),
    ("LOINC 8331-1", "phone", False),
    ("SSN 123-45-6789", "ssn", True),
    ("1234-56-789", "ssn", False),
    ("MRN: 00123", "mrn_like", True),
    ("patient 12345678", "mrn_like", True),
    ("code 123456", "mrn_like", False),
    ("seen 2019-05-25", "full_date", True),
    ("seen 5/25/2019", "full_date", True),
    ("year 2019", "full_date", False),
    ("Acetaminophen 325 MG", "full_date", False),
    ("001f4a87-70d0-435c-a4b9-1425f6928d33", "uuid", True),
    ("001f4a87-70d0-435c", "uuid", False),
])
def test_scan_pattern_truth_table(text, pattern, matches):
    con = duckdb.connect()
    found = con.execute("SELECT regexp_matches($1, $2)", [text, SCAN_PATTERNS[pattern]]
                        ).fetchone()[0]
    assert found is matches
