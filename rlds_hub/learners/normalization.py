"""Observation normalisation from a dataset's statistics (``statistics.json`` or computed).

The mean and population standard deviation of every observation leaf come from
:func:`rlds_hub.inspection.split_statistics` — the statistics stored with the dataset when
present (``rlds-hub stats --save``), computed otherwise — so the learners, ``rlds-hub stats``
and the service agree on one set of numbers. Elements whose std is below ``1e-6`` (constant
features) are scaled by 1, not blown up.

The normaliser is a pair of float32 vectors applied inside the jitted functions, and stored
with every checkpoint so a loaded policy normalises exactly as it was trained.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from rlds_hub.learners.errors import DataError
from rlds_hub.learners.task import TaskSpec

MIN_STD = 1e-6


@dataclasses.dataclass(frozen=True)
class Normalizer:
    """``(x - mean) / std`` on flattened observations; arrays are float32 ``[obs_size]``."""

    mean: np.ndarray
    std: np.ndarray

    def __call__(self, observations: Any) -> Any:
        return (observations - self.mean) / self.std

    @classmethod
    def identity(cls, size: int) -> Normalizer:
        return cls(np.zeros(size, np.float32), np.ones(size, np.float32))

    @classmethod
    def from_statistics(cls, task: TaskSpec, statistics: Mapping[str, Any]) -> Normalizer:
        """From a split's statistics (the ``statistics()`` JSON)."""
        features = statistics.get("features", {})
        means, stds = [], []
        for key, shape in zip(task.observation_keys, task.observation_shapes, strict=True):
            name = f"observation/{key}" if key else "observation"
            if name not in features:
                raise DataError(
                    f"the dataset's statistics have no {name!r} (skipped: "
                    f"{statistics.get('skipped')}); recompute them with `rlds-hub stats --save`"
                )
            stats = features[name]
            size = int(np.prod(shape)) if shape else 1
            mean = np.asarray(_finite(stats["mean"], 0.0), np.float64).reshape(size)
            std = np.asarray(_finite(stats["std"], 1.0), np.float64).reshape(size)
            means.append(mean)
            stds.append(np.where(std < MIN_STD, 1.0, std))
        return cls(
            np.concatenate(means).astype(np.float32), np.concatenate(stds).astype(np.float32)
        )

    @classmethod
    def from_arrays(cls, observations: np.ndarray) -> Normalizer:
        """Population mean/std of flattened observations ``[N, obs_size]``."""
        observations = np.asarray(observations, np.float64)
        std = observations.std(axis=0)
        return cls(
            observations.mean(axis=0).astype(np.float32),
            np.where(std < MIN_STD, 1.0, std).astype(np.float32),
        )

    def to_json(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Normalizer:
        return cls(np.asarray(data["mean"], np.float32), np.asarray(data["std"], np.float32))


def _finite(values: Any, fill: float) -> Any:
    """Statistics JSON uses None for elements with no finite value."""
    if isinstance(values, list):
        return [_finite(v, fill) for v in values]
    return fill if values is None else values
