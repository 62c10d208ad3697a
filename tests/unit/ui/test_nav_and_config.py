"""Navigation per role, and the hardened Streamlit configuration."""

from __future__ import annotations

import tomllib
from pathlib import Path

from portal.ui.nav import HIDDEN_PAGES, page_specs

ROOT = Path(__file__).resolve().parents[3]


def test_every_startup_and_staff_page_file_is_registered_for_its_role():
    hidden = {s[0] for s in HIDDEN_PAGES}
    member = {s[0] for s in page_specs("member")} | hidden
    staff = {s[0] for s in page_specs("staff")} | hidden
    own = {p.name for p in (ROOT / "pages").glob("*.py")} - {"welcome.py"}
    assert own <= member | staff
    assert member | staff <= own | {"welcome.py"}, "navigation names a page file that is missing"
    assert {"review_queue.py", "grants.py", "audit_log.py", "teams.py"} <= staff
    assert not ({"review_queue.py", "grants.py", "audit_log.py", "teams.py",
                 "datasets_admin.py", "validation_runs.py"} & member)
    assert {"workspace.py", "request_access.py"} <= member and "workspace.py" not in staff


def test_visitors_without_a_role_get_only_the_welcome_page():
    for kind in ("signed_out", "refused", "unknown", "no_role"):
        assert [s[0] for s in page_specs(kind)] == ["welcome.py"]


def test_streamlit_config_is_hardened():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "none"
    assert config["client"]["toolbarMode"] == "minimal"
    server = config["server"]
    assert server["enableXsrfProtection"] is True and server["enableStaticServing"] is False
    assert server["maxUploadSize"] <= 100 and server["headless"] is True
    assert server["allowedHosts"]


def test_no_page_or_ui_module_allows_unsafe_html():
    for path in [*(ROOT / "pages").glob("*.py"), *(ROOT / "portal" / "ui").glob("*.py"),
                 ROOT / "app.py"]:
        assert "unsafe_allow_html" not in path.read_text(), path


def test_no_page_caches_per_user_data():
    for path in [*(ROOT / "pages").glob("*.py"), *(ROOT / "portal" / "ui").glob("*.py")]:
        text = path.read_text()
        assert "st.cache_data" not in text and "st.cache_resource" not in text, path
