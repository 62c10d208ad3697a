"""Model intake: every check an uploaded model must pass before anything runs it.

Checks go by content, never by file name: the size is checked before the bytes are read in
full; the bytes must parse as an ONNX ModelProto and pass ``onnx.checker``; operator domains are
limited to the standard ones; external data, local functions and custom operators are refused;
the single graph input must match the task's name, element type and width; some output must give
one probability per row (``[N]``, ``[N,1]`` or ``[N,2]``, floating point). Pickle and joblib are
recognised by their magic bytes and refused with their own code (and never loaded).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import BinaryIO

import onnx
from onnx import TensorProto

from portal.errors import InvalidUpload

MAX_MODEL_BYTES = 200 * 1024 * 1024
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
_FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16}
_INPUT_TYPES = {"float32": TensorProto.FLOAT}
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class InputSpec:
    """What the task's model must accept: one input, this name, float32, ``[N, width]``."""

    name: str
    width: int
    dtype: str = "float32"


@dataclass(frozen=True)
class AcceptedModel:
    sha256: str
    size: int
    data: bytes
    opset: dict[str, int]
    producer: str


def read_capped(stream: BinaryIO, max_bytes: int = MAX_MODEL_BYTES) -> bytes:
    """Read at most ``max_bytes``; refuse (without reading further) anything larger.

    Raises InvalidUpload(code='model_too_large')."""
    chunks, total = [], 0
    while True:
        chunk = stream.read(min(_CHUNK, max_bytes + 1 - total))
        if not chunk:
            break
        total += len(chunk)
        if total > max_bytes:
            raise InvalidUpload("model_too_large",
                                f"The model is larger than the limit of {max_bytes // 2**20} MB.")
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse_known_formats(data: bytes) -> None:
    if not data:
        raise InvalidUpload("model_empty", "The uploaded file is empty.")
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise InvalidUpload("model_is_pickle", "Pickle and joblib files are never loaded; "
                            "export the model to ONNX (see the validation guide).")
    if data[:2] == b"PK":
        raise InvalidUpload("model_not_onnx", "The file is a ZIP archive, not an ONNX model.")
    if data[:2] == b"\x1f\x8b" or data[:3] == b"ZL\x00" or b"joblib" in data[:256]:
        raise InvalidUpload("model_is_pickle", "Compressed pickle/joblib files are never loaded; "
                            "export the model to ONNX.")


def _parse(data: bytes) -> onnx.ModelProto:
    try:
        model = onnx.load_from_string(data)
    except Exception:
        raise InvalidUpload("model_not_onnx", "The file is not a valid ONNX model.") from None
    if not model.HasField("graph") or not model.opset_import:
        raise InvalidUpload("model_not_onnx", "The file is not a valid ONNX model.")
    return model


def _walk_graphs(graph: onnx.GraphProto):
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _walk_graphs(attr.g)
            for sub in attr.graphs:
                yield from _walk_graphs(sub)


def _tensors(graph: onnx.GraphProto):
    yield from graph.initializer
    yield from (s.values for s in graph.sparse_initializer)
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t
            yield from attr.tensors


def _check_structure(model: onnx.ModelProto) -> None:
    if model.functions:
        raise InvalidUpload("model_has_functions", "Models may not define their own functions.")
    for opset in model.opset_import:
        if opset.domain not in STANDARD_DOMAINS:
            raise InvalidUpload("model_custom_domain",
                                "The model uses an operator domain that is not standard ONNX.")
    for graph in _walk_graphs(model.graph):
        for node in graph.node:
            if node.domain not in STANDARD_DOMAINS:
                raise InvalidUpload("model_custom_op",
                                    "The model uses a custom operator; only standard ONNX "
                                    "operators are allowed.")
        for tensor in _tensors(graph):
            if tensor.data_location == TensorProto.EXTERNAL or tensor.external_data:
                raise InvalidUpload("model_external_data",
                                    "The model refers to external data files; embed all "
                                    "weights in the model file.")
            _check_declared_size(tensor)


