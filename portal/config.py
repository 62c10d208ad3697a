"""Settings, parsed once from the environment; bad values fail fast naming the variable."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from portal.errors import ConfigError

ENVIRONMENTS = ("development", "production")


def _int(environ: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _database_url(environ: Mapping[str, str]) -> str | None:
    raw = (environ.get("PORTAL_DATABASE_URL") or "").strip()
    if not raw:
        return None
    if not raw.startswith(("postgresql://", "postgres://")):
        raise ConfigError("PORTAL_DATABASE_URL must be a postgresql:// URL (leave it unset for "
                          "the SQLite store under PORTAL_HOME)")
    return raw


def _names(environ: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated list (white space around items ignored; empty items refused)."""
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    items = tuple(item.strip() for item in raw.split(","))
    if any(not item or len(item) > 500 for item in items):
        raise ConfigError(f"{name} must be a comma-separated list of non-empty names, got "
                          f"{raw[:200]!r}")
    return items


REQUIRED_CLAIMS = ("iss", "sub", "iat")


def _cron(environ: Mapping[str, str]) -> str:
    raw = environ.get("PORTAL_REVALIDATE_CRON")
    if raw is None:
        return "0 3 * * *"
    fields = raw.split()
    if raw.strip() and len(fields) != 5:
        raise ConfigError(f"PORTAL_REVALIDATE_CRON must be a five-field cron expression or "
                          f"empty (off), got {raw!r}")
    return " ".join(fields)


