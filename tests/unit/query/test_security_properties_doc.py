"""Keep docs/security-properties.md and access_policies/README.md true, and check two
structural properties: only allowlisted modules name a release's partition files, and no query
module names the held-out partition."""

from __future__ import annotations

import re
from pathlib import Path

from portal.policy import model

ROOT = Path(__file__).resolve().parents[3]
# Trusted code that may name a release's partition files (ARCHITECTURE section 6, property 1).
PARTITION_READERS = {
    "portal/catalog/builder.py", "portal/catalog/releases.py", "portal/catalog/sources.py",
    "portal/catalog/deid.py", "portal/catalog/report.py", "portal/catalog/synth.py",
    "portal/catalog/synth_sql.py",
    "portal/query/extracts.py",  # the extract builder (dev partition only)
    "portal/services/catalog.py", "portal/cli/datasets.py",  # show paths to staff, never open
    "portal/services/sandbox.py", "sandbox/runner.py", "sandbox/features.py",  # validation
}


def test_every_module_and_test_named_in_the_security_properties_exists():
    text = (ROOT / "docs" / "security-properties.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:portal|sandbox|tests|pages)/[\w/.]+?\.py)", text))
    assert len(named) > 15
    missing = sorted(p for p in named if not (ROOT / p).is_file())
    assert missing == []


def test_only_trusted_modules_name_release_partition_files():
    offenders = []
    for path in [*ROOT.glob("portal/**/*.py"), *ROOT.glob("sandbox/**/*.py"),
                 *ROOT.glob("pages/*.py"), ROOT / "app.py"]:
        if not path.is_file():
            continue
        source = path.read_text(encoding="utf-8")
        if re.search(r"holdout_path|dev_path|holdout\.duckdb|dev\.duckdb", source):
            relative = path.relative_to(ROOT).as_posix()
            if relative not in PARTITION_READERS:
                offenders.append(relative)
    assert offenders == []


def test_no_query_module_names_the_held_out_partition():
    for path in (ROOT / "portal" / "query").glob("*.py"):
        assert "holdout" not in path.read_text(encoding="utf-8").lower(), path.name


def test_every_policy_key_is_documented():
    readme = (ROOT / "access_policies" / "README.md").read_text(encoding="utf-8")
    keys = set()
    for cls in (model.Tier, model.TableRule, model.ColumnTransform, model.Budget,
                model.RequestRequirements, model.DatasetPolicy, model.DpSettings):
        keys |= set(cls.model_fields)
    missing = sorted(k for k in keys if f"`{k}" not in readme and f".{k}`" not in readme)
    assert missing == []


def test_every_query_refusal_code_is_documented():
    guide = (ROOT / "docs" / "governed-sql.md").read_text(encoding="utf-8")
    codes = set()
    for path in [*(ROOT / "portal" / "query").glob("*.py"),
                 ROOT / "portal" / "services" / "query.py"]:
        source = path.read_text(encoding="utf-8")
        codes |= set(re.findall(r'(?:Rejected|QuotaExceeded)\(\s*"([a-z_]+)"', source))
        codes |= set(re.findall(r'"code": "([a-z_]+)"', source))
    assert {"query_timeout", "aggregate_shape_not_allowed"} <= codes
    missing = sorted(c for c in codes if f"`{c}`" not in guide)
    assert missing == []
