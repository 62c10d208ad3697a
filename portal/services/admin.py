"""Staff administration use cases: rebuilding extracts after a policy change, reading and
exporting the audit log, and auditing result downloads."""

from __future__ import annotations

from typing import Any

from portal import audit
from portal.identity import Principal, require_staff
from portal.services import policies, query
from portal.services.context import Context


def rebuild_extracts(ctx: Context, principal: Principal, dataset_id: str) -> list[dict[str, Any]]:
    """After a policy change: check every policy against the current releases, then make sure
    the governed extract of each tier of ``dataset_id`` exists for the current policy and
    release (extracts are content-addressed, so a changed tier gets a new file and grants use
    it at their next query). Staff only; audited. Raises Denied (``staff_only``), ConfigError
    (a policy that does not fit its release: nothing is built), NotFound."""
    require_staff(principal)
    loaded = policies.check_policies(ctx)
    policy = policies.dataset_policy(ctx, dataset_id)
    built = []
    for tier in policy.tiers:
        path = query.extract_for(ctx, dataset_id, tier)
        built.append({"tier": tier, "extract": path.name})
    audit.record(ctx.conn, actor=principal.actor, action="extracts.rebuild",
                 target=f"dataset:{dataset_id}", decision="done",
                 details={"tiers": [b["tier"] for b in built], "policies": len(loaded)})
    return built


def audit_events(ctx: Context, principal: Principal, *, dataset: str | None = None,
                 limit: int = 5000, **filters: str | None) -> list[audit.AuditEvent]:
    """Audit events for the Audit page, newest first: the log's own filters (actor, team,
    action, decision, since, until) plus ``dataset`` (events whose target is the dataset or
    whose details name it). Staff only; raises Denied (``staff_only``)."""
    require_staff(principal)
    events = audit.list_events(ctx.conn, limit=limit, **filters)
    if dataset:
        events = [e for e in events
                  if e.target == f"dataset:{dataset}" or e.details.get("dataset") == dataset]
    return events


def record_audit_export(ctx: Context, principal: Principal, filters: dict[str, Any],
                        count: int) -> None:
    """Audit a CSV export of the audit log (who exported what, how many events)."""
    require_staff(principal)
    audit.record(ctx.conn, actor=principal.actor, action="audit.export", decision="done",
                 details={"filters": {k: v for k, v in filters.items() if v}, "events": count})


def record_download(ctx: Context, principal: Principal, dataset_id: str, query_id: str,
                    rows: int) -> None:
    """Audit a download of a query result (results leave the platform: who, which query, how
    many rows — never the values). Called when the Download button is clicked."""
    audit.record(ctx.conn, actor=principal.actor, team=principal.team, action="query.download",
                 target=f"dataset:{dataset_id}", decision="done",
                 details={"query_id": str(query_id)[:64], "rows": int(rows)})
