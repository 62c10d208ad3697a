"""The access journey end to end in real Chromium: request, approval, query, revocation, refusal;
and a self-approval attempt refused by separation of duties."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    ARTIFACTS,
    Shots,
    go,
    new_page,
    replace_sql,
    sign_in,
    sign_out,
    wait_idle,
)

pytestmark = pytest.mark.e2e

PURPOSE = ("We will estimate the rate of gastrointestinal bleeding after NSAID exposure to "
           "calibrate a triage model for our emergency-department product.")
LIGHT_QUERY = "SELECT gender_concept_id, count(*) AS persons FROM person GROUP BY 1 ORDER BY 1"


HOSTILE = "<img src=x onerror=alert(1)>"


def request_access(page, stack, dataset: str, tier: str, shots: Shots,
                   purpose: str = PURPOSE) -> None:
    go(page, stack, "request-access", "Request access")
    _choose(page, "Dataset", dataset)
    _choose(page, "Tier", tier)
    page.get_by_label(re.compile(r"^Purpose")).fill(purpose)
    page.get_by_text("I agree to the terms of use").click()
    shots(page, "request-form")
    page.get_by_role("button", name="Submit request").click()
    page.get_by_text(re.compile(r"Request \d+ submitted")).wait_for()
    wait_idle(page)
    shots(page, "request-submitted")


def _choose(page, label: str, option: str) -> None:
    box = page.get_by_label(label, exact=True)
    if option in (box.input_value() or ""):
        return
    box.click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def _outcomes(page) -> list[str]:
    """The query ids and refusals on screen (each run shows a new query id; a refusal is an
    error box)."""
    ids = page.get_by_text(re.compile(r"query [0-9a-f]{12}")).all_inner_texts()
    return ids + page.locator("[data-testid='stAlertContentError']").all_inner_texts()


def run_query(page, sql: str) -> float:
    """Put the SQL in the code editor, click Run, wait for a new outcome; returns seconds from
    click to it."""
    replace_sql(page, sql)
    page.wait_for_timeout(600)  # the editor sends its text after a short pause
    wait_idle(page)
    before = _outcomes(page)
    started = time.perf_counter()
    page.get_by_role("button", name="Run", exact=True).click()
    deadline = started + 60
    while time.perf_counter() < deadline:
        now = _outcomes(page)
        if now and now != before:
            break
        page.wait_for_timeout(10)
    else:
        raise AssertionError("no query outcome within 60 s")
    elapsed = time.perf_counter() - started
    wait_idle(page)
    return elapsed


def test_request_approve_query_revoke_refuse(stack, browser):
    shots = Shots("access-journey")
    founder = new_page(browser)
    sign_in(founder, stack, "founder@gamma-ai.example", shots)
    request_access(founder, stack, "eunomia", "row-level", shots)
    sign_out(founder)

    staff = new_page(browser)
    sign_in(staff, stack, "staff@platform.example", shots)
    go(staff, stack, "review", "Review queue")
    staff.get_by_text("founder@gamma-ai.example").first.wait_for()
    shots(staff, "review-queue")
    _request_box(staff, "founder@gamma-ai.example").get_by_role("button", name="Approve").click()
    staff.get_by_text(re.compile(r"Approve request \d+\?")).wait_for()
    wait_idle(staff)
    shots(staff, "approve-confirm")
    staff.get_by_role("button", name="Confirm approval").click()
    staff.get_by_text(re.compile(r"Request \d+ approved")).wait_for()
    wait_idle(staff)
    shots(staff, "approved")

    sign_in(founder, stack, "founder@gamma-ai.example")
    go(founder, stack, "workspace", "SQL workspace")
    founder.get_by_text("tables in your governed extract").wait_for()
    seconds = run_query(founder, LIGHT_QUERY)
    founder.get_by_text(re.compile(r"^2 rows · tier")).wait_for()
    assert founder.locator("[data-testid='stDataFrame']").count() >= 2
    shots(founder, "query-results")

    go(staff, stack, "grants", "Grants")
    staff.get_by_label(re.compile(r"^Reason")).fill("Purpose changed: new review needed.")
    shots(staff, "revoke-form")
    staff.get_by_role("button", name="Revoke").click()
    staff.get_by_text(re.compile(r"Grant \d+ revoked")).wait_for()
    wait_idle(staff)
    shots(staff, "revoked")

    run_query(founder, LIGHT_QUERY)  # the founder's page is still open: the next query
    founder.get_by_text("grant_revoked").first.wait_for()
    assert founder.get_by_text("Purpose changed: new review needed.").first.is_visible()
    shots(founder, "query-refused")
    _record_timing("run_to_results_seconds", seconds)
    founder.context.close()
    staff.context.close()


def test_self_approval_attempt_is_refused(stack, browser):
    shots = Shots("self-approval")
    analyst = new_page(browser)
    sign_in(analyst, stack, "analyst@acme-health.example", shots)
    request_access(analyst, stack, "eunomia", "aggregate", shots, f"{PURPOSE} {HOSTILE}")
    analyst.context.close()

    reviewer = new_page(browser)  # staff, and an adviser of Acme Health
    sign_in(reviewer, stack, "reviewer@platform.example", shots)
    go(reviewer, stack, "review", "Review queue")
    reviewer.get_by_text("analyst@acme-health.example").first.wait_for()
    assert reviewer.get_by_text("You may not decide this request").first.is_visible()
    # The hostile purpose is shown as text, never as markup.
    assert reviewer.get_by_text(HOSTILE, exact=False).first.is_visible()
    assert reviewer.locator("img[src='x']").count() == 0
    _request_box(reviewer, "analyst@acme-health.example").get_by_role(
        "button", name="Approve").click()
    reviewer.get_by_role("button", name="Confirm approval").click()
    reviewer.get_by_text("own_team").last.wait_for()
    wait_idle(reviewer)
    shots(reviewer, "refused")
    assert reviewer.get_by_text(re.compile(r"Request \d+ approved")).count() == 0
    reviewer.context.close()


def _request_box(page, requester: str):
    """The innermost block holding one request's text and its Approve button."""
    return page.locator("[data-testid='stVerticalBlock']").filter(has_text=requester).filter(
        has=page.get_by_role("button", name="Approve")).last


