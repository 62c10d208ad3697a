"""Audit events for people to read (no streamlit here, so it is tested without it): details as
named fields instead of JSON, and the page's pickers turned into the log's filters."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

SUMMARY_CHARS = 160
EVENT_FIELDS = ("id", "at", "actor", "team", "action", "target", "decision", "reason")


def _label(key: str) -> str:
    return str(key).replace("_", " ")


def _scalar(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return str(value)


def fields(details: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Details as (field, value) pairs: nested objects become ``outer › inner`` fields, lists
    of plain values one comma-separated value, lists of objects numbered fields."""
    pairs: list[tuple[str, str]] = []
    for key, value in details.items():
        name = f"{prefix}{_label(key)}"
        if isinstance(value, Mapping):
            pairs += fields(value, f"{name} › ") if value else [(name, "—")]
        elif isinstance(value, list | tuple):
            if all(not isinstance(v, Mapping | list | tuple) for v in value):
                pairs.append((name, ", ".join(_scalar(v) for v in value) or "—"))
            else:
                for i, item in enumerate(value, 1):
                    pairs += fields(item, f"{name} {i} › ") if isinstance(item, Mapping) \
                        else [(f"{name} {i}", _scalar(item))]
        else:
            pairs.append((name, _scalar(value)))
    return pairs


def summary(details: Mapping[str, Any]) -> str:
    """One line for the events grid: ``field: value · field: value`` (shortened)."""
    text = " · ".join(f"{name}: {value}" for name, value in fields(details))
    return text if len(text) <= SUMMARY_CHARS else text[:SUMMARY_CHARS - 1] + "…"


def event_rows(event: Mapping[str, Any]) -> list[dict[str, str]]:
    """One event as a two-column table: its own fields, then each detail."""
    rows = [{"field": name, "value": _scalar(event.get(name))} for name in EVENT_FIELDS]
    rows += [{"field": name, "value": value} for name, value in fields(event.get("details") or {})]
    return rows


def grid_rows(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{**{name: e.get(name) if name == "id" else (e.get(name) or "")
                for name in EVENT_FIELDS}, "details": summary(e["details"])} for e in events]


def date_bounds(dates: Sequence[dt.date] | dt.date | None) -> tuple[str | None, str | None]:
    """A date range picker's value as (since, until) for the log: the whole of both days
    (a half-picked range, one date, is that day)."""
    if isinstance(dates, dt.date):
        dates = (dates,)
    picked = list(dates or ())
    if not picked:
        return None, None
    start, end = picked[0], picked[-1]
    return start.isoformat(), (end + dt.timedelta(days=1)).isoformat()
