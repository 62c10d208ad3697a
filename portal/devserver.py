"""`python -m portal.devserver` (used by `make run`): the portal with the embedded development
sign-in provider, on this machine only.

Starts ``oidc-provider-mock`` (``portal.devprovider``: without its end-session page, so signing
out returns straight to the portal) on 127.0.0.1 with the demo personas, writes
``.streamlit/secrets.toml`` ([auth] pointing at it, with a per-install cookie secret), binds the
demo users to the provider's issuer and subjects, starts ``streamlit run app.py``, the HTTP API
(``portal api``) and a validation worker, and prints how to sign in and how to get an API token.
Ctrl-C stops them all. Refuses a non-loopback address and a production configuration.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from portal.config import Settings
from portal.demo import PERSONAS
from portal.errors import ConfigError, PortalError
from portal.identity import bind_identity
from portal.services import demo
from portal.services.context import Context

MOCK_PORT = 9400
PORTAL_PORT = 8501
CLIENT_ID = "accelerator-portal"


def check_loopback(host: str) -> None:
    """Raises ConfigError unless ``host`` is a loopback address (the development provider signs
    anyone in as anyone; it must never be reachable from another machine)."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(f"the development sign-in server binds only to loopback, not {host!r}")


def check_development(settings: Settings) -> None:
    """Raises ConfigError in production or when development sign-in is switched off."""
    if settings.environment == "production" or not settings.dev_sign_in:
        raise ConfigError("the development sign-in provider is refused in production "
                          "(PORTAL_ENV=production or PORTAL_DEV_SIGN_IN=false)")


def wait_for_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200. Raises RuntimeError on timeout or if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def start_provider(host: str = "127.0.0.1", port: int = MOCK_PORT,
                   staff_group: str = "portal-staff", log_path: Path | None = None,
                   ) -> tuple[subprocess.Popen, str]:
    """Start oidc-provider-mock with the demo personas (through ``portal.devprovider``, which
    leaves out its end-session page); returns (process, issuer URL)."""
    check_loopback(host)
    args = [sys.executable, "-m", "portal.devprovider", "--host", host, "--port", str(port)]
    for persona in PERSONAS:
        args += ["--user-claims", json.dumps(persona.claims(staff_group))]
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    issuer = f"http://{host}:{port}"
    try:
        wait_for_http(f"{issuer}/.well-known/openid-configuration", 30, proc)
    except RuntimeError:
        stop(proc)
        raise
    return proc, issuer


