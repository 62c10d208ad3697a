"""The isolated scorer: the real scorer process is jailed (observed from the host while it
runs), contained, classified, and refuses without isolation unless the development setting
allows it."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from portal.isolation import launcher
from sandbox import isolation
from tests import jails
from tests.conftest import require_or_skip
from tests.unit.sandbox import factories as f

LIMITS = isolation.Limits(wall_seconds=20, memory_mb=1024)
WIDTH = 4


def _need_isolation():
    require_or_skip(isolation.isolation_available(), "PORTAL_REQUIRE_ISOLATION",
                    "isolation (bubblewrap, setpriv, prlimit, python3-seccomp, root) is not "
                    "available here")


def _probe_model_bytes() -> bytes:
    X, y = f.toy_data(WIDTH)
    return f.logistic_onnx(X, y)


class RunningScorer:
    """An endless-loop model scored in a thread: the real scorer stays alive until its
    wall-clock limit, long enough to look at it from the host."""

    def __init__(self, job_id: int, hide: tuple[Path, ...] = (), wall: float = 30) -> None:
        self.result: dict = {}
        model = f.endless_loop_model(WIDTH)
        limits = isolation.Limits(wall_seconds=wall, memory_mb=1024)

        def score() -> None:
            self.result["r"] = isolation.run_scorer(model, f.toy_data(WIDTH)[0], "input",
                                                    limits, job_id, hide=hide)

        self.thread = threading.Thread(target=score)

    def __enter__(self) -> int:
        self.thread.start()
        return jails.find_process(isolation.SCORER_IN_JAIL)

    def __exit__(self, *exc) -> None:
        for pid in jails.processes_with(isolation.SCORER_IN_JAIL):  # no need to wait 30 s
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.thread.join(timeout=60)


def test_scorer_returns_the_same_probabilities_as_in_process_onnxruntime():
    _need_isolation()
    import onnxruntime as ort

    X, y = f.toy_data(WIDTH, rows=500)
    data = f.logistic_onnx(X, y)
    result = isolation.run_scorer(data, X, "input", LIMITS, job_id=1)
    assert result.outcome == "ok" and result.isolated
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    expected = session.run(None, {"input": X})[1][:, 1]
    assert np.array_equal(result.predictions.astype(np.float32), expected)


def test_the_running_scorer_is_in_its_own_namespaces_as_an_unprivileged_uid():
    _need_isolation()
    uid = isolation.uid_for_job(77)
    with RunningScorer(77) as pid:
        seen = jails.view(pid)
    mine = jails.own_namespaces()
    assert [n for n in jails.NAMESPACES if seen.namespaces[n] == mine[n]] == []
    assert seen.status["Uid"] == f"{uid} {uid} {uid} {uid}"
    assert seen.status["Gid"] == f"{uid} {uid} {uid} {uid}"
    assert seen.status["Groups"] == ""
    assert {seen.status[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")} \
        == {"0000000000000000"}
    assert seen.status["NoNewPrivs"] == "1"
    assert seen.status["Seccomp"] == "2"  # a filter is loaded


def test_the_running_scorer_has_its_rlimits():
    _need_isolation()
    with RunningScorer(78) as pid:
        limits = jails.view(pid).limits
    assert limits["Max address space"] == str(1024 * 1024 * 1024)
    assert limits["Max cpu time"] == "60"  # twice the wall time
    assert limits["Max file size"] == str(isolation.OUTPUT_CAP_BYTES)
    assert limits["Max open files"] == "64" and limits["Max processes"] == "64"
    assert limits["Max core file size"] == "0"


def test_the_running_scorer_sees_only_the_interpreter_its_packages_and_its_job(tmp_path):
    """Allowlist: nothing of the home (store, releases, extracts), of the checkout, of the
    machine's configuration or of other packages is visible to the real scorer."""
    _need_isolation()
    home = tmp_path / "home"
    (home / "releases").mkdir(parents=True)
    (home / "releases" / "holdout.duckdb").write_text("held-out rows")
    (home / "portal.db").write_text("the store")
    with RunningScorer(79, hide=(home,)) as pid:
        files = jails.view(pid).files
    tops = {p.split("/")[1] for p in files}
    assert tops <= {"usr", "lib64", "tmp", "job", "opt", *(Path(sys.prefix).parts[1:2]),
                    *(Path(sys.base_prefix).parts[1:2])}
    assert not any(p.startswith(str(home)) for p in files)
    assert not any(p.startswith(("/etc", "/home", "/var", "/srv")) for p in files)
    assert sorted(p for p in files if p.startswith("/job/") and p.count("/") == 2
                  and not p.startswith("/job/.")) == [
        "/job/features.f32", "/job/meta.json", "/job/model.onnx", "/job/stderr.txt"]
    assert "/opt/portal/scorer_main.py" in files
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    site = Path(sys.prefix).resolve() / "lib" / version / "site-packages"
    visible = {p[len(str(site)) + 1:].split("/")[0] for p in files if p.startswith(f"{site}/")}
    assert {"onnxruntime", "numpy"} <= visible
    assert not visible & {"duckdb", "sklearn", "pandas", "streamlit", "portal", "sandbox",
                          "pip", "setuptools", "onnx", "scipy"}
    assert not [v for v in visible if v.endswith(".pth") or v.startswith("__editable__")]
    checkout = Path(__file__).resolve().parents[3]
    assert [p for p in files if p.startswith(f"{checkout}/") and p != sys.prefix
            and not p.startswith(f"{sys.prefix}/")] == []  # of the checkout: its venv only


