"""Control-plane store: SQLite in WAL mode, numbered migrations, small query modules per area.

The SQL stays portable (no SQLite-only types in queries beyond what PostgreSQL accepts) so that a
shared PostgreSQL can replace the file when several servers and workers share one control plane.
"""

from portal.store.db import connect, open_store, transaction

__all__ = ["connect", "open_store", "transaction"]
