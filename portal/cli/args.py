"""Argument types of the `portal` command: whole numbers the store can hold, bounded."""

from __future__ import annotations

import argparse
from collections.abc import Callable

SQLITE_INT_MAX = 2**63 - 1


def bounded_int(lo: int, hi: int, what: str) -> Callable[[str], int]:
    """An argparse type: a whole number from ``lo`` to ``hi`` (else one clear error line)."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{what} must be between {lo} and {hi}")
        return value

    parse.__name__ = what
    return parse


# Ids are positive and fit SQLite's 64-bit INTEGER; other numbers (days, persons) only need to
# fit it: the use cases check their own ranges and say which rule a value breaks.
record_id = bounded_int(1, SQLITE_INT_MAX, "an id")
whole_number = bounded_int(-SQLITE_INT_MAX - 1, SQLITE_INT_MAX, "a whole number")
list_limit = bounded_int(1, 100_000, "a limit")
