"""Staff operations behind the Datasets and Audit pages."""

from __future__ import annotations

import pytest

from portal import audit
from portal.errors import Denied
from portal.services import admin
from tests.factories import make_user


def test_audit_events_filter_by_dataset_target_or_details(ctx):
    staff = make_user(ctx, "s@platform.example", role="staff")
    audit.record(ctx.conn, actor="a", action="query.run", decision="allowed",
                 target="dataset:eunomia")
    audit.record(ctx.conn, actor="a", action="request.submit", decision="done",
                 target="request:1", details={"dataset": "eunomia"})
    audit.record(ctx.conn, actor="a", action="query.run", decision="allowed",
                 target="dataset:wdbc")
    found = admin.audit_events(ctx, staff, dataset="eunomia")
    assert [e.action for e in found] == ["request.submit", "query.run"]
    assert len(admin.audit_events(ctx, staff, action="query.run")) == 2


def test_audit_views_and_exports_are_staff_only(ctx):
    member = make_user(ctx, "m@acme.example", team="acme-health")
    with pytest.raises(Denied):
        admin.audit_events(ctx, member)
    with pytest.raises(Denied):
        admin.record_audit_export(ctx, member, {}, 0)
    with pytest.raises(Denied):
        admin.rebuild_extracts(ctx, member, "eunomia")


def test_audit_export_is_itself_audited(ctx):
    staff = make_user(ctx, "s@platform.example", role="staff")
    admin.record_audit_export(ctx, staff, {"actor": "x", "team": None}, 3)
    event = audit.list_events(ctx.conn, action="audit.export")[0]
    assert event.details == {"filters": {"actor": "x"}, "events": 3}

