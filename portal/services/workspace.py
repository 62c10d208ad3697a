"""Use cases behind the SQL workspace's side panels: the schema browser (every table of the
team's extract with row counts, and each column's description and classification from the data
card) and a concept search over the extract's ``concept`` vocabulary table.

Both read only the governed extract the team's grant resolves to (so only the tables, columns
and rows the grant allows) with trusted, parameterised SQL. The schema overview is a plain read
that page reruns repeat (no audit event on success); a concept search is a user's read of
governed data and writes one audit event, allowed or refused (ARCHITECTURE section 6,
property 4).
"""

from __future__ import annotations

from typing import Any

from portal import audit
from portal.access.grants import check_active_grant
from portal.errors import InvalidInput
from portal.identity import Principal
from portal.query.extracts import extract_row_counts, extract_schema
from portal.query.extracts import search_concepts as _search_extract
from portal.services.attempts import use_case
from portal.services.context import Context
from portal.services.policies import resolved_tier
from portal.services.query import extract_for

MAX_SEARCH_CHARS = 100


def _shown_rows(rows: int, tier: Any) -> int | None:
    """A table's row count as this tier may see it: exact for row tiers; for aggregate tiers
    rounded like the tier's counts, and None (fewer than the tier's minimum) when small."""
    if tier.result_mode != "aggregate":
        return rows
    if rows < (tier.min_persons or 0):
        return None
    step = max(1, tier.round_counts_to)
    return int(round(rows / step) * step)


@use_case("query.schema.overview", "dataset:{dataset_id}")
def schema_overview(ctx: Context, principal: Principal, dataset_id: str) -> dict[str, Any]:
    """Every table of the principal's extract: ``{"dataset", "tier", "result_mode", "tables":
    [{"name", "rows", "description", "columns": [{"name", "type", "classification",
    "description"}]}]}``. Columns are exactly the extract's (the card only adds words). Row
    counts follow the tier (see :func:`_shown_rows`). Raises Denied (no active grant), NotFound
    or ConfigError."""
    grant = check_active_grant(ctx.conn, principal, dataset_id)
    release, resolved = resolved_tier(ctx, dataset_id, grant.tier)
    path = extract_for(ctx, dataset_id, grant.tier)
    counts = extract_row_counts(path)
    tables = []
    for name, columns in extract_schema(path).items():
        card = release.tables.get(name)
        described = {c.name: c for c in card.columns} if card else {}
        tables.append({
            "name": name, "rows": _shown_rows(counts.get(name, 0), resolved.settings),
            "description": str(release.card.get("tables", {}).get(name, {})
                               .get("description", "")),
            "columns": [{"name": column, "type": dtype,
                         "classification": described[column].classification
                         if column in described else "",
                         "description": described[column].description
                         if column in described else ""}
                        for column, dtype in columns],
        })
    return {"dataset": dataset_id, "tier": grant.tier,
            "result_mode": resolved.settings.result_mode, "tables": tables}


@use_case("query.concepts", "dataset:{dataset_id}")
def search_concepts(ctx: Context, principal: Principal, dataset_id: str, text: str,
                    limit: int = 50) -> dict[str, Any]:
    """Concepts of the principal's extract whose name contains ``text`` or whose id or code is
    ``text``: ``{"available", "rows"}`` (``available`` is False when the grant's extract has no
    ``concept`` table). One audit event (search text, row count; never the rows). Raises
    InvalidInput (empty or over 100 characters), Denied (no active grant), NotFound."""
    text = text.strip() if isinstance(text, str) else ""
    if not 1 <= len(text) <= MAX_SEARCH_CHARS:
        raise InvalidInput("invalid_search",
                           f"Search for 1 to {MAX_SEARCH_CHARS} characters of a concept name, "
                           "id or code.")
    grant = check_active_grant(ctx.conn, principal, dataset_id)
    path = extract_for(ctx, dataset_id, grant.tier)
    available = "concept" in extract_schema(path)
    rows = _search_extract(path, text, limit) if available else []
    audit.record(ctx.conn, actor=principal.actor, team=grant.team, action="query.concepts",
                 target=f"dataset:{dataset_id}", decision="allowed",
                 details={"dataset": dataset_id, "tier": grant.tier, "search": text,
                          "available": available, "rows_returned": len(rows)})
    return {"available": available, "rows": rows}
