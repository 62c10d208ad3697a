"""The development server's refusals and the secrets it writes."""

from __future__ import annotations

import stat
import tomllib

import pytest

from portal import devserver
from portal.config import Settings
from portal.demo import PERSONAS
from portal.errors import ConfigError


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_addresses_are_accepted(host):
    devserver.check_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "portal.example.org", ""])
def test_non_loopback_addresses_are_refused(host):
    with pytest.raises(ConfigError):
        devserver.check_loopback(host)


def test_production_configuration_refuses_the_development_server(tmp_path, capsys):
    env = {"PORTAL_HOME": str(tmp_path), "PORTAL_ENV": "production"}
    assert devserver.main([], env) == 2
    assert "refused" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        devserver.check_development(Settings(home=tmp_path, dev_sign_in=False))


def test_main_refuses_a_public_bind_before_starting_anything(tmp_path, capsys):
    env = {"PORTAL_HOME": str(tmp_path), "PORTAL_ENV": "development"}
    assert devserver.main(["--host", "0.0.0.0"], env) == 2
    assert not (tmp_path / "secrets").exists()


def test_secrets_file_has_the_auth_section_and_mode_0600(tmp_path):
    path = tmp_path / ".streamlit" / "secrets.toml"
    devserver.write_secrets(path, devserver.secrets_toml("http://127.0.0.1:9400", "ab" * 32,
                                                         8501))
    auth = tomllib.loads(path.read_text())["auth"]
    assert auth["redirect_uri"] == "http://localhost:8501/oauth2callback"
    assert auth["server_metadata_url"] == \
        "http://127.0.0.1:9400/.well-known/openid-configuration"
    assert auth["cookie_secret"] == "ab" * 32 and auth["client_id"] and auth["client_secret"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_cookie_secret_is_per_installation(tmp_path):
    one = Settings(home=tmp_path / "a").secret("streamlit_cookie_secret")
    two = Settings(home=tmp_path / "b").secret("streamlit_cookie_secret")
    assert len(one) == 32 and one != two
    assert Settings(home=tmp_path / "a").secret("streamlit_cookie_secret") == one


def test_persona_claims_carry_verified_email_and_groups():
    staff = [p.claims("portal-staff") for p in PERSONAS if p.role == "staff"]
    assert staff and all(c["groups"] == ["portal-staff"] and c["email_verified"] for c in staff)
    members = [p.claims("portal-staff") for p in PERSONAS if p.role == "member"]
    assert all("portal-staff" not in c["groups"] for c in members)


def test_seed_and_bind_binds_every_persona_to_the_provider(settings, ctx):
    from portal.identity import sign_in

    devserver.seed_and_bind(settings, "http://127.0.0.1:9400")
    for persona in PERSONAS:
        claims = {**persona.claims(), "iss": "http://127.0.0.1:9400", "iat": 2_000_000_000}
        principal = sign_in(ctx, claims, settings, now=2_000_000_000)
        assert principal.email == persona.email
        assert principal.role == persona.role


def test_the_api_starts_beside_the_portal_on_loopback_only(settings):
    import socket
    import urllib.request

    with pytest.raises(ConfigError):
        devserver.start_api(settings, "0.0.0.0", 1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = devserver.start_api(settings, "127.0.0.1", port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/openapi.json") as answer:
            assert b'"personal_access_token"' in answer.read()
    finally:
        devserver.stop(proc)
    assert proc.poll() is not None


def test_instructions_say_where_the_api_is_and_how_to_get_a_token():
    text = devserver.instructions(8501, "http://127.0.0.1:8502")
    assert "http://127.0.0.1:8502/api/v1" in text and "portal tokens create" in text
    assert "API tokens" in text
