"""The label-reading attacks on validation reports, as plain functions: the score vectors (or
ONNX models) an attacker submits and the decoders that read labels back from a report.

Used by tests/unit/sandbox/test_disclosure.py (on the pure pipeline), by
tests/security/test_sandbox_hostile_models.py (real ONNX models through a real worker) and by
bench/bench_labels.py. Each decoder returns one guess (0/1) or None per target.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ONE_CASE_HIGH, ONE_CASE_LOW = 0.99, 0.01
BACKGROUND = 0.5


def code_offsets(k: int) -> np.ndarray:
    """Target j (0-based) gets the score 0.5 - 2^-(j+3), i.e. 0.5 - 2^-(k+2) for k = j + 1."""
    return 2.0 ** -(np.arange(k) + 3.0)


# ---- score vectors (what the models below output, row by row) -----------------------------

def one_case_scores(rows: int, target: int) -> np.ndarray:
    p = np.full(rows, ONE_CASE_LOW)
    p[target] = ONE_CASE_HIGH
    return p


def brier_code_scores(rows: int, targets: list[int]) -> np.ndarray:
    p = np.full(rows, BACKGROUND)
    p[np.asarray(targets)] = BACKGROUND - code_offsets(len(targets))
    return p.astype(np.float32).astype(float)  # what the scorer hands back


# ---- decoders -----------------------------------------------------------------------------

def read_one_case(report: dict[str, Any]) -> int | None:
    """The target's label from the threshold table: the only case at or above 0.5."""
    for row in (report.get("metrics") or {}).get("thresholds", []):
        counts = row.get("counts")
        if row.get("suppressed") or not counts or row["threshold"] > ONE_CASE_HIGH:
            continue
        if row["threshold"] > ONE_CASE_LOW and counts["tp"] + counts["fp"] == 1:
            return int(counts["tp"])
    return None


def decode_brier(report: dict[str, Any], k: int) -> list[int | None]:
    """Labels of the k coded targets from the Brier score: n * Brier = 0.25 n + sum_j s_j d_j
    + sum_j d_j^2 with s_j = +1 for a positive, -1 for a negative; greedy from the largest d."""
    overall = (report.get("metrics") or {}).get("overall") or {}
    brier = (overall.get("brier") or {}).get("value")
    if brier is None:
        return [None] * k
    n = overall["n"]
    d = code_offsets(k)
    rest = brier * n - BACKGROUND**2 * n - float(np.sum(d**2))
    guesses: list[int | None] = []
    for dj in d:
        sign = 1 if rest > 0 else -1
        guesses.append(1 if sign > 0 else 0)
        rest -= sign * dj
    return guesses


def read_added_case(report: dict[str, Any] | None,
                    previous: dict[str, Any] | None) -> list[int | None]:
    """The final-pair attack: this report scores one more case high than ``previous``; the
    difference of their true-positive counts at 0.5 is that case's label."""
    if report is None or previous is None:
        return [None]

    def tp(doc: dict[str, Any]) -> int | None:
        for row in (doc.get("metrics") or {}).get("thresholds", []):
            if row["threshold"] == 0.5 and not row.get("suppressed") and row.get("counts"):
                return int(row["counts"]["tp"])
        return None

    now, before = tp(report), tp(previous)
    return [now - before] if now is not None and before is not None else [None]


def correct(guesses: list[int | None], truth: list[int]) -> int:
    return sum(1 for g, t in zip(guesses, truth, strict=True) if g is not None and g == t)


def recovered_beyond_guessing(guesses: list[int | None], truth: list[int],
                              prevalence: float) -> float:
    """Correct guesses minus what guessing the majority class (from the held-out prevalence,
    which every report gives) gets right on average; about 0, or below, when the report tells
    nothing about these labels."""
    return correct(guesses, truth) - len(truth) * max(prevalence, 1 - prevalence)


# ---- ONNX models that compute those scores from a row's features --------------------------

def matching_model(width: int, targets: np.ndarray, scores: np.ndarray, default: float,
                   input_name: str = "input") -> bytes:
    """An ONNX model giving a row ``scores[j]`` when its features equal ``targets[j]`` (all
    ``width`` of them, to float32 precision) and ``default`` otherwise; output ``[N, 1]``."""
    from onnx import TensorProto, helper, numpy_helper

    targets = np.asarray(targets, dtype=np.float32)
    offsets = (np.asarray(scores, dtype=np.float64) - default).astype(np.float32)
    inits = [numpy_helper.from_array(targets[None, :, :], "targets"),
             numpy_helper.from_array(offsets.reshape(-1, 1), "offsets"),
             numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
             numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
             numpy_helper.from_array(np.array(1e-6, dtype=np.float32), "tolerance"),
             numpy_helper.from_array(np.array(default, dtype=np.float32), "default")]
    nodes = [helper.make_node("Unsqueeze", [input_name, "axis1"], ["x3"]),
             helper.make_node("Sub", ["x3", "targets"], ["diff"]),
             helper.make_node("Abs", ["diff"], ["absdiff"]),
             helper.make_node("ReduceSum", ["absdiff", "axis2"], ["distance"], keepdims=0),
             helper.make_node("Less", ["distance", "tolerance"], ["match"]),
             helper.make_node("Cast", ["match"], ["matchf"], to=TensorProto.FLOAT),
             helper.make_node("MatMul", ["matchf", "offsets"], ["shift"]),
             helper.make_node("Add", ["shift", "default"], ["probability"])]
    graph = helper.make_graph(
        nodes, "label-attack",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N", 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()
