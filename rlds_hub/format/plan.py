"""The leaf plan: how each serialized key of an RLDS episode is stored, from ``features.json``.

A dataset's ``features.json`` (TFDS's feature description) is compiled here, without TFDS,
into one :class:`Leaf` per serialized key — ``steps/observation/position``,
``steps/reward``, ``episode_metadata/task`` — saying how it is laid out in a
``tf.train.Example``. The encoder (:mod:`rlds_hub.format.encode`) and the decoder
(:mod:`rlds_hub.format.decode`) both work from this plan, so a machine with NumPy and no
TensorFlow reads and writes every dataset TFDS can.

Kinds of leaves (:class:`LeafKind`, strings on disk and in JSON):

* ``native``: numbers in TFDS's ``float_list`` (floating dtypes, stored as float32) or
  ``int64_list`` (integers and bools); ``size`` values per step.
* ``raw``: TFDS ``encoding="bytes"``, one little-endian byte string per step; with
  ``encoding="zlib"`` (``compression="zlib"``) each step's string is zlib-compressed.
* ``string``: TFDS string tensors and ``Text``, one entry per element.
* ``image``: ``tfds.features.Image``, one encoded PNG or JPEG per step.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from rlds_hub import rlds_types as rlds

_STEPS_PREFIX = f"{rlds.STEPS}/"


class LeafKind(enum.StrEnum):
    """How a leaf is serialized (the module docstring says each); equal to its string."""

    NATIVE = "native"
    RAW = "raw"
    STRING = "string"
    IMAGE = "image"


class PlanError(ValueError):
    """A feature description that rlds_hub cannot read or does not support."""


@dataclasses.dataclass(frozen=True)
class Leaf:
    """How one flattened feature key is serialized.

    Attributes:
      key: the flattened TFDS key, e.g. "steps/observation/position".
      kind: a :class:`LeafKind`: native, raw, string or image (see the module docstring).
      dtype: the decoded NumPy dtype (``object`` for strings: UTF-8 ``bytes``).
      shape: the per-step (step leaves) or per-episode (episode leaves) shape.
      in_steps: True for step fields, False for episode metadata.
      image_format: "png", "jpeg", or None (detected per value) for image leaves.
      compression: "zlib" for raw leaves TFDS wrote with ``encoding="zlib"``, else None.
    """

    key: str
    kind: LeafKind
    dtype: np.dtype
    shape: tuple[int, ...]
    in_steps: bool
    image_format: str | None = None
    compression: str | None = None

    @functools.cached_property
    def size(self) -> int:
        """Elements per step (or per episode)."""
        return math.prod(self.shape)

    @property
    def name(self) -> str:
        """The key without the ``steps/`` prefix ("observation/position")."""
        return self.key.removeprefix(_STEPS_PREFIX) if self.in_steps else self.key

    @property
    def field(self) -> str:
        """The top-level field the leaf belongs to ("observation")."""
        return self.name.split("/")[0]

    @property
    def wire(self) -> str:
        """The serialized list kind: "float", "int" or "bytes"."""
        if self.kind != LeafKind.NATIVE:
            return "bytes"
        return "float" if self.dtype.kind == "f" else "int"

    @property
    def values_per_entry(self) -> int:
        """Serialized list values per step (step leaves) or per episode."""
        return self.size if self.kind in (LeafKind.NATIVE, LeafKind.STRING) else 1

    @property
    def is_numeric(self) -> bool:
        return self.kind in (LeafKind.NATIVE, LeafKind.RAW) and self.dtype.kind in "biuf"


class Plan:
    """The leaves of an episode's features, in a fixed order (sorted keys)."""

    def __init__(self, leaves: Iterable[Leaf]):
        self.leaves: tuple[Leaf, ...] = tuple(leaves)
        self._by_key = {leaf.key: leaf for leaf in self.leaves}
        if len(self._by_key) != len(self.leaves):
            raise PlanError("the features list a key twice")

    @classmethod
    def from_features_json(cls, features: Mapping[str, Any] | str) -> Plan:
        """Compiles the content of a ``features.json`` (a dict, or its text)."""
        if isinstance(features, str):
            try:
                features = json.loads(features)
            except json.JSONDecodeError as e:
                raise PlanError(f"features.json is not valid JSON ({e})") from e
        class_name, content = _node(features, "<features>")
        if class_name != "FeaturesDict":
            raise PlanError(
                f"the top-level feature is a {class_name}, not a FeaturesDict of episode fields"
            )
        plan = cls(_compile_dict(content, "", in_steps=False))
        if rlds.STEPS not in {leaf.key.split("/")[0] for leaf in plan.leaves if leaf.in_steps}:
            raise PlanError(
                f"the features have no '{rlds.STEPS}' dataset of steps: a TFDS dataset, but "
                "not RLDS"
            )
        return plan

    # ---- lookups ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Leaf]:
        return iter(self.leaves)

    def __len__(self) -> int:
        return len(self.leaves)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def __getitem__(self, key: str) -> Leaf:
        return self._by_key[key]

    def get(self, key: str) -> Leaf | None:
        return self._by_key.get(key)

    @property
    def step_leaves(self) -> tuple[Leaf, ...]:
        return tuple(leaf for leaf in self.leaves if leaf.in_steps)

    @property
    def episode_leaves(self) -> tuple[Leaf, ...]:
        return tuple(leaf for leaf in self.leaves if not leaf.in_steps)

    @property
    def step_fields(self) -> list[str]:
        """Top-level step field names, in key order ("action", "discount", ...)."""
        return list(dict.fromkeys(leaf.field for leaf in self.step_leaves))

    def step_leaf(self, name: str) -> Leaf | None:
        """The step leaf ``steps/<name>``, if there is one (a leaf, not a dict)."""
        return self._by_key.get(_STEPS_PREFIX + name)

    def restrict(self, keys: Iterable[str]) -> Plan:
        """The leaves whose key is in ``keys`` or lies under one of them at a "/"."""
        keys = [k.strip("/") for k in keys]
        kept = [
            leaf
            for leaf in self.leaves
            if any(leaf.key == k or leaf.key.startswith(k + "/") for k in keys)
        ]
        return Plan(kept)

    def step_fields_plan(self, fields: Iterable[str]) -> Plan:
        """The step leaves of the given top-level step fields."""
        wanted = set(fields)
        return Plan(leaf for leaf in self.step_leaves if leaf.field in wanted)

    def length_leaf(self) -> Leaf:
        """A step leaf whose serialized values count steps exactly (prefer is_first)."""
        preferred = self.step_leaf(rlds.IS_FIRST)
        if preferred is not None and preferred.values_per_entry == 1:
            return preferred
        for leaf in self.step_leaves:
            if leaf.values_per_entry > 0 and leaf.size > 0:
                return leaf
        raise PlanError("cannot count steps: every step field is empty")