@dataclass(frozen=True)
class Settings:
    """Everything the portal reads from its environment.

    All state lives under ``home`` (``PORTAL_HOME``, default ``./var``)."""

    home: Path
    environment: str = "development"
    project_root: Path = field(default_factory=lambda: Path(__file__).resolve().parent.parent)
    datasets_dir: Path | None = None
    policies_dir: Path | None = None
    tasks_dir: Path | None = None
    query_workers: int = 2
    query_memory_mb: int = 2048
    query_threads: int = 2
    sandbox_allow_unisolated: bool = False
    query_allow_unisolated: bool = False
    session_max_age_hours: int = 12
    dev_sign_in: bool = True
    staff_group: str = "portal-staff"
    # Sign-in requirements (authlib style: declared options, not scattered ifs): ID tokens from
    # other issuers are refused; every claim named here must be present and non-empty.
    oidc_allowed_issuers: tuple[str, ...] = ()
    oidc_required_claims: tuple[str, ...] = REQUIRED_CLAIMS
    database_url: str | None = None
    storage_root_dir: Path | None = None
    shared_secrets_dir: Path | None = None
    worker_lease_seconds: int = 60
    worker_sweep_seconds: int = 15
    revalidate_cron: str = "0 3 * * *"
    store_busy_timeout_ms: int = 30_000
    store_lock_wait_seconds: int = 600
    api_host: str = "127.0.0.1"
    api_port: int = 8502
    api_token_max_days: int = 30
    api_max_upload_mb: int = 200
    api_public_url: str = ""
    audit_anchor_path: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        environment = env.get("PORTAL_ENV", "development") or "development"
        if environment not in ENVIRONMENTS:
            raise ConfigError(
                f"PORTAL_ENV must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}")
        home = Path(env.get("PORTAL_HOME") or "var").expanduser().resolve()
        root = Path(__file__).resolve().parent.parent

        def folder(name: str, default: Path) -> Path:
            raw = env.get(name)
            return Path(raw).expanduser().resolve() if raw else default

        settings = cls(
            home=home,
            environment=environment,
            project_root=root,
            datasets_dir=folder("PORTAL_DATASETS_DIR", root / "datasets"),
            policies_dir=folder("PORTAL_POLICIES_DIR", root / "access_policies"),
            tasks_dir=folder("PORTAL_TASKS_DIR", root / "sandbox" / "tasks"),
            query_workers=_int(env, "PORTAL_QUERY_WORKERS", 2, 1, 64),
            query_memory_mb=_int(env, "PORTAL_QUERY_MEMORY_MB", 2048, 256, 65536),
            query_threads=_int(env, "PORTAL_QUERY_THREADS", 2, 1, 64),
            sandbox_allow_unisolated=_bool(env, "PORTAL_SANDBOX_ALLOW_UNISOLATED", False),
            query_allow_unisolated=_bool(env, "PORTAL_QUERY_ALLOW_UNISOLATED", False),
            session_max_age_hours=_int(env, "PORTAL_SESSION_MAX_AGE_HOURS", 12, 1, 24 * 30),
            dev_sign_in=_bool(env, "PORTAL_DEV_SIGN_IN", environment == "development"),
            staff_group=env.get("PORTAL_STAFF_GROUP", "portal-staff") or "portal-staff",
            oidc_allowed_issuers=_names(env, "PORTAL_OIDC_ISSUERS", ()),
            oidc_required_claims=tuple(dict.fromkeys(
                (*REQUIRED_CLAIMS, *_names(env, "PORTAL_OIDC_REQUIRED_CLAIMS", ())))),
            database_url=_database_url(env),
            storage_root_dir=folder("PORTAL_STORAGE_ROOT", home),
            shared_secrets_dir=folder("PORTAL_SECRETS_DIR", home / "secrets"),
            worker_lease_seconds=_int(env, "PORTAL_WORKER_LEASE_SECONDS", 60, 2, 3600),
            worker_sweep_seconds=_int(env, "PORTAL_WORKER_SWEEP_SECONDS", 15, 1, 59),
            revalidate_cron=_cron(env),
            store_busy_timeout_ms=_int(env, "PORTAL_STORE_BUSY_TIMEOUT_MS", 30_000, 50, 600_000),
            store_lock_wait_seconds=_int(env, "PORTAL_STORE_LOCK_WAIT_SECONDS", 600, 1, 86_400),
            api_host=env.get("PORTAL_API_HOST", "127.0.0.1") or "127.0.0.1",
            api_port=_int(env, "PORTAL_API_PORT", 8502, 1, 65535),
            api_token_max_days=_int(env, "PORTAL_API_TOKEN_MAX_DAYS", 30, 1, 365),
            api_max_upload_mb=_int(env, "PORTAL_API_MAX_UPLOAD_MB", 200, 1, 200),
            api_public_url=(env.get("PORTAL_API_URL") or "").rstrip("/"),
            audit_anchor_path=folder("PORTAL_AUDIT_ANCHOR_DIR", home / "audit-anchors"),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.environment == "production":
            for name, value in (("PORTAL_SANDBOX_ALLOW_UNISOLATED", self.sandbox_allow_unisolated),
                                ("PORTAL_QUERY_ALLOW_UNISOLATED", self.query_allow_unisolated)):
                if value:
                    raise ConfigError(f"{name} is a development setting; a production "
                                      "configuration refuses it")
            if self.dev_sign_in:
                raise ConfigError(
                    "PORTAL_DEV_SIGN_IN (the development sign-in provider) is refused in production"
                )
            if not self.oidc_allowed_issuers:
                raise ConfigError("a production configuration without PORTAL_OIDC_ISSUERS is "
                                  "refused: name the identity provider's issuer (the ID "
                                  "token's iss)")

    @property
    def api_url(self) -> str:
        """The API's base address as people and CI should use it (``PORTAL_API_URL``, else the
        address ``portal api`` binds)."""
        return self.api_public_url or f"http://{self.api_host}:{self.api_port}"

    # --- the store and the shared storage ------------------------------------------------
    @property
    def store_path(self) -> Path:
        """The SQLite store file (used when no ``database_url`` is set)."""
        return self.home / "portal.db"

    @property
    def store_target(self) -> str | Path:
        """Where the store lives: the PostgreSQL URL, or the SQLite file under the home."""
        return self.database_url or self.store_path

    @property
    def storage_root(self) -> Path:
        """Root of the immutable files (releases, extracts, models, reports); the home unless
        ``PORTAL_STORAGE_ROOT`` points at storage shared by several machines."""
        return self.storage_root_dir or self.home

    @property
    def releases_dir(self) -> Path:
        return self.storage_root / "releases"

    @property
    def extracts_dir(self) -> Path:
        return self.storage_root / "extracts"

    @property
    def models_dir(self) -> Path:
        return self.storage_root / "models"

    @property
    def reports_dir(self) -> Path:
        return self.storage_root / "reports"

    @property
    def secrets_dir(self) -> Path:
        """Where the installation's secrets live (``PORTAL_SECRETS_DIR``, default
        ``$PORTAL_HOME/secrets``). Several servers of one installation share this folder."""
        return self.shared_secrets_dir or self.home / "secrets"

    @property
    def audit_anchor_dir(self) -> Path:
        """Where signed audit checkpoints are written (``PORTAL_AUDIT_ANCHOR_DIR``, default
        ``$PORTAL_HOME/audit-anchors``); point it outside the home, at storage the portal's
        operators cannot rewrite, for the checkpoints to protect against them."""
        return self.audit_anchor_path or self.home / "audit-anchors"

    def ensure_home(self) -> None:
        """Create the home's folders. Releases, extracts and secrets are the service's alone
        (mode 0700): jailed jobs get the one file they need bound in, never a path."""
        for path in (self.home, self.storage_root, self.releases_dir, self.extracts_dir,
                     self.models_dir, self.reports_dir):
            path.mkdir(parents=True, exist_ok=True)
        for private in (self.releases_dir, self.extracts_dir, self.secrets_dir):
            private.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(private, 0o700)

    def secret(self, name: str, nbytes: int = 32) -> bytes:
        """A per-installation secret (salt, signing key), created on first use with mode 0600.

        Secrets never leave the home folder and are never written to a release or report."""
        self.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.secrets_dir / name
        if not path.exists():
            data = secrets.token_bytes(nbytes)
            tmp = path.with_suffix(f".tmp{os.getpid()}.{secrets.token_hex(8)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            try:
                os.link(tmp, path)  # atomic: first writer wins, others read its secret
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        return path.read_bytes()
