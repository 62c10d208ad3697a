"""The Audit page's picker values come from the log itself, on both store engines."""

from __future__ import annotations

import pytest

from portal import audit
from tests.store_engines import ENGINES


@pytest.fixture(params=ENGINES)
def store_engine(request) -> str:
    return request.param


def test_filter_values_are_the_distinct_actors_teams_actions_and_time_span(ctx):
    assert audit.filter_values(ctx.conn) == {"actor": [], "team": [], "action": [],
                                             "first": None, "last": None}
    for actor, team, action in (("b@y.example", "beta-bio", "query.run"),
                                ("a@x.example", None, "request.submit"),
                                ("b@y.example", "beta-bio", "query.run")):
        audit.record(ctx.conn, actor=actor, team=team, action=action, decision="allowed")
    found = audit.filter_values(ctx.conn)
    assert found["actor"] == ["a@x.example", "b@y.example"]
    assert found["team"] == ["beta-bio"]  # no empty team offered
    assert found["action"] == ["query.run", "request.submit"]
    events = audit.list_events(ctx.conn)
    assert found["first"] == events[-1].at and found["last"] == events[0].at


def test_the_team_column_has_an_index(ctx):
    catalog = ("SELECT indexname FROM pg_indexes WHERE tablename = 'audit_events'"
               if ctx.settings.database_url else
               "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_events'")
    assert "audit_events_team" in {r[0] for r in ctx.conn.execute(catalog).fetchall()}
