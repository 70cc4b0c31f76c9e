"""TFDS features derived from dm_env specs, and specs encoded as JSON.

One feature description per dataset: the recorder derives a ``tfds.features.FeaturesDict``
from the environment's specs here, and the writer, the reader and the docs all derive from
that description.

Encodings are chosen so that every value reads back bit-exact with plain TFDS:

* ``float32``, ``bool`` and integers (except large 8-bit arrays) use TFDS's native encoding
  (``float_list`` / ``int64_list``), which is exact for them and decodes without ``map_fn``.
* ``float64``, ``float16`` and complex values use ``encoding="bytes"`` (raw little-endian
  bytes): TFDS's native encoding would store them as 32-bit floats.
* ``uint8`` images (``H x W x C`` with ``C`` in 1, 3, 4) use ``tfds.features.Image`` with PNG
  (lossless, compressed, viewable) by default, or raw bytes with ``image_encoding="raw"``.
* Other 8-bit arrays with more than 64 elements use raw bytes (one byte per value instead of
  a varint).
* Zero-size arrays use raw bytes too (TensorFlow's example parser crashes with SIGFPE on a
  native sequence feature with zero values per step).
* Strings use TFDS string tensors; they read back as UTF-8 bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import tensorflow_datasets as tfds
from dm_env import specs as dm_specs

from rlds_hub import spec as rlds

ImageEncoding = Literal["png", "raw"]
IMAGE_ENCODINGS = ("png", "raw")
_BYTES_ENCODED_KINDS = {"f", "c"}  # floats other than float32, complex
_SMALL_8BIT_LIMIT = 64


class SpecError(ValueError):
    """A spec or value that rlds_hub cannot store, or that does not match the dataset."""


def is_image_spec(shape: tuple[int, ...], dtype: np.dtype) -> bool:
    """True for ``uint8`` arrays shaped like an image: ``H x W x C`` with C in 1, 3, 4."""
    return dtype == np.uint8 and len(shape) == 3 and shape[-1] in (1, 3, 4) and min(shape) > 0


def array_feature(
    shape: tuple[int, ...], dtype: Any, image_encoding: ImageEncoding = "png"
) -> tfds.features.FeatureConnector:
    """Returns the lossless TFDS feature for one array leaf (see the module docstring)."""
    shape = tuple(int(d) for d in shape)
    empty = 0 in shape
    if _is_string_dtype(dtype):
        if empty:
            raise SpecError(f"string arrays of zero size (shape {shape}) cannot be stored")
        return tfds.features.Tensor(shape=shape, dtype=np.str_)
    dtype = np.dtype(dtype)
    if dtype.byteorder == ">":
        raise SpecError(f"big-endian dtype {dtype} is not supported; use {dtype.newbyteorder('<')}")
    if dtype.kind not in "biufc":
        raise SpecError(f"dtype {dtype} is not supported (numbers, bools and strings are)")
    if is_image_spec(shape, dtype):
        if image_encoding not in IMAGE_ENCODINGS:
            raise SpecError(f"image_encoding must be one of {IMAGE_ENCODINGS}, got {image_encoding!r}")
        if image_encoding == "png":
            return tfds.features.Image(shape=shape, dtype=np.uint8, encoding_format="png")
        return tfds.features.Tensor(shape=shape, dtype=dtype, encoding="bytes")
    if empty and dtype == np.uint32:
        raise SpecError(
            f"zero-size uint32 arrays (shape {shape}) cannot be stored: TFDS cannot decode "
            "uint32 from bytes and TensorFlow's parser crashes on empty native features"
        )
    if empty or (dtype.kind in _BYTES_ENCODED_KINDS and dtype != np.float32):
        # Zero-size arrays use bytes too: TF's parser divides by zero (SIGFPE) on a
        # native sequence feature of zero elements per step.
        return tfds.features.Tensor(shape=shape, dtype=dtype, encoding="bytes")
    if dtype.itemsize == 1 and dtype.kind in "iu" and int(np.prod(shape)) > _SMALL_8BIT_LIMIT:
        return tfds.features.Tensor(shape=shape, dtype=dtype, encoding="bytes")
    return tfds.features.Tensor(shape=shape, dtype=dtype)


def feature_from_spec(spec: Any, image_encoding: ImageEncoding = "png") -> Any:
    """Maps a (nested) dm_env spec to a (nested) TFDS feature; tuples become "0", "1", ... dicts."""
    if isinstance(spec, dm_specs.Array):
        return array_feature(spec.shape, spec.dtype, image_encoding)
    if isinstance(spec, Mapping):
        if not spec:
            raise SpecError("empty dict specs cannot be stored; drop the field instead")
        return tfds.features.FeaturesDict(
            {str(k): feature_from_spec(v, image_encoding) for k, v in spec.items()}
        )
    if isinstance(spec, (tuple, list)):
        if not spec:
            raise SpecError("empty tuple specs cannot be stored; drop the field instead")
        return tfds.features.FeaturesDict(
            {str(i): feature_from_spec(v, image_encoding) for i, v in enumerate(spec)}
        )
    raise SpecError(f"unsupported spec {spec!r}: expected dm_env specs, dicts or tuples of them")


def episode_features(
    *,
    observation_spec: Any,
    action_spec: Any,
    reward_spec: Any,
    discount_spec: Any,
    step_metadata_spec: Mapping[str, Any] | None = None,
    episode_metadata_spec: Mapping[str, Any] | None = None,
    image_encoding: ImageEncoding = "png",
) -> tfds.features.FeaturesDict:
    """The RLDS episode features (TFDS ``rlds_base`` layout) for an environment's specs."""
    step_metadata_spec = dict(step_metadata_spec or {})
    episode_metadata_spec = dict(episode_metadata_spec or {})
    clashes = sorted(set(step_metadata_spec) & set(rlds.CORE_STEP_FIELDS))
    if clashes:
        raise SpecError(f"step metadata keys {clashes} clash with RLDS step fields; rename them")
    if rlds.STEPS in episode_metadata_spec:
        raise SpecError(f"episode metadata must not use the key {rlds.STEPS!r}")
    step_features = {
        rlds.OBSERVATION: feature_from_spec(observation_spec, image_encoding),
        rlds.ACTION: feature_from_spec(action_spec, image_encoding),
        rlds.REWARD: feature_from_spec(reward_spec, image_encoding),
        rlds.DISCOUNT: feature_from_spec(discount_spec, image_encoding),
        rlds.IS_FIRST: tfds.features.Tensor(shape=(), dtype=np.bool_),
        rlds.IS_LAST: tfds.features.Tensor(shape=(), dtype=np.bool_),
        rlds.IS_TERMINAL: tfds.features.Tensor(shape=(), dtype=np.bool_),
    }
    for key, value in step_metadata_spec.items():
        step_features[key] = feature_from_spec(value, image_encoding)
    episode = {rlds.STEPS: tfds.features.Dataset(step_features)}
    for key, value in episode_metadata_spec.items():
        episode[key] = feature_from_spec(value, image_encoding)
    return tfds.features.FeaturesDict(episode)


