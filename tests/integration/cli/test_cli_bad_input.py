"""Hostile and mistaken command lines against the real `portal` entry point, in a subprocess:
bytes that are not UTF-8, numbers beyond SQLite's integers, outputs that are missing, folders or
the portal's own files, a reader that closes the pipe, and an internal failure. Each is one clear
line (exit 2 for the user's mistakes, 1 for the platform's), no traceback, no path of the portal,
nothing written onto its state, and one audit event."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from portal import audit
from portal.services import demo
from portal.services.context import Context
from tests.factories import make_release

PORTAL = str(Path(sys.executable).with_name("portal"))
STAFF, MEMBER = "staff@platform.example", "analyst@acme-health.example"
BIG = str(2**64)


@pytest.fixture
def home(settings):
    ctx = Context.open(settings)
    demo.seed(ctx)
    ctx.close()
    return settings


def portal(settings, *argv: str | bytes, stdin: bytes = b"") -> subprocess.CompletedProcess:
    env = {**os.environ, "PORTAL_HOME": str(settings.home), "PORTAL_ENV": "development"}
    return subprocess.run([PORTAL, *argv], input=stdin, capture_output=True, env=env,
                          timeout=120, check=False)


def _one_clean_line(done: subprocess.CompletedProcess, settings, code: str) -> None:
    err = done.stderr.decode("utf-8")
    assert err.count("\n") == 1 and err.startswith(f"error [{code}]: "), err
    assert "Traceback" not in err and str(settings.home) not in err
    assert str(Path(__file__).resolve().parents[3]) not in err  # no path of the code either


def _last_event(settings) -> audit.AuditEvent:
    ctx = Context.open(settings)
    try:
        return audit.list_events(ctx.conn, limit=1)[0]
    finally:
        ctx.close()


@pytest.mark.parametrize("argv", [
    ("query", "--user", MEMBER, "--dataset", "eunomia", "--sql", b"SELECT '\xff'"),
    ("teams", "onboard", b"caf\xe9", "--name", "Cafe", "--by", STAFF),
    ("audit", "list", "--actor", b"\xfe\xfe"),
    ("access", "request", "--user", MEMBER, "--dataset", "eunomia", "--tier", "aggregate",
     "--purpose", b"\xc3\x28 invalid continuation"),
], ids=["sql", "team", "filter", "purpose"])
def test_arguments_that_are_not_utf8_are_refused_in_one_line_and_audited(home, argv):
    done = portal(home, *argv)
    assert done.returncode == 2
    _one_clean_line(done, home, "invalid_argument_encoding")
    position = next(i for i, a in enumerate(argv, 1) if isinstance(a, bytes))
    assert f"Argument {position} is not valid UTF-8" in done.stderr.decode()
    event = _last_event(home)
    assert (event.action, event.decision, event.reason) == (
        "cli.usage", "rejected", "invalid_argument_encoding")


def test_sql_on_standard_input_that_is_not_utf8_is_refused(home):
    done = portal(home, "query", "--user", MEMBER, "--dataset", "eunomia", "--sql", "-",
                  stdin=b"SELECT '\xff\xfe'")
    assert done.returncode == 2
    _one_clean_line(done, home, "invalid_sql_encoding")
    assert _last_event(home).reason == "invalid_sql_encoding"


@pytest.mark.parametrize("argv", [
    ("sandbox", "status", BIG),
    ("sandbox", "report", "-" + BIG),
    ("access", "revoke", BIG, "--by", STAFF, "--reason", "ended"),
    ("access", "approve", str(2**63), "--by", STAFF, "--days", "30"),
    ("access", "grant", "--team", "gamma-ai", "--dataset", "eunomia", "--tier", "aggregate",
     "--days", BIG, "--by", STAFF),
    ("audit", "list", "--limit", BIG),
    ("datasets", "build", "--persons", BIG),
], ids=["run-id", "negative-run-id", "grant-id", "request-id", "days", "limit", "persons"])
def test_numbers_beyond_sqlite_integers_are_refused_in_one_line(home, argv):
    done = portal(home, *argv)
    assert done.returncode == 2
    _one_clean_line(done, home, "invalid_arguments")
    assert _last_event(home).reason == "invalid_arguments"


def _store_is_intact(settings) -> None:
    assert settings.store_path.read_bytes()[:16] == b"SQLite format 3\x00"
    ctx = Context.open(settings)
    try:
        assert audit.verify(ctx.conn).ok
    finally:
        ctx.close()


def _outputs(settings, tmp: Path) -> dict[str, tuple[Path, str]]:
    release_file = settings.releases_dir / "x" / "card.json"
    release_file.parent.mkdir(parents=True, exist_ok=True)
    release_file.write_text("{}")
    release_file.chmod(0o444)
    link = tmp / "link.parquet"
    link.symlink_to(settings.store_path)
    read_only = tmp / "read-only.parquet"
    read_only.write_text("keep")
    read_only.chmod(0o444)
    return {
        "missing-folder": (tmp / "no" / "such" / "out.parquet", "output_folder_missing"),
        "directory": (tmp, "output_is_directory"),
        "store": (settings.store_path, "output_inside_portal"),
        "release-file": (release_file, "output_inside_portal"),
        "home": (settings.home / "export.parquet", "output_inside_portal"),
        "symlink-to-store": (link, "output_inside_portal"),
        "read-only": (read_only, "output_read_only"),
    }


@pytest.mark.parametrize("case", ["missing-folder", "directory", "store", "release-file",
                                  "home", "symlink-to-store", "read-only"])
@pytest.mark.parametrize("command", [("sandbox", "holdout", "wdbc-malignancy", "--user", STAFF),
                                     ("audit", "checkpoint")], ids=["holdout", "checkpoint"])
def test_outputs_that_are_missing_folders_or_the_portals_own_files_are_refused(
        home, tmp_path, case, command):
    out, code = _outputs(home, tmp_path)[case]
    before = {p: p.read_bytes() for p in (home.releases_dir / "x" / "card.json",
                                          tmp_path / "read-only.parquet")}
    done = portal(home, *command, "--out", str(out))
    assert done.returncode == 2
    _one_clean_line(done, home, code)
    assert _last_event(home).reason == code
    assert {p: p.read_bytes() for p in before} == before
    assert not (home.home / "export.parquet").exists() and not (tmp_path / "no").exists()
    _store_is_intact(home)


def test_a_checkpoint_exported_outside_the_home_is_written_privately(home, tmp_path):
    out = tmp_path / "checkpoint.json"
    done = portal(home, "audit", "checkpoint", "--out", str(out), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["last_id"] == json.loads(done.stdout)["checkpoint"][
        "last_id"]
    assert out.stat().st_mode & 0o077 == 0
    assert portal(home, "audit", "verify", "--checkpoint", str(out)).returncode == 0


def test_a_reader_that_stops_early_gets_no_traceback(home):
    ctx = Context.open(home)
    for i in range(3000):
        audit.record(ctx.conn, actor=f"user{i}@x.example", action="x", decision="done")
    ctx.close()
    env = {**os.environ, "PORTAL_HOME": str(home.home)}
    proc = subprocess.Popen([PORTAL, "audit", "list", "--limit", "3000", "--format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.read(100)
    proc.stdout.close()  # like `| head -c 100`
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert b"Traceback" not in err and b"BrokenPipe" not in err and err == b""


def test_an_internal_failure_is_generic_for_the_caller_and_audited_with_its_cause(home):
    ctx = Context.open(home)
    release = make_release(ctx, "wdbc", {"t": "SELECT 1 AS x"})
    ctx.close()
    (release.directory / "card.json").write_text("{ not json")
    done = portal(home, "datasets", "describe", "wdbc")
    assert done.returncode == 1
    _one_clean_line(done, home, "internal_error")
    event = _last_event(home)
    assert (event.action, event.decision, event.reason) == (
        "catalog.describe", "failed", "internal_error")
    assert event.details["cause"] == "json.decoder.JSONDecodeError"
    assert event.details["reference"] in done.stderr.decode()
    log = (home.home / "logs" / "cli.log").read_text()
    assert event.details["reference"] in log and "Traceback" in log


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_model_path_that_is_not_a_regular_file_is_refused_without_blocking(home, tmp_path,
                                                                            kind):
    model = tmp_path / "model.onnx"
    os.mkfifo(model) if kind == "fifo" else model.mkdir()
    done = portal(home, "sandbox", "submit", "--user", MEMBER, "--task", "wdbc-malignancy",
                  "--model", str(model))
    assert done.returncode == 2
    _one_clean_line(done, home, "model_file_unreadable")
    event = _last_event(home)
    assert (event.action, event.reason) == ("sandbox.submit", "model_file_unreadable")
