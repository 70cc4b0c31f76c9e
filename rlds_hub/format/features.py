"""The feature description of a dataset (``features.json``) derived from dm_env specs.

One feature description per dataset: the recorder and the pipelines derive it from the
environment's specs here, and the encoder, the decoder (:mod:`rlds_hub.format.plan`), TFDS
and the docs all derive from it. The JSON is exactly what
``tfds.features.FeaturesDict.to_json()`` produces for the same features (a test checks it),
written without importing TensorFlow or TFDS.

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
from dm_env import specs as dm_specs

from rlds_hub import rlds_types as rlds
from rlds_hub.format.specs import SpecError

ImageEncoding = Literal["png", "raw"]
IMAGE_ENCODINGS = ("png", "raw")
_BYTES_ENCODED_KINDS = {"f", "c"}  # floats other than float32, complex
_SMALL_8BIT_LIMIT = 64

# TFDS class names, as TFDS writes them into features.json.
_PREFIX = "tensorflow_datasets.core.features."
TENSOR = _PREFIX + "tensor_feature.Tensor"
SCALAR = _PREFIX + "scalar.Scalar"
IMAGE = _PREFIX + "image_feature.Image"
TEXT = _PREFIX + "text_feature.Text"
CLASS_LABEL = _PREFIX + "class_label_feature.ClassLabel"
FEATURES_DICT = _PREFIX + "features_dict.FeaturesDict"
DATASET = _PREFIX + "dataset_feature.Dataset"
SEQUENCE = _PREFIX + "sequence_feature.Sequence"


def is_image_spec(shape: tuple[int, ...], dtype: Any) -> bool:
    """True for ``uint8`` arrays shaped like an image: ``H x W x C`` with C in 1, 3, 4."""
    return (
        np.dtype(dtype) == np.uint8
        and len(shape) == 3
        and shape[-1] in (1, 3, 4)
        and min(shape) > 0
    )


def tensor_json(shape: tuple[int, ...], dtype: str, encoding: str = "none") -> dict[str, Any]:
    """A ``tfds.features.Tensor`` node (``dtype`` a NumPy name, or "string")."""
    return {
        "pythonClassName": TENSOR,
        "tensor": {"shape": _shape_json(shape), "dtype": dtype, "encoding": encoding},
    }


def image_json(shape: tuple[int, ...], encoding_format: str = "png") -> dict[str, Any]:
    """A uint8 ``tfds.features.Image`` node."""
    return {
        "pythonClassName": IMAGE,
        "image": {"shape": _shape_json(shape), "dtype": "uint8", "encodingFormat": encoding_format},
    }


def dict_json(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A nested ``tfds.features.FeaturesDict`` node."""
    return {"pythonClassName": FEATURES_DICT, "featuresDict": {"features": dict(fields)}}


def dataset_json(feature: Mapping[str, Any]) -> dict[str, Any]:
    """A ``tfds.features.Dataset`` node (the steps of an episode)."""
    return {"pythonClassName": DATASET, "sequence": {"feature": dict(feature), "length": "-1"}}


