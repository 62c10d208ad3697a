"""The development sign-in provider: the mock itself, minus its end-session page."""

from __future__ import annotations

import json
import urllib.request

import pytest

from portal import devprovider, devserver
from portal.demo import PERSONAS
from tests.e2e.conftest import free_port


def test_discovery_document_leaves_out_only_the_end_session_endpoint():
    client = devprovider.make_app([PERSONAS[0].claims("portal-staff")]).test_client()
    document = client.get(devprovider.DISCOVERY_PATH).get_json()
    assert "end_session_endpoint" not in document
    for needed in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
        assert document[needed]
    assert client.get("/jwks").status_code == 200


def test_the_personas_are_offered_on_the_sign_in_page():
    client = devprovider.make_app([p.claims("portal-staff") for p in PERSONAS]).test_client()
    page = client.get("/oauth2/authorize?client_id=c&redirect_uri=http://localhost/cb"
                      "&response_type=code&scope=openid").get_data(as_text=True)
    assert all(p.sub in page for p in PERSONAS)


def test_start_provider_runs_it_on_loopback(tmp_path):
    proc, issuer = devserver.start_provider("127.0.0.1", free_port(), "portal-staff",
                                            log_path=tmp_path / "provider.log")
    try:
        with urllib.request.urlopen(f"{issuer}{devprovider.DISCOVERY_PATH}") as answer:
            document = json.load(answer)
        assert document["issuer"] == issuer and "end_session_endpoint" not in document
    finally:
        devserver.stop(proc)


def test_a_public_address_is_refused():
    with pytest.raises(Exception, match="loopback"):
        devprovider.main(["--host", "0.0.0.0"])
