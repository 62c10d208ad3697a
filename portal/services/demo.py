"""Seeding the demo teams and personas (idempotent)."""

from __future__ import annotations

from portal import audit
from portal.demo import PERSONAS, TEAMS
from portal.services.access import seed_demo_grants
from portal.services.context import Context
from portal.store import people
from portal.store.db import transaction


def seed_people(ctx: Context, issuer: str | None = None) -> dict[str, int]:
    """Create the demo teams and users if missing. Returns counts of what was created."""
    created = {"teams": 0, "users": 0}
    with transaction(ctx.conn):
        for slug, name in TEAMS.items():
            if people.get_team(ctx.conn, slug) is None:
                people.ensure_team(ctx.conn, slug, name)
                created["teams"] += 1
        for persona in PERSONAS:
            if people.get_user_by_email(ctx.conn, persona.email) is None:
                user_id = people.ensure_user(
                    ctx.conn, email=persona.email, role=persona.role, name=persona.name,
                    issuer=issuer, subject=persona.sub if issuer else None,
                )
                created["users"] += 1
                if persona.team:
                    team_id = people.ensure_team(ctx.conn, persona.team, TEAMS[persona.team])
                    people.set_membership(ctx.conn, user_id, team_id)
        if any(created.values()):
            audit.record(ctx.conn, actor="system", action="demo.seed", decision="done",
                         details=created)
    return created


# Later steps of the demo seed (grants, tasks) register here so `portal demo seed` runs them all.
def seed_reference_models(ctx: Context) -> dict[str, int]:
    """Queue the platform's reference model for each task with a release (fitted on dev rows)."""
    from portal.services.leaderboard import seed_reference_models as queue

    return queue(ctx)


SEED_STEPS: list = [seed_people, seed_demo_grants, seed_reference_models]


def seed(ctx: Context) -> dict[str, object]:
    results: dict[str, object] = {}
    for step in SEED_STEPS:
        results[step.__name__] = step(ctx)
    return results
