"""Staff administration use cases: rebuilding extracts after a policy change, reading,
verifying, anchoring and exporting the audit log, and auditing result downloads."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from portal import audit
from portal.authz import check_staff, check_staff_or_operator
from portal.errors import Rejected
from portal.identity import Principal
from portal.services.attempts import use_case
from portal.services.context import Context


@use_case("extracts.rebuild", "dataset:{dataset_id}")
def rebuild_extracts(ctx: Context, principal: Principal, dataset_id: str) -> list[dict[str, Any]]:
    """After a policy change: check every policy against the current releases, then make sure
    the governed extract of each tier of ``dataset_id`` exists for the current policy and
    release (extracts are content-addressed, so a changed tier gets a new file and grants use
    it at their next query). Staff only; audited. Raises Denied (``staff_only``), ConfigError
    (a policy that does not fit its release: nothing is built), NotFound."""
    from portal.services import policies, query  # loaded only by the commands that use them

    check_staff(ctx.conn, principal)
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


@use_case("audit.view")
def audit_events(ctx: Context, principal: Principal, *, dataset: str | None = None,
                 limit: int = 5000, **filters: str | None) -> list[audit.AuditEvent]:
    """Audit events for the Audit page, newest first: the log's own filters (actor, team,
    action, decision, since, until) plus ``dataset`` (events whose target is the dataset or
    whose details name it). Staff only; raises Denied (``staff_only``)."""
    check_staff_or_operator(ctx.conn, principal)
    events = audit.list_events(ctx.conn, limit=limit, **filters)
    if dataset:
        events = [e for e in events
                  if e.target == f"dataset:{dataset}" or e.details.get("dataset") == dataset]
    return events


@use_case("audit.view")
def audit_filter_options(ctx: Context, principal: Principal) -> dict[str, Any]:
    """The values the Audit page's pickers offer, read from the log: ``actor``, ``team`` and
    ``action`` (distinct, sorted), ``decision`` (every decision the log can hold) and the
    ``first``/``last`` event times. Staff only; raises Denied (``staff_only``)."""
    check_staff(ctx.conn, principal)
    return {**audit.filter_values(ctx.conn), "decision": list(audit.DECISIONS)}


@use_case("audit.export")
def record_audit_export(ctx: Context, principal: Principal, filters: dict[str, Any],
                        count: int) -> None:
    """Audit a CSV export of the audit log (who exported what, how many events)."""
    check_staff(ctx.conn, principal)
    audit.record(ctx.conn, actor=principal.actor, action="audit.export", decision="done",
                 details={"filters": {k: v for k, v in filters.items() if v}, "events": count})


@use_case("audit.chain.status")
def audit_chain_status(ctx: Context, principal: Principal) -> dict[str, Any]:
    """For staff pages: verify the events written since the last verification (the whole chain
    the first time) and the newest checkpoint; writes no audit event. Returns the result
    (:meth:`audit.VerifyResult.to_dict`) plus ``latest_checkpoint`` ({last_id, at} or None).
    Raises Denied (``staff_only``)."""
    from portal import audit_checkpoints

    check_staff(ctx.conn, principal)
    result = audit.verify_new(ctx.conn).to_dict()
    latest = audit_checkpoints.latest(ctx.settings)
    result["latest_checkpoint"] = {"last_id": latest.last_id, "at": latest.at} if latest else None
    return result


@use_case("audit.verify")
def verify_audit_chain(ctx: Context, principal: Principal,
                       checkpoints: Sequence[Path] = ()) -> audit.VerifyResult:
    """Verify the whole chain, against every anchored checkpoint and ``checkpoints`` (files
    given by staff); audited (``done``, or ``failed`` with reason ``audit_chain_broken``).
    Raises Denied (``staff_only``)."""
    check_staff_or_operator(ctx.conn, principal)
    result = audit.verify(ctx.conn, list(checkpoints))
    audit.record(ctx.conn, actor=principal.actor, action="audit.verify",
                 decision="done" if result.ok else "failed",
                 reason=None if result.ok else "audit_chain_broken",
                 details={"events": result.events, "checkpoints": result.checkpoints,
                          "first_bad_id": result.first_bad_id, "problem": result.problem})
    return result


@use_case("audit.checkpoint")
def write_audit_checkpoint(ctx: Context, principal: Principal,
                           out: Path | None = None) -> dict[str, Any]:
    """Verify the whole chain, then sign a checkpoint of its head into the anchor folder (and
    to ``out`` if given: outside the portal's own state, see :mod:`portal.outputs`); audited.
    Returns the checkpoint document and where it was written. Raises Denied (``staff_only``),
    Rejected (``audit_chain_broken``: nothing is signed), InvalidInput (``output_*``)."""
    from portal import audit_checkpoints, outputs
    from portal.store.db import utcnow

    check_staff_or_operator(ctx.conn, principal)
    if out is not None:
        outputs.check_output(ctx.settings, out)
    result = audit.verify(ctx.conn)
    if not result.ok:
        raise Rejected("audit_chain_broken", f"The audit log does not verify ({result.problem});"
                                             f" no checkpoint was signed.")
    document = audit_checkpoints.sign(ctx.settings, result, utcnow())
    path = audit_checkpoints.write(ctx.settings, document)
    exported = None
    if out is not None:
        exported = outputs.write_bytes(ctx.settings, out, path.read_bytes())
    audit.record(ctx.conn, actor=principal.actor, action="audit.checkpoint", decision="done",
                 details={"last_id": result.head_id, "events": result.events,
                          "file": path.name, "exported": exported is not None})
    return {"checkpoint": document, "anchor_file": str(path),
            "exported_to": str(exported) if exported else None}
