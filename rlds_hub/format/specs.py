"""dm_env specs as JSON (dataset metadata, spec comparison on append), and specs inferred
from example values (``step_fn`` / ``episode_fn`` outputs).

No TensorFlow: only NumPy and ``dm_env.specs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from dm_env import specs as dm_specs


class SpecError(ValueError):
    """A spec or value that rlds_hub cannot store, or that does not match the dataset."""


def spec_to_json(spec: Any) -> Any:
    """Encodes a nested dm_env spec as JSON-compatible data (bounds included)."""
    if isinstance(spec, dm_specs.StringArray):
        return {
            "kind": "string",
            "shape": list(spec.shape),
            "string_type": "bytes" if spec.string_type is bytes else "str",
            "name": spec.name,
        }
    if isinstance(spec, dm_specs.DiscreteArray):
        return {
            "kind": "discrete",
            "num_values": int(spec.num_values),
            "dtype": np.dtype(spec.dtype).name,
            "name": spec.name,
        }
    if isinstance(spec, dm_specs.BoundedArray):
        return {
            "kind": "bounded",
            "shape": list(spec.shape),
            "dtype": np.dtype(spec.dtype).name,
            "minimum": _bound_to_json(spec.minimum),
            "maximum": _bound_to_json(spec.maximum),
            "name": spec.name,
        }
    if isinstance(spec, dm_specs.Array):
        return {
            "kind": "array",
            "shape": list(spec.shape),
            "dtype": np.dtype(spec.dtype).name,
            "name": spec.name,
        }
    if isinstance(spec, Mapping):
        return {"kind": "dict", "fields": {str(k): spec_to_json(v) for k, v in spec.items()}}
    if isinstance(spec, (tuple, list)):
        return {"kind": "tuple", "items": [spec_to_json(v) for v in spec]}
    raise SpecError(f"unsupported spec {spec!r}")


def spec_from_json(data: Any) -> Any:
    """Inverse of :func:`spec_to_json`."""
    kind = data["kind"]
    if kind == "dict":
        return {k: spec_from_json(v) for k, v in data["fields"].items()}
    if kind == "tuple":
        return tuple(spec_from_json(v) for v in data["items"])
    if kind == "string":
        string_type = bytes if data["string_type"] == "bytes" else str
        return dm_specs.StringArray(
            tuple(data["shape"]), string_type=string_type, name=data["name"]
        )
    if kind == "discrete":
        return dm_specs.DiscreteArray(data["num_values"], dtype=data["dtype"], name=data["name"])
    dtype = np.dtype(data["dtype"])
    if kind == "bounded":
        return dm_specs.BoundedArray(
            tuple(data["shape"]),
            dtype,
            _bound_from_json(data["minimum"], dtype),
            _bound_from_json(data["maximum"], dtype),
            name=data["name"],
        )
    return dm_specs.Array(tuple(data["shape"]), dtype, name=data["name"])


def spec_differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Human-readable differences between two JSON-encoded specs (names are ignored)."""
    where = path or "<root>"
    if expected.get("kind") != actual.get("kind"):
        return [f"{where}: {describe_json_spec(expected)} != {describe_json_spec(actual)}"]
    kind = expected["kind"]
    if kind == "dict":
        diffs = []
        exp, act = expected["fields"], actual["fields"]
        for key in sorted(set(exp) | set(act)):
            sub = f"{path}/{key}" if path else key
            if key not in act:
                diffs.append(f"{sub}: missing from the new spec")
            elif key not in exp:
                diffs.append(f"{sub}: not in the dataset's spec")
            else:
                diffs.extend(spec_differences(exp[key], act[key], sub))
        return diffs
    if kind == "tuple":
        exp, act = expected["items"], actual["items"]
        if len(exp) != len(act):
            return [f"{where}: tuple of {len(exp)} != tuple of {len(act)}"]
        diffs = []
        for i, (e, a) in enumerate(zip(exp, act, strict=True)):
            diffs.extend(spec_differences(e, a, f"{path}/{i}" if path else str(i)))
        return diffs
    strip = {k: v for k, v in expected.items() if k != "name"}
    other = {k: v for k, v in actual.items() if k != "name"}
    if strip != other:
        return [f"{where}: {describe_json_spec(expected)} != {describe_json_spec(actual)}"]
    return []


