"""Run states as data: every state is described and reachable; moves outside the table fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.errors import Rejected
from sandbox.states import (
    OUTCOMES,
    STATES,
    TERMINAL,
    TRANSITIONS,
    VISIBLE_TO_TEAM,
    check_transition,
)


def test_every_state_appears_in_a_transition_and_every_transition_uses_known_states():
    used = {s for pair in TRANSITIONS for s in pair}
    assert used == set(STATES)
    assert set(STATES) >= TERMINAL and VISIBLE_TO_TEAM <= TERMINAL


def test_terminal_states_other_than_withheld_have_no_way_out():
    for state in TERMINAL - {"withheld"}:
        assert not [pair for pair in TRANSITIONS if pair[0] == state]


@pytest.mark.parametrize("current,new", [("queued", "released"), ("completed", "released"),
                                         ("failed", "queued"), ("released", "withheld")])
def test_transitions_not_in_the_table_are_rejected(current, new):
    with pytest.raises(Rejected) as exc:
        check_transition(current, new)
    assert exc.value.code == "invalid_transition"


def test_review_transitions_belong_to_staff():
    assert check_transition("awaiting_review", "released") == "staff"
    assert check_transition("awaiting_review", "withheld") == "staff"


def test_every_failure_outcome_is_documented_in_the_validation_guide():
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[3] / "docs" / "validation-guide.md").read_text()
    for outcome in OUTCOMES:
        assert f"`{outcome}`" in guide
    for state in STATES:
        assert f"`{state}`" in guide


def test_every_sandbox_cli_command_is_documented_in_the_validation_guide():
    from pathlib import Path

    from portal.cli import build_parser

    parser = build_parser()
    top = next(a for a in parser._actions if a.dest == "command")
    sandbox = top.choices["sandbox"]
    commands = next(a for a in sandbox._actions if a.dest == "sandbox_command").choices
    guide = (Path(__file__).resolve().parents[3] / "docs" / "validation-guide.md").read_text()
    missing = [c for c in commands if f"portal sandbox {c}" not in guide]
    assert missing == []


def test_the_state_lists_pages_use_are_derived_from_the_table():
    from sandbox.states import IN_PROGRESS, REVIEWABLE

    assert {"awaiting_review", "withheld"} == REVIEWABLE
    assert {"queued", "running"} == IN_PROGRESS
    pages = Path(__file__).resolve().parents[3] / "pages"
    for page in pages.glob("*.py"):
        source = page.read_text(encoding="utf-8")
        assert '("awaiting_review", "withheld")' not in source, page.name
        assert '("queued", "running")' not in source, page.name
        assert '"awaiting_second_approval")' not in source, page.name
