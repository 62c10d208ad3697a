"""Plain factory functions for sandbox tests: real ONNX models, built in the test process.

Well-formed models come from scikit-learn through skl2onnx; hostile ones are crafted with
onnx.helper, each exactly as the issue describes it.
"""

from __future__ import annotations

import pickle

import numpy as np
import onnx
from onnx import TensorProto, helper

OPSET = [helper.make_opsetid("", 17)]


def sklearn_onnx(estimator, width: int, input_name: str = "input") -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    model = to_onnx(estimator, initial_types=[(input_name, FloatTensorType([None, width]))],
                    options={id(estimator): {"zipmap": False}}, target_opset=17)
    return model.SerializeToString()


def logistic_onnx(X: np.ndarray, y: np.ndarray, input_name: str = "input") -> bytes:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    return sklearn_onnx(estimator, X.shape[1], input_name)


def toy_data(width: int, rows: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, width)).astype(np.float32)
    y = (X[:, 0] + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    return X, y


def _model(nodes, inputs, outputs, initializers=(), opset=None, **kw) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=opset or OPSET, **kw)


def _input(width: int, name: str = "input", elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, ["N", width])


def graph_model(width: int, body: str, input_name: str = "input") -> bytes:
    """A model whose probability output is computed by ``body``:
    ``sigmoid`` (a valid model), ``nan``, ``inf``, ``constant`` or ``above_one``."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [width, 1], [1.0] + [0.0] * (width - 1))
    nodes = [helper.make_node("MatMul", [input_name, "w"], ["z"])]
    inits = [w]
    if body == "sigmoid":
        nodes.append(helper.make_node("Sigmoid", ["z"], ["probability"]))
    else:
        value = {"nan": float("nan"), "inf": float("inf"), "constant": 0.25,
                 "above_one": 3.0}[body]
        inits.append(helper.make_tensor("k", TensorProto.FLOAT, [], [value]))
        inits.append(helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]))
        nodes.append(helper.make_node("Mul", ["z", "zero"], ["z0"]))
        nodes.append(helper.make_node("Add", ["z0", "k"], ["probability"]))
    out = helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N", 1])
    return _model(nodes, [_input(width, input_name)], [out], inits).SerializeToString()


def label_output_model(width: int) -> bytes:
    """Outputs an int64 label per row instead of a probability."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [width, 1], [1.0] * width)
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    nodes = [helper.make_node("MatMul", ["input", "w"], ["z"]),
             helper.make_node("Greater", ["z", "zero"], ["b"]),
             helper.make_node("Cast", ["b"], ["label"], to=TensorProto.INT64)]
    out = helper.make_tensor_value_info("label", TensorProto.INT64, ["N", 1])
    return _model(nodes, [_input(width)], [out], [w, zero]).SerializeToString()


def wrong_type_model(width: int) -> bytes:
    nodes = [helper.make_node("Cast", ["input"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["f"], ["m"], keepdims=1, axes=[1]),
             helper.make_node("Sigmoid", ["m"], ["probability"])]
    out = helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N", 1])
    return _model(nodes, [_input(width, elem=TensorProto.DOUBLE)], [out],
                  opset=[helper.make_opsetid("", 13)]).SerializeToString()


def external_data_model(width: int, location: str) -> bytes:
    """A valid-looking model whose weight lives in an external file at ``location``."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [width, 1], [0.0] * width)
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(4 * width))):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    nodes = [helper.make_node("MatMul", ["input", "w"], ["z"]),
             helper.make_node("Sigmoid", ["z"], ["probability"])]
    out = helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N", 1])
    return _model(nodes, [_input(width)], [out], [w]).SerializeToString()


def custom_op_model(width: int) -> bytes:
    nodes = [helper.make_node("Evil", ["input"], ["probability"], domain="com.evil")]
    out = helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N", 1])
    return _model(nodes, [_input(width)], [out],
                  opset=[*OPSET, helper.make_opsetid("com.evil", 1)]).SerializeToString()


def huge_initializer_model(width: int) -> bytes:
    """An initializer declaring 10^12 elements but carrying 4 bytes."""
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1_000_000, 1_000_000],
                    raw_data=b"\x00\x00\x00\x00")
    nodes = [helper.make_node("Identity", ["input"], ["x"]),
             helper.make_node("Sigmoid", ["x"], ["probability"])]
    out = helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N", width])
    return _model(nodes, [_input(width)], [out], [w]).SerializeToString()


def constant_of_shape_bomb(width: int = 1) -> bytes:
    """A tiny model whose output asks for 40 GB (ConstantOfShape of 10^10 float32)."""
    shape = helper.make_tensor("shape", TensorProto.INT64, [1], [10_000_000_000])
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["probability"])]
    out = helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N"])
    model = _model(nodes, [_input(width)], [out], [shape])
    return model.SerializeToString()


def endless_loop_model(width: int) -> bytes:
    """A Loop with no trip count whose condition stays true forever."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Identity", ["v_in"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, ["N", width])])
    true = helper.make_tensor("true", TensorProto.BOOL, [], [True])
    nodes = [helper.make_node("Loop", ["", "true", "input"], ["v_final"], body=body),
             helper.make_node("ReduceMean", ["v_final"], ["m"], keepdims=1, axes=[1]),
             helper.make_node("Sigmoid", ["m"], ["probability"])]
    out = helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N", 1])
    return _model(nodes, [_input(width)], [out], [true],
                  opset=[helper.make_opsetid("", 13)]).SerializeToString()


def pickle_bytes() -> bytes:
    from sklearn.linear_model import LogisticRegression

    X, y = toy_data(3)
    return pickle.dumps(LogisticRegression().fit(X, y), protocol=4)


MODEL_CARD = {"name": "test model", "version": "1.0", "intended_use": "testing the sandbox",
              "training_data": "synthetic rows generated in the test"}
