"""TF Serving's REST predict format <-> signature tensors.

Request (https://www.tensorflow.org/tfx/serving/api_rest): a JSON object with either
- `instances` (row format): a list with one entry per example, each a value when the signature
  has one input, else an object {input name: value}; or
- `inputs` (columnar format): a list when the signature has one input, else {input name: list}.
String values may be base64 as {"b64": "..."}. Response: {"predictions": [...]} for rows,
{"outputs": ...} for columns; a single output gives its values, several give objects.

Inputs listed in `missing_values` may be left out (or sent as null) and take that value: the
`serving_raw` signature's missing markers, so a JSON client may omit a missing feature; there NaN
also means missing. Infinities, NaN elsewhere, and numbers outside the input's dtype are refused.
Every problem raises `RequestError` naming it.
"""
import base64
import binascii
import json
import math
from typing import Any, Collection, Dict, List, Mapping, Optional, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2  # pylint: disable=g-direct-tensorflow-import


class RequestError(ValueError):
    """A request the server rejects; `status` is the HTTP code."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def parse_version(text: Optional[str]) -> Optional[int]:
    """The `versions/{v}` path segment as a version number (None when the path has none)."""
    if text is None:
        return None
    if not text.isdigit():
        raise RequestError(f"version must be a positive integer, got {text!r}")
    return int(text)


async def read_body(request: Any, limit: int) -> bytes:
    """The request body, refused with 413 past `limit` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(f"request body of {declared} bytes exceeds this server's limit of "
                           f"{limit} bytes (--max_request_bytes)", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"request body exceeds this server's limit of {limit} bytes (--max_request_bytes)", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_predict_request(body: bytes, signature_names: Collection[str], default_signature: str,
                          model_name: str) -> Tuple[Any, str]:
    """(the JSON request, the signature it names) for a predict body."""
    try:
        request = json.loads(body)
    except ValueError as error:  # bad JSON or UTF-8, or an integer past Python's 4,300-digit conversion limit
        raise RequestError(f"malformed JSON request: {error}") from None
    except RecursionError:
        raise RequestError("malformed JSON request: nested too deeply") from None
    signature_name = (request.get("signature_name") if isinstance(request, dict) else None) or default_signature
    if not isinstance(signature_name, str):
        raise RequestError(f"'signature_name' must be a string, got {json_type(signature_name)}")
    if signature_name not in signature_names:
        raise RequestError(f"serving signature name {signature_name!r} not found in the signature "
                           f"defs of model {model_name!r}; available: {sorted(signature_names)}")
    return request, signature_name


def _convert(value: Any, name: str, spec: tf.TensorSpec, where: str, nan_allowed: bool = False) -> Any:
    """One JSON scalar for `spec` -> a Python value of its dtype (NaN only where `nan_allowed`)."""
    if spec.dtype == tf.string:
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise RequestError(f"{where}: invalid base64 in 'b64'") from None
        raise RequestError(f"{where}: expected a string or {{\"b64\": ...}} for {name} (DT_STRING), "
                           f"got {json_type(value)}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"{where}: expected a number for {name} ({dtype_name(spec.dtype)}), "
                           f"got {json_type(value)}")
    if isinstance(value, float) and math.isnan(value) and not nan_allowed:
        raise RequestError(f"{where}: NaN is not a value of {name} (only missing numbers of serving_raw take NaN)")
    if isinstance(value, float) and math.isinf(value):
        raise RequestError(f"{where}: {name} must be finite, got {value}")
    if spec.dtype.is_integer:
        if isinstance(value, float) and not value.is_integer():
            raise RequestError(f"{where}: expected an integer for {name}, got {value}")
        if not spec.dtype.min <= value <= spec.dtype.max:
            raise RequestError(f"{where}: {name} is outside the range of {dtype_name(spec.dtype)}")
        return int(value)
    try:
        number = float(value)
    except OverflowError:
        raise RequestError(f"{where}: {name} is too large for {dtype_name(spec.dtype)}") from None
    if abs(number) > spec.dtype.max:  # False for NaN, the missing marker
        raise RequestError(f"{where}: {name} is too large for {dtype_name(spec.dtype)}")
    return number


def json_type(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "a list",
             dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def dtype_name(dtype: tf.DType) -> str:
    return types_pb2.DataType.Name(dtype.as_datatype_enum)


def _column(values: List[Any], name: str, spec: tf.TensorSpec, missing: Mapping[str, Any], where: str) -> tf.Tensor:
    converted = []
    for i, value in enumerate(values):
        if value is None and name in missing:
            converted.append(missing[name])
        elif value is None:
            raise RequestError(f"{where}[{i}]: null for input {name}, which has no missing value")
        else:
            converted.append(_convert(value, name, spec, f"{where}[{i}]", nan_allowed=name in missing))
    if spec.dtype == tf.string:
        return tf.constant(np.array(converted, dtype=object), dtype=tf.string)
    return tf.constant(np.array(converted, dtype=spec.dtype.as_numpy_dtype), dtype=spec.dtype)


def decode(body: Any, inputs: Dict[str, tf.TensorSpec], missing: Mapping[str, Any],
           max_batch_size: int) -> Tuple[Dict[str, tf.Tensor], bool]:
    """The request's input tensors and whether it used the row (`instances`) format."""
    if not isinstance(body, dict):
        raise RequestError(f"request body must be a JSON object, got {json_type(body)}")
    unknown_keys = set(body) - {"instances", "inputs", "signature_name"}
    if unknown_keys:
        raise RequestError(f"unknown request key(s) {sorted(unknown_keys)}; expected 'instances' or 'inputs'")
    if ("instances" in body) == ("inputs" in body):
        raise RequestError("request must have exactly one of 'instances' (row format) or 'inputs' (columnar format)")
    row_format = "instances" in body
    columns = _rows_to_columns(body["instances"], inputs) if row_format else _columns(body["inputs"], inputs)
    sizes = {len(v) for v in columns.values()}
    if len(sizes) > 1:
        raise RequestError(f"inputs have different lengths: { {k: len(v) for k, v in columns.items()} }")
    batch = sizes.pop() if sizes else 0
    if batch == 0:
        raise RequestError("request has no examples")
    if batch > max_batch_size:
        raise RequestError(f"request has {batch} examples, more than this server's limit of {max_batch_size}", 413)
    absent = [name for name in inputs if name not in columns and name not in missing]
    if absent:
        raise RequestError(f"missing input(s) {absent}; this signature takes {sorted(inputs)}")
    where = "instances" if row_format else "inputs"
    tensors = {name: _column(columns.get(name, [None] * batch), name, spec, missing, f"{where}.{name}")
               for name, spec in inputs.items()}
    return tensors, row_format


def _rows_to_columns(instances: Any, inputs: Dict[str, tf.TensorSpec]) -> Dict[str, List[Any]]:
    if not isinstance(instances, list):
        raise RequestError(f"'instances' must be a list, got {json_type(instances)}")
    only = next(iter(inputs)) if len(inputs) == 1 else None
    columns: Dict[str, List[Any]] = {}
    for i, instance in enumerate(instances):
        if only is not None and not (isinstance(instance, dict) and set(instance) != {"b64"}):
            instance = {only: instance}
        if not isinstance(instance, dict):
            raise RequestError(f"instances[{i}] must be an object of named inputs, got {json_type(instance)}")
        unknown = set(instance) - set(inputs)
        if unknown:
            raise RequestError(f"instances[{i}] has unknown input(s) {sorted(unknown)}; "
                               f"this signature takes {sorted(inputs)}")
        for name in inputs:
            value = instance.get(name)
            if isinstance(value, list):
                raise RequestError(f"instances[{i}].{name}: expected one value per example, got a list")
            columns.setdefault(name, []).append(value)
    return columns


def _columns(inputs_value: Any, inputs: Dict[str, tf.TensorSpec]) -> Dict[str, List[Any]]:
    if isinstance(inputs_value, list) and len(inputs) == 1:
        inputs_value = {next(iter(inputs)): inputs_value}
    if not isinstance(inputs_value, dict):
        raise RequestError(f"'inputs' must be an object of named input lists, got {json_type(inputs_value)}")
    unknown = set(inputs_value) - set(inputs)
    if unknown:
        raise RequestError(f"unknown input(s) {sorted(unknown)}; this signature takes {sorted(inputs)}")
    for name, values in inputs_value.items():
        if not isinstance(values, list):
            raise RequestError(f"inputs.{name} must be a list with one value per example, got {json_type(values)}")
    return dict(inputs_value)


def _json_values(array: np.ndarray) -> List[Any]:
    if array.dtype == object:
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in array.tolist()]
    return [None if isinstance(v, float) and not math.isfinite(v) else v for v in array.tolist()]


def encode(outputs: Dict[str, tf.Tensor], row_format: bool) -> Dict[str, Any]:
    """The response body for the signature's `outputs`."""
    arrays = {name: np.asarray(t.numpy() if hasattr(t, "numpy") else t) for name, t in outputs.items()}
    if row_format:
        if len(arrays) == 1:
            return {"predictions": _json_values(next(iter(arrays.values())))}
        names = list(arrays)
        columns = [_json_values(arrays[n]) for n in names]
        return {"predictions": [dict(zip(names, row)) for row in zip(*columns)]}
    if len(arrays) == 1:
        return {"outputs": _json_values(next(iter(arrays.values())))}
    return {"outputs": {name: _json_values(a) for name, a in arrays.items()}}