def test_a_timed_out_scorer_leaves_no_process_behind():
    _need_isolation()
    running = RunningScorer(80, wall=1.5)
    running.thread.start()
    pid = jails.find_process(isolation.SCORER_IN_JAIL)
    running.thread.join(timeout=60)
    assert running.result["r"].outcome == "timed_out"
    # the wall-clock kill ended every stage of the jail, the scorer itself included
    assert not os.path.exists(f"/proc/{pid}")
    assert jails.processes_with(isolation.SCORER_IN_JAIL) == []


def test_work_folder_is_private_while_in_use_and_removed_after():
    _need_isolation()
    from portal.isolation import jobs

    base = jobs.job_base()
    before = set(os.listdir(base))
    with RunningScorer(81) as pid:
        [folder] = set(os.listdir(base)) - before
        stat = (base / folder).stat()
        assert (stat.st_uid, oct(stat.st_mode & 0o777)) == (isolation.uid_for_job(81), "0o700")
        assert os.readlink(f"/proc/{pid}/cwd") == "/job"
    assert set(os.listdir(base)) == before
    assert oct(base.stat().st_mode & 0o777) == "0o700"


@pytest.mark.parametrize("missing", ["bwrap", "setpriv", "prlimit"])
def test_runner_refuses_when_a_tool_is_missing(monkeypatch, tmp_path, missing):
    monkeypatch.setitem(launcher.TOOLS, missing, str(tmp_path / "not-installed"))
    assert not isolation.isolation_available()
    with pytest.raises(isolation.IsolationUnavailable) as info:
        isolation.run_scorer(_probe_model_bytes(), f.toy_data(WIDTH)[0], "input", LIMITS, 1)
    assert missing in info.value.reason


def test_runner_refuses_without_a_seccomp_filter(monkeypatch, tmp_path):
    monkeypatch.setattr(launcher, "SECCOMP_PYTHONS", (str(tmp_path / "no-python"),))
    with pytest.raises(isolation.IsolationUnavailable) as info:
        isolation.run_scorer(_probe_model_bytes(), f.toy_data(WIDTH)[0], "input", LIMITS, 1)
    assert "seccomp" in info.value.reason


def test_runner_refuses_when_the_home_cannot_be_hidden():
    """A home that holds the interpreter (or lies inside a folder the scorer needs) would be
    visible in the jail: refuse rather than run with less."""
    _need_isolation()
    for home in (Path(sys.prefix), Path(sys.prefix) / "lib"):
        with pytest.raises(isolation.IsolationUnavailable) as info:
            isolation.run_scorer(_probe_model_bytes(), f.toy_data(WIDTH)[0], "input", LIMITS,
                                 1, hide=(home,))
        assert "home cannot be hidden" in info.value.reason


def test_development_setting_runs_unisolated_with_limits(monkeypatch, tmp_path):
    monkeypatch.setitem(launcher.TOOLS, "bwrap", str(tmp_path / "not-installed"))
    result = isolation.run_scorer(_probe_model_bytes(), f.toy_data(WIDTH)[0], "input", LIMITS, 1,
                                  allow_unisolated=True)
    assert result.outcome == "ok" and not result.isolated


def test_production_configuration_refuses_the_unisolated_setting():
    from portal.config import Settings
    from portal.errors import ConfigError

    with pytest.raises(ConfigError):
        Settings.from_env({"PORTAL_ENV": "production", "PORTAL_HOME": "/tmp/x",
                           "PORTAL_DEV_SIGN_IN": "false",
                           "PORTAL_SANDBOX_ALLOW_UNISOLATED": "true"})


@pytest.mark.parametrize("text,forbidden", [
    ("failed at /srv/portal/home/models/ab/abc.onnx", "/srv"),
    ("value 0.734512 at row 123456", "0.734512"),
    ("\x1b[1;31mred\x1b[m", "\x1b"),
])
def test_scrubbed_logs_hide_paths_numbers_and_control_characters(text, forbidden):
    assert forbidden not in isolation.scrub_log(text)


def test_scrubbed_logs_are_length_capped():
    assert len(isolation.scrub_log("word " * 10_000)) <= isolation.LOG_CAP + 20