def top_level_json(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level ``FeaturesDict`` as TFDS writes it to ``features.json``."""
    return {
        "type": FEATURES_DICT,
        "content": {"features": dict(fields)},
        "proto_cls": "tensorflow_datasets.FeaturesDict",
    }


def _shape_json(shape: tuple[int, ...]) -> dict[str, Any]:
    return {"dimensions": [str(int(d)) for d in shape]} if shape else {}


def array_feature(
    shape: tuple[int, ...], dtype: Any, image_encoding: ImageEncoding = "png"
) -> dict[str, Any]:
    """The lossless feature node for one array leaf (see the module docstring)."""
    shape = tuple(int(d) for d in shape)
    empty = 0 in shape
    if _is_string_dtype(dtype):
        if empty:
            raise SpecError(f"string arrays of zero size (shape {shape}) cannot be stored")
        return tensor_json(shape, "string")
    dtype = np.dtype(dtype)
    if dtype.byteorder == ">":
        raise SpecError(f"big-endian dtype {dtype} is not supported; use {dtype.newbyteorder('<')}")
    if dtype.kind not in "biufc":
        raise SpecError(f"dtype {dtype} is not supported (numbers, bools and strings are)")
    if is_image_spec(shape, dtype):
        if image_encoding not in IMAGE_ENCODINGS:
            raise SpecError(
                f"image_encoding must be one of {IMAGE_ENCODINGS}, got {image_encoding!r}"
            )
        if image_encoding == "png":
            return image_json(shape, "png")
        return tensor_json(shape, dtype.name, "bytes")
    if empty and dtype == np.uint32:
        raise SpecError(
            f"zero-size uint32 arrays (shape {shape}) cannot be stored: TFDS cannot decode "
            "uint32 from bytes and TensorFlow's parser crashes on empty native features"
        )
    if empty or (dtype.kind in _BYTES_ENCODED_KINDS and dtype != np.float32):
        return tensor_json(shape, dtype.name, "bytes")
    if dtype.itemsize == 1 and dtype.kind in "iu" and int(np.prod(shape)) > _SMALL_8BIT_LIMIT:
        return tensor_json(shape, dtype.name, "bytes")
    return tensor_json(shape, dtype.name)


def feature_from_spec(spec: Any, image_encoding: ImageEncoding = "png") -> dict[str, Any]:
    """Maps a (nested) dm_env spec to a feature node; tuples become "0", "1", ... dicts."""
    if isinstance(spec, dm_specs.Array):
        return array_feature(spec.shape, spec.dtype, image_encoding)
    if isinstance(spec, Mapping):
        if not spec:
            raise SpecError("empty dict specs cannot be stored; drop the field instead")
        return dict_json({str(k): feature_from_spec(v, image_encoding) for k, v in spec.items()})
    if isinstance(spec, (tuple, list)):
        if not spec:
            raise SpecError("empty tuple specs cannot be stored; drop the field instead")
        return dict_json({str(i): feature_from_spec(v, image_encoding) for i, v in enumerate(spec)})
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
) -> dict[str, Any]:
    """The RLDS episode features (TFDS ``rlds_base`` layout) for an environment's specs,
    as ``features.json`` content."""
    step_metadata_spec = dict(step_metadata_spec or {})
    episode_metadata_spec = dict(episode_metadata_spec or {})
    clashes = sorted(set(step_metadata_spec) & set(rlds.CORE_STEP_FIELDS))
    if clashes:
        raise SpecError(f"step metadata keys {clashes} clash with RLDS step fields; rename them")
    if rlds.STEPS in episode_metadata_spec:
        raise SpecError(f"episode metadata must not use the key {rlds.STEPS!r}")
    flag = tensor_json((), "bool")
    step_features = {
        rlds.OBSERVATION: feature_from_spec(observation_spec, image_encoding),
        rlds.ACTION: feature_from_spec(action_spec, image_encoding),
        rlds.REWARD: feature_from_spec(reward_spec, image_encoding),
        rlds.DISCOUNT: feature_from_spec(discount_spec, image_encoding),
        rlds.IS_FIRST: flag,
        rlds.IS_LAST: flag,
        rlds.IS_TERMINAL: flag,
    }
    for key, value in step_metadata_spec.items():
        step_features[key] = feature_from_spec(value, image_encoding)
    episode = {rlds.STEPS: dataset_json(dict_json(step_features))}
    for key, value in episode_metadata_spec.items():
        episode[key] = feature_from_spec(value, image_encoding)
    return top_level_json(episode)


def _is_string_dtype(dtype: Any) -> bool:
    if dtype in (str, bytes, object, np.str_, np.bytes_, np.object_):
        return True
    try:
        return np.dtype(dtype).kind in "OUS"
    except TypeError:
        return False
