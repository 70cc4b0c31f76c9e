"""What a learner needs to know about a task: observation leaves, the action space, the env.

A :class:`TaskSpec` is derived once from a dataset (its recorded dm_env specs, or its
features when no specs were recorded) and stored with every checkpoint, so a trained policy
can rebuild its inputs and outputs with nothing but the checkpoint directory.

Networks see one float32 vector per observation: the numeric leaves of the (possibly nested)
observation, flattened in sorted key order and concatenated. Continuous actions are seen in
a normalised space: ``[-1, 1]`` per element for bounded actions (affine map of the bounds),
standardised with the dataset's action statistics for unbounded ones. Discrete actions (a
``DiscreteArray``, or a scalar bounded integer) are class indices from 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from rlds_hub.format.plan import LeafKind, flatten
from rlds_hub.format.specs import describe_json_spec, spec_differences, spec_to_json
from rlds_hub.learners.errors import DataError, SpecMismatchError

_MIN_SCALE = 1e-6


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """The observation layout and action space a learner trains for (JSON round-trips)."""

    env_name: str | None
    observation_spec: Any  # dm_env spec as JSON (rlds_hub.format.specs)
    action_spec: Any
    observation_keys: tuple[str, ...]  # flattened leaf paths, sorted ("" for a flat array)
    observation_shapes: tuple[tuple[int, ...], ...]
    discrete: bool
    action_size: int  # elements of a continuous action, or number of discrete values
    action_shape: tuple[int, ...]
    action_dtype: str
    action_offset: tuple[float, ...]  # continuous: per element; discrete: the minimum value
    action_scale: tuple[float, ...]
    bounded: bool

    @property
    def observation_size(self) -> int:
        """Length of the flattened observation vector."""
        return sum(_size(shape) for shape in self.observation_shapes)

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_specs(
        cls,
        observation_spec: Any,
        action_spec: Any,
        *,
        env_name: str | None = None,
        action_statistics: Mapping[str, Any] | None = None,
    ) -> TaskSpec:
        """From JSON-encoded dm_env specs (``dataset.dataset_metadata.specs``).

        ``action_statistics`` (the dataset's statistics of ``action``) give the scale of
        unbounded continuous actions.

        Raises:
          DataError: observations or actions these MLP learners cannot use.
        """
        keys, shapes, problems = _observation_leaves(observation_spec)
        kind = action_spec.get("kind")
        if kind in ("dict", "tuple", "string"):
            problems.append(f"the action is {_describe_action(action_spec)}")
        if problems:
            raise DataError(
                "the MLP learners cannot use this task: " + "; ".join(problems) + ". They "
                "learn from numeric observation arrays (or dicts of them) and one flat float "
                "action array or one discrete (integer) action: write a copy that leaves out "
                "images and strings and joins the action into one array (rlds-hub map), and "
                "train on that"
            )
        if not keys:
            raise DataError("the observation has no numeric field to learn from")
        dtype = np.dtype(action_spec.get("dtype", "float32"))
        if kind == "discrete":
            return cls._discrete(
                env_name,
                observation_spec,
                action_spec,
                keys,
                shapes,
                int(action_spec["num_values"]),
                0,
                dtype,
            )
        shape = tuple(action_spec["shape"])
        if dtype.kind in "iu":
            if shape != ():
                raise DataError(
                    f"the action is {describe_json_spec(action_spec)}: several discrete "
                    "values per step are not supported (one integer action, or float arrays)"
                )
            if kind == "bounded":
                low, high = int(action_spec["minimum"]), int(action_spec["maximum"])
            elif action_statistics is not None:
                low, high = int(action_statistics["min"]), int(action_statistics["max"])
            else:
                raise DataError("an unbounded integer action needs the dataset's statistics")
            return cls._discrete(
                env_name, observation_spec, action_spec, keys, shapes, high - low + 1, low, dtype
            )
        if dtype.kind != "f":
            raise DataError(f"actions of dtype {dtype} are not supported (float or integer)")
        size = _size(shape)
        low = high = None
        if kind == "bounded":
            low = np.broadcast_to(np.asarray(action_spec["minimum"], np.float64), shape).ravel()
            high = np.broadcast_to(np.asarray(action_spec["maximum"], np.float64), shape).ravel()
        if low is not None and np.isfinite(low).all() and np.isfinite(high).all():
            offset, scale, bounded = (high + low) / 2, (high - low) / 2, True
        elif action_statistics is not None:
            offset = np.asarray(action_statistics["mean"], np.float64).reshape(size)
            scale = np.asarray(action_statistics["std"], np.float64).reshape(size)
            bounded = False
        else:
            raise DataError(
                f"the action {describe_json_spec(action_spec)} has no finite bounds and no "
                "statistics were given to scale it"
            )
        scale = np.where(scale < _MIN_SCALE, 1.0, scale)
        return cls(
            env_name,
            observation_spec,
            action_spec,
            keys,
            shapes,
            False,
            size,
            shape,
            dtype.name,
            tuple(offset.tolist()),
            tuple(scale.tolist()),
            bounded,
        )

    @classmethod
    def _discrete(
        cls, env_name, observation_spec, action_spec, keys, shapes, num_values, minimum, dtype
    ) -> TaskSpec:
        if num_values < 2:
            raise DataError(f"a discrete action with {num_values} value(s) leaves nothing to learn")
        return cls(
            env_name,
            observation_spec,
            action_spec,
            keys,
            shapes,
            True,
            num_values,
            (),
            np.dtype(dtype).name,
            (float(minimum),),
            (1.0,),
            True,
        )

    @classmethod
    def from_dataset(
        cls,
        dataset: Any,
        statistics: Mapping[str, Any] | None = None,
        *,
        env_name: str | None = None,
    ) -> TaskSpec:
        """From an opened dataset: its recorded specs, else specs built from its features."""
        meta = dataset.dataset_metadata
        specs = meta.specs or {}
        features = (statistics or {}).get("features", {})
        name = env_name or meta.env_name
        if "observation" in specs and "action" in specs:
            return cls.from_specs(
                specs["observation"],
                specs["action"],
                env_name=name,
                action_statistics=features.get("action"),
            )
        observation, action = _specs_from_plan(dataset.plan)
        return cls.from_specs(
            observation, action, env_name=name, action_statistics=features.get("action")
        )

    # -- JSON -------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["observation_keys"] = list(self.observation_keys)
        data["observation_shapes"] = [list(s) for s in self.observation_shapes]
        data["action_shape"] = list(self.action_shape)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskSpec:
        values = dict(data)
        values["observation_keys"] = tuple(values["observation_keys"])
        values["observation_shapes"] = tuple(tuple(s) for s in values["observation_shapes"])
        values["action_shape"] = tuple(values["action_shape"])
        values["action_offset"] = tuple(values["action_offset"])
        values["action_scale"] = tuple(values["action_scale"])
        return cls(**values)

    # -- conversions ------------------------------------------------------------------------

    def flatten_observation(self, observation: Any, *, batched: bool) -> np.ndarray:
        """The observation (nested dict of arrays, ``[B, ...]`` when ``batched``) as float32
        ``[B, observation_size]`` (or ``[observation_size]``)."""
        flat = flatten(observation) if isinstance(observation, Mapping) else {"": observation}
        parts = []
        for key, shape in zip(self.observation_keys, self.observation_shapes, strict=True):
            if key not in flat:
                raise SpecMismatchError(
                    f"the observation has no field {key!r}; this task's observation has "
                    f"{list(self.observation_keys)} (was the policy trained on another env?)"
                )
            value = np.asarray(flat[key])
            lead = value.shape[:1] if batched else ()
            if value.shape != (*lead, *shape):
                raise SpecMismatchError(
                    f"observation field {key!r} has shape {value.shape[len(lead) :]}, this task's "
                    f"has {shape}"
                )
            parts.append(value.reshape(*lead, _size(shape)).astype(np.float32, copy=False))
        return np.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]

    def normalize_actions(self, actions: Any) -> np.ndarray:
        """Dataset actions ``[B, ...]`` as the network sees them: float32 ``[B, A]`` in the
        normalised space, or int32 ``[B]`` class indices."""
        actions = np.asarray(actions)
        if self.discrete:
            classes = actions.reshape(len(actions)).astype(np.int64) - int(self.action_offset[0])
            if len(classes) and (classes.min() < 0 or classes.max() >= self.action_size):
                raise DataError(
                    f"discrete actions outside [{int(self.action_offset[0])}, "
                    f"{int(self.action_offset[0]) + self.action_size - 1}] in the data"
                )
            return classes.astype(np.int32)
        flat = actions.reshape(len(actions), self.action_size).astype(np.float64)
        return ((flat - np.asarray(self.action_offset)) / np.asarray(self.action_scale)).astype(
            np.float32
        )

    def env_action(self, output: Any) -> np.ndarray:
        """A network output (normalised action ``[A]``, or a class index) as an action that
        matches the env's action spec exactly (dtype, shape, within bounds)."""
        if self.discrete:
            return np.asarray(int(output) + int(self.action_offset[0]), dtype=self.action_dtype)
        value = np.asarray(output, np.float64).reshape(self.action_size)
        if self.bounded:
            value = np.clip(value, -1.0, 1.0)
        action = value * np.asarray(self.action_scale) + np.asarray(self.action_offset)
        if self.bounded:
            spec = self.action_spec
            low = np.broadcast_to(np.asarray(spec["minimum"], np.float64), self.action_shape)
            high = np.broadcast_to(np.asarray(spec["maximum"], np.float64), self.action_shape)
            action = np.clip(action.reshape(self.action_shape), low, high)
        return np.asarray(action, dtype=self.action_dtype).reshape(self.action_shape)

    def check_env(
        self,
        env: Any,
        env_name: str | None = None,
        *,
        recorded_in: str | None = None,
        trained: bool = False,
    ) -> None:
        """Raises SpecMismatchError when ``env``'s observation or action spec differs.

        ``env_name``: what ``env`` is; ``recorded_in``: the env the data was recorded in;
        ``trained``: the task is a trained policy's (for the message)."""
        differences = []
        for field, spec, actual in (
            ("observation", self.observation_spec, env.observation_spec()),
            ("action", self.action_spec, env.action_spec()),
        ):
            differences += spec_differences(spec, spec_to_json(actual), field)
        if differences:
            which = f" {env_name}" if env_name else ""
            source = recorded_in or self.env_name or "an unnamed env"
            task = (
                f"the task the policy was trained on ({source})"
                if trained
                else f"the task (recorded in {source})"
            )
            advice = "the policy was trained on" if trained else "the dataset was recorded in"
            raise SpecMismatchError(
                f"the environment{which} does not match {task}:\n  "
                + "\n  ".join(differences)
                + f"\nUse the environment {advice}."
            )

    def differences(self, other: TaskSpec) -> list[str]:
        """What differs between two tasks (for checkpoint checks)."""
        out = []
        if self.env_name != other.env_name:
            out.append(f"env: {self.env_name!r} != {other.env_name!r}")
        out += spec_differences(self.observation_spec, other.observation_spec, "observation")
        out += spec_differences(self.action_spec, other.action_spec, "action")
        return out


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def _observation_leaves(
    spec: Any, path: str = ""
) -> tuple[tuple[str, ...], tuple[tuple, ...], list[str]]:
    """The numeric leaves (sorted keys, shapes) and what the learners cannot use."""
    leaves: list[tuple[str, tuple[int, ...]]] = []
    problems: list[str] = []
    _collect(spec, path, leaves, problems)
    leaves.sort()
    return tuple(k for k, _ in leaves), tuple(s for _, s in leaves), problems


def _collect(
    spec: Any, path: str, out: list[tuple[str, tuple[int, ...]]], problems: list[str]
) -> None:
    kind = spec.get("kind")
    where = f"observation/{path}" if path else "observation"
    if kind == "dict":
        for key, sub in spec["fields"].items():
            _collect(sub, f"{path}/{key}" if path else key, out, problems)
        return
    if kind == "string":
        problems.append(f"{where} is a string")
        return
    if kind == "tuple":
        problems.append(f"{where} is a {describe_json_spec(spec)}")
        return
    dtype = np.dtype(spec["dtype"]) if kind != "discrete" else np.dtype(np.int64)
    shape = tuple(spec.get("shape", ()))
    if dtype.kind not in "biuf":
        problems.append(f"{where} has dtype {dtype}")
    elif dtype == np.uint8 and len(shape) == 3:
        problems.append(f"{where} is an image ({describe_json_spec(spec)})")
    else:
        out.append((path, shape))


def _describe_action(spec: Any) -> str:
    if spec.get("kind") == "dict":
        fields = spec["fields"]
        parts = ", ".join(f"{k} {describe_json_spec(v)}" for k, v in sorted(fields.items()))
        return f"a dict of {len(fields)} fields ({parts})"
    return describe_json_spec(spec)


def _specs_from_plan(plan: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Array specs (no bounds) from a dataset's features, for datasets without recorded specs."""
    fields: dict[str, Any] = {}
    action = None
    for leaf in plan:
        name = leaf.name
        entry = {
            "kind": "array",
            "shape": list(leaf.shape),
            "dtype": leaf.dtype.name,
            "name": name.rsplit("/", 1)[-1],
        }
        if leaf.kind in (LeafKind.IMAGE, LeafKind.STRING):
            entry = {
                "kind": "string" if leaf.kind == LeafKind.STRING else "array",
                "shape": list(leaf.shape),
                "dtype": "uint8",
                "string_type": "bytes",
                "name": name,
            }
        if name == "observation":
            fields = {"": entry}
        elif name.startswith("observation/"):
            node = fields
            *parents, last = name.removeprefix("observation/").split("/")
            for part in parents:
                node = node.setdefault(part, {"kind": "dict", "fields": {}})["fields"]
            node[last] = entry
        elif name == "action":
            action = entry
        elif name.startswith("action/"):  # a nested action (fractal's world_vector, ...)
            node = action if action is not None else {"kind": "dict", "fields": {}}
            action = node
            *parents, last = name.removeprefix("action/").split("/")
            for part in parents:
                node = node["fields"].setdefault(part, {"kind": "dict", "fields": {}})
            node["fields"][last] = entry
    missing = [f for f, found in (("observation", fields), ("action", action)) if not found]
    if missing:
        raise DataError(f"the dataset's steps have no {' and no '.join(missing)} field")
    observation = fields.get("", {"kind": "dict", "fields": fields})
    return observation, action
