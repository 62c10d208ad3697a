"""`portal api`: serve the HTTP API (uvicorn) until interrupted."""

from __future__ import annotations

import argparse

from portal.config import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("api", help="serve the HTTP API for automation (see docs/api.md)")
    p.add_argument("--host", help="address to bind (default: PORTAL_API_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: PORTAL_API_PORT, 8502)")
    p.set_defaults(func=cmd_api)


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    from portal.api.server import serve

    serve(settings, args.host, args.port)
    return 0
