"""The SQL workspace in real Chromium: the code editor highlights in place with line numbers,
completes the extract's table names, runs on Ctrl+Enter; editing clears the stale result;
history loads back into the editor with one click; a click in the schema browser inserts a
table name. Screenshots in
test-artifacts/e2e/workspace-editor/."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import (
    EDITOR_TEXT,
    Shots,
    code_editor,
    go,
    new_page,
    sign_in,
    wait_idle,
)

pytestmark = pytest.mark.e2e

ANALYST = "analyst@beta-bio.example"
QUERY_ID = re.compile(r"query [0-9a-f]{12}")


def _editor_text(page) -> str:
    lines = code_editor(page).locator("#REACT_ACE_EDITOR .ace_line").all_inner_texts()
    return " ".join(" ".join(lines).replace("\u00a0", " ").split())  # lines wrap


def test_type_complete_and_run_with_ctrl_enter(stack, browser):
    from portal.identity import principal_for_email
    from portal.services import access
    from portal.services.context import Context

    ctx = Context.open(stack.settings)
    try:
        staff = principal_for_email(ctx.conn, "staff@platform.example")
        access.grant_access(ctx, staff, "beta-bio", "eunomia", "row-level", 30)
    finally:
        ctx.close()
    shots = Shots("workspace-editor")
    page = new_page(browser)
    sign_in(page, stack, ANALYST)
    go(page, stack, "workspace", "SQL workspace")
    page.get_by_text("tables in your governed extract").wait_for()
    frame = code_editor(page)
    shots(page, "workspace")

    frame.locator(EDITOR_TEXT).click()
    page.keyboard.type("SELECT gender_concept_id, count(*) AS n FROM pers", delay=40)
    popup = frame.locator(".ace_autocomplete")
    popup.wait_for(state="visible")
    assert "persontable" in popup.inner_text().replace("\n", "").replace(" ", "")
    shots(page, "autocomplete")
    page.keyboard.press("Tab")  # take the completion
    page.keyboard.type(" GROUP BY 1 ORDER BY 1", delay=20)
    page.keyboard.press("Escape")
    assert "FROM person GROUP BY 1" in _editor_text(page)
    # Highlighting in place and line numbers, inside the editor itself.
    assert frame.locator("#REACT_ACE_EDITOR .ace_keyword", has_text="SELECT").count() >= 1
    assert frame.locator("#REACT_ACE_EDITOR .ace_gutter-cell", has_text="1").count() >= 1

    page.keyboard.press("Control+Enter")
    page.get_by_text(QUERY_ID).first.wait_for()
    wait_idle(page)
    assert page.get_by_text("2 rows", exact=False).count() >= 1
    shots(page, "ctrl-enter-result")

    # Editing the SQL clears the now stale result.
    frame.locator(EDITOR_TEXT).click()
    page.keyboard.press("Control+End")
    page.keyboard.type(" LIMIT 1", delay=20)
    page.wait_for_function("() => !/query [0-9a-f]{12}/.test(document.body.innerText)")
    wait_idle(page)
    shots(page, "edited-result-cleared")

    # One click on a history row loads it back into the editor.
    page.get_by_text("History", exact=True).click()
    page.locator("[data-testid='stExpander']", has_text="History").get_by_role(
        "button", name="Load").first.click()
    wait_idle(page)
    code_editor(page)  # remounted with the loaded text
    assert _editor_text(page).endswith("ORDER BY 1") and "LIMIT" not in _editor_text(page)
    shots(page, "history-loaded")

    # The schema browser: search, then one click on a table's row inserts its name.
    page.get_by_label("Search tables and columns").fill("year_of_birth")
    page.keyboard.press("Enter")
    wait_idle(page)
    grid = page.locator("[data-testid='stDataFrame']").first
    for _ in range(100):  # the tables grid shrinks to the one matching table
        box = grid.bounding_box()
        if box and box["height"] < 100:
            break
        page.wait_for_timeout(100)
    assert box and box["height"] < 100
    # the first row's selection box, left of the cells, below the header
    page.mouse.click(box["x"] + 16, box["y"] + 35 + 17)
    wait_idle(page)
    shots(page, "schema-row-clicked")
    for _ in range(100):  # the editor remounts with the name inserted
        if _editor_text(page).endswith("ORDER BY 1 person"):
            break
        page.wait_for_timeout(100)
    assert _editor_text(page).endswith("ORDER BY 1 person")
    shots(page, "schema-click-inserted")
    page.context.close()
