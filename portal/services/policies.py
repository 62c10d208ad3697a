"""Access policies as the services see them: loaded once, re-loaded when a file changes, always
checked against the current releases, and never half-applied."""

from __future__ import annotations

import threading
from pathlib import Path

from portal.catalog.releases import Release, current_release
from portal.errors import ConfigError, NotFound
from portal.policy.engine import ResolvedTier, resolve_tier
from portal.policy.loader import PolicySet, check_against_releases, load_policies
from portal.policy.model import DatasetPolicy
from portal.services.context import Context

_lock = threading.Lock()
_cache: dict[Path, tuple[tuple, PolicySet]] = {}


def _fingerprint(directory: Path) -> tuple:
    try:
        return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                            for p in directory.iterdir() if p.suffix in (".yaml", ".yml")))
    except OSError:
        return ()


def policies(ctx: Context) -> PolicySet:
    """The loaded policy files (cached until a file changes). Raises ConfigError."""
    directory = ctx.settings.policies_dir
    if directory is None:
        raise ConfigError("PORTAL_POLICIES_DIR is not set")
    stamp = _fingerprint(directory)
    with _lock:
        cached = _cache.get(directory)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    loaded = load_policies(directory)
    with _lock:
        _cache[directory] = (stamp, loaded)
    return loaded


def current_releases(ctx: Context) -> dict[str, Release]:
    """Current release of every dataset that has one."""
    rows = ctx.conn.execute("SELECT dataset_id FROM releases WHERE status = 'current'").fetchall()
    return {r["dataset_id"]: current_release(ctx.conn, ctx.settings, r["dataset_id"])
            for r in rows}


def check_policies(ctx: Context) -> PolicySet:
    """Load every policy and check it against the current releases; raises ConfigError listing
    every problem (``portal policies check`` and start-up call this)."""
    loaded = policies(ctx)
    check_against_releases(loaded, current_releases(ctx))
    return loaded


def dataset_policy(ctx: Context, dataset_id: str) -> DatasetPolicy:
    """The policy of one dataset. Raises NotFound(code='no_policy')."""
    policy = policies(ctx).get(dataset_id)
    if policy is None:
        raise NotFound("no_policy", f"Dataset {dataset_id!r} has no access policy.")
    return policy


def resolved_tier(ctx: Context, dataset_id: str, tier: str) -> tuple[Release, ResolvedTier]:
    """The current release and the tier resolved against it; the dataset's policy is checked
    against that release first (a stale policy is refused, never half-applied).

    Raises NotFound (no policy, no release, unknown tier) or ConfigError."""
    loaded = policies(ctx)
    policy = loaded.get(dataset_id)
    if policy is None:
        raise NotFound("no_policy", f"Dataset {dataset_id!r} has no access policy.")
    release = current_release(ctx.conn, ctx.settings, dataset_id)
    _checked(loaded, dataset_id, release)
    # A resolution depends only on the loaded policy (a new PolicySet when a file changes)
    # and the immutable release: it is kept with the policies, and the grant, the current
    # release and the policy files are still re-read on every call.
    key = (dataset_id, tier, release.version, str(release.directory), release.built_at)
    resolved = loaded.resolved.get(key)
    if resolved is None:
        resolved = loaded.resolved[key] = resolve_tier(policy, tier, release)
    return release, resolved


def _checked(loaded: PolicySet, dataset_id: str, release: Release) -> None:
    key = (dataset_id, str(release.directory))
    if key in loaded.checked:
        return
    subset = PolicySet()
    subset[dataset_id] = loaded[dataset_id]
    subset.sources[dataset_id] = loaded.sources[dataset_id]
    check_against_releases(subset, {dataset_id: release})
    loaded.checked.add(key)
