"""Signed checkpoints of the audit chain, kept outside the store.

A checkpoint states (last event id, its MAC, number of events, first keyed event, time), signed
with the installation's Ed25519 checkpoint key (a secret of its own, not the receipts key). It is
written to the anchor folder (``PORTAL_AUDIT_ANCHOR_DIR``) and can be exported anywhere. A store
whose log no longer reaches a checkpoint's last event, or holds another event there, was
truncated or rewritten. Verification uses the installation's own public key, never a key named
by the file.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portal.canonical import canonical_bytes
from portal.config import Settings
from portal.storage import unique_temp

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from portal.audit import VerifyResult

KEY_NAME = "audit-checkpoint-ed25519"
FORMAT = "portal-audit-checkpoint/1"
MAX_BYTES = 64 * 1024
_NAME = re.compile(r"^checkpoint-\d{12}-\d{8}T\d{6}Z\.json$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or is not signed by this installation."""


@dataclass(frozen=True)
class Checkpoint:
    last_id: int
    head_mac: str
    events: int
    keyed_from: int | None
    at: str
    name: str = ""


def _canonical(data: Any) -> bytes:
    return canonical_bytes(data)


def _private_key(settings: Settings) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(settings.secret(KEY_NAME, 32))


def key_id(settings: Settings) -> str:
    """A short fingerprint of the checkpoint public key (to tell installations apart)."""
    import hashlib

    from cryptography.hazmat.primitives import serialization

    raw = _private_key(settings).public_key().public_bytes(serialization.Encoding.Raw,
                                                           serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(settings: Settings, result: VerifyResult, at: str) -> dict[str, Any]:
    """A signed checkpoint document of a verified chain head."""
    claims = {"format": FORMAT, "last_id": result.head_id, "head_mac": result.head_mac,
              "events": result.events, "keyed_from": result.keyed_from, "at": at,
              "key_id": key_id(settings)}
    signature = _private_key(settings).sign(_canonical(claims))
    return {**claims, "algorithm": "Ed25519",
            "signature": base64.b64encode(signature).decode("ascii")}


def write(settings: Settings, document: dict[str, Any]) -> Path:
    """Write a checkpoint into the anchor folder (atomically; never over another file)."""
    folder = settings.audit_anchor_dir
    folder.mkdir(parents=True, exist_ok=True)
    stamp = document["at"].replace("-", "").replace(":", "")
    path = folder / f"checkpoint-{document['last_id']:012d}-{stamp}.json"
    tmp = unique_temp(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        json.dump(document, fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def _field(document: dict[str, Any], name: str, kind: type) -> Any:
    value = document.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CheckpointError(f"its {name} is missing or malformed")
    return value


def parse(settings: Settings, raw: bytes, name: str) -> Checkpoint:
    """Check a checkpoint document's form and signature. Raises CheckpointError."""
    from cryptography.exceptions import InvalidSignature

    try:
        document = json.loads(raw)
    except ValueError:
        raise CheckpointError("it is not JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CheckpointError("it is not an audit checkpoint")
    last_id, events = _field(document, "last_id", int), _field(document, "events", int)
    head_mac, at = _field(document, "head_mac", str), _field(document, "at", str)
    keyed_from = document.get("keyed_from")
    if (last_id < 0 or events < 0 or not _HEX64.match(head_mac)
            or not (keyed_from is None or (isinstance(keyed_from, int) and keyed_from > 0))):
        raise CheckpointError("its fields are out of range")
    if document.get("key_id") != key_id(settings):
        raise CheckpointError("it was signed with another installation's checkpoint key")
    claims = {k: document.get(k) for k in ("format", "last_id", "head_mac", "events",
                                           "keyed_from", "at", "key_id")}
    try:
        signature = base64.b64decode(str(document.get("signature", "")), validate=True)
        _private_key(settings).public_key().verify(signature, _canonical(claims))
    except (InvalidSignature, ValueError):
        raise CheckpointError("its signature does not match this installation's checkpoint "
                              "key") from None
    return Checkpoint(last_id, head_mac, events, keyed_from, at, name)


def load(settings: Settings, path: Path) -> Checkpoint:
    """Read and check one checkpoint file (at most 64 KB). Raises CheckpointError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO or device never blocks us
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise CheckpointError("it is not a regular file")
            raw = fh.read(MAX_BYTES + 1)
    except OSError:
        raise CheckpointError("it cannot be read") from None
    if len(raw) > MAX_BYTES:
        raise CheckpointError("it is too large to be a checkpoint")
    return parse(settings, raw, path.name)


def anchored(settings: Settings) -> list[Path]:
    """The checkpoint files in the anchor folder, oldest head first."""
    try:
        return sorted(p for p in settings.audit_anchor_dir.iterdir() if _NAME.match(p.name))
    except OSError:
        return []


def problem_with(conn: sqlite3.Connection, cp: Checkpoint, thorough: bool) -> str | None:
    """What about the store contradicts a (signed) checkpoint: a log that ends before the
    checkpoint's last event (truncation), another event in its place (rewrite), a different
    count of events up to it, or a keyed chain that starts elsewhere (``thorough`` only)."""
    where = f"checkpoint {cp.name or '(given)'} of {cp.at}"
    head = conn.execute("SELECT max(id) FROM audit_events").fetchone()[0] or 0
    if head < cp.last_id:
        return (f"the log ends at event {head}, but {where} signed events up to {cp.last_id}: "
                f"the newest events were removed")
    if cp.last_id:
        row = conn.execute("SELECT hash FROM audit_events WHERE id = ?",
                           (cp.last_id,)).fetchone()
        if row is None or row["hash"] != cp.head_mac:
            return (f"event {cp.last_id} is not the event {where} signed: the history up to "
                    f"it was rewritten")
    if not thorough:
        return None
    count = conn.execute("SELECT count(*) FROM audit_events WHERE id <= ?",
                         (cp.last_id,)).fetchone()[0]
    if count != cp.events:
        return f"{count} events lead to event {cp.last_id}, but {where} counted {cp.events}"
    if cp.keyed_from is not None:
        first = conn.execute("SELECT min(id) FROM audit_events WHERE chain = 2").fetchone()[0]
        if first != cp.keyed_from:
            return (f"the keyed chain starts at event {first}, but at {cp.keyed_from} in "
                    f"{where}: events were re-chained without the key")
    return None


def check_all(conn: sqlite3.Connection, settings: Settings, extra: list[Path] | tuple = (),
              thorough: bool = True) -> tuple[list[str], int]:
    """Compare the store with every anchored checkpoint and ``extra`` files (``thorough``), or
    with the newest anchored one only. Returns (problems, checkpoints compared)."""
    files = anchored(settings)
    chosen = [*files, *extra] if thorough else files[-1:]
    problems = []
    for path in chosen:
        try:
            cp = load(settings, path)
        except CheckpointError as exc:
            problems.append(f"checkpoint {path.name} is not valid: {exc}")
            continue
        problem = problem_with(conn, cp, thorough)
        if problem:
            problems.append(problem)
    return problems, len(chosen)


def latest(settings: Settings) -> Checkpoint | None:
    """The anchored checkpoint with the newest head, if it is valid."""
    files = anchored(settings)
    try:
        return load(settings, files[-1]) if files else None
    except CheckpointError:
        return None


def notes(settings: Settings, compared: int) -> list[str]:
    """What a verification did not cover, for people reading its result."""
    found = []
    if compared == 0:
        found.append("no signed checkpoint yet: removing the newest events cannot be detected "
                     "(run `portal audit checkpoint`)")
    if settings.audit_anchor_dir.resolve().is_relative_to(settings.home.resolve()):
        found.append("the anchor folder is inside PORTAL_HOME: export checkpoints "
                     "(`portal audit checkpoint --out`) or set PORTAL_AUDIT_ANCHOR_DIR to "
                     "storage the portal's operators cannot rewrite")
    return found
