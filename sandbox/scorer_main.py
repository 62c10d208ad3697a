"""The one-shot scorer: the only program that ever runs an uploaded model.

It runs inside isolation (see ``sandbox.isolation``): no network, an unprivileged uid, rlimits and
an empty private working directory. The parent writes ``model.onnx`` (already through intake)
before starting it; the scorer loads the model, then waits for ``go`` on standard input, which
the parent sends once it has written the other two inputs:

- ``features.f32`` the feature matrix, float32, row-major;
- ``meta.json``    ``{"rows": N, "columns": D, "input_name": "..."}``.

Scoring uses one thread, so the same model on the same inputs gives the same predictions.

It writes ``predictions.f32`` (N float32 probabilities of the positive class) and exits 0, or
exits with one of the codes below. It never sees labels. It imports nothing from the portal, so
that nothing trusted is loaded into the process that runs untrusted code.
"""

from __future__ import annotations

import json
import os
import sys

EXIT_OK = 0
EXIT_INVALID_MODEL = 10
EXIT_RUN_FAILED = 11
EXIT_OUT_OF_MEMORY = 12
EXIT_BAD_OUTPUT = 13
EXIT_BAD_INPUT_FILES = 14

_MEMORY_WORDS = ("bad_alloc", "failed to allocate", "out of memory", "memoryerror",
                 "cannot allocate")


def _fail(code: int, message: str) -> None:
    sys.stderr.write(message[:2000] + "\n")
    sys.stderr.flush()
    os._exit(code)


def _is_memory_error(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return isinstance(exc, MemoryError) or any(word in text for word in _MEMORY_WORDS)


def _probabilities(outputs: list, rows: int):  # -> numpy array
    import numpy as np

    for out in outputs:
        arr = np.asarray(out)
        if arr.dtype.kind != "f":
            continue
        if arr.shape == (rows,):
            return arr
        if arr.ndim == 2 and arr.shape[0] == rows and arr.shape[1] in (1, 2):
            return arr[:, arr.shape[1] - 1]
    shapes = ", ".join(f"{np.asarray(o).dtype}{list(np.asarray(o).shape)}" for o in outputs)
    _fail(EXIT_BAD_OUTPUT, f"no output gives one probability per row (got {shapes})")
    return None


def _read_inputs():  # -> (features, input_name)
    import numpy as np

    if sys.stdin.readline().strip() != "go":  # the parent gave up before handing inputs over
        os._exit(EXIT_BAD_INPUT_FILES)
    try:
        with open("meta.json", encoding="utf-8") as fh:
            meta = json.load(fh)
        rows, columns = int(meta["rows"]), int(meta["columns"])
        features = np.fromfile("features.f32", dtype=np.float32).reshape(rows, columns)
        return features, str(meta["input_name"])
    except Exception as exc:  # the parent wrote these; failing here is a platform fault
        _fail(EXIT_BAD_INPUT_FILES, f"input files unreadable: {type(exc).__name__}")
        raise


def main() -> None:
    """Load the model first (while the parent may still build the features), then wait for
    the parent's ``go`` on standard input, read the inputs and score."""
    import onnxruntime as ort

    ort.disable_telemetry_events()
    with open("model.onnx", "rb") as fh:
        model_bytes = fh.read()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model_bytes, sess_options=options,
                                       providers=["CPUExecutionProvider"])
    except Exception as exc:
        _fail(EXIT_OUT_OF_MEMORY if _is_memory_error(exc) else EXIT_INVALID_MODEL,
              f"model could not be loaded: {type(exc).__name__}: {exc}")
        return
    features, input_name = _read_inputs()
    rows = features.shape[0]
    import numpy as np
    try:
        outputs = session.run(None, {input_name: features})
    except Exception as exc:
        _fail(EXIT_OUT_OF_MEMORY if _is_memory_error(exc) else EXIT_RUN_FAILED,
              f"model failed while scoring: {type(exc).__name__}: {exc}")
        return
    probabilities = _probabilities(outputs, rows)
    np.ascontiguousarray(probabilities, dtype=np.float32).tofile("predictions.f32")
    sys.stdout.flush()
    os._exit(EXIT_OK)


if __name__ == "__main__":
    main()
