"""The HTTP API application (FastAPI), served by uvicorn beside the Streamlit portal."""

from __future__ import annotations

from fastapi import FastAPI

from portal.api import errors, limits, routes_query, routes_sandbox
from portal.api.models import Health
from portal.config import Settings

API_VERSION = "1"
DESCRIPTION = """Automate validation and governed SQL from your own CI.

Authenticate every request with a personal access token: `Authorization: Bearer acpat_...`
(make one on the portal's *API tokens* page or with `portal tokens create`). A token is scoped
to your team, to the datasets and actions it names, and expires. Every refusal is
`{"error": {"code", "message"}}` with 401 (no valid token), 403 (denied), 404, 413 (too large),
422 (invalid or refused input) or 429 (budget or quota used up)."""


def create_app(settings: Settings) -> FastAPI:
    """The API for ``settings``. The store must already be migrated (``portal api`` does it)."""
    app = FastAPI(title="Accelerator Portal API", version=API_VERSION, description=DESCRIPTION,
                  openapi_url="/api/v1/openapi.json", docs_url=None, redoc_url=None,
                  default_response_class=errors.SafeJSONResponse)
    app.state.settings = settings
    for exc_class, handler in errors.HANDLERS.items():
        app.add_exception_handler(exc_class, handler)
    app.add_exception_handler(limits.BodyTooLarge, limits.body_too_large)
    app.add_middleware(limits.BodyLimit, settings=settings)
    app.include_router(routes_sandbox.router)
    app.include_router(routes_query.router)

    @app.get("/api/health", response_model=Health, tags=["health"], summary="Liveness",
             operation_id="health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
