"""Builds that fail, are interrupted or race each other leave no half release, keep the previous
release current and leave an audit trail that verifies."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portal import audit
from portal.catalog.builder import build_release, dataset_lock
from portal.catalog.releases import current_release
from portal.errors import ConfigError, UserError

ROOT = Path(__file__).resolve().parents[3]


def _portal(home: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PORTAL_HOME": str(home), "PORTAL_ENV": "development"}
    code = "import sys; from portal.cli import main; sys.exit(main())"
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _versions(settings, dataset_id: str) -> list[str]:
    folder = settings.releases_dir / dataset_id
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_build_missing_k_target_fails_and_previous_release_stays_current(released_ctx, tmp_path):
    cards = tmp_path / "cards"
    cards.mkdir()
    text = (ROOT / "datasets" / "omop_synth.yaml").read_text()
    (cards / "omop_synth.yaml").write_text(
        text.replace("max_suppressed_fraction: 0.05", "max_suppressed_fraction: 0.0"))
    settings = dataclasses.replace(released_ctx.settings, datasets_dir=cards)
    with pytest.raises(ConfigError) as info:
        build_release(settings, released_ctx.conn, "omop_synth", actor="staff@platform.example",
                      persons=2000)
    assert info.value.code == "k_target_missed"
    assert any("k-anonymity target missed" in p for p in info.value.problems)
    assert current_release(released_ctx.conn, settings, "omop_synth").version == "1"
    assert _versions(settings, "omop_synth") == ["1"]
    assert not list((settings.releases_dir / "omop_synth").glob(".staging-*"))
    [event] = audit.list_events(released_ctx.conn, action="release.build", decision="failed")
    assert event.reason == "k_target_missed" and event.target == "dataset:omop_synth"
    assert audit.verify(released_ctx.conn).ok


def test_second_build_waiting_past_its_timeout_is_refused_clearly(released_ctx):
    settings = released_ctx.settings
    with dataset_lock(settings, "wdbc"), pytest.raises(UserError) as info:
        build_release(settings, released_ctx.conn, "wdbc", actor="staff@platform.example",
                      lock_timeout=0.3)
    assert info.value.code == "build_in_progress"
    assert current_release(released_ctx.conn, settings, "wdbc").version == "1"
    [event] = audit.list_events(released_ctx.conn, action="release.build", decision="failed")
    assert event.reason == "build_in_progress"


def test_killed_build_leaves_no_visible_release_and_the_next_build_cleans_up(released_ctx):
    settings = released_ctx.settings
    released_ctx.close()
    folder = settings.releases_dir / "omop_synth"
    proc = _portal(settings.home, "datasets", "build", "omop_synth", "--persons", "60000")
    deadline = time.monotonic() + 240
    while not list(folder.glob(".staging-*")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    from portal.services.context import Context

    ctx = Context.open(settings)
    try:
        assert current_release(ctx.conn, settings, "omop_synth").version == "1"
        assert _versions(settings, "omop_synth") == ["1"]
        result = build_release(settings, ctx.conn, "omop_synth", actor="test", persons=2000)
        assert result.version == "2"
        assert not list(folder.glob(".staging-*"))
        assert audit.verify(ctx.conn).ok
    finally:
        ctx.close()


def test_two_builds_at_once_both_finish_consistently(released_ctx):
    settings = released_ctx.settings
    released_ctx.close()
    procs = [_portal(settings.home, "datasets", "build", "wdbc", "--format", "json")
             for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    from portal.services.context import Context

    ctx = Context.open(settings)
    try:
        assert _versions(settings, "wdbc") == ["1", "2", "3"]
        current = ctx.conn.execute("SELECT version FROM releases WHERE dataset_id = 'wdbc' "
                                   "AND status = 'current'").fetchall()
        assert [r[0] for r in current] == ["3"]
        for version in ("2", "3"):
            directory = settings.releases_dir / "wdbc" / version
            assert {p.name for p in directory.iterdir()} == {
                "dev.duckdb", "holdout.duckdb", "card.json", "report.json", "report.md"}
        events = audit.list_events(ctx.conn, action="release.build", decision="done")
        assert len(events) >= 3 and audit.verify(ctx.conn).ok
    finally:
        ctx.close()


def test_residual_identifier_pattern_fails_the_build_without_a_release(ctx, tmp_path):
    cards = tmp_path / "cards"
    cards.mkdir()
    text = (ROOT / "datasets" / "eunomia.yaml").read_text()
    allowance = ("        description: \"Condition source value.\"\n"
                 "        scan_allow: [mrn_like]\n")
    assert allowance in text
    text = text.replace(allowance, "        description: \"Condition source value.\"\n", 1)
    lines = text.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if "Condition source value." in line)
    if "scan_allow_reason" in lines[at + 1]:
        del lines[at + 1]
    (cards / "eunomia.yaml").write_text("".join(lines))
    settings = dataclasses.replace(ctx.settings, datasets_dir=cards)
    with pytest.raises(ConfigError) as info:
        build_release(settings, ctx.conn, "eunomia", actor="staff@platform.example")
    assert info.value.code == "release_checks_failed"
    assert info.value.problems == [
        "eunomia: condition_occurrence.condition_source_value: 79 distinct value(s) look like "
        "mrn like"]
    assert not [p for p in (settings.releases_dir / "eunomia").iterdir()
                if not p.name.startswith(".lock")]
    [event] = audit.list_events(ctx.conn, action="release.build")
    assert event.decision == "failed" and event.reason == "release_checks_failed"
