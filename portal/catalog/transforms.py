"""De-identification transforms as vectorised DuckDB SQL expressions (no per-row Python).

Each function takes the SQL of the source value and returns the SQL of the released value.
Secrets never appear in SQL text: keyed hashes read the dataset key from the DuckDB variable
``portal_key`` (``SET VARIABLE``), set by :func:`set_key`.

Keyed hash: ``h = sha256(key ‖ value)`` in hex, where ``key`` is 128 bits of
HMAC-SHA256(installation salt, dataset id). From one ``h`` per person:

- pseudonym  = the first 15 hex digits as a positive BIGINT (60 bits);
- held out   = hex digits 16–28 (52 bits) / 2^52 < holdout fraction;
- date shift = (hex digits 29–36 mod (2·N+1)) − N days, N = the card's maximum shift.

So every key with the same value maps to the same pseudonym in every table of a release.
"""

from __future__ import annotations

import hashlib
import hmac

import duckdb

# HIPAA Safe Harbor: the 3-digit ZIP prefixes whose areas held 20,000 people or fewer
# (2000 Census, as listed by HHS). Released as 000.
RESTRICTED_ZIP3 = ("036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830",
                   "831", "878", "879", "884", "890", "893")
AGE_CAP = 90  # ages over 89 are released as 90 ("90 or older")


def dataset_key(salt: bytes, dataset_id: str) -> str:
    """The per-dataset hashing key: 128 bits (32 hex digits) of HMAC-SHA256(installation salt,
    dataset id). 128 bits keep key ‖ value (at most 52 bytes for any BIGINT) within one SHA-256
    block, which halves the hashing cost of a release."""
    return hmac.new(salt, dataset_id.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def set_key(con: duckdb.DuckDBPyConnection, key_hex: str) -> None:
    """Make the dataset key available to SQL as getvariable('portal_key') without putting it in
    any SQL text (and so in no error message or log)."""
    con.execute("SET VARIABLE portal_key = $1", [key_hex])


def keyed_hash_hex(value_sql: str) -> str:
    """SHA-256 of the secret key and the value's text (NULL stays NULL)."""
    return f"sha256(getvariable('portal_key') || CAST({value_sql} AS VARCHAR))"


def pseudonym_from_hex(hex_sql: str) -> str:
    return f"CAST(('0x' || substr({hex_sql}, 1, 15)) AS BIGINT)"


def pseudonymise(value_sql: str, source_type: str = "BIGINT") -> str:
    """Keyed-hash pseudonym: a positive 60-bit BIGINT, NULL for NULL. Floating keys (as in some
    source tables) are cast to BIGINT first so that 1.0 and 1 map alike."""
    if source_type.upper() in ("DOUBLE", "FLOAT", "REAL", "DECIMAL") or \
            source_type.upper().startswith("DECIMAL"):
        value_sql = f"CAST({value_sql} AS BIGINT)"
    return pseudonym_from_hex(keyed_hash_hex(value_sql))


def holdout_flag(hex_sql: str, fraction: float) -> str:
    """True when the person falls in the held-out partition (deterministic given the key)."""
    return (f"(CAST(('0x' || substr({hex_sql}, 16, 13)) AS BIGINT) / 4503599627370496.0"
            f" < {float(fraction)!r})")


def shift_days(hex_sql: str, max_days: int) -> str:
    """A per-person offset in [-max_days, +max_days] days, stable for a person."""
    span = 2 * int(max_days) + 1
    return f"(CAST(('0x' || substr({hex_sql}, 29, 8)) AS BIGINT) % {span} - {int(max_days)})"


def date_shift(value_sql: str, shift_sql: str) -> str:
    """The date moved by the person's offset; NULL stays NULL."""
    return f"CAST(CAST({value_sql} AS DATE) + CAST({shift_sql} AS INTEGER) AS DATE)"


def date_to_year(value_sql: str) -> str:
    """Only the year of a date remains (INTEGER)."""
    return f"CAST(year(CAST({value_sql} AS DATE)) AS INTEGER)"


def birth_year_cap(value_sql: str, reference_year: int) -> str:
    """Birth years of persons older than 89 at the reference year are raised so that their age
    there reads 90 ("90 or older"). Age exactly 89 or 90 is unchanged."""
    floor = int(reference_year) - AGE_CAP
    # CASE, not greatest(): DuckDB's greatest/least skip NULLs, which would invent a value.
    value = f"CAST({value_sql} AS INTEGER)"
    return f"(CASE WHEN {value} < {floor} THEN {floor} ELSE {value} END)"


def birth_year_capped(value_sql: str, reference_year: int) -> str:
    """True where :func:`birth_year_cap` changes the value (for the report's counts)."""
    return f"(CAST({value_sql} AS INTEGER) < {int(reference_year) - AGE_CAP})"


def age_cap(value_sql: str) -> str:
    """Ages over 89 become 90."""
    value = f"CAST({value_sql} AS INTEGER)"
    return f"(CASE WHEN {value} > {AGE_CAP} THEN {AGE_CAP} ELSE {value} END)"


def zip3(value_sql: str, extra_restricted: tuple[str, ...] | list[str] = ()) -> str:
    """The first three digits of a ZIP code; restricted prefixes (and codes with fewer than
    three digits) become '000'."""
    restricted = sorted(set(RESTRICTED_ZIP3) | set(extra_restricted))
    listed = ", ".join(f"'{p}'" for p in restricted)  # validated as three digits
    digits = f"regexp_replace(CAST({value_sql} AS VARCHAR), '[^0-9]', '', 'g')"
    return (f"CASE WHEN {value_sql} IS NULL THEN NULL "
            f"WHEN length({digits}) < 3 OR left({digits}, 3) IN ({listed}) THEN '000' "
            f"ELSE left({digits}, 3) END")


def band_labels(edges: list[int | float]) -> list[str]:
    """Labels for values below the first edge, between edges, and from the last edge up."""
    integral = all(float(e).is_integer() for e in edges)

    def fmt(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else repr(float(x))

    labels = [f"<{fmt(edges[0])}"]
    for lo, hi in zip(edges, edges[1:], strict=False):
        labels.append(f"{fmt(lo)}-{fmt(hi - 1)}" if integral else f"[{fmt(lo)}, {fmt(hi)})")
    labels.append(f"{fmt(edges[-1])}+")
    return labels


def band(value_sql: str, edges: list[int | float]) -> str:
    """Generalise a number to a band label, e.g. edges [18, 45, 65] → '<18', '18-44', '45-64',
    '65+'. NULL stays NULL."""
    labels = band_labels(edges)
    parts = [f"WHEN {value_sql} IS NULL THEN NULL"]
    for edge, label in zip(edges, labels, strict=False):
        parts.append(f"WHEN {value_sql} < {edge!r} THEN '{label}'")
    return f"CASE {' '.join(parts)} ELSE '{labels[-1]}' END"


def generalise_integer(value_sql: str, width: int) -> str:
    """Global recoding to the start of a band of ``width`` (e.g. 1953 → 1950 for width 5)."""
    return f"CAST({value_sql} - ({value_sql} % {int(width)}) AS INTEGER)"


def cast_to(value_sql: str, release_type: str, source_type: str) -> str:
    """Cast to the declared release type when the source type differs (TRY_CAST: a value that is
    not a number becomes NULL and is counted in the report)."""
    if source_type.upper() == release_type.upper():
        return value_sql
    return f"TRY_CAST({value_sql} AS {release_type})"