def describe_json_spec(data: Any) -> str:
    """A short description such as ``float32[17]`` or ``bounded float32[6] in [-1, 1]``."""
    kind = data.get("kind")
    if kind == "dict":
        return "dict(" + ", ".join(data["fields"]) + ")"
    if kind == "tuple":
        return f"tuple of {len(data['items'])}"
    if kind == "discrete":
        return f"discrete {data['dtype']} with {data['num_values']} values"
    dtype = "string" if kind == "string" else data["dtype"]
    text = f"{dtype}{data['shape']}"
    if kind == "bounded":
        text = f"bounded {text} in [{_short(data['minimum'])}, {_short(data['maximum'])}]"
    return text


def infer_spec(value: Any, name: str) -> Any:
    """Infers a dm_env spec from an example value (for step_fn / episode_fn outputs)."""
    if isinstance(value, Mapping):
        if not value:
            raise SpecError(f"{name}: empty dicts cannot be stored")
        return {str(k): infer_spec(v, f"{name}/{k}") for k, v in value.items()}
    if isinstance(value, (str, bytes, np.str_, np.bytes_)):
        string_type = bytes if isinstance(value, (bytes, np.bytes_)) else str
        return dm_specs.StringArray((), string_type=string_type, name=name)
    if isinstance(value, tuple):
        return tuple(infer_spec(v, f"{name}/{i}") for i, v in enumerate(value))
    if isinstance(value, bool):
        return dm_specs.Array((), np.bool_, name=name)
    if isinstance(value, int):
        return dm_specs.Array((), np.int64, name=name)
    if isinstance(value, float):
        return dm_specs.Array((), np.float64, name=name)
    array = np.asarray(value)
    if array.dtype.kind in "US":
        string_type = bytes if array.dtype.kind == "S" else str
        return dm_specs.StringArray(array.shape, string_type=string_type, name=name)
    if array.dtype.kind not in "biufc":
        raise SpecError(
            f"{name}: cannot store a value of type {type(value).__name__} (dtype {array.dtype}); "
            "return numbers, bools, strings, numpy arrays, or dicts of them"
        )
    return dm_specs.Array(array.shape, array.dtype, name=name)


def bounds_of(spec_json: Any) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(path, minimum, maximum)`` of every bounded leaf of a JSON-encoded spec (float64
    arrays broadcast to the leaf's shape); discrete specs give ``[0, num_values - 1]``."""
    out: list[tuple[str, np.ndarray, np.ndarray]] = []

    def walk(node: Any, path: str) -> None:
        kind = node.get("kind")
        if kind == "dict":
            for key, child in node["fields"].items():
                walk(child, f"{path}/{key}" if path else key)
        elif kind == "tuple":
            for i, child in enumerate(node["items"]):
                walk(child, f"{path}/{i}" if path else str(i))
        elif kind == "bounded":
            shape = tuple(node["shape"])
            low = np.broadcast_to(_bound_from_json(node["minimum"], np.float64), shape)
            high = np.broadcast_to(_bound_from_json(node["maximum"], np.float64), shape)
            out.append((path, low, high))
        elif kind == "discrete":
            out.append((path, np.zeros(()), np.asarray(float(node["num_values"] - 1))))

    walk(spec_json, "")
    return out


def _bound_to_json(bound: np.ndarray) -> Any:
    """Bounds as nested lists; non-finite floats as "inf", "-inf", "nan" (strict JSON)."""
    array = np.asarray(bound)
    if array.dtype.kind != "f" or np.isfinite(array).all():
        return array.tolist()
    return np.vectorize(_finite_or_text, otypes=[object])(array).tolist()


def _finite_or_text(x: float) -> Any:
    return float(x) if np.isfinite(x) else str(float(x))


def _bound_from_json(bound: Any, dtype: Any) -> np.ndarray:
    return np.asarray(bound, dtype=dtype)


def _short(bound: Any) -> str:
    flat = np.asarray(bound, dtype=object).ravel()
    if flat.size and all(v == flat[0] for v in flat):
        return str(flat[0])
    return str(bound)