def secrets_toml(issuer: str, cookie_secret: str, portal_port: int = PORTAL_PORT) -> str:
    """The [auth] section for Streamlit pointing at the provider at ``issuer``."""
    values = {
        "redirect_uri": f"http://localhost:{portal_port}/oauth2callback",
        "cookie_secret": cookie_secret,
        "client_id": CLIENT_ID,
        "client_secret": "development-only",  # the development provider accepts any secret
        "server_metadata_url": f"{issuer}/.well-known/openid-configuration",
    }
    lines = ["# Written by `python -m portal.devserver` for local development. Not for production.",
             "[auth]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def write_secrets(path: Path, content: str) -> None:
    """Write the secrets file with mode 0600 (it holds the cookie secret)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)
    os.chmod(path, 0o600)


def seed_and_bind(settings: Settings, issuer: str) -> None:
    """Seed the demo teams and users and bind each persona to the provider's issuer/subject."""
    ctx = Context.open(settings)
    try:
        demo.seed(ctx)
        for persona in PERSONAS:
            bind_identity(ctx, persona.email, issuer, persona.sub, actor="devserver")
    finally:
        ctx.close()


def start_portal(settings: Settings, host: str = "127.0.0.1", port: int = PORTAL_PORT,
                 secrets_path: Path | None = None, environ: Mapping[str, str] | None = None,
                 log_path: Path | None = None) -> subprocess.Popen:
    """Start ``streamlit run app.py`` from the project root and wait until it answers."""
    check_loopback(host)
    args = [sys.executable, "-m", "streamlit", "run", str(settings.project_root / "app.py"),
            "--server.address", host, "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none"]
    if secrets_path is not None:
        args += ["--secrets.files", str(secrets_path)]
    env = dict(os.environ if environ is None else environ)
    env["PORTAL_HOME"] = str(settings.home)
    out = open(log_path, "ab") if log_path else None  # noqa: SIM115
    proc = subprocess.Popen(args, cwd=settings.project_root, env=env, stdout=out,
                            stderr=subprocess.STDOUT if out else None)
    try:
        wait_for_http(f"http://{host}:{port}/_stcore/health", 60, proc)
    except RuntimeError:
        stop(proc)
        raise
    return proc


def start_api(settings: Settings, host: str = "127.0.0.1", port: int | None = None,
              environ: Mapping[str, str] | None = None, log_path: Path | None = None,
              ) -> subprocess.Popen:
    """Start the HTTP API (``portal api``) on a loopback address and wait until it answers."""
    check_loopback(host)
    port = settings.api_port if port is None else port
    env = dict(os.environ if environ is None else environ)
    env["PORTAL_HOME"] = str(settings.home)
    out = open(log_path, "ab") if log_path else None  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from portal.cli import main; "
                             f"sys.exit(main(['api', '--host', {host!r}, '--port', '{port}']))"],
                            cwd=settings.project_root, env=env, stdout=out,
                            stderr=subprocess.STDOUT if out else None)
    try:
        wait_for_http(f"http://{host}:{port}/api/health", 60, proc)
    except RuntimeError:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """Terminate a process we started, killing it if it does not exit in time."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def instructions(portal_port: int = PORTAL_PORT, api_url: str | None = None) -> str:
    lines = [f"Accelerator Portal: http://localhost:{portal_port}",
             "Click 'Sign in'; the development provider lists one button per persona:"]
    for persona in PERSONAS:
        who = "platform staff" if persona.role == "staff" else f"startup {persona.team}"
        lines.append(f"  {persona.sub:<28} {persona.email:<30} {who}")
    if api_url:
        member = next(p for p in PERSONAS if p.role == "member")
        lines += [f"HTTP API: {api_url}/api/v1 (OpenAPI document: {api_url}/api/v1/openapi.json;"
                  " guide: docs/api.md)",
                  "Get a token: sign in as a startup member and open 'API tokens', or run",
                  f"  portal tokens create --user {member.email} --name CI --dataset wdbc"
                  " --action sandbox:submit --action sandbox:read"]
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m portal.devserver", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=PORTAL_PORT)
    parser.add_argument("--provider-port", type=int, default=MOCK_PORT)
    parser.add_argument("--api-port", type=int, help="HTTP API port (default: PORTAL_API_PORT)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(os.environ if environ is None else environ)
        check_development(settings)
        check_loopback(args.host)
        from portal.services.policies import check_policies  # refuse to start on a bad policy

        policy_ctx = Context.open(settings)
        try:
            check_policies(policy_ctx)
        finally:
            policy_ctx.close()
    except PortalError as exc:
        print(f"refused: {exc.message}", file=sys.stderr)
        return 2
    settings.ensure_home()
    provider, issuer = start_provider("127.0.0.1", args.provider_port, settings.staff_group)
    portal = worker = api = None
    api_port = args.api_port or settings.api_port
    api_url = settings.api_public_url or f"http://{args.host}:{api_port}"
    try:
        cookie_secret = settings.secret("streamlit_cookie_secret").hex()
        write_secrets(settings.project_root / ".streamlit" / "secrets.toml",
                      secrets_toml(issuer, cookie_secret, args.port))
        seed_and_bind(settings, issuer)
        api = start_api(settings, args.host, api_port)
        portal = start_portal(settings, args.host, args.port,
                              environ={**os.environ, "PORTAL_API_URL": api_url})
        # A validation worker beside the portal, so submitted models get validated.
        worker = subprocess.Popen([sys.executable, "-c", "import sys; from portal.cli import "
                                   "main; sys.exit(main(['sandbox', 'work']))"],
                                  cwd=settings.project_root,
                                  env={**os.environ, "PORTAL_HOME": str(settings.home)})
        print(instructions(args.port, api_url), flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while provider.poll() is None and portal.poll() is None and api.poll() is None:
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop(worker)
        stop(portal)
        stop(api)
        stop(provider)


if __name__ == "__main__":
    sys.exit(main())
