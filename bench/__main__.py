"""Run every benchmark module (``bench/bench_*.py``), or those named: ``python -m bench release``.

Arguments after ``--`` are passed to each benchmark's ``main(argv)``, e.g.
``python -m bench release -- --persons 100000``.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path


def available() -> list[str]:
    folder = Path(__file__).resolve().parent
    return sorted(p.stem.removeprefix("bench_") for p in folder.glob("bench_*.py"))


def main(argv: list[str]) -> int:
    names, rest = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv \
        else (argv, [])
    known = available()
    chosen = [n.removeprefix("bench_") for n in names] or known
    unknown = [n for n in chosen if n not in known]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(known)}",
              file=sys.stderr)
        return 2
    for name in chosen:
        print(f"== bench {name} ==", flush=True)
        started = time.perf_counter()
        module = importlib.import_module(f"bench.bench_{name}")
        module.main(list(rest))
        print(f"== bench {name}: {time.perf_counter() - started:.1f}s ==", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
