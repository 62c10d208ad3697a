"""The one canonical JSON: what is hashed, signed or chained is serialised exactly this way.

Keys sorted, no spaces, UTF-8 text as is (not ``\\u`` escapes). ``NaN`` and infinities are
refused unless ``allow_nan`` (the audit log records what it is given, and a metric can be NaN).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def canonical_json(data: Any, *, allow_nan: bool = False,
                   default: Callable[[Any], Any] | None = None) -> str:
    """``data`` as canonical JSON text. Raises ValueError for NaN unless ``allow_nan`` and
    TypeError for a value JSON cannot hold unless ``default`` converts it."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=allow_nan, default=default)


def canonical_bytes(data: Any, *, allow_nan: bool = False) -> bytes:
    """:func:`canonical_json` encoded as UTF-8: the bytes to hash or sign."""
    return canonical_json(data, allow_nan=allow_nan).encode("utf-8")
