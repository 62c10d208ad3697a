"""What people see for an error: code and sentence for user errors, never internals."""

from __future__ import annotations

from portal.errors import ConfigError, Denied, InternalError, NotFound
from portal.ui.errors import error_text


def test_user_error_shows_its_code_and_message():
    assert error_text(Denied("grant_expired", "Your access expired.")) == \
        "grant_expired — Your access expired."
    assert error_text(NotFound("unknown_request", "No such request.")).startswith(
        "unknown_request — ")


def test_unexpected_exception_shows_a_generic_message_with_a_reference_only():
    shown = error_text(RuntimeError("duckdb failed opening /srv/portal/var/releases/x.duckdb"))
    assert shown.startswith("internal_error — ") and "Reference: " in shown
    assert "/srv" not in shown and "duckdb" not in shown and "RuntimeError" not in shown


def test_internal_error_message_is_replaced_by_the_generic_one():
    shown = error_text(InternalError("worker 3 crashed at /tmp/x", code="internal_error"))
    assert "/tmp/x" not in shown and "worker 3" not in shown


def test_configuration_problems_are_user_facing_codes():
    assert error_text(ConfigError("PORTAL_HOME must be a folder")).startswith(
        "invalid_configuration — ")
