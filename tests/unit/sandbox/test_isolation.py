"""The isolated scorer: really isolated, contained, classified, and refusing without
isolation unless the development setting allows it."""

from __future__ import annotations

import os

import numpy as np
import pytest

from sandbox import isolation
from tests.conftest import require_or_skip
from tests.unit.sandbox import factories as f

LIMITS = isolation.Limits(wall_seconds=20, memory_mb=1024)


def _need_isolation():
    require_or_skip(isolation.isolation_available(), "PORTAL_REQUIRE_ISOLATION",
                    "OS isolation (unshare --net, setpriv as root) is not available here")


def _probe_model_bytes() -> bytes:
    X, y = f.toy_data(4)
    return f.logistic_onnx(X, y)


def test_scorer_returns_the_same_probabilities_as_in_process_onnxruntime():
    _need_isolation()
    import onnxruntime as ort

    X, y = f.toy_data(4, rows=500)
    data = f.logistic_onnx(X, y)
    result = isolation.run_scorer(data, X, "input", LIMITS, job_id=1)
    assert result.outcome == "ok" and result.isolated
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    expected = session.run(None, {"input": X})[1][:, 1]
    assert np.array_equal(result.predictions.astype(np.float32), expected)


def test_scorer_process_has_no_network_and_an_unprivileged_uid(tmp_path):
    """Run the same wrapper the scorer uses with a probe program instead of the scorer."""
    _need_isolation()
    import subprocess
    import sys

    uid = isolation.uid_for_job(77)
    wrapper = isolation._wrapper(isolation._tool("unshare"), isolation._tool("setpriv"), uid)
    probe = ("import os,socket\n"
             "s=socket.socket()\n"
             "try:\n s.connect(('127.0.0.1',22)); print('net-ok')\n"
             "except OSError as e: print('net-error', e.errno)\n"
             "print('uid', os.getuid(), os.getgid(), os.getgroups())\n"
             "try:\n open('/root/probe','w'); print('root-writable')\n"
             "except OSError: print('root-denied')\n")
    out = subprocess.run([*wrapper, sys.executable, "-I", "-c", probe], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    assert "net-ok" not in out and "net-error 101" in out
    assert f"uid {uid} {uid} []" in out
    assert "root-denied" in out


def test_work_folder_is_removed_and_private_while_in_use():
    _need_isolation()
    base = isolation._work_base()
    before = set(os.listdir(base))
    result = isolation.run_scorer(_probe_model_bytes(), f.toy_data(4)[0], "input", LIMITS, 5)
    assert result.outcome == "ok"
    assert set(os.listdir(base)) == before
    assert oct(base.stat().st_mode & 0o777) == "0o711"


def test_runner_refuses_when_isolation_is_unavailable_and_not_allowed(monkeypatch):
    monkeypatch.setitem(isolation._probe_cache, "ok", False)
    with pytest.raises(isolation.IsolationUnavailable):
        isolation.run_scorer(_probe_model_bytes(), f.toy_data(4)[0], "input", LIMITS, 1)


def test_development_setting_runs_unisolated_with_limits(monkeypatch):
    monkeypatch.setitem(isolation._probe_cache, "ok", False)
    result = isolation.run_scorer(_probe_model_bytes(), f.toy_data(4)[0], "input", LIMITS, 1,
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


def test_hidden_folders_are_empty_and_unreadable_to_the_scorer(tmp_path):
    """The portal's home is hidden behind an empty tmpfs in the scorer's mount namespace."""
    _need_isolation()
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    (home / "holdout.duckdb").write_text("secret rows")
    os.chmod(home, 0o755)
    os.chmod(home / "holdout.duckdb", 0o644)
    os.chmod(tmp_path, 0o755)
    uid = isolation.uid_for_job(78)
    wrapper = isolation._wrapper(isolation._tool("unshare"), isolation._tool("setpriv"), uid,
                                 (home,))
    probe = (f"import os\ntry:\n print('listing', os.listdir({str(home)!r}))\n"
             f"except OSError as e: print('list-denied')\n"
             f"try:\n print(open({str(home / 'holdout.duckdb')!r}).read())\n"
             f"except OSError: print('read-denied')\n")
    out = subprocess.run([*wrapper, sys.executable, "-I", "-c", probe], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    assert "secret rows" not in out and "read-denied" in out
    assert "holdout.duckdb" not in out
    assert (home / "holdout.duckdb").read_text() == "secret rows"  # untouched on the host


def test_folders_holding_the_interpreter_are_never_hidden_from_the_scorer(tmp_path):
    """A checkout (and its virtual environment) may live under /tmp or /var/tmp: hiding that
    folder would leave the scorer without Python."""
    import sys
    from pathlib import Path

    from sandbox.isolation import hideable

    prefix = Path(sys.prefix).resolve()
    assert hideable((prefix, prefix.parent, tmp_path, tmp_path / "missing")) == (tmp_path,)
