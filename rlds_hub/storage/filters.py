"""The episode row filter: length, return and termination bounds, metadata conditions and a
predicate, checked against an episode's :func:`~rlds_hub.storage.episodes.episode_table`
row. One value used by every reader (:func:`~rlds_hub.storage.query.select_episodes`, the
loaders) and by the Beam filter job, so both keep the same episodes and raise the same
errors."""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rlds_hub.storage.episodes import is_number

Where = Callable[[dict[str, Any]], Any] | None
FILTERS = ("min_length", "max_length", "min_return", "max_return", "terminated")


def check_filters(filters: Mapping[str, Any], function: str = "select") -> None:
    """Raises a ``TypeError`` naming the valid filters for an unknown one (with a
    suggestion for a misspelling)."""
    unknown = [name for name in filters if name not in FILTERS]
    if not unknown:
        return
    name = unknown[0]
    close = difflib.get_close_matches(name, [*FILTERS, "episodes", "where", "split"], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise TypeError(
        f"{function}() got an unknown filter {name!r}.{hint} Filters are "
        f"{', '.join(FILTERS)}, plus episodes= (indices) and where= (a predicate on each "
        "episode's row)"
    )


@dataclasses.dataclass(frozen=True)
class RowFilter:
    """Keeps an episode row when every given condition holds (``None``: no condition).

    Attributes:
      min_length / max_length: inclusive bounds on ``num_steps`` (RLDS steps).
      min_return / max_return: inclusive bounds on the return (a NaN or missing return
        passes no return bound).
      terminated: True for terminated episodes only, False for truncated ones only.
      metadata: episode metadata values that must match exactly (``{"operator": "alice"}``).
      where: a predicate called with the row, after every other condition held.

    Raises (on construction):
      ValueError: a bound that is not a number, inverted bounds, a ``terminated`` that is
        not a bool, or a ``where`` that is not callable.
    """

    min_length: int | None = None
    max_length: int | None = None
    min_return: float | None = None
    max_return: float | None = None
    terminated: bool | None = None
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    where: Where = None

    def __post_init__(self) -> None:
        for what in ("length", "return"):
            low, high = getattr(self, f"min_{what}"), getattr(self, f"max_{what}")
            for bound in (low, high):
                if bound is not None and (isinstance(bound, bool) or not is_number(bound)):
                    raise ValueError(f"{what} bounds must be numbers, got {bound!r}")
            if low is not None and high is not None and low > high:
                raise ValueError(f"min_{what} ({low}) is greater than max_{what} ({high})")
        if self.terminated is not None and not isinstance(self.terminated, bool | np.bool_):
            raise ValueError(f"terminated must be True, False or None, got {self.terminated!r}")
        if self.where is not None and not callable(self.where):
            raise ValueError(f"where must be a callable taking an episode row, got {self.where!r}")
        object.__setattr__(self, "metadata", dict(self.metadata or {}))

    @classmethod
    def from_filters(
        cls,
        filters: Mapping[str, Any],
        *,
        metadata: Mapping[str, Any] | None = None,
        where: Where = None,
        function: str = "select",
    ) -> RowFilter:
        """The filter for keyword filters (``min_length=...``; ``None`` values ignored);
        an unknown name raises ``TypeError`` (see :func:`check_filters`)."""
        given = {k: v for k, v in filters.items() if v is not None}
        check_filters(given, function)
        return cls(**given, metadata=metadata or {}, where=where)

    def bounds(self) -> dict[str, Any]:
        """The keyword filters that are set, by name."""
        return {name: getattr(self, name) for name in FILTERS if getattr(self, name) is not None}

    @property
    def bounds_return(self) -> bool:
        """Whether a return bound is set (the dataset's reward must be a scalar number)."""
        return self.min_return is not None or self.max_return is not None

    def matches(self, row: dict[str, Any], split: str) -> bool:
        """Whether the row passes every condition.

        Raises:
          ValueError: ``where`` raised (the message names the episode and split).
        """
        length, total = row["num_steps"], row.get("return")
        if self.min_length is not None and length < self.min_length:
            return False
        if self.max_length is not None and length > self.max_length:
            return False
        if self.min_return is not None and (total is None or not total >= self.min_return):
            return False
        if self.max_return is not None and (total is None or not total <= self.max_return):
            return False
        if self.terminated is not None and bool(row["terminated"]) != bool(self.terminated):
            return False
        values = row.get("metadata") or {}
        for key, wanted in self.metadata.items():
            if key not in values or not _equal(values[key], wanted):
                return False
        if self.where is None:
            return True
        try:
            return bool(self.where(row))
        except Exception as e:
            raise ValueError(
                f"where raised {type(e).__name__} on episode {row['episode']} of split "
                f"{split!r}: {e}"
            ) from e


def _equal(value: Any, wanted: Any) -> bool:
    if isinstance(value, float) and isinstance(wanted, int | float):
        return value == wanted or (math.isnan(value) and math.isnan(float(wanted)))
    if isinstance(wanted, str) and not isinstance(value, str):
        return str(value) == wanted
    return value == wanted
