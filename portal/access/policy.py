"""The access policy of a dataset tier, as the access workflow needs it (request requirements,
longest grant, approvals required). Policies are loaded by :mod:`portal.policy.loader`."""

from __future__ import annotations

import hashlib
import json

from portal.config import Settings
from portal.errors import NotFound
from portal.policy.model import DatasetPolicy, Tier
from portal.services import policies as policy_services
from portal.services.context import Context


def policies(settings: Settings) -> dict[str, DatasetPolicy]:
    """Every dataset's policy, through the one cache the services share (reloaded when a file
    changes). Raises ConfigError when invalid (never a partial set)."""
    # The loader cache only reads ``ctx.settings``; no store connection is needed here.
    return policy_services.policies(Context(settings=settings, conn=None))  # type: ignore[arg-type]


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


OPERATIONAL_TIER_KEYS = ("budget", "time_limit_seconds", "max_grant_days", "approvals_required")


def tier_fingerprint(policy: DatasetPolicy, tier: str) -> str:
    """A fingerprint of what a request for ``tier`` is made under: the dataset's terms and what
    the tier gives and asks (description, result mode, rows, download, disclosure settings,
    tables, request requirements) — not the operational limits staff tune (query budget, time
    limit, longest grant, approvals required). Stored with the request; approval refuses a
    request whose tier changed since (``tier_changed``) until the team re-confirms it."""
    given = policy.tiers[tier].model_dump(mode="json", exclude=set(OPERATIONAL_TIER_KEYS))
    body = {"terms": policy.terms, "tier": given}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
