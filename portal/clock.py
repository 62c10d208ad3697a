"""The one UTC helper: times as the store keeps them (ISO-8601, UTC, whole seconds, ``Z``).

Text in this form sorts in time order, so the store compares it as text on both engines.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now_utc(now: datetime | None = None) -> datetime:
    """``now`` (made timezone-aware, UTC) or the current time, to the second."""
    value = now or datetime.now(UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


def to_text(moment: datetime) -> str:
    """A datetime as the store's ISO-8601 UTC text (``2026-10-01T00:00:00Z``)."""
    return now_utc(moment).isoformat().replace("+00:00", "Z")


def from_text(text: str) -> datetime:
    """The store's ISO-8601 text back to an aware datetime."""
    return now_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def utcnow() -> str:
    """The current time as the store's text."""
    return to_text(now_utc())