# ---- compiling features.json ---------------------------------------------------------------

# The key holding a node's content, for nodes written without a "content" key.
_CONTENT_KEYS = ("featuresDict", "sequence", "tensor", "image", "text", "classLabel")


def _node(node: Any, where: str) -> tuple[str, Any]:
    """(short class name, content) of a features.json node, in any of TFDS's layouts."""
    if not isinstance(node, Mapping):
        raise PlanError(f"{where}: expected a feature description, got {type(node).__name__}")
    class_name = node.get("pythonClassName") or node.get("type")
    if not class_name:
        raise PlanError(f"{where}: the feature description names no feature class")
    if "content" in node:
        content = node["content"]
        if isinstance(content, str):
            content = json.loads(content) if content else {}
    else:
        content = next((node[k] for k in _CONTENT_KEYS if k in node), {})
    return class_name.rsplit(".", 1)[-1], content


def _compile_dict(content: Any, prefix: str, in_steps: bool) -> list[Leaf]:
    fields = content.get("features") if isinstance(content, Mapping) else None
    if not isinstance(fields, Mapping):
        raise PlanError(f"{prefix or '<features>'}: a FeaturesDict without features")
    leaves: list[Leaf] = []
    for key in sorted(fields):
        leaves += _compile(fields[key], f"{prefix}/{key}" if prefix else key, in_steps)
    return leaves


