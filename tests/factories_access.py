"""Plain factory functions for access-workflow tests (grants, requests). Other areas may import
them: ``from tests.factories_access import make_grant``."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from portal import audit
from portal.access import grants as grants_mod
from portal.access.grants import Grant
from portal.errors import UserError
from portal.services import access as access_services
from portal.services.context import Context
from portal.store import people
from portal.store.db import transaction

FACTORY_STAFF = "staff@platform.example"
# What a direct grant (``portal.services.access.grant_access``) must state to meet a tier's
# request requirements: a purpose long enough for every bundled tier, and staff's statement that
# the team agreed to the dataset's terms.
DIRECT_GRANT = {"purpose": "Direct grant in a test: sizing cohorts of GI bleed after NSAID use "
                           "for a feasibility study agreed with the data office.",
                "terms_agreed": True}


def _staff_id(ctx: Context, email: str) -> int:
    return people.ensure_user(ctx.conn, email=email, role="staff", name="Factory Staff")


def make_grant(ctx: Context, team: str, dataset: str, tier: str, days: int = 30,
               status: str = "active", purpose: str = "Test purpose for a factory grant.",
               approved_by: str = FACTORY_STAFF, now: datetime | None = None,
               reason: str = "revoked by a test") -> Grant:
    """Create a grant for ``team`` (created if missing) on ``dataset``/``tier``.

    ``status``: ``active`` (expires ``days`` from now; a negative ``days`` gives an active grant
    already past its expiry, as found before `portal access expire` runs), ``expired`` (marked
    expired, expired ``abs(days)`` days ago) or ``revoked`` (revoked with ``reason``)."""
    moment = now or datetime.now(UTC)
    with transaction(ctx.conn):
        team_id = people.ensure_team(ctx.conn, team, team.title())
        staff_id = _staff_id(ctx, approved_by)
        if status in ("active", "revoked") and days > 0:
            grant = grants_mod.create_grant(
                ctx.conn, actor=approved_by, team_id=team_id, dataset_id=dataset, tier=tier,
                purpose=purpose, approved_by=staff_id, days=days, now=moment)
        else:
            start = moment - timedelta(days=(abs(days) or 1) + 30)
            grant = grants_mod.create_grant(
                ctx.conn, actor=approved_by, team_id=team_id, dataset_id=dataset, tier=tier,
                purpose=purpose, approved_by=staff_id, days=30, now=start)
        if status == "revoked":
            return grants_mod.revoke(ctx.conn, actor=approved_by, grant_id=grant.id,
                                     revoked_by=staff_id, reason=reason, now=moment)
        if status == "expired":
            grants_mod.expire_due(ctx.conn, now=moment)
        elif status != "active":
            raise ValueError(f"unknown grant status {status!r}")
        return grants_mod.get_grant(ctx.conn, grant.id)


POLICY_TEMPLATE = """\
dataset: {dataset}
terms: "Use the data only for the stated purpose. Do not attempt re-identification."
tiers:
  row-level:
    description: "Row-level access to de-identified records."
    result_mode: rows
    max_rows: 1000
    budget: {{per_minute: 30, per_day: 2000}}
    max_grant_days: 90
    approvals_required: {row_level_approvals}
    request:
      purpose_min_chars: 40
      purpose_max_chars: 400
      terms_required: true
      ethics_reference_required: {ethics}
    tables:
      person: {{allow_columns: ["person_id", "year_of_birth"]}}
  aggregate:
    description: "Aggregates of at least 11 persons."
    result_mode: aggregate
    min_persons: 11
    max_rows: 10000
    round_counts_to: 5
    budget: {{per_minute: 30, per_day: 2000}}
    max_grant_days: 180
    request:
      purpose_min_chars: 20
      purpose_max_chars: 400
      terms_required: true
    tables:
      person: {{allow_columns: ["person_id", "year_of_birth"]}}
"""


def write_policy(directory: Path, dataset: str = "eunomia", row_level_approvals: int = 1,
                 ethics: bool = False) -> Path:
    """Write a small valid access policy (tiers ``row-level`` and ``aggregate``) for tests."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{dataset}.yaml"
    path.write_text(POLICY_TEMPLATE.format(dataset=dataset, ethics=str(ethics).lower(),
                                           row_level_approvals=row_level_approvals),
                    encoding="utf-8")
    return path


def policy_ctx(ctx: Context, directory: Path, **policy: object) -> Context:
    """The same store, with settings pointing at a policy folder holding ``write_policy(...)``."""
    write_policy(directory, **policy)  # type: ignore[arg-type]
    return Context(settings=replace(ctx.settings, policies_dir=directory), conn=ctx.conn)


PURPOSE = ("We study GI bleeding risk after NSAID exposure to build and validate a triage model "
           "for emergency departments.")


LEAKS = ("Traceback", "sqlite", "/tmp", "/work", "SELECT ", "IntegrityError", ".yaml", ".py")


def refused(actx, call, error_type, code, action, hostile=None):
    """Run ``call``; assert the error type and code, a safe message and an audit event."""
    before = len(audit.list_events(actx.conn, action=action))
    with pytest.raises(error_type) as info:
        call()
    error = info.value
    assert isinstance(error, UserError) and error.code == code
    for leak in LEAKS:
        assert leak not in error.message
    if hostile:
        assert hostile not in error.message
    events = audit.list_events(actx.conn, action=action)
    assert len(events) == before + 1
    assert events[0].decision in ("denied", "rejected") and events[0].reason == code
    return error


def submit(actx, who, tier="row-level", dataset="eunomia", **kw):
    args = {"purpose": PURPOSE, "agreed_terms": True} | kw
    return access_services.submit_request(actx, who, dataset, tier, **args)
