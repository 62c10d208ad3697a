"""Plain factory functions for access-workflow tests (grants, requests). Other areas may import
them: ``from tests.factories_access import make_grant``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from portal.access import grants as grants_mod
from portal.access.grants import Grant
from portal.services.context import Context
from portal.store import people
from portal.store.db import transaction

FACTORY_STAFF = "staff@platform.example"


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