def _check_declared_size(tensor: onnx.TensorProto) -> None:
    """An initializer whose declared shape needs more data than it carries is refused."""
    count = 1
    for dim in tensor.dims:
        if dim < 0:
            raise InvalidUpload("model_invalid", "The model declares a negative tensor size.")
        count *= int(dim)
    if count > MAX_MODEL_BYTES:
        raise InvalidUpload("model_invalid",
                            "The model declares a tensor larger than the model file allows.")
    if tensor.raw_data:
        width = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize \
            if tensor.data_type not in (TensorProto.STRING, TensorProto.UNDEFINED) else 1
        if len(tensor.raw_data) != count * width:
            raise InvalidUpload("model_invalid",
                                "A tensor in the model declares a size its data does not have.")


def _checker(model: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(model, full_check=False)
    except Exception:
        raise InvalidUpload("model_check_failed",
                            "The model does not pass the ONNX checker.") from None


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str | None]:
    shape = value_info.type.tensor_type.shape
    if not value_info.type.tensor_type.HasField("shape"):
        return []
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in shape.dim]


def _check_input(model: onnx.ModelProto, spec: InputSpec) -> None:
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise InvalidUpload("model_input_mismatch",
                            f"The model must have exactly one input, named {spec.name!r}; "
                            f"it has {len(inputs)}.")
    value = inputs[0]
    if value.name != spec.name:
        raise InvalidUpload("model_input_mismatch",
                            f"The model's input must be named {spec.name!r}.")
    if not value.type.HasField("tensor_type") or \
            value.type.tensor_type.elem_type != _INPUT_TYPES[spec.dtype]:
        raise InvalidUpload("model_input_mismatch",
                            f"The model's input must be a {spec.dtype} tensor.")
    dims = _dims(value)
    if len(dims) != 2 or isinstance(dims[0], int) or dims[1] != spec.width:
        raise InvalidUpload("model_input_mismatch",
                            f"The model's input must have shape [N, {spec.width}] with N "
                            f"left open (a batch of rows with {spec.width} features each).")


def _check_outputs(model: onnx.ModelProto) -> None:
    for value in model.graph.output:
        if not value.type.HasField("tensor_type"):
            continue
        if value.type.tensor_type.elem_type not in _FLOAT_TYPES:
            continue
        dims = _dims(value)
        if len(dims) == 1 or len(dims) == 2 and dims[1] in (1, 2):
            return
    raise InvalidUpload("model_output_mismatch",
                        "No model output gives a probability per row: expected a floating "
                        "point output shaped [N], [N,1] or [N,2] (with skl2onnx, pass "
                        "options={id(model): {'zipmap': False}}).")


def check_model(data: bytes, spec: InputSpec, max_bytes: int = MAX_MODEL_BYTES) -> AcceptedModel:
    """Run every intake check on the bytes of an upload.

    Raises InvalidUpload with one of the codes ``model_too_large``, ``model_empty``,
    ``model_is_pickle``, ``model_not_onnx``, ``model_has_functions``, ``model_custom_domain``,
    ``model_custom_op``, ``model_external_data``, ``model_invalid``, ``model_check_failed``,
    ``model_input_mismatch``, ``model_output_mismatch``. Messages never echo file content."""
    if len(data) > max_bytes:
        raise InvalidUpload("model_too_large",
                            f"The model is larger than the limit of {max_bytes // 2**20} MB.")
    _refuse_known_formats(data)
    model = _parse(data)
    _check_structure(model)
    _checker(model)
    _check_input(model, spec)
    _check_outputs(model)
    return AcceptedModel(
        sha256=hashlib.sha256(data).hexdigest(), size=len(data), data=data,
        opset={o.domain or "ai.onnx": int(o.version) for o in model.opset_import},
        producer=f"{model.producer_name} {model.producer_version}".strip()[:80],
    )
