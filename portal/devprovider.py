"""`python -m portal.devprovider`: the development sign-in provider as ``make run`` and the
browser tests start it — the ``oidc-provider-mock`` application itself, on a loopback address,
with the demo personas given as ``--user-claims`` JSON.

One change to the mock: its discovery document does not advertise ``end_session_endpoint``.
Streamlit's ``st.logout`` sends the browser to a provider's end-session endpoint when there is
one, and the mock answers with a page that waits for an "End session" click before returning
to the portal. The mock keeps no sign-in session of its own (each sign-in picks a persona
afresh), so there is nothing to end there: without the endpoint, Streamlit clears its identity
cookie and returns straight to the portal. Real providers keep their end-session endpoint and
their single sign-out (docs/sign-in.md).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from typing import Any

DISCOVERY_PATH = "/.well-known/openid-configuration"


def make_app(user_claims: Sequence[dict[str, Any]]):
    """The mock's Flask application with the demo users, its discovery document without
    ``end_session_endpoint``."""
    import flask
    from oidc_provider_mock import User, app

    users = [User(sub=c["sub"], claims={k: v for k, v in c.items() if k != "sub"})
             for c in user_claims]
    provider = app(user_claims=users)

    @provider.after_request
    def _without_end_session(response: flask.Response) -> flask.Response:
        if flask.request.path == DISCOVERY_PATH and response.is_json:
            document = response.get_json()
            document.pop("end_session_endpoint", None)
            response.set_data(json.dumps(document))
        return response

    return provider


def main(argv: Sequence[str] | None = None) -> int:
    from portal.devserver import check_loopback

    parser = argparse.ArgumentParser(prog="python -m portal.devprovider", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9400)
    parser.add_argument("--user-claims", action="append", default=[], type=json.loads,
                        help="a predefined user's claims as JSON, with a 'sub' (repeatable)")
    args = parser.parse_args(argv)
    check_loopback(args.host)
    import uvicorn

    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # plain http on loopback, as the mock does
    uvicorn.run(make_app(args.user_claims), interface="wsgi", host=args.host, port=args.port,
                log_config=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
