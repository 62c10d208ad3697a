"""AppTest helpers: fake the signed-in user (``at.user``), run a page file or the router."""

from __future__ import annotations

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
ISSUER = "http://127.0.0.1:9400"
TIMEOUT = 60


def claims(email: str, sub: str | None = None, **extra) -> dict:
    """ID-token claims as Streamlit's st.user holds them after a real sign-in."""
    base = {"is_logged_in": True, "iss": ISSUER, "sub": sub or f"sub-{email}", "email": email,
            "email_verified": True, "iat": int(time.time()), "groups": []}
    base.update(extra)
    return base


def app(page: str | None = None, user: dict | None = None) -> AppTest:
    """An AppTest for ``pages/<page>`` (opened directly) or for the router ``app.py``."""
    path = ROOT / ("app.py" if page is None else f"pages/{page}")
    at = AppTest.from_file(str(path), default_timeout=TIMEOUT)
    if user is not None:
        at.user = user
    return at


def texts(at: AppTest) -> str:
    """Every piece of text the run rendered, joined (for 'is it shown' / 'is it not shown')."""
    parts: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "text", "code",
                 "error", "warning", "info", "success", "exception"):
        for element in getattr(at, kind):
            parts.append(str(getattr(element, "value", "")))
    for frame in at.dataframe:
        parts.append(frame.value.to_string())
    for table in at.table:
        parts.append(str(table.value))
    for kind in ("button", "selectbox", "text_input", "text_area", "checkbox", "radio",
                 "number_input", "multiselect", "expander", "tabs"):
        for element in getattr(at, kind, []):
            parts.append(str(getattr(element, "label", "")))
    return "\n".join(parts).replace("\\", "")


def error_codes(at: AppTest) -> list[str]:
    return [str(e.value).replace("\\", "").split(" — ")[0] for e in at.error]
