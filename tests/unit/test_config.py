"""Settings are parsed once and fail fast naming the variable."""

from __future__ import annotations

import pytest

from portal.config import Settings
from portal.errors import ConfigError


def test_defaults_put_every_state_folder_under_the_home(tmp_path):
    s = Settings.from_env({"PORTAL_HOME": str(tmp_path)})
    for path in (s.store_path, s.releases_dir, s.extracts_dir, s.models_dir, s.reports_dir):
        assert path.is_relative_to(tmp_path)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"PORTAL_QUERY_WORKERS": "many"}, "PORTAL_QUERY_WORKERS"),
        ({"PORTAL_QUERY_WORKERS": "0"}, "PORTAL_QUERY_WORKERS"),
        ({"PORTAL_ENV": "staging"}, "PORTAL_ENV"),
        ({"PORTAL_SANDBOX_ALLOW_UNISOLATED": "perhaps"}, "PORTAL_SANDBOX_ALLOW_UNISOLATED"),
        ({"PORTAL_QUERY_ALLOW_UNISOLATED": "perhaps"}, "PORTAL_QUERY_ALLOW_UNISOLATED"),
    ],
)
def test_bad_values_fail_fast_naming_the_variable(tmp_path, env, name):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({"PORTAL_HOME": str(tmp_path), **env})


def test_production_refuses_unisolated_sandbox_and_development_sign_in(tmp_path):
    base = {"PORTAL_HOME": str(tmp_path), "PORTAL_ENV": "production"}
    with pytest.raises(ConfigError, match="PORTAL_SANDBOX_ALLOW_UNISOLATED"):
        Settings.from_env({**base, "PORTAL_SANDBOX_ALLOW_UNISOLATED": "true",
                           "PORTAL_DEV_SIGN_IN": "false"})
    with pytest.raises(ConfigError, match="PORTAL_QUERY_ALLOW_UNISOLATED"):
        Settings.from_env({**base, "PORTAL_QUERY_ALLOW_UNISOLATED": "true",
                           "PORTAL_DEV_SIGN_IN": "false"})
    with pytest.raises(ConfigError, match="PORTAL_DEV_SIGN_IN"):
        Settings.from_env({**base, "PORTAL_DEV_SIGN_IN": "true"})
    assert Settings.from_env(base).dev_sign_in is False


def test_secrets_are_created_once_private_and_stable(tmp_path):
    s = Settings.from_env({"PORTAL_HOME": str(tmp_path)})
    first = s.secret("salt")
    assert s.secret("salt") == first and len(first) == 32
    assert (s.secrets_dir / "salt").stat().st_mode & 0o077 == 0
