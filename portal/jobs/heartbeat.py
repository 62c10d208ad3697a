"""A lease kept alive while work runs: a thread that renews it on its own store connection."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from portal.store.db import connect

log = logging.getLogger(__name__)


class Heartbeat:
    """``with Heartbeat(settings, renew, every):`` calls ``renew(conn)`` every ``every``
    seconds on a connection of its own until the block ends. A renewal that fails is logged and
    retried at the next beat (the lease then simply runs out if the store stays away)."""

    def __init__(self, settings: Any, renew: Callable[[Any], None], every: float):
        self._settings, self._renew, self._every = settings, renew, max(0.2, every)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self) -> None:
        conn = None
        try:
            while not self._stop.wait(self._every):
                try:
                    conn = conn or connect(self._settings.store_target, self._settings)
                    self._renew(conn)
                except Exception:  # the next beat tries again on a new connection
                    log.warning("could not renew a lease", exc_info=True)
                    if conn is not None:
                        conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