# ----------------------------------------------------------------------------------------
# Specs as JSON (dataset metadata, spec comparison on append) and specs inferred from values.


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
        return dm_specs.StringArray(tuple(data["shape"]), string_type=string_type, name=data["name"])
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


def _is_string_dtype(dtype: Any) -> bool:
    if dtype in (str, bytes, object, np.str_, np.bytes_, np.object_):
        return True
    try:
        return np.dtype(dtype).kind in "OUS"
    except TypeError:
        return False


def _bound_to_json(bound: np.ndarray) -> Any:
    """Bounds as nested lists; non-finite floats as "inf", "-inf", "nan" (strict JSON)."""
    array = np.asarray(bound)
    if array.dtype.kind != "f" or np.isfinite(array).all():
        return array.tolist()
    return np.vectorize(_finite_or_text, otypes=[object])(array).tolist()


def _finite_or_text(x: float) -> Any:
    return float(x) if np.isfinite(x) else str(float(x))


def _bound_from_json(bound: Any, dtype: np.dtype) -> np.ndarray:
    return np.asarray(bound, dtype=dtype)


def _short(bound: Any) -> str:
    flat = np.asarray(bound, dtype=object).ravel()
    if flat.size and all(v == flat[0] for v in flat):
        return str(flat[0])
    return str(bound)
