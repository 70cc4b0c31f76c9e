"""Per-episode decisions made from an episode's table row: the row filter the readers use
(:class:`rlds_hub.storage.filters.RowFilter`: length, return and termination bounds, a
metadata match, a user predicate), a seeded random fraction, and hash-based split assignment.
Everything here is deterministic: the same episode gets the same answer on every worker."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rlds_hub.storage.filters import RowFilter


def unit_interval(*parts: Any) -> float:
    """A uniform number in [0, 1) from a stable hash (SHA-256) of ``parts``."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") / 2.0**64


class EpisodeFilter:
    """Keeps an episode when every given condition holds.

    Args:
      filters: ``min_length``, ``max_length`` (RLDS steps), ``min_return``, ``max_return``,
        ``terminated`` — the fields of :class:`~rlds_hub.storage.filters.RowFilter`, which
        decides (with ``metadata`` and ``where``) exactly as the readers do.
      metadata: episode metadata values that must match exactly (``{"operator": "alice"}``).
      where: a predicate called with the row (picklable: a module-level function).
      fraction / seed: keep each episode with probability ``fraction``, decided by a hash
        of the seed, the source split and the episode index (reproducible).
    """

    def __init__(
        self,
        *,
        filters: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        where: Callable[[dict[str, Any]], Any] | None = None,
        fraction: float | None = None,
        seed: int = 0,
    ):
        self.rows = RowFilter.from_filters(
            filters or {}, metadata=metadata, where=where, function="filter"
        )
        if fraction is not None and not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {fraction}")
        self.fraction = fraction
        self.seed = seed

    def describe(self) -> dict[str, Any]:
        where = self.rows.where
        return {
            "filters": self.rows.bounds(),
            "metadata": dict(self.rows.metadata),
            "fraction": self.fraction,
            "seed": self.seed,
            "where": getattr(where, "name", None) or getattr(where, "__qualname__", None),
        }

    def __call__(self, split: str, row: dict[str, Any]) -> bool:
        if (
            self.fraction is not None
            and unit_interval("filter", self.seed, split, row["episode"]) >= self.fraction
        ):
            return False
        return self.rows.matches(row, split)


def parse_fractions(text: str | Mapping[str, float]) -> dict[str, float]:
    """``"train=0.8,validation=0.1,test=0.1"`` -> ordered fractions summing to 1."""
    if isinstance(text, Mapping):
        fractions = {str(k): float(v) for k, v in text.items()}
    else:
        fractions = {}
        for part in str(text).split(","):
            name, sep, value = part.strip().partition("=")
            if not sep or not name:
                raise ValueError(
                    f"{text!r}: give fractions as name=value,... "
                    "(e.g. train=0.8,validation=0.1,test=0.1)"
                )
            if name.strip() in fractions:
                raise ValueError(
                    f"{text!r}: the split {name.strip()!r} is given twice; name "
                    "each split once (e.g. train=0.8,validation=0.1,test=0.1)"
                )
            try:
                fractions[name.strip()] = float(value)
            except ValueError:
                raise ValueError(f"{text!r}: {value!r} is not a number") from None
    if not fractions:
        raise ValueError("no split fractions given")
    bad = [n for n, v in fractions.items() if not 0.0 <= v <= 1.0 or math.isnan(v)]
    if bad:
        raise ValueError(f"split fractions must be in [0, 1]: {bad}")
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, they sum to {total:g}")
    return fractions


def assign_split(fractions: Mapping[str, float], seed: int, episode_id: str) -> str:
    """The split of ``episode_id``: a stable hash placed on the cumulative fractions."""
    point = unit_interval("split", seed, episode_id)
    cumulative = 0.0
    names: Sequence[str] = list(fractions)
    for name in names:
        cumulative += fractions[name]
        if point < cumulative:
            return name
    return next(n for n in reversed(names) if fractions[n] > 0)
