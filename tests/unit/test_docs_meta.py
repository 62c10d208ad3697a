"""Meta-tests that keep the documentation honest."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import portal.config

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_read_from_the_environment_is_documented():
    source = inspect.getsource(portal.config)
    variables = set(re.findall(r'"(PORTAL_[A-Z_]+)"', source))
    documented = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert variables, "no settings found"
    missing = sorted(v for v in variables if f"`{v}`" not in documented)
    assert missing == []


DOCUMENTS = ("docs/*.md", "docs/decisions/*.md", "README.md", "access_policies/README.md")
TEST_REFERENCE = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def _referenced_tests() -> list[tuple[str, str, str]]:
    found = []
    for pattern in DOCUMENTS:
        for doc in sorted(ROOT.glob(pattern)):
            text = doc.read_text(encoding="utf-8")
            found += [(doc.relative_to(ROOT).as_posix(), path, name)
                      for path, name in TEST_REFERENCE.findall(text)]
    return found


def test_every_test_named_in_the_docs_exists_as_a_test_function():
    """`tests/x.py::test_y` in a document names a test that is defined in that file (a
    renamed or deleted test makes the document's promise unchecked)."""
    references = _referenced_tests()
    assert len(references) >= 8
    missing = []
    for doc, path, name in references:
        source = ROOT / path
        text = source.read_text(encoding="utf-8") if source.is_file() else ""
        if not re.search(rf"^(?:async )?def {name}\(", text, re.MULTILINE):
            missing.append(f"{doc}: {path}::{name}")
    assert missing == []
