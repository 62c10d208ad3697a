"""The access policy of a dataset tier, as the access workflow needs it (request requirements,
longest grant, approvals required). Policies are loaded by :mod:`portal.policy.loader`."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from portal.config import Settings
from portal.errors import NotFound
from portal.policy.loader import load_policies
from portal.policy.model import DatasetPolicy, Tier

_lock = threading.Lock()
_cache: dict[Path, tuple[tuple, dict[str, DatasetPolicy]]] = {}


def _fingerprint(directory: Path) -> tuple:
    """Names, sizes and modification times of the policy files: a change reloads them."""
    if not directory.is_dir():
        return ()
    return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                        for p in directory.iterdir() if p.suffix in (".yaml", ".yml")))


def policies(settings: Settings) -> dict[str, DatasetPolicy]:
    """Every dataset's policy, reloaded when a file changes. Raises ConfigError when invalid
    (never a partial set)."""
    directory = settings.policies_dir or settings.project_root / "access_policies"
    stamp = _fingerprint(directory)
    with _lock:
        cached = _cache.get(directory)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    loaded = dict(load_policies(directory))
    with _lock:
        _cache[directory] = (stamp, loaded)
    return loaded


def dataset_policy(settings: Settings, dataset_id: str) -> DatasetPolicy:
    """The dataset's policy. Raises NotFound(``unknown_dataset``)."""
    found = policies(settings).get(str(dataset_id))
    if found is None:
        raise NotFound("unknown_dataset", "There is no dataset with that name that can be "
                                          "requested.")
    return found


def tier_policy(settings: Settings, dataset_id: str, tier: str) -> tuple[DatasetPolicy, Tier]:
    """The dataset's policy and one of its tiers. Raises NotFound(``unknown_dataset`` or
    ``unknown_tier``)."""
    policy = dataset_policy(settings, dataset_id)
    found = policy.tiers.get(str(tier))
    if found is None:
        raise NotFound("unknown_tier", f"{policy.dataset} has no tier with that name; its tiers "
                                       f"are {', '.join(sorted(policy.tiers))}.")
    return policy, found


def terms_hash(policy: DatasetPolicy) -> str:
    """A fingerprint of the terms text a requester agreed to (stored with the request)."""
    return hashlib.sha256(policy.terms.encode("utf-8")).hexdigest()
