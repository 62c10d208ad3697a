"""The SQL steps of the ``omop_synth`` generator (see :mod:`portal.catalog.synth`)."""

from __future__ import annotations

from portal.catalog import synth as g


def _list(values) -> str:
    return "[" + ", ".join("NULL" if v is None else repr(v) for v in values) + "]"


def steps(n: int, s: int) -> list[tuple[str, str]]:
    end = f"DATE '{g.END_DATE}'"
    m = g.MEASUREMENTS
    uuid = ("substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-a' "
            "|| substr(h, 18, 3) || '-' || substr(h, 21, 12)")
    return [
        ("helpers",
         f"CREATE TEMP MACRO u(tag, a, b) AS (hash({s}, tag, a, b) % 1000000007) / 1000000007.0;"
         "CREATE TEMP MACRO nrm(tag, a, b) AS ((u(tag || '1', a, b) + u(tag || '2', a, b) + "
         "u(tag || '3', a, b) + u(tag || '4', a, b)) - 2.0) * 1.7320508;"
         "CREATE TEMP MACRO expo(tag, a, mean, cap) AS "
         "CAST(least(cap, floor(-ln(1.0 - u(tag, a, 0)) * mean)) AS INTEGER);"
         + g._slots([(c, w) for c, _, w in g.CONDITIONS], "cond_slots")
         + g._slots([(c, w) for c, _, w in g.DRUGS], "drug_slots")),
        ("latent person histories", f"""
CREATE TEMP TABLE pp AS
WITH a AS (
  SELECT i + 1 AS person_id,
    CAST(floor(100 * (0.55 * u('age', i + 1, 0) + 0.45 * u('age2', i + 1, 0))) AS INTEGER) AS age,
    CAST(1 + floor(u('mob', i + 1, 0) * 12) AS INTEGER) AS mob,
    CAST(1 + floor(u('dob', i + 1, 0) * 28) AS INTEGER) AS dob
  FROM range({n}) t(i)
), b AS (
  SELECT *, make_date(year({end}) - age, mob, dob) AS birth FROM a
), c AS (
  SELECT *, greatest(birth, DATE '2005-01-01') AS earliest FROM b
), d AS (
  SELECT *, CAST(earliest + CAST(floor(u('os', person_id, 0) *
      greatest(0, ({end} - 365) - earliest)) AS INTEGER) AS DATE) AS obs_start FROM c
), e AS (
  SELECT *, least({end}, CAST(obs_start + CAST(365 + floor(u('oe', person_id, 0) * 5000)
      AS INTEGER) AS DATE)) AS obs_end0 FROM d
), f AS (
  SELECT *, u('ns', person_id, 0) < 0.2 + 0.2 * (age >= 50)::INTEGER AS nsaid,
    (0.004 + 0.0003 * age) AS gib_risk FROM e
), h AS (
  SELECT *, CAST(obs_start + CAST(floor(u('nst', person_id, 0) * (obs_end0 - obs_start) * 0.8)
      AS INTEGER) AS DATE) AS nsaid_start,
    u('gib', person_id, 0) < gib_risk * (CASE WHEN nsaid THEN 3 ELSE 1 END) AS gib FROM f
), k AS (
  SELECT *, CASE WHEN nsaid THEN least(obs_end0, CAST(nsaid_start +
      CAST(floor(u('gd', person_id, 0) * 365) AS INTEGER) AS DATE))
    ELSE CAST(obs_start + CAST(floor(u('gd', person_id, 0) * (obs_end0 - obs_start))
      AS INTEGER) AS DATE) END AS gib_date,
    u('die', person_id, 0) < (0.002 + 0.3 * pow(age / 100.0, 4)) *
      (CASE WHEN gib THEN 2 ELSE 1 END) AS dead FROM h
)
SELECT person_id, age, mob, dob, birth, obs_start,
  CASE WHEN dead THEN greatest(obs_end0, CASE WHEN gib THEN gib_date ELSE obs_end0 END)
       ELSE obs_end0 END AS obs_end,
  nsaid, nsaid_start, gib, gib_date, dead,
  1 + expo('nv', person_id, 4, 58) AS n_visits, expo('nc', person_id, 6, 55) AS n_cond,
  expo('nd', person_id, 5, 45) AS n_drug, 1 + CAST(floor(u('nn', person_id, 0) * 4) AS INTEGER)
    AS n_nsaid, expo('nm', person_id, 5, 60) AS n_meas
FROM k"""),
        ("location", f"""
CREATE TABLE location AS
SELECT i + 1 AS location_id,
  CASE WHEN i % 97 = 0 THEN {_list(g.RESTRICTED_SAMPLE_ZIPS)}[1 + (i // 97) % 3]
       ELSE lpad(CAST(1000 + hash({s}, 'zip', i) % 98000 AS VARCHAR), 5, '0') END AS zip,
  ['MA', 'NY', 'CA', 'TX', 'WA', 'IL', 'FL', 'OH'][1 + CAST(hash({s}, 'st', i) % 8 AS INTEGER)]
    AS state
FROM range(1000) t(i)"""),
        ("person", f"""
CREATE TABLE person AS
SELECT person_id,
  CASE WHEN u('sex', person_id, 0) < 0.51 THEN 8532 ELSE 8507 END AS gender_concept_id,
  year(birth) AS year_of_birth, mob AS month_of_birth, dob AS day_of_birth,
  CAST(birth AS TIMESTAMP) + to_minutes(CAST(floor(u('bt', person_id, 0) * 1440) AS INTEGER))
    AS birth_datetime,
  CASE WHEN u('race', person_id, 0) < 0.70 THEN 8527 WHEN u('race', person_id, 0) < 0.83 THEN 8516
       WHEN u('race', person_id, 0) < 0.90 THEN 8515 ELSE 0 END AS race_concept_id,
  CASE WHEN u('eth', person_id, 0) < 0.17 THEN 38003563 ELSE 38003564 END
    AS ethnicity_concept_id,
  1 + CAST(hash({s}, 'loc', person_id) % 1000 AS BIGINT) AS location_id,
  (SELECT {uuid} FROM (SELECT md5('{s}p' || person_id) AS h)) AS person_source_value,
  CASE WHEN u('sex', person_id, 0) < 0.51 THEN 'F' ELSE 'M' END AS gender_source_value
FROM pp"""),
        ("observation_period", """
CREATE TABLE observation_period AS
SELECT person_id AS observation_period_id, person_id, obs_start AS observation_period_start_date,
  obs_end AS observation_period_end_date, 44814724 AS period_type_concept_id FROM pp"""),
        ("visit_occurrence", f"""
CREATE TABLE visit_occurrence AS
WITH v AS (SELECT person_id, obs_start, obs_end, unnest(range(n_visits)) AS k FROM pp),
w AS (SELECT *, CAST(obs_start + CAST(floor(u('vs', person_id, k) * (obs_end - obs_start + 1))
        AS INTEGER) AS DATE) AS vs, u('vt', person_id, k) AS vt FROM v)
SELECT person_id * 64 + k AS visit_occurrence_id, person_id,
  CASE WHEN vt < 0.05 THEN 9201 WHEN vt < 0.15 THEN 9203 ELSE 9202 END AS visit_concept_id,
  vs AS visit_start_date,
  CAST(vs + CASE WHEN vt < 0.05 THEN 1 + CAST(floor(u('vl', person_id, k) * 7) AS INTEGER)
       ELSE 0 END AS DATE) AS visit_end_date,
  44818517 AS visit_type_concept_id,
  (SELECT {uuid} FROM (SELECT md5('{s}v' || person_id || ':' || k) AS h)) AS visit_source_value
FROM w"""),
        ("condition_occurrence", f"""
CREATE TABLE condition_occurrence AS
WITH c AS (SELECT person_id, obs_start, obs_end, n_visits, unnest(range(n_cond)) AS k FROM pp),
d AS (SELECT *, CAST(floor(u('cv', person_id, k) * n_visits) AS BIGINT) AS vk FROM c)
SELECT person_id * 64 + k AS condition_occurrence_id, person_id, cs.concept_id
    AS condition_concept_id,
  CAST(obs_start + CAST(floor(u('vs', person_id, vk) * (obs_end - obs_start + 1)) AS INTEGER)
    AS DATE) AS condition_start_date,
  NULL::DATE AS condition_end_date, 32020 AS condition_type_concept_id,
  person_id * 64 + vk AS visit_occurrence_id
FROM d JOIN cond_slots cs ON cs.slot = CAST(floor(u('cc', person_id, k) * 100) AS INTEGER)
UNION ALL
SELECT person_id * 64 + 63, person_id, {g.GI_BLEED[0]}, gib_date,
  CAST(gib_date + 7 + CAST(floor(u('ge', person_id, 0) * 21) AS INTEGER) AS DATE), 32020, NULL
FROM pp WHERE gib"""),
        ("drug_exposure", f"""
CREATE TABLE drug_exposure AS
WITH c AS (SELECT person_id, obs_start, obs_end, n_visits, unnest(range(n_drug)) AS k FROM pp),
d AS (SELECT *, CAST(floor(u('dv', person_id, k) * n_visits) AS BIGINT) AS vk,
        CAST(CASE WHEN u('ds', person_id, k) < 0.7 THEN 10 ELSE 30 END AS BIGINT) AS supply FROM c),
e AS (SELECT *, CAST(obs_start + CAST(floor(u('vs', person_id, vk) * (obs_end - obs_start + 1))
        AS INTEGER) AS DATE) AS ds FROM d),
n AS (SELECT person_id, nsaid_start, unnest(range(n_nsaid)) AS k FROM pp WHERE nsaid)
SELECT person_id * 64 + k AS drug_exposure_id, person_id, ds2.concept_id AS drug_concept_id,
  ds AS drug_exposure_start_date, CAST(ds + CAST(supply AS INTEGER) AS DATE)
    AS drug_exposure_end_date,
  38000177 AS drug_type_concept_id, supply AS days_supply, supply AS quantity,
  person_id * 64 + vk AS visit_occurrence_id
FROM e JOIN drug_slots ds2 ON ds2.slot = CAST(floor(u('dc', person_id, k) * 100) AS INTEGER)
UNION ALL
SELECT person_id * 64 + 50 + k, person_id,
  {_list([c for c, _ in g.NSAIDS])}[1 + CAST(floor(u('nd', person_id, 0) * 4) AS INTEGER)],
  CAST(nsaid_start + CAST(k * 45 AS INTEGER) AS DATE),
  CAST(nsaid_start + CAST(k * 45 + 30 AS INTEGER) AS DATE), 38000177, 30, 60, NULL
FROM n"""),
        ("measurement", f"""
CREATE TABLE measurement AS
WITH c AS (SELECT person_id, obs_start, obs_end, n_visits, gib, gib_date,
             unnest(range(n_meas)) AS k FROM pp),
d AS (SELECT *, CAST(floor(u('mv', person_id, k) * n_visits) AS BIGINT) AS vk,
        1 + CAST(floor(u('mc', person_id, k) * {len(m)}) AS INTEGER) AS mi FROM c),
e AS (SELECT *, CAST(obs_start + CAST(floor(u('vs', person_id, vk) * (obs_end - obs_start + 1))
        AS INTEGER) AS DATE) AS md FROM d)
SELECT person_id * 64 + k AS measurement_id, person_id,
  {_list([x[0] for x in m])}[mi] AS measurement_concept_id, md AS measurement_date,
  44818702 AS measurement_type_concept_id,
  round({_list([x[3] for x in m])}[mi] + {_list([x[4] for x in m])}[mi] * nrm('mval', person_id, k)
    - CASE WHEN mi = {len(m)} AND gib AND md >= gib_date THEN 2.0 ELSE 0.0 END, 1)
    AS value_as_number,
  {_list([x[2] for x in m])}[mi] AS unit_concept_id,
  {_list([x[5] for x in m])}[mi]::DOUBLE AS range_low,
  {_list([x[6] for x in m])}[mi]::DOUBLE AS range_high,
  person_id * 64 + vk AS visit_occurrence_id
FROM e"""),
        ("death", f"""
CREATE TABLE death AS
SELECT person_id, obs_end AS death_date, 32817 AS death_type_concept_id,
  CASE WHEN gib AND u('dc', person_id, 0) < 0.3 THEN {g.GI_BLEED[0]} ELSE 0 END
    AS cause_concept_id
FROM pp WHERE dead"""),
        ("concept", g._concept_sql()),
    ]
