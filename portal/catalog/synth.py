"""``omop_synth``: a synthetic OMOP CDM 5.3 database, generated in DuckDB SQL (vectorised, no
per-row Python) and deterministic for a given (persons, seed, DuckDB version).

Every random draw is ``hash(seed, tag, person, k)`` scaled to [0, 1), so a person's history does
not depend on how many persons are generated. Tables: person, location, observation_period,
visit_occurrence, condition_occurrence, drug_exposure, measurement, death, concept. Concept ids
follow Eunomia's where it has them (e.g. 192671 gastrointestinal hemorrhage, 1118084 celecoxib).

Planted signals (for validation tasks and teaching):
- NSAID exposure (celecoxib, ibuprofen, naproxen, diclofenac) triples the risk of a GI bleed in
  the year after the first NSAID, and GI bleed risk rises with age;
- haemoglobin measured after a GI bleed is about 2 g/dL lower;
- the risk of death rises steeply with age and doubles after a GI bleed.
Raw identifiers are generated on purpose (full birth dates, UUID source values, real-looking
ZIP codes, ages over 89) so that the release builder has something to remove.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb

from portal.sqltext import quote_literal

GENERATOR_VERSION = 1
DEFAULT_PERSONS = 20_000
DEFAULT_SEED = 42
END_DATE = "2024-12-31"
MAX_EVENTS = 60  # per person and table; event ids are person_id * 64 + k

# (concept_id, name, weight): weights pick everyday events; names as in the OMOP vocabulary.
CONDITIONS = [
    (40481087, "Viral sinusitis", 30), (4112343, "Acute viral pharyngitis", 18),
    (260139, "Acute bronchitis", 14), (372328, "Otitis media", 6), (80180, "Osteoarthritis", 6),
    (28060, "Streptococcal sore throat", 5), (81151, "Sprain of ankle", 4),
    (4027663, "Peptic ulcer", 2), (201826, "Type 2 diabetes mellitus", 5),
    (320128, "Essential hypertension", 7), (4116491, "Escherichia coli urinary tract infection", 3),
]
GI_BLEED = (192671, "Gastrointestinal hemorrhage")
DRUGS = [
    (1127433, "Acetaminophen 325 MG Oral Tablet", 30),
    (40213160, "poliovirus vaccine, inactivated", 12),
    (19059056, "Aspirin 81 MG Oral Tablet", 12),
    (1713671, "Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet", 12),
    (19133873, "Penicillin V Potassium 250 MG Oral Tablet", 8), (1503297, "Metformin", 10),
    (1308216, "Lisinopril", 10), (40213227, "tetanus and diphtheria toxoids, adsorbed", 6),
]
NSAIDS = [(1118084, "celecoxib"), (19078461, "Ibuprofen 200 MG Oral Tablet"),
          (1115171, "Naproxen sodium 220 MG Oral Tablet"), (1124300, "Diclofenac")]
# (concept_id, name, unit_concept_id, mean, sd, low, high)
MEASUREMENTS = [
    (3006322, "Oral temperature", 586323, 36.9, 0.4, 36.1, 37.2),
    (3025315, "Body weight", 9529, 78.0, 16.0, None, None),
    (3004249, "Systolic blood pressure", 8876, 126.0, 15.0, 90.0, 120.0),
    (3000963, "Hemoglobin [Mass/volume] in Blood", 8713, 13.8, 1.3, 12.0, 17.5),
]
_TYPE = ("Type Concept", "Type Concept", "Type Concept")
OTHER_CONCEPTS = [
    (8507, "MALE", "Gender", "Gender", "Gender"), (8532, "FEMALE", "Gender", "Gender", "Gender"),
    (8527, "White", "Race", "Race", "Race"),
    (8516, "Black or African American", "Race", "Race", "Race"),
    (8515, "Asian", "Race", "Race", "Race"),
    (38003563, "Hispanic or Latino", "Ethnicity", "Ethnicity", "Ethnicity"),
    (38003564, "Not Hispanic or Latino", "Ethnicity", "Ethnicity", "Ethnicity"),
    (9201, "Inpatient Visit", "Visit", "Visit", "Visit"),
    (9202, "Outpatient Visit", "Visit", "Visit", "Visit"),
    (9203, "Emergency Room Visit", "Visit", "Visit", "Visit"),
    (44814724, "Period covering healthcare encounters", *_TYPE),
    (32020, "EHR encounter diagnosis", *_TYPE),
    (38000177, "Prescription written", *_TYPE),
    (44818702, "Lab result", *_TYPE),
    (44818517, "Visit derived from encounter on claim", *_TYPE),
    (32817, "EHR", *_TYPE),
    (586323, "degree Celsius", "Unit", "UCUM", "Unit"), (9529, "kilogram", "Unit", "UCUM", "Unit"),
    (8876, "millimeter mercury column", "Unit", "UCUM", "Unit"),
    (8713, "gram per deciliter", "Unit", "UCUM", "Unit"),
]
RESTRICTED_SAMPLE_ZIPS = ("03601", "69201", "89301")  # some locations fall in restricted areas


def _u(seed: int, tag: str, *parts: str) -> str:
    """SQL for a uniform draw in [0, 1) from the seed, a tag and row coordinates."""
    args = ", ".join((str(int(seed)), f"'{tag}'", *parts))
    return f"(hash({args}) % 1000000007) / 1000000007.0"


def _normal(seed: int, tag: str, *parts: str) -> str:
    """Approximately standard normal (Irwin–Hall of 4 uniforms, rescaled)."""
    draws = " + ".join(_u(seed, f"{tag}{i}", *parts) for i in range(4))
    return f"(({draws}) - 2.0) * 1.7320508"


def _slots(rows: list[tuple[int, int]], name: str) -> str:
    """A 100-slot lookup table choosing among weighted concepts by an equi-join on slot."""
    total = sum(r[-1] for r in rows)
    values, slot = [], 0
    for i, row in enumerate(rows):
        n = round(100 * row[-1] / total) if i < len(rows) - 1 else 100 - slot
        values += [f"({s}, {row[0]})" for s in range(slot, min(100, slot + n))]
        slot += n
    return f"CREATE TEMP TABLE {name}(slot INTEGER, concept_id BIGINT); " \
           f"INSERT INTO {name} VALUES {', '.join(values)};"




def _concept_sql() -> str:
    rows = [(c, n, "Condition", "SNOMED", "Clinical Finding") for c, n, _ in CONDITIONS]
    rows.append((*GI_BLEED, "Condition", "SNOMED", "Clinical Finding"))
    rows += [(c, n, "Drug", "RxNorm", "Clinical Drug") for c, n, _ in DRUGS]
    rows += [(c, n, "Drug", "RxNorm", "Ingredient") for c, n in NSAIDS]
    rows += [(m[0], m[1], "Measurement", "LOINC", "Lab Test") for m in MEASUREMENTS]
    rows += OTHER_CONCEPTS
    values = ", ".join(
        f"({c}, {quote_literal(n)}, {quote_literal(d)}, {quote_literal(v)}, {quote_literal(k)}, "
        f"{'NULL' if d in ('Type Concept', 'Unit') else chr(39) + 'S' + chr(39)}, "
        f"'{c}', DATE '1970-01-01', DATE '2099-12-31', NULL)" for c, n, d, v, k in rows)
    return ("CREATE TABLE concept(concept_id BIGINT, concept_name VARCHAR, domain_id VARCHAR, "
            "vocabulary_id VARCHAR, concept_class_id VARCHAR, standard_concept VARCHAR, "
            "concept_code VARCHAR, valid_start_date DATE, valid_end_date DATE, "
            f"invalid_reason VARCHAR); INSERT INTO concept VALUES {values};")


def generate(path: Path, *, persons: int = DEFAULT_PERSONS, seed: int = DEFAULT_SEED,
             progress: Callable[[str], None] | None = None, threads: int | None = None) -> None:
    """Write the synthetic database to ``path`` (a new DuckDB file)."""
    say = progress or (lambda _m: None)
    config = {"preserve_insertion_order": False}
    if threads:
        config["threads"] = threads
    con = duckdb.connect(str(path), config=config)
    try:
        for name, sql in _steps(int(persons), int(seed)):
            say(f"omop_synth: generating {name} ({persons:,} persons)")
            con.execute(sql)
        con.execute("CHECKPOINT")
    finally:
        con.close()


def _steps(n: int, s: int) -> list[tuple[str, str]]:
    from portal.catalog import synth_sql

    return synth_sql.steps(n, s)
