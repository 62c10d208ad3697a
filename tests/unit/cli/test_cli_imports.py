"""The `portal` command starts without loading the heavy libraries it does not use: building
the parser (what `portal --help` and every command do first) imports none of them."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("onnx", "onnxruntime", "sklearn", "polars", "streamlit", "pyarrow", "numpy", "duckdb",
         "pydantic", "pandas", "cryptography", "yaml", "skl2onnx")
PROBE = (
    "import json, sys\n"
    "import portal.cli\n"
    "portal.cli.build_parser()\n"
    "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
)


def _loaded(code: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    return set(json.loads(done.stdout))


def test_importing_the_cli_and_building_its_parser_loads_no_heavy_library():
    assert sorted(_loaded(PROBE) & set(HEAVY)) == []


def test_the_probe_sees_a_heavy_library_when_one_is_imported():
    assert "onnx" in _loaded("import onnx\n" + PROBE)
