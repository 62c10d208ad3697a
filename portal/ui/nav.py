"""Which pages each kind of visitor gets in the navigation. Hiding a page is not access control:
every page runs its own guard (portal.ui.session.require_principal)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from portal.ui.session import Kind

ROOT = Path(__file__).resolve().parent.parent.parent

# (file under pages/, title, material icon, url path)
STARTUP_PAGES = [
    ("home.py", "Home", "home", "home"),
    ("catalog.py", "Catalog", "menu_book", "catalog"),
    ("request_access.py", "Request access", "key", "request-access"),
    ("workspace.py", "SQL workspace", "terminal", "workspace"),
    ("model_validation.py", "Validation sandbox", "science", "sandbox"),
    ("leaderboard.py", "Leaderboards", "leaderboard", "leaderboard"),
    ("api_tokens.py", "API tokens", "key_vertical", "api-tokens"),
]
STAFF_PAGES = [
    ("home.py", "Home", "home", "home"),
    ("review_queue.py", "Review queue", "fact_check", "review"),
    ("teams.py", "Teams and people", "groups", "teams"),
    ("grants.py", "Grants", "vpn_key", "grants"),
    ("audit_log.py", "Audit", "policy", "audit"),
    ("datasets_admin.py", "Datasets", "dataset", "datasets"),
    ("validation_runs.py", "Validation runs", "science", "validation-runs"),
    ("leaderboard.py", "Leaderboards", "leaderboard", "leaderboard"),
    ("catalog.py", "Catalog", "menu_book", "catalog"),
]
WELCOME = [("welcome.py", "Welcome", "login", "welcome")]
# Reached by links (with ?id=), not listed in the menu; the page runs its own guard.
HIDDEN_PAGES = [("validation_run.py", "Validation run", "science", "run")]


def page_specs(kind: Kind) -> list[tuple[str, str, str, str]]:
    """The page specs for a kind of visitor."""
    return {"member": STARTUP_PAGES, "staff": STAFF_PAGES}.get(kind, WELCOME)


def pages_for(kind: Kind) -> list[st.Page]:
    pages = [
        st.Page(str(ROOT / "pages" / file), title=title, icon=f":material/{icon}:",
                url_path=url, default=(i == 0))
        for i, (file, title, icon, url) in enumerate(page_specs(kind))
    ]
    if kind in ("member", "staff"):
        pages += [st.Page(str(ROOT / "pages" / file), title=title, icon=f":material/{icon}:",
                          url_path=url, visibility="hidden")
                  for file, title, icon, url in HIDDEN_PAGES]
    return pages
