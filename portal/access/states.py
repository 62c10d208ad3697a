"""Access request and grant states, who may move them, and the allowed transitions — as data.

Every state change in :mod:`portal.access` goes through :func:`check_transition`, so a transition
that is not declared here cannot happen. The diagrams in ``docs/access-workflow.md`` are generated
from these tables by :func:`mermaid`; a test fails when the document and the tables disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from portal.errors import Denied

Owner = Literal["member", "staff", "system"]


@dataclass(frozen=True)
class Transition:
    """One allowed move: from ``source`` to ``target`` by ``action``, performed by ``owner``."""

    source: str
    target: str
    action: str
    owner: Owner
    note: str = ""


# --- access requests ------------------------------------------------------------------------
REQUEST_STATES: dict[str, str] = {
    "submitted": "Waiting for a staff review.",
    "awaiting_second_approval": "At least one approval given; the tier requires more, each from "
                                "different staff.",
    "approved": "Approved; a grant was created in the same transaction.",
    "denied": "Denied by staff, with a reason.",
    "withdrawn": "Withdrawn by a member of the requesting team.",
}
REQUEST_INITIAL = "submitted"
REQUEST_FINAL = frozenset({"approved", "denied", "withdrawn"})
REQUEST_OPEN = frozenset(REQUEST_STATES) - REQUEST_FINAL

REQUEST_TRANSITIONS: tuple[Transition, ...] = (
    Transition("submitted", "approved", "approve", "staff", "last required approval"),
    Transition("submitted", "awaiting_second_approval", "approve", "staff",
               "first of two approvals"),
    Transition("awaiting_second_approval", "awaiting_second_approval", "approve", "staff",
               "another approval, more still required"),
    Transition("awaiting_second_approval", "approved", "approve", "staff",
               "last required approval, different staff"),
    Transition("submitted", "denied", "deny", "staff"),
    Transition("awaiting_second_approval", "denied", "deny", "staff"),
    Transition("submitted", "withdrawn", "withdraw", "member"),
    Transition("awaiting_second_approval", "withdrawn", "withdraw", "member"),
)

# --- grants ---------------------------------------------------------------------------------
GRANT_STATES: dict[str, str] = {
    "active": "The team may query the dataset at the granted tier until the expiry date.",
    "expired": "Past its expiry date (enforced at check time, recorded by `portal access expire`).",
    "revoked": "Revoked by staff with a reason, or superseded by a newer grant for the same "
               "team and dataset.",
}
GRANT_INITIAL = "active"
GRANT_FINAL = frozenset({"expired", "revoked"})

GRANT_TRANSITIONS: tuple[Transition, ...] = (
    Transition("active", "expired", "expire", "system", "expiry date passed"),
    Transition("active", "revoked", "revoke", "staff", "with a reason"),
    Transition("active", "revoked", "supersede", "staff", "a newer grant replaces it"),
)

# --- startup team members (users with role 'member') and teams ------------------------------
MEMBER_STATES: dict[str, str] = {
    "invited": "Invited by e-mail; bound to an identity at the first sign-in.",
    "active": "Signed in at least once; may act for the team.",
    "suspended": "May not sign in or use any grant until reactivated.",
    "removed": "No longer part of the team (kept for the audit trail).",
}
MEMBER_INITIAL = "invited"
MEMBER_FINAL = frozenset({"removed"})
MEMBER_TRANSITIONS: tuple[Transition, ...] = (
    Transition("invited", "active", "sign_in", "system", "first sign-in with the invited e-mail"),
    Transition("active", "suspended", "suspend", "staff"),
    Transition("invited", "suspended", "suspend", "staff"),
    Transition("suspended", "active", "reactivate", "staff", "has signed in before"),
    Transition("suspended", "invited", "reactivate", "staff", "never signed in"),
    Transition("invited", "removed", "remove", "staff"),
    Transition("active", "removed", "remove", "staff"),
    Transition("suspended", "removed", "remove", "staff"),
)

TEAM_STATES: dict[str, str] = {
    "active": "Members may request and use grants.",
    "suspended": "Every member is refused (team_suspended) until reactivated; grants are kept.",
}
TEAM_INITIAL = "active"
TEAM_FINAL: frozenset[str] = frozenset()
TEAM_TRANSITIONS: tuple[Transition, ...] = (
    Transition("active", "suspended", "suspend", "staff"),
    Transition("suspended", "active", "reactivate", "staff"),
)

MACHINES: dict[str, tuple[dict[str, str], str, tuple[Transition, ...]]] = {
    "request": (REQUEST_STATES, REQUEST_INITIAL, REQUEST_TRANSITIONS),
    "grant": (GRANT_STATES, GRANT_INITIAL, GRANT_TRANSITIONS),
    "member": (MEMBER_STATES, MEMBER_INITIAL, MEMBER_TRANSITIONS),
    "team": (TEAM_STATES, TEAM_INITIAL, TEAM_TRANSITIONS),
}
FINAL_STATES: dict[str, frozenset[str]] = {
    "request": REQUEST_FINAL, "grant": GRANT_FINAL, "member": MEMBER_FINAL, "team": TEAM_FINAL,
}


def find_transition(machine: str, source: str, target: str, action: str) -> Transition | None:
    """The declared transition, or None when it is not allowed."""
    _, _, transitions = MACHINES[machine]
    for transition in transitions:
        if (transition.source, transition.target, transition.action) == (source, target, action):
            return transition
    return None


def check_transition(machine: str, source: str, target: str, action: str) -> Transition:
    """Return the declared transition or raise Denied(``invalid_transition``).

    The message names the states (which are not secret) so the user sees why."""
    transition = find_transition(machine, source, target, action)
    if transition is None:
        raise Denied("invalid_transition",
                     f"A {machine} that is {source.replace('_', ' ')} cannot be "
                     f"{_past(action)}.")
    return transition


def can_transition(machine: str, source: str, target: str, action: str) -> bool:
    """True when :func:`check_transition` would allow the move."""
    try:
        check_transition(machine, source, target, action)
    except Denied:
        return False
    return True


def _past(action: str) -> str:
    return {"approve": "approved", "deny": "denied", "withdraw": "withdrawn",
            "expire": "expired", "revoke": "revoked", "supersede": "superseded",
            "suspend": "suspended", "reactivate": "reactivated", "remove": "removed",
            "sign_in": "signed in", "reconfirm": "re-confirmed"}.get(
        action, action)


def mermaid(machine: str) -> str:
    """A Mermaid ``stateDiagram-v2`` for one machine, generated from its transition table."""
    states, initial, transitions = MACHINES[machine]
    lines = ["stateDiagram-v2", f"    [*] --> {initial}"]
    for t in transitions:
        label = f"{t.action} ({t.owner})"
        if t.note:
            label += f": {t.note}"
        lines.append(f"    {t.source} --> {t.target}: {label}")
    finals = FINAL_STATES[machine]
    for state in states:
        if state in finals:
            lines.append(f"    {state} --> [*]")
    return "\n".join(lines)


def mermaid_all() -> str:
    """Both diagrams as the Markdown block that ``docs/access-workflow.md`` embeds."""
    parts = []
    for machine in MACHINES:
        parts.append(f"### {machine.title()} states\n\n```mermaid\n{mermaid(machine)}\n```")
    return "\n\n".join(parts)
