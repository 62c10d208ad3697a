"""Signed receipts binding a report to what produced it.

The receipt holds the SHA-256 of the report body (canonical JSON, everything but the receipt),
the model hash, release version, task protocol hash, code version and time, signed with the
platform's Ed25519 key. A run has two reports: the exact one staff see (``view: exact``) and
the released one its team sees (``view: released``, ``sandbox.disclosure``); the released
report's receipt also signs ``exact_report_sha256``, the SHA-256 of the exact report's body, so
one signature binds both. The exact body carries a random ``nonce``, so that hash is a hiding
commitment: a team cannot test guesses about the exact figures against it.

The key is a per-installation secret under ``$PORTAL_HOME/secrets`` and
never leaves it; verification uses the platform's own public key, never a key carried by the
report.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from portal.canonical import canonical_bytes
from portal.config import Settings

KEY_NAME = "sandbox-receipt-ed25519"
BOUND_FIELDS = ("run_id", "model_sha256", "release_version", "protocol_hash", "code_version",
                "generated_at")


def canonical(data: Any) -> bytes:
    return canonical_bytes(data)


def _private_key(settings: Settings) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(settings.secret(KEY_NAME, 32))


def public_key(settings: Settings) -> Ed25519PublicKey:
    return _private_key(settings).public_key()


def key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@cache
def code_version() -> str:
    """The package version plus a hash of the sandbox code that produces figures."""
    try:
        version = metadata.version("accelerator-portal")
    except metadata.PackageNotFoundError:
        version = "0"
    hasher = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in ("metrics.py", "features.py", "scorer_main.py", "isolation.py", "report.py",
                 "disclosure.py", "publish.py"):
        hasher.update(name.encode() + b"\0" + (here / name).read_bytes())
    return f"{version}+{hasher.hexdigest()[:12]}"


def body_of(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "receipt"}


def digest(report: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a report's body (everything but its receipt)."""
    return hashlib.sha256(canonical(body_of(report))).hexdigest()


def sign(settings: Settings, report: dict[str, Any], bound: dict[str, Any],
         exact: dict[str, Any] | None = None) -> dict[str, Any]:
    """A receipt for ``report`` (its body) binding ``bound`` (the :data:`BOUND_FIELDS`), the
    report's ``view`` and, for a released report, the ``exact`` report it was released from."""
    claims = {field: bound[field] for field in BOUND_FIELDS}
    claims["report_sha256"] = digest(report)
    claims["view"] = report.get("view", "exact")
    if exact is not None:
        claims["exact_report_sha256"] = digest(exact)
    key = _private_key(settings)
    signature = key.sign(canonical(claims))
    return {"algorithm": "Ed25519", "key_id": key_id(key.public_key()), "claims": claims,
            "signature": base64.b64encode(signature).decode("ascii")}


def verify(settings: Settings, report: dict[str, Any],
           exact: dict[str, Any] | None = None) -> tuple[bool, str]:
    """Check a report's receipt against the platform key and the report's own content; with
    ``exact`` (staff), also that a released report was released from that exact report.

    Returns (ok, reason). Never raises for a malformed report."""
    receipt = report.get("receipt") if isinstance(report, dict) else None
    if not isinstance(receipt, dict) or not isinstance(receipt.get("claims"), dict):
        return False, "the report has no receipt"
    claims = receipt["claims"]
    try:
        signature = base64.b64decode(str(receipt.get("signature", "")), validate=True)
        public_key(settings).verify(signature, canonical(claims))
    except (InvalidSignature, ValueError):
        return False, "the signature does not match the platform key"
    try:
        body_digest = digest(report)
    except (TypeError, ValueError):
        return False, "the report body cannot be read"
    if body_digest != claims.get("report_sha256"):
        return False, "the report was changed after it was signed"
    if claims.get("view", "exact") != report.get("view", "exact"):
        return False, "the report's view does not match its receipt"
    for field, where in (("model_sha256", ("model", "sha256")),
                         ("release_version", ("release", "version")),
                         ("protocol_hash", ("task", "protocol_hash")),
                         ("run_id", ("run", "id"))):
        section = report.get(where[0]) or {}
        if section.get(where[1]) != claims.get(field):
            return False, f"the report's {field.replace('_', ' ')} does not match its receipt"
    if exact is not None:
        try:
            exact_digest = digest(exact)
        except (TypeError, ValueError):
            return False, "the exact report cannot be read"
        if claims.get("exact_report_sha256") != exact_digest:
            return False, "the report was not released from this exact report"
    return True, "signature valid; report unchanged since it was signed"
