"""Validation run states and their allowed transitions, as data.

``docs/validation-guide.md`` shows the same table; a test asserts that every state appears here
and that every transition the code makes is listed.
"""

from __future__ import annotations

from portal.errors import Rejected

# state -> (who may see the report, description)
STATES: dict[str, str] = {
    "queued": "waiting for a worker",
    "running": "claimed by a worker (lease held)",
    "awaiting_review": "finished; platform staff review results before the team sees them",
    "completed": "finished; report visible to the team (no review required)",
    "released": "finished and released by staff; report visible to the team",
    "withheld": "finished; staff withheld the results (with a reason)",
    "failed": "did not produce a report (the outcome says why)",
}

# (from, to) -> the actor kind that makes the transition
TRANSITIONS: dict[tuple[str, str], str] = {
    ("queued", "running"): "worker",
    ("queued", "failed"): "system",  # access ended before it was scored (portal.services.access)
    ("running", "queued"): "worker",  # lease expired: retried
    ("running", "failed"): "worker",
    ("running", "awaiting_review"): "worker",
    ("running", "completed"): "worker",
    ("awaiting_review", "released"): "staff",
    ("awaiting_review", "withheld"): "staff",
    ("withheld", "released"): "staff",
}

TERMINAL = frozenset({"completed", "released", "withheld", "failed"})
VISIBLE_TO_TEAM = frozenset({"completed", "released"})

# Failure outcomes shown to teams, with what they mean.
OUTCOMES: dict[str, str] = {
    "invalid_model": "the model could not be loaded or run on the task's input",
    "timed_out": "the model did not finish within the task's wall-time limit",
    "resource_limit_exceeded": "the model exceeded a memory, CPU or file limit",
    "invalid_predictions": "the predictions were not one probability in [0, 1] per row "
                           "(NaN, infinite, out of range, wrong length or constant)",
    "isolation_unavailable": "the platform could not isolate the model, so it was not run",
    "access_ended": "the team's access ended (grant revoked or expired, team or member "
                    "suspended) before the run was scored, so it was not scored or kept",
    "internal_error": "a platform problem; staff have been told",
}


def check_transition(current: str, new: str) -> str:
    """The actor kind allowed to move a run from ``current`` to ``new``.

    Raises Rejected(code='invalid_transition') when the move is not allowed."""
    actor = TRANSITIONS.get((current, new))
    if actor is None:
        raise Rejected("invalid_transition",
                       f"A run that is {current.replace('_', ' ')} cannot become "
                       f"{new.replace('_', ' ')}.")
    return actor

