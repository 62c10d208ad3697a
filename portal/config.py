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

    # --- paths under the home folder -------------------------------------------------------
    @property
    def store_path(self) -> Path:
        return self.home / "portal.db"

    @property
    def releases_dir(self) -> Path:
        return self.home / "releases"

    @property
    def extracts_dir(self) -> Path:
        return self.home / "extracts"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    def ensure_home(self) -> None:
        """Create the home's folders. Releases, extracts and secrets are the service's alone
        (mode 0700): jailed jobs get the one file they need bound in, never a path."""
        for path in (self.home, self.releases_dir, self.extracts_dir, self.models_dir,
                     self.reports_dir):
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
            tmp = path.with_suffix(f".tmp{os.getpid()}")
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
