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
        ({"PORTAL_API_PORT": "0"}, "PORTAL_API_PORT"),
        ({"PORTAL_API_TOKEN_MAX_DAYS": "400"}, "PORTAL_API_TOKEN_MAX_DAYS"),
        ({"PORTAL_API_MAX_UPLOAD_MB": "201"}, "PORTAL_API_MAX_UPLOAD_MB"),
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
    with pytest.raises(ConfigError, match="PORTAL_OIDC_ISSUERS"):
        Settings.from_env(base)
    issuer = {"PORTAL_OIDC_ISSUERS": "https://login.example/tenant/v2.0"}
    assert Settings.from_env({**base, **issuer}).dev_sign_in is False


def test_sign_in_requirements_are_settings(tmp_path):
    base = {"PORTAL_HOME": str(tmp_path)}
    default = Settings.from_env(base)
    assert default.oidc_allowed_issuers == () and default.oidc_required_claims == (
        "iss", "sub", "iat")
    custom = Settings.from_env({**base, "PORTAL_OIDC_ISSUERS": " https://a.example , "
                                                               "https://b.example",
                                "PORTAL_OIDC_REQUIRED_CLAIMS": "email, sub, groups"})
    assert custom.oidc_allowed_issuers == ("https://a.example", "https://b.example")
    assert custom.oidc_required_claims == ("iss", "sub", "iat", "email", "groups")
    with pytest.raises(ConfigError, match="PORTAL_OIDC_REQUIRED_CLAIMS"):
        Settings.from_env({**base, "PORTAL_OIDC_REQUIRED_CLAIMS": "email,,sub"})


def test_secrets_are_created_once_private_and_stable(tmp_path):
    s = Settings.from_env({"PORTAL_HOME": str(tmp_path)})
    first = s.secret("salt")
    assert s.secret("salt") == first and len(first) == 32
    assert (s.secrets_dir / "salt").stat().st_mode & 0o077 == 0


def test_api_address_defaults_to_loopback_and_can_be_published_behind_a_proxy(tmp_path):
    s = Settings.from_env({"PORTAL_HOME": str(tmp_path)})
    assert (s.api_url, s.api_token_max_days) == ("http://127.0.0.1:8502", 30)
    s = Settings.from_env({"PORTAL_HOME": str(tmp_path), "PORTAL_API_PORT": "9000",
                           "PORTAL_API_URL": "https://api.portal.example/"})
    assert s.api_port == 9000 and s.api_url == "https://api.portal.example"
