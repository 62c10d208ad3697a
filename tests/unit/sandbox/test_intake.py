"""Intake checks on real ONNX bytes: good models pass; everything else is refused by content
with a stable code and a message that echoes nothing from the file."""

from __future__ import annotations

import io

import numpy as np
import pytest

from portal.errors import InvalidUpload
from sandbox import intake
from tests.unit.sandbox import factories as f

SPEC = intake.InputSpec("input", 5)


def _lr(name: str = "input", width: int = 5) -> bytes:
    X, y = f.toy_data(width)
    return f.logistic_onnx(X, y, name)


def test_sklearn_model_exported_without_zipmap_is_accepted_with_its_hash():
    data = _lr()
    accepted = intake.check_model(data, SPEC)
    assert accepted.size == len(data) and len(accepted.sha256) == 64
    assert accepted.producer.startswith("skl2onnx")


def test_gradient_boosting_model_is_accepted():
    from sklearn.ensemble import GradientBoostingClassifier

    X, y = f.toy_data(5)
    model = GradientBoostingClassifier(n_estimators=10).fit(X, y)
    assert intake.check_model(f.sklearn_onnx(model, 5), SPEC).size > 0


@pytest.mark.parametrize("build,code", [
    (lambda: f.pickle_bytes(), "model_is_pickle"),
    (lambda: np.random.default_rng(0).bytes(4096), "model_not_onnx"),
    (lambda: _lr()[:200], "model_not_onnx"),
    (lambda: b"", "model_empty"),
    (lambda: f.external_data_model(5, "../../etc/passwd"), "model_external_data"),
    (lambda: f.external_data_model(5, "/etc/passwd"), "model_external_data"),
    (lambda: f.custom_op_model(5), "model_custom_domain"),
    (lambda: f.huge_initializer_model(5), "model_invalid"),
    (lambda: _lr(name="features"), "model_input_mismatch"),
    (lambda: _lr(width=4), "model_input_mismatch"),
    (lambda: f.wrong_type_model(5), "model_input_mismatch"),
    (lambda: f.label_output_model(5), "model_output_mismatch"),
], ids=["pickle-renamed", "random-bytes", "truncated", "empty", "external-relative",
        "external-absolute", "custom-op", "huge-initializer", "wrong-input-name",
        "wrong-width", "wrong-type", "label-output"])
def test_hostile_or_wrong_models_are_refused_with_a_clear_code(build, code):
    with pytest.raises(InvalidUpload) as exc:
        intake.check_model(build(), SPEC)
    assert exc.value.code == code
    assert "passwd" not in exc.value.message and "etc/" not in exc.value.message


def test_model_with_a_zipmap_output_only_is_refused():
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    X, y = f.toy_data(5)
    model = LogisticRegression().fit(X, y)
    onx = to_onnx(model, initial_types=[("input", FloatTensorType([None, 5]))],
                  target_opset=17)  # default: label + ZipMap probabilities
    with pytest.raises(InvalidUpload) as exc:
        intake.check_model(onx.SerializeToString(), SPEC)
    assert exc.value.code == "model_output_mismatch"


def test_custom_op_inside_a_subgraph_is_refused():
    import onnx
    from onnx import TensorProto, helper

    inner = helper.make_graph([helper.make_node("Evil", ["x"], ["y"], domain="")], "then",
                              [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = onnx.load_from_string(f.graph_model(5, "sigmoid"))
    inner.node[0].domain = "com.evil"
    model.graph.node.append(helper.make_node("If", ["c"], ["unused"], then_branch=inner,
                                             else_branch=inner))
    with pytest.raises(InvalidUpload) as exc:
        intake.check_model(model.SerializeToString(), SPEC)
    # found by the walk into the If's branches, before the ONNX checker runs
    assert exc.value.code == "model_custom_op"


def test_size_cap_is_checked_while_streaming_without_reading_everything():
    class Endless(io.RawIOBase):
        def __init__(self):
            self.served = 0

        def readable(self):
            return True

        def read(self, n=-1):
            n = 1 << 20 if n is None or n < 0 else n
            self.served += n
            return b"\0" * n

    stream = Endless()
    with pytest.raises(InvalidUpload) as exc:
        intake.read_capped(stream, max_bytes=5 * 1024 * 1024)
    assert exc.value.code == "model_too_large"
    assert stream.served <= 5 * 1024 * 1024 + 1


def test_two_gigabyte_sparse_upload_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "huge.onnx"
    with open(big, "wb") as fh:
        fh.truncate(2 * 1024**3)  # sparse: no 2 GB on disk or in memory
    with open(big, "rb") as fh:
        with pytest.raises(InvalidUpload) as exc:
            intake.read_capped(fh)
        assert fh.tell() <= intake.MAX_MODEL_BYTES + 1  # outside the raises: it can fail
    assert exc.value.code == "model_too_large"
    assert big.stat().st_blocks * 512 < 1024 * 1024
