"""Serving the API with uvicorn (``portal api``; ``make run`` starts it beside Streamlit)."""

from __future__ import annotations

import logging

from portal.config import Settings
from portal.store.db import open_store


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Migrate the store once, then serve the API until interrupted. Raises OSError when the
    address is in use."""
    import uvicorn

    from portal.api.app import create_app

    settings.ensure_home()
    open_store(settings).close()
    logging.basicConfig(level=logging.INFO)
    uvicorn.run(create_app(settings), host=host or settings.api_host,
                port=settings.api_port if port is None else port, log_level="info",
                server_header=False, proxy_headers=False, access_log=True)
