"""Configuration shared by every learner: the run's budget, evaluation and checkpoints.

Each learner's ``config.py`` subclasses :class:`RunConfig` with its hyperparameters. A
config round-trips through JSON (``rlds-hub train ... --config FILE`` takes a JSON object of
overrides); unknown keys and values of the wrong type are refused with the valid choices.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from rlds_hub.learners.errors import LearnerError

C = TypeVar("C", bound="RunConfig")

# Fields a resumed run may change (extending a run is what --resume is for).
RESUMABLE_FIELDS = frozenset(
    {"num_steps", "eval_every", "eval_episodes", "checkpoint_every", "log_every"}
)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Budget and bookkeeping of a training run.

    Attributes:
      num_steps: the budget, in the learner's unit (SGD updates for offline learners,
        environment steps for online ones).
      eval_every: evaluate the policy every this many steps (and at the end).
      eval_episodes: episodes per evaluation, on the run's validation seed (never a
        training seed; :mod:`rlds_hub.learners.seeds`).
      checkpoint_every: save a checkpoint every this many steps (and at the end).
      log_every: write a metrics line every this many steps.
    """

    num_steps: int = 20_000
    eval_every: int = 5_000
    eval_episodes: int = 10
    checkpoint_every: int = 5_000
    log_every: int = 1_000

    def validate(self) -> None:
        """Raises LearnerError for values out of range (subclasses extend it)."""
        for name in ("num_steps", "eval_every", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise LearnerError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_episodes < 0:
            raise LearnerError(f"eval_episodes must be >= 0, got {self.eval_episodes}")

    @classmethod
    def resumable_fields(cls) -> frozenset[str]:
        """Options a resumed run may change."""
        return RESUMABLE_FIELDS

    @classmethod
    def values_before_options(cls) -> dict[str, Any]:
        """Options whose default changed after they were added: the value a run written
        before the option existed trained with (its ``run.json`` lacks the key)."""
        return {}

    def replace(self: C, **changes: Any) -> C:
        return from_json(type(self), {**to_json(self), **changes})


def to_json(config: RunConfig) -> dict[str, Any]:
    data = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def from_json(cls: type[C], data: Mapping[str, Any]) -> C:
    """A config of ``cls`` from JSON data; missing keys keep their defaults.

    Raises:
      LearnerError: unknown keys (the valid ones are listed) or values of the wrong type.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise LearnerError(
            f"unknown {cls.__name__} option(s) {unknown}; the options are {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in data.items():
        values[key] = _coerce(key, value, hints[key])
    config = cls(**values)
    config.validate()
    return config


def saved_defaults(cls: type[RunConfig]) -> dict[str, Any]:
    """What a saved run's config means where it lacks a key: today's defaults, except
    options whose default changed since (:meth:`RunConfig.values_before_options`)."""
    return {**to_json(cls()), **cls.values_before_options()}


def from_saved(cls: type[C], data: Mapping[str, Any]) -> C:
    """A saved run's config (``run.json``): a missing key means what the run trained with."""
    return from_json(cls, {**cls.values_before_options(), **data})


def load(cls: type[C], path: str | os.PathLike | None, **overrides: Any) -> C:
    """The defaults of ``cls``, updated from a JSON file and then ``overrides`` (not None)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path) as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            raise LearnerError(f"{path} is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise LearnerError(f"{path} must hold a JSON object of {cls.__name__} options")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return from_json(cls, data)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise LearnerError(f"{key} must be one of {list(choices)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(key, value, args[0])
    if origin is dict:
        if not isinstance(value, dict):
            raise LearnerError(f"{key} must be a JSON object, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise LearnerError(f"{key} must be a list, got {value!r}")
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        return tuple(_coerce(key, v, item) for v in value)
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is bool and isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    raise LearnerError(f"{key} must be {getattr(hint, '__name__', hint)}, got {value!r}")
