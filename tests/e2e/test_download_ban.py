"""The download ban in a real browser: on a tier whose results may not be downloaded, the
results grid's own toolbar offers no "Download as CSV" (its search still shows, so the toolbar
is there) and the page has no download button at all; where downloads are allowed, the only way
out is the audited Download button. Screenshots go to test-artifacts/e2e/download-ban-*/."""

from __future__ import annotations

from tests.e2e.conftest import Shots, go, new_page, sign_in, wait_idle
from tests.e2e.test_journeys import run_query

ROW_LEVEL_QUERY = "SELECT person_id, year_of_birth FROM person ORDER BY 1 LIMIT 50"
AGGREGATE_QUERY = "SELECT gender_concept_id, count(*) AS persons FROM person GROUP BY 1"


def _grant(stack, team: str, tier: str) -> None:
    from portal.identity import principal_for_email
    from portal.services import access
    from portal.services.context import Context
    from tests.factories_access import DIRECT_GRANT

    ctx = Context.open(stack.settings)
    try:
        staff = principal_for_email(ctx.conn, "staff@platform.example")
        access.grant_access(ctx, staff, team, "eunomia", tier, 30, **DIRECT_GRANT)
    finally:
        ctx.close()


def _grid_toolbar_labels(page) -> list[str]:
    """The buttons the toolbars of every visible grid on the page show (the schema panel's and
    the results'), hovering over each grid in turn, as a person would."""
    labels: list[str] = []
    containers = page.locator("[data-testid='stElementContainer']").filter(
        has=page.locator("[data-testid='stDataFrame']"))
    for i in range(containers.count()):
        container = containers.nth(i)
        if not container.is_visible():
            continue
        container.locator("[data-testid='stDataFrame']").hover()
        page.wait_for_timeout(400)
        buttons = container.locator("[data-testid='stElementToolbar'] button")
        labels += [b.get_attribute("aria-label") or b.inner_text() for b in buttons.all()]
    return labels


def _result_toolbars(page, stack, sql: str, notice: str, shot: str) -> list[str]:
    """Sign in as Beta Bio's analyst, run ``sql`` in the workspace, wait for ``notice``; the
    labels of every grid toolbar on the page."""
    sign_in(page, stack, "analyst@beta-bio.example")
    go(page, stack, "workspace", "SQL workspace")
    run_query(page, sql)
    page.get_by_text(notice).wait_for()
    labels = _grid_toolbar_labels(page)
    Shots(f"download-ban-{shot}")(page, "grid-toolbars")
    return labels


def test_row_level_tier_without_download_offers_no_download_anywhere(stack, browser):
    _grant(stack, "beta-bio", "row-level")  # eunomia row-level: download none
    page = new_page(browser)
    try:
        labels = _result_toolbars(page, stack, ROW_LEVEL_QUERY,
                                  "Your tier does not allow downloading results.", "row-level")
        assert "Search" in labels  # the grid's toolbar is shown ...
        assert not [lb for lb in labels if "download" in lb.lower()], labels  # ... without CSV
        assert page.get_by_role("button", name="Download CSV").count() == 0
        assert page.get_by_role("button", name="Download Parquet").count() == 0
        assert page.locator("[data-testid='stDownloadButton']").count() == 0
    finally:
        page.context.close()


def test_aggregate_tier_downloads_only_through_the_audited_button(stack, browser):
    from portal import audit
    from portal.services.context import Context

    _grant(stack, "beta-bio", "aggregate")  # eunomia aggregate: aggregate downloads
    page = new_page(browser)
    ctx = Context.open(stack.settings)
    try:
        before = len(audit.list_events(ctx.conn, action="query.download"))
        labels = _result_toolbars(page, stack, AGGREGATE_QUERY, "counts and sums are rounded",
                                  "aggregate")
        assert not [lb for lb in labels if "download" in lb.lower()], labels
        with page.expect_download() as download:
            page.get_by_role("button", name="Download CSV").click()
        text = download.value.path().read_text(encoding="utf-8")
        assert text.startswith("gender_concept_id,persons")
        wait_idle(page)
        events = audit.list_events(ctx.conn, action="query.download")
        assert len(events) == before + 1
        assert (events[0].actor, events[0].decision) == ("analyst@beta-bio.example", "done")
        assert events[0].details["format"] == "csv"
    finally:
        ctx.close()
        page.context.close()
