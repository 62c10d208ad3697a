"""Downloads of query results: allowed only where the tier allows, re-checked when the button is
clicked (not when the result was shown), and audited without values."""

from __future__ import annotations

import pytest

from portal import audit
from portal.errors import Denied
from portal.query.executor import QueryResult
from portal.services import access as svc
from portal.services import query
from portal.ui.csvexport import result_download, to_csv
from portal.ui.results import display_rows, unique_columns
from tests.factories import make_user
from tests.factories_query import make_analyst, make_omop_release


def _result(tier: str, mode: str) -> QueryResult:
    return QueryResult(columns=["year_of_birth", "n"], rows=[[1950, 15], ["=cmd()", 20]],
                       row_count=2, truncated=False, suppressed=0, query_id="q-123",
                       duration_ms=1.0, tier=tier, dataset_id="eunomia", result_mode=mode)


def _button(ctx, member, result, fmt="csv"):
    """The Download button's data, as the workspace makes it."""
    columns = unique_columns(list(result.columns))
    return result_download(ctx.settings, member, "eunomia", result, fmt,
                           lambda: to_csv(columns, display_rows(result)))


@pytest.fixture
def released(ctx):
    make_omop_release(ctx)
    return ctx


def test_aggregate_download_is_allowed_and_audited_without_values(released):
    member = make_analyst(released, tier="aggregate")
    result = _result("aggregate", "aggregate")
    assert query.can_download(released, member, "eunomia", result)
    csv_text = _button(released, member, result)()
    assert csv_text.splitlines() == ["year_of_birth,n", "1950,15", "'=cmd(),20"]
    event = audit.list_events(released.conn, action="query.download")[0]
    assert (event.decision, event.actor) == ("done", member.actor)
    assert event.details == {"query_id": "q-123", "rows": 2, "tier": "aggregate",
                             "format": "csv"}
    assert "1950" not in str(event.details)


def test_row_level_tier_without_download_refuses_and_audits_it(released):
    member = make_analyst(released, tier="row-level")  # eunomia row-level: download none
    result = _result("row-level", "rows")
    assert not query.can_download(released, member, "eunomia", result)
    with pytest.raises(Denied) as info:
        query.download_result(released, member, "eunomia", result)
    assert info.value.code == "download_not_allowed"
    event = audit.list_events(released.conn, action="query.download")[0]
    assert (event.decision, event.reason) == ("denied", "download_not_allowed")


def test_download_is_rechecked_at_click_time_after_a_revocation(released):
    member = make_analyst(released, tier="aggregate")
    staff = make_user(released, "staff@platform.example", role="staff")
    result = _result("aggregate", "aggregate")
    button_data = _button(released, member, result)  # the page is shown
    grant = svc.list_grants(released, staff)[0]
    svc.revoke_grant(released, staff, grant["id"], "Contract ended")
    text = button_data()  # clicked afterwards
    assert text.startswith("Download refused (grant_revoked)") and "1950" not in text
    event = audit.list_events(released.conn, action="query.download")[0]
    assert (event.decision, event.reason) == ("denied", "grant_revoked")


def test_a_result_of_another_tier_cannot_be_downloaded_under_the_new_grant(released):
    member = make_analyst(released, tier="aggregate")
    with pytest.raises(Denied) as info:
        query.download_result(released, member, "eunomia", _result("row-level", "rows"))
    assert info.value.code == "result_not_yours"