def _compile(node: Any, key: str, in_steps: bool) -> list[Leaf]:
    class_name, content = _node(node, key)
    if class_name == "FeaturesDict":
        return _compile_dict(content, key, in_steps)
    if class_name in ("Dataset", "Sequence"):
        if in_steps or (class_name == "Sequence" and key != rlds.STEPS):
            raise PlanError(
                f"{key}: a {class_name} feature here (nested sequences) is not supported; "
                f"only the episode's '{rlds.STEPS}' holds a sequence"
            )
        return _compile(content.get("feature"), key, in_steps=True)
    if class_name in ("Tensor", "Scalar"):
        return [_tensor_leaf(content, key, in_steps)]
    if class_name == "Text":
        return [Leaf(key, LeafKind.STRING, np.dtype(object), (), in_steps)]
    if class_name == "ClassLabel":
        return [Leaf(key, LeafKind.NATIVE, np.dtype(np.int64), (), in_steps)]
    if class_name == "Image":
        shape = _shape(content.get("shape"), key)
        dtype = _dtype(content.get("dtype") or "uint8", key)
        if dtype not in (np.uint8, np.uint16):
            raise PlanError(f"{key}: images of dtype {dtype} are not supported (uint8, uint16 are)")
        fmt = content.get("encodingFormat") or None
        if fmt not in (None, "png", "jpeg"):
            raise PlanError(f"{key}: image encoding {fmt!r} is not supported (png, jpeg are)")
        return [Leaf(key, LeafKind.IMAGE, dtype, shape, in_steps, fmt)]
    raise PlanError(
        f"{key}: TFDS feature type {class_name} is not supported by rlds_hub's decoder "
        "(supported: FeaturesDict, Dataset, Tensor, Scalar, Image, Text, ClassLabel)"
    )


def _tensor_leaf(content: Mapping[str, Any], key: str, in_steps: bool) -> Leaf:
    shape = _shape(content.get("shape"), key)
    dtype_name = content.get("dtype", "float32")
    encoding = (content.get("encoding") or "none").lower()
    if dtype_name == "string":
        if encoding not in ("none", ""):
            raise PlanError(f"{key}: string tensors with encoding {encoding!r} are not supported")
        return Leaf(key, LeafKind.STRING, np.dtype(object), shape, in_steps)
    dtype = _dtype(dtype_name, key)
    if encoding in ("bytes", "zlib"):
        return Leaf(
            key,
            LeafKind.RAW,
            dtype,
            shape,
            in_steps,
            compression="zlib" if encoding == "zlib" else None,
        )
    if encoding not in ("none", ""):
        raise PlanError(
            f"{key}: tensor encoding {encoding!r} is not supported (none, bytes and zlib "
            "are: every encoding TFDS writes)"
        )
    if dtype.kind == "c":
        raise PlanError(f"{key}: complex tensors need encoding='bytes'")
    return Leaf(key, LeafKind.NATIVE, dtype, shape, in_steps)


def _shape(data: Any, key: str) -> tuple[int, ...]:
    dims = (data or {}).get("dimensions", []) if isinstance(data, Mapping) else data or []
    shape = tuple(int(d) for d in dims)
    if any(d < 0 for d in shape):
        raise PlanError(
            f"{key}: variable shape {tuple(None if d < 0 else d for d in shape)} is not "
            "supported by rlds_hub's decoder (every step must have the same shape)"
        )
    return shape


def _dtype(name: str, key: str) -> np.dtype:
    try:
        dtype = np.dtype(name)
    except TypeError as e:
        raise PlanError(f"{key}: dtype {name!r} is not supported") from e
    if dtype.kind not in "biufc":
        raise PlanError(f"{key}: dtype {name!r} is not supported")
    return dtype


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a/b": x}`` -> ``{"a": {"b": x}}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, last = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": x}}`` -> ``{"a/b": x}``."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out
