"""What a personal access token looks like and what it may be scoped to (no heavy imports: the
CLI builds its parser from these). The use cases live in :mod:`portal.services.tokens`."""

from __future__ import annotations

import re

PREFIX = "acpat_"
TOKEN_PATTERN = re.compile(r"acpat_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
ACTIONS = {
    "sandbox:submit": "submit models for validation and dry runs",
    "sandbox:read": "read validation tasks, run status and released reports",
    "query:run": "run governed SQL",
    "budget:read": "read query budgets and validation quotas",
}
DEFAULT_DAYS = 7

__all__ = ["ACTIONS", "DEFAULT_DAYS", "PREFIX", "TOKEN_PATTERN"]
