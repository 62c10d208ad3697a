"""Truth tables and properties for every de-identification transform, run in real DuckDB."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.catalog import transforms as tx

KEY = "ab" * 16


@pytest.fixture(scope="module")
def con():
    connection = duckdb.connect()
    tx.set_key(connection, KEY)
    yield connection
    connection.close()


def value(con, expr: str, params=None):
    return con.execute(f"SELECT {expr}", params or []).fetchone()[0]


# --- birth year cap: reference year 2019, so the floor is 1929 (age 90) -------------------
@pytest.mark.parametrize(("year_of_birth", "expected"), [
    (1930, 1930),  # age 89 at the reference year: unchanged
    (1929, 1929),  # age exactly 90: unchanged ("90 or older")
    (1928, 1929),  # age 91: becomes 90
    (1908, 1929),  # age 111: becomes 90
    (2000, 2000),  # young: unchanged
    (None, None),  # null stays null
])
def test_birth_year_cap_truth_table(con, year_of_birth, expected):
    assert value(con, tx.birth_year_cap("$1::INTEGER", 2019), [year_of_birth]) == expected


@pytest.mark.parametrize(("age", "expected"), [
    (0, 0), (89, 89), (90, 90), (91, 90), (120, 90), (None, None),
])
def test_age_cap_truth_table(con, age, expected):
    assert value(con, tx.age_cap("$1::INTEGER"), [age]) == expected


@pytest.mark.parametrize(("birth_year", "capped"), [(1930, False), (1929, False), (1928, True),
                                                    (None, None)])
def test_birth_year_capped_flags_only_changed_values(con, birth_year, capped):
    assert value(con, tx.birth_year_capped("$1::INTEGER", 2019), [birth_year]) is capped


# --- dates ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("day", "shift", "expected"), [
    (date(2020, 2, 28), 1, date(2020, 2, 29)),   # into a leap day
    (date(2020, 2, 29), 1, date(2020, 3, 1)),    # out of a leap day
    (date(2020, 2, 29), 366, date(2021, 3, 1)),  # a year from a leap day
    (date(2019, 12, 31), 1, date(2020, 1, 1)),   # across a year
    (date(2021, 3, 1), -1, date(2021, 2, 28)),   # backwards, non-leap year
    (date(2020, 1, 1), 0, date(2020, 1, 1)),
    (None, 5, None),
])
def test_date_shift_truth_table(con, day, shift, expected):
    assert value(con, tx.date_shift("$1::DATE", "$2::INTEGER"), [day, shift]) == expected


@pytest.mark.parametrize(("day", "expected"), [
    (date(2020, 2, 29), 2020), (date(1999, 12, 31), 1999), (date(2000, 1, 1), 2000),
    (None, None),
])
def test_date_to_year_truth_table(con, day, expected):
    assert value(con, tx.date_to_year("$1::DATE"), [day]) == expected


def test_date_to_year_accepts_timestamps(con):
    assert value(con, tx.date_to_year("TIMESTAMP '1963-12-31 23:59:00'")) == 1963


# --- ZIP codes --------------------------------------------------------------------------------
@pytest.mark.parametrize(("zip_code", "expected"), [
    ("02139", "021"),      # leading zero kept (text, never a number)
    ("02139-4307", "021"),  # ZIP+4
    ("03601", "000"),      # restricted prefix 036
    ("89301", "000"),      # restricted prefix 893
    ("10001", "100"),
    ("12", "000"),         # too short to generalise safely
    ("", "000"),
    (None, None),
])
def test_zip3_truth_table(con, zip_code, expected):
    assert value(con, tx.zip3("$1::VARCHAR"), [zip_code]) == expected


def test_zip3_honours_extra_restricted_prefixes(con):
    assert value(con, tx.zip3("'10001'", ["100"])) == "000"


def test_every_hipaa_restricted_prefix_becomes_000(con):
    for prefix in tx.RESTRICTED_ZIP3:
        assert value(con, tx.zip3(f"'{prefix}45'")) == "000"


# --- bands ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("number", "expected"), [
    (-1, "<0"), (0, "0-17"), (17, "0-17"), (17.5, "0-17"), (18, "18-44"), (44, "18-44"),
    (45, "45-64"), (64, "45-64"), (65, "65+"), (200, "65+"), (None, None),
])
def test_band_truth_table(con, number, expected):
    assert value(con, tx.band("$1::DOUBLE", [0, 18, 45, 65]), [number]) == expected


def test_band_labels_for_fractional_edges_are_half_open_intervals():
    assert tx.band_labels([0.5, 1.5]) == ["<0.5", "[0.5, 1.5)", "1.5+"]


@pytest.mark.parametrize(("year", "width", "expected"), [
    (1953, 5, 1950), (1950, 5, 1950), (1954, 5, 1950), (1955, 10, 1950), (1999, 20, 1980),
])
def test_generalise_integer_gives_band_start(con, year, width, expected):
    assert value(con, tx.generalise_integer("$1::INTEGER", width), [year]) == expected


# --- keyed hashes -----------------------------------------------------------------------------
def test_pseudonym_is_stable_positive_and_null_safe(con):
    first = value(con, tx.pseudonymise("42::BIGINT"))
    assert first == value(con, tx.pseudonymise("42::BIGINT"))
    assert 0 < first < 2**60
    assert value(con, tx.pseudonymise("NULL::BIGINT")) is None


def test_pseudonym_of_a_floating_key_matches_the_integer_key(con):
    assert value(con, tx.pseudonymise("42.0::DOUBLE", "DOUBLE")) == \
        value(con, tx.pseudonymise("42::BIGINT"))


def test_pseudonym_depends_on_the_secret_key():
    other = duckdb.connect()
    tx.set_key(other, "cd" * 32)
    here = duckdb.connect()
    tx.set_key(here, KEY)
    assert value(other, tx.pseudonymise("7::BIGINT")) != value(here, tx.pseudonymise("7::BIGINT"))


def test_dataset_keys_differ_per_dataset_and_salt():
    assert tx.dataset_key(b"s", "eunomia") != tx.dataset_key(b"s", "wdbc")
    assert tx.dataset_key(b"s", "eunomia") != tx.dataset_key(b"t", "eunomia")


def test_secret_key_is_not_in_the_sql_text():
    sql = tx.pseudonymise("x") + tx.keyed_hash_hex("x")
    assert KEY not in sql


def test_pseudonyms_are_unique_over_many_keys(con):
    distinct = value(con, f"count(DISTINCT {tx.pseudonymise('i')}) FROM range(200000) t(i)")
    assert distinct == 200000


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=366))
def test_shift_days_stay_within_the_maximum(max_days):
    connection = duckdb.connect()
    tx.set_key(connection, KEY)
    expr = tx.shift_days(tx.keyed_hash_hex("i"), max_days)
    lo, hi = connection.execute(f"SELECT min({expr}), max({expr}) FROM range(2000) t(i)"
                                ).fetchone()
    assert -max_days <= lo and hi <= max_days


@settings(max_examples=30, deadline=None)
@given(st.floats(min_value=0.05, max_value=0.5))
def test_holdout_fraction_is_close_to_the_declared_fraction(fraction):
    connection = duckdb.connect()
    tx.set_key(connection, KEY)
    share = connection.execute(
        f"SELECT avg(CAST({tx.holdout_flag(tx.keyed_hash_hex('i'), fraction)} AS DOUBLE))"
        " FROM range(20000) t(i)").fetchone()[0]
    assert abs(share - fraction) < 0.02


@settings(max_examples=60, deadline=None)
@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)),
       st.integers(min_value=-366, max_value=366))
def test_date_shift_agrees_with_python_date_arithmetic(day, shift):
    connection = duckdb.connect()
    assert value(connection, tx.date_shift("$1::DATE", "$2::INTEGER"), [day, shift]) == \
        day + timedelta(days=shift)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1850, max_value=2030), st.integers(min_value=1990, max_value=2030))
def test_birth_year_cap_never_leaves_an_age_over_90(year, reference):
    connection = duckdb.connect()
    capped = value(connection, tx.birth_year_cap("$1::INTEGER", reference), [year])
    assert reference - capped <= 90
    assert capped == year or reference - year > 90


def test_cast_to_uses_try_cast_only_when_types_differ():
    assert tx.cast_to("x", "DOUBLE", "DOUBLE") == "x"
    connection = duckdb.connect()
    assert value(connection, tx.cast_to("'abc'", "DOUBLE", "VARCHAR")) is None
    assert value(connection, tx.cast_to("'1.5'", "DOUBLE", "VARCHAR")) == 1.5
