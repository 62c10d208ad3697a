"""The jail launcher itself, run for real: what a jailed program can do (system calls, files,
network) and what it is refused, and the refusals when a part of the jail is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from portal import isolation
from portal.isolation import binds, launcher, probe
from tests.conftest import require_or_skip

# Each line: a name and a system call a jailed program must be refused (errno, not success).
_SYSCALLS = r"""
import ctypes, errno, json, os, socket
libc = ctypes.CDLL(None, use_errno=True)
out = {}
def call(name, fn):
    ctypes.set_errno(0)
    result = fn()
    out[name] = ctypes.get_errno() if result == -1 else "allowed"
call("unshare(CLONE_NEWUSER)", lambda: libc.unshare(0x10000000))
call("unshare(CLONE_NEWNET)", lambda: libc.unshare(0x40000000))
call("mount", lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
call("ptrace(TRACEME)", lambda: libc.ptrace(0, 0, None, None))
call("personality", lambda: libc.personality(0x0040000))
call("keyctl", lambda: libc.syscall(250, 0, 0, 0, 0, 0))
call("bpf", lambda: libc.syscall(321, 0, 0, 0))
call("io_uring_setup", lambda: libc.syscall(425, 1, 0))
call("userfaultfd", lambda: libc.syscall(323, 0))
call("perf_event_open", lambda: libc.syscall(298, 0, 0, -1, -1, 0))
for family in ("AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"):
    try:
        socket.socket(getattr(socket, family), socket.SOCK_DGRAM).close()
        out[f"socket({family})"] = "allowed"
    except OSError as exc:
        out[f"socket({family})"] = exc.errno
a, b = socket.socketpair()  # AF_UNIX stays allowed (Python and DuckDB use it)
out["threads"] = __import__("threading").Thread(target=lambda: None).start() is None
print(json.dumps(out))
"""


def _need_isolation():
    require_or_skip(isolation.available(), "PORTAL_REQUIRE_ISOLATION",
                    "isolation (bubblewrap, setpriv, prlimit, python3-seccomp, root) is not "
                    "available here")


def _jail(**changes) -> isolation.Jail:
    spec = {"uid": 150_002, "gid": 150_002, "packages": (),
            "rlimits": isolation.Rlimits(file_size_bytes=1 << 20, address_space_mb=1024,
                                         cpu_seconds=30)}
    return isolation.Jail(**{**spec, **changes})


def _run(jail: isolation.Jail, code: str, *args: str) -> subprocess.CompletedProcess:
    start = isolation.launch(jail, [isolation.python(), "-I", "-c", code, *args])
    try:
        return subprocess.run(start.argv, pass_fds=start.pass_fds, capture_output=True,
                              text=True, timeout=60, check=False)
    finally:
        start.close()


def test_a_jailed_program_is_refused_the_dangerous_system_calls():
    _need_isolation()
    done = _run(_jail(), _SYSCALLS)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out.pop("threads") is True
    allowed = sorted(name for name, result in out.items() if result == "allowed")
    assert allowed == []


def test_a_jailed_program_sees_only_its_own_files_and_writes_only_its_folder(tmp_path):
    _need_isolation()
    job = tmp_path / "job"
    job.mkdir(mode=0o700)
    os.chown(job, 150_002, 150_002)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the job")
    given = tmp_path / "given.txt"
    given.write_text("the one input")
    code = ("import os, sys, json; out = {}\n"
            "out['given'] = open('/in/given.txt').read()\n"
            "out['secret'] = os.path.exists(sys.argv[1])\n"
            "out['etc'] = os.path.exists('/etc')\n"
            "open('/job/out.txt', 'w').write('written')\n"
            "for place in ('/in/given.txt', '/usr/x', '/x', '/tmp/x'):\n"
            "    try:\n        open(place, 'w'); out[place] = 'written'\n"
            "    except OSError as e:\n        out[place] = e.errno\n"
            "print(json.dumps(out))")
    done = _run(_jail(files=(isolation.Bind(given, "/in/given.txt"),), workdir=job), code,
                str(secret))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out.pop("given"), out.pop("secret"), out.pop("etc")) == ("the one input", False,
                                                                      False)
    assert "written" not in out.values()
    assert (job / "out.txt").read_text() == "written"
    assert (job / "out.txt").stat().st_uid == 150_002
    assert given.read_text() == "the one input"


def test_a_program_that_writes_past_its_file_size_limit_is_stopped(tmp_path):
    _need_isolation()
    job = tmp_path / "job"
    job.mkdir(mode=0o700)
    os.chown(job, 150_002, 150_002)
    done = _run(_jail(workdir=job),
                "import signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
                "f = open('/job/big', 'wb')\n"
                "try:\n    f.write(b'x' * (2 << 20)); f.flush(); print('wrote')\n"
                "except OSError as e:\n    print('refused', e.errno)")
    assert done.stdout.startswith("refused")
    assert (job / "big").stat().st_size <= 1 << 20


@pytest.mark.parametrize("missing", ["bwrap", "setpriv", "prlimit"])
def test_a_missing_tool_is_a_refusal_naming_it(monkeypatch, tmp_path, missing):
    monkeypatch.setitem(launcher.TOOLS, missing, str(tmp_path / "absent"))
    with pytest.raises(isolation.IsolationUnavailable) as info:
        isolation.launch(_jail(), ["/bin/true"])
    assert missing in info.value.reason
    assert missing in probe.unavailable_reason()  # the probe runs the same launcher


def test_no_seccomp_binding_is_a_refusal(monkeypatch, tmp_path):
    monkeypatch.setattr(launcher, "SECCOMP_PYTHONS", (str(tmp_path / "no-python"),))
    with pytest.raises(isolation.IsolationUnavailable) as info:
        isolation.verify(_jail())
    assert "seccomp" in info.value.reason


def test_a_hidden_folder_that_the_jail_needs_is_a_refusal():
    _need_isolation()
    for hidden in (Path(sys.prefix), Path(sys.prefix).parent, Path(sys.prefix) / "lib"):
        with pytest.raises(isolation.IsolationUnavailable) as info:
            isolation.verify(_jail(hidden=(hidden,), packages=("numpy",)))
        assert "home cannot be hidden" in info.value.reason
    isolation.verify(_jail(hidden=(Path(sys.prefix) / "lib",)))  # no package from there


def test_the_probe_fails_when_the_jail_would_show_less_than_promised(monkeypatch):
    """The probe checks the report of a program started by the real launcher: a jail that
    shared the host's network namespace would be caught."""
    _need_isolation()
    report = {"ns": {n: os.readlink(f"/proc/self/ns/{n}") for n in probe.NAMESPACES},
              "uid": probe.PROBE_UID, "gid": probe.PROBE_UID, "groups": [],
              "CapEff": "0" * 16, "CapPrm": "0" * 16, "NoNewPrivs": "1", "Seccomp": "2",
              "network": 101, "hidden_visible": False, "root_writable": False}
    assert "namespaces shared" in probe._verify(report, Path("/nonexistent"))


def test_distributions_bind_each_package_with_its_requirements_and_nothing_else():
    found = {Path(b.dest).name for b in binds.distributions(("onnxruntime",))}
    assert {"onnxruntime", "numpy"} <= found  # numpy: a requirement of onnxruntime
    assert not found & {"duckdb", "pyarrow", "sklearn", "portal"}
    assert not [n for n in found if n.endswith(".pth") or n.startswith("__editable__")]
    with pytest.raises(Exception):
        binds.distributions(("no-such-distribution-here",))


def test_job_folders_of_dead_processes_are_swept_and_live_ones_kept(tmp_path):
    from portal.isolation import jobs

    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = tmp_path / f"job-{gone.pid}-abc123"
    stale.mkdir()
    (stale / "predictions.f32").write_bytes(b"\0" * 8)
    live = tmp_path / f"job-{os.getpid()}-abc123"
    live.mkdir()
    stray = tmp_path / "not-a-job-folder"
    stray.write_text("x")
    assert jobs.sweep_job_folders(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name]


def test_a_prefetched_probe_runs_once_and_is_the_answer_the_first_caller_waits_for(
        monkeypatch):
    import time

    calls = []

    def slow_probe():
        calls.append(1)
        time.sleep(0.3)
        return "bwrap is not installed"

    monkeypatch.setattr(probe, "_run_probe", slow_probe)
    monkeypatch.setattr(probe, "_cache", {})
    monkeypatch.setattr(probe, "_pending", {})
    probe.prefetch()
    probe.prefetch()
    assert probe.unavailable_reason() == "bwrap is not installed"  # waits, never skips
    assert probe.unavailable_reason() == "bwrap is not installed" and calls == [1]
