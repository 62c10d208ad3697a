"""Saved queries shared within the team, on both store engines: a teammate sees and loads a
shared query but cannot change or delete it; other teams never see it; a member who leaves the
team takes their shared queries along."""

from __future__ import annotations

import pytest

from portal import audit
from portal.errors import NotFound
from portal.services import query
from portal.store import people
from portal.store.db import transaction
from tests.factories import make_user
from tests.store_engines import ENGINES

SQL = "SELECT gender_concept_id, count(*) FROM person GROUP BY 1"


@pytest.fixture(params=ENGINES)
def store_engine(request) -> str:
    return request.param


def _team_of_three(ctx):
    owner = make_user(ctx, "owner@gamma-ai.example", team="gamma-ai")
    mate = make_user(ctx, "mate@gamma-ai.example", team="gamma-ai")
    outsider = make_user(ctx, "analyst@acme-health.example", team="acme-health")
    return owner, mate, outsider


def _names(ctx, who, dataset="eunomia"):
    return [(s["name"], s["owner"], s["mine"]) for s in query.list_saved_queries(ctx, who, dataset)]


def test_a_shared_query_is_listed_for_teammates_and_not_for_other_teams(ctx):
    owner, mate, outsider = _team_of_three(ctx)
    query.save_query(ctx, owner, "eunomia", "by gender", SQL, shared=True)
    query.save_query(ctx, owner, "eunomia", "draft", "SELECT 1")
    assert _names(ctx, owner) == [("by gender", owner.email, True), ("draft", owner.email, True)]
    assert _names(ctx, mate) == [("by gender", owner.email, False)]
    assert query.list_saved_queries(ctx, mate, "eunomia")[0]["sql_text"] == SQL
    assert _names(ctx, outsider) == []
    assert _names(ctx, mate, "wdbc") == []


def test_sharing_and_unsharing_is_the_owners_alone_and_audited(ctx):
    owner, mate, _ = _team_of_three(ctx)
    saved = query.save_query(ctx, owner, "eunomia", "draft", SQL)
    assert _names(ctx, mate) == []
    query.share_saved_query(ctx, owner, saved, True)
    assert [n for n, _, _ in _names(ctx, mate)] == ["draft"]
    with pytest.raises(NotFound):
        query.share_saved_query(ctx, mate, saved, False)
    with pytest.raises(NotFound):
        query.delete_saved_query(ctx, mate, saved)
    query.share_saved_query(ctx, owner, saved, False)
    assert _names(ctx, mate) == []
    events = audit.list_events(ctx.conn, action="query.saved.share")
    assert sorted((e.actor, e.decision, e.details.get("shared")) for e in events) == [
        (mate.email, "denied", None), (owner.email, "done", False), (owner.email, "done", True)]
    assert audit.verify(ctx.conn).ok


def test_resaving_under_the_same_name_replaces_the_sql_and_the_sharing(ctx):
    owner, mate, _ = _team_of_three(ctx)
    first = query.save_query(ctx, owner, "eunomia", "q", "SELECT 1", shared=True)
    again = query.save_query(ctx, owner, "eunomia", "q", SQL, shared=False)
    assert first == again
    assert _names(ctx, mate) == []
    assert query.list_saved_queries(ctx, owner, "eunomia")[0]["sql_text"] == SQL


def test_a_member_who_leaves_the_team_takes_their_shared_queries_along(ctx):
    owner, mate, _ = _team_of_three(ctx)
    query.save_query(ctx, owner, "eunomia", "by gender", SQL, shared=True)
    with transaction(ctx.conn):
        ctx.conn.execute("DELETE FROM memberships WHERE user_id = ?", (owner.user_id,))
        people.set_membership(ctx.conn, owner.user_id,
                              people.ensure_team(ctx.conn, "beta-bio", "Beta Bio"))
    assert _names(ctx, mate) == []