def _record_timing(name: str, seconds: float) -> None:
    path = ARTIFACTS / "timings.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = round(seconds, 3)
    path.write_text(json.dumps(data, indent=2))


def test_aggregate_download_is_offered_and_audited(stack, browser):
    from portal import audit
    from portal.identity import principal_for_email
    from portal.services import access
    from portal.services.context import Context
    from tests.factories_access import DIRECT_GRANT

    ctx = Context.open(stack.settings)
    try:
        staff = principal_for_email(ctx.conn, "staff@platform.example")
        access.grant_access(ctx, staff, "acme-health", "eunomia", "aggregate", 30,
                            **DIRECT_GRANT)
        shots = Shots("aggregate-download")
        page = new_page(browser)
        sign_in(page, stack, "analyst@acme-health.example")
        go(page, stack, "workspace", "SQL workspace")
        run_query(page, "SELECT gender_concept_id, count(*) AS persons FROM person GROUP BY 1")
        page.get_by_text("Differentially private: each estimate").wait_for()
        page.get_by_text("Privacy budget: ρ 0.5 of 5 spent").wait_for()
        shots(page, "aggregate-result")
        with page.expect_download() as download:
            page.get_by_role("button", name="Download CSV").click()
        assert download.value.suggested_filename.startswith("eunomia-")
        header = Path(download.value.path()).read_text(encoding="utf-8").splitlines()[0]
        assert header.lstrip("\ufeff") == "gender_concept_id,persons,persons ± (95%)"
        wait_idle(page)
        events = audit.list_events(ctx.conn, action="query.download")
        assert events and events[0].actor == "analyst@acme-health.example"
        page.context.close()
    finally:
        ctx.close()
