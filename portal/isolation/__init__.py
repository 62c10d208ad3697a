"""Jails for untrusted work (security properties 2 and 6): one launcher for the model scorer
and the SQL workers, a probe that runs it, and a sweep of job folders left behind.

See :mod:`portal.isolation.launcher` for what a jail is made of, and
docs/security-properties.md for what it guarantees and what it does not.
"""

from __future__ import annotations

from portal.isolation.binds import Bind
from portal.isolation.jobs import sweep_job_folders
from portal.isolation.launcher import (
    WORKDIR,
    IsolationUnavailable,
    Jail,
    Launch,
    Rlimits,
    jailed_pid,
    launch,
    python,
    spawn,
    stop,
    verify,
)
from portal.isolation.probe import available, check, prefetch, unavailable_reason

__all__ = ["WORKDIR", "Bind", "IsolationUnavailable", "Jail", "Launch", "Rlimits",
           "available", "check", "jailed_pid", "launch", "prefetch", "python", "spawn", "stop",
           "sweep_job_folders", "unavailable_reason", "verify"]
