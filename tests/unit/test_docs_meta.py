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
