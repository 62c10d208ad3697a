"""Start-up time of the `portal` command: each command line is run as a fresh process, and its
median wall time is compared with `python -c pass` measured in the same run (goal: at most
0.4 s per command). The answered query includes starting its jailed SQL worker, which a
one-shot command cannot keep warm."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_SECONDS = 0.4
REPEAT = 7
PORTAL = str(Path(sys.executable).with_name("portal"))


def _times(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(median, fastest) wall time of a fresh process running ``argv``, in seconds; the
    fastest run is the least disturbed by other work on a shared machine."""
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times)


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PORTAL_HOME": str(Path(tmp) / "home")}
        subprocess.run([PORTAL, "demo", "seed"], env=env, stdout=subprocess.DEVNULL, check=True)
        subprocess.run([PORTAL, "datasets", "build", "eunomia", "--user",
                        "staff@platform.example"], env=env, stdout=subprocess.DEVNULL,
                       check=True)
        baseline, base_min = _times([sys.executable, "-c", "pass"], env)
        print(f"cli: python -c pass median {baseline:.3f} s, fastest {base_min:.3f} s "
              f"(baseline, same run)")
        commands = {
            "portal --help": ["--help"],
            "portal query --help": ["query", "--help"],
            "portal query (refused: unknown user)": [
                "query", "--user", "nobody@example.org", "--dataset", "eunomia", "--sql",
                "SELECT 1"],
            "portal query (refused: no grant; loads the query engine)": [
                "query", "--user", "founder@gamma-ai.example", "--dataset", "eunomia", "--sql",
                "SELECT 1"],
            "portal query (answered: grant, jailed worker started, one query)": [
                "query", "--user", "analyst@acme-health.example", "--dataset", "eunomia",
                "--sql", "SELECT count(*) FROM person"],
            "portal access list": ["access", "list"],
            "portal audit verify": ["audit", "verify"],
        }
        for label, args in commands.items():
            took, fastest = _times([PORTAL, *args], env)
            verdict = "within" if took <= GOAL_SECONDS else "OVER"
            print(f"cli: {label} median {took:.3f} s = {took / baseline:.1f}x python -c pass "
                  f"(+{took - baseline:.3f} s), fastest {fastest:.3f} s = "
                  f"{fastest / base_min:.1f}x; median {verdict} the {GOAL_SECONDS} s goal")


if __name__ == "__main__":
    main(sys.argv[1:])
