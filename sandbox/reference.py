"""The platform's reference model for a task: a standardised logistic regression fitted on the
dev partition (never on held-out rows), exported to ONNX by hand.

The graph is ``sigmoid(((x - mean) / scale) @ coef + intercept)`` with plain standard operators,
so building it needs only scikit-learn and onnx (both runtime dependencies), not a converter.
It goes through the same intake checks and isolated scoring as any team's model.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NAME = "Platform reference (logistic regression)"
VERSION = "1"
OPSET = 17


def fit(features: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Standardise and fit an L2 logistic regression; returns the graph's parameters."""
    from sklearn.linear_model import LogisticRegression

    x = np.nan_to_num(np.asarray(features, dtype=float))
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(max_iter=2000, random_state=seed).fit((x - mean) / scale,
                                                                      np.asarray(labels, int))
    return {"mean": mean, "scale": scale, "coef": model.coef_[0], "intercept": model.intercept_}


def to_onnx(params: dict[str, np.ndarray], input_name: str = "input") -> bytes:
    """The ONNX bytes of the fitted model: one float32 input ``[N, width]``, output ``[N, 1]``."""
    width = len(params["mean"])
    f32 = {k: np.asarray(v, dtype=np.float32) for k, v in params.items()}
    inits = [numpy_helper.from_array(f32["mean"], "mean"),
             numpy_helper.from_array(f32["scale"], "scale"),
             numpy_helper.from_array(f32["coef"].reshape(width, 1), "coef"),
             numpy_helper.from_array(f32["intercept"].reshape(1), "intercept")]
    nodes = [helper.make_node("Sub", [input_name, "mean"], ["centred"]),
             helper.make_node("Div", ["centred", "scale"], ["standardised"]),
             helper.make_node("MatMul", ["standardised", "coef"], ["logit_raw"]),
             helper.make_node("Add", ["logit_raw", "intercept"], ["logit"]),
             helper.make_node("Sigmoid", ["logit"], ["probability"])]
    graph = helper.make_graph(
        nodes, "reference_logistic_regression",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N", 1])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="accelerator-portal-reference")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def build(features: np.ndarray, labels: np.ndarray, input_name: str = "input") -> bytes:
    """Fit on dev rows and export (see the module docstring)."""
    return to_onnx(fit(features, labels), input_name)


def model_card(task_title: str, dataset: str, release_version: str) -> dict[str, str]:
    """The reference model's model card (the four required fields)."""
    return {"name": NAME, "version": VERSION,
            "intended_use": f"A published baseline for the task '{task_title}': teams compare "
                            "their models with it on the leaderboard. Not for clinical use.",
            "training_data": f"The dev partition of {dataset} release {release_version} "
                             "(no held-out rows), with the task's published feature and label "
                             "SQL; features standardised, L2 logistic regression."}
