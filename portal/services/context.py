"""What every use case needs: settings and a store connection."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from portal.config import Settings
from portal.store.db import open_store


@dataclass
class Context:
    settings: Settings
    conn: sqlite3.Connection

    @classmethod
    def open(cls, settings: Settings) -> Context:
        return cls(settings=settings, conn=open_store(settings))

    def close(self) -> None:
        self.conn.close()
