"""Episodes as flat NumPy columns, and their encoding into the sink's ``EncodedEpisode``.

Converters and the map job build an episode as ``{flattened feature key: array}`` (step keys
``steps/observation/position`` with a leading step axis, episode keys single values) and
hand it to :class:`EpisodeEncoder`, which checks it against the output's features (every
leaf present, shapes, dtypes castable without loss), encodes it with the format core's
:class:`~rlds_hub.format.encode.ExampleEncoder`, and computes its episode-table row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlds_hub import rlds_types as rlds
from rlds_hub.beam.sink import SOURCE, EncodedEpisode
from rlds_hub.format.encode import ExampleEncoder
from rlds_hub.format.plan import Leaf, LeafKind, Plan
from rlds_hub.storage.episodes import TablePlan, rows_from_batch
from rlds_hub.storage.reader import DecodedBatch


class EpisodeContentError(ValueError):
    """An episode whose values do not fit the output's features."""


def flatten_nested(value: Any, prefix: str) -> dict[str, Any]:
    """``{"a": {"b": x}, "c": (y, z)}`` under ``prefix`` -> ``{prefix/a/b: x, prefix/c/0: y,
    prefix/c/1: z}`` (tuples and lists become "0", "1", ... as in the features)."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten_nested(item, f"{prefix}/{key}" if prefix else str(key)))
        return out
    if isinstance(value, (tuple, list)) and not _is_array_like_list(value):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten_nested(item, f"{prefix}/{i}" if prefix else str(i)))
        return out
    return {prefix: value}


def _is_array_like_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, (int, float, bool, np.number)) for v in value)
    )


def stack_steps(values: Sequence[Any], prefix: str) -> dict[str, np.ndarray]:
    """Stacks per-step nested values into ``{flattened key: [T, ...] array}``."""
    if not values:
        return {}
    flats = [flatten_nested(v, prefix) for v in values]
    keys = flats[0].keys()
    out = {}
    for key in keys:
        try:
            out[key] = np.stack([np.asarray(f[key]) for f in flats])
        except KeyError as e:
            raise EpisodeContentError(f"{key}: missing from some steps ({e})") from None
        except ValueError as e:
            raise EpisodeContentError(f"{key}: steps of different shapes ({e})") from None
    return out


class EpisodeEncoder:
    """Checks and encodes flat episodes of one feature description (see the module doc).

    Args:
      features_json: the output's ``features.json`` content.
      layout: the output's last-step layout ("rlds" or "oxe"), for the returns in the rows.
    """

    def __init__(
        self, features_json: Mapping[str, Any], layout: str, *, exact_dtypes: bool = False
    ):
        self.plan = Plan.from_features_json(features_json)
        self.encoder = ExampleEncoder(self.plan)
        self.table = TablePlan.for_plan(self.plan, layout)
        self.exact_dtypes = exact_dtypes

    def encode(
        self,
        key: tuple,
        split: str,
        values: Mapping[str, Any],
        where: str,
        source: Mapping[str, Any] | None = None,
    ) -> EncodedEpisode:
        """One episode; ``where`` names it in errors ("log dir x, episode 3"); ``source``
        (where the episode came from) goes into its ``episodes.jsonl`` row."""
        columns, num_steps = self.check(values, where)
        record = self.encoder.encode(columns)
        row = self.row(columns, num_steps)
        if source is not None:
            row[SOURCE] = dict(source)
        return EncodedEpisode(key, split, record, row)

    def check(self, values: Mapping[str, Any], where: str) -> tuple[dict[str, Any], int]:
        """The values cast to the leaves' dtypes, and the number of steps.

        Raises:
          EpisodeContentError: a missing or unexpected key, a wrong shape, different step
            counts, or a value that would change when cast to the feature's dtype (with
            ``exact_dtypes``: any numeric value whose dtype is not the feature's).
        """
        expected = {leaf.key for leaf in self.plan}
        missing = sorted(expected - set(values))
        extra = sorted(set(values) - expected)
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {missing}")
            if extra:
                parts.append(f"not in the features {extra}")
            raise EpisodeContentError(
                f"{where}: the episode does not match the features: " + "; ".join(parts)
            )
        out: dict[str, Any] = {}
        num_steps: int | None = None
        first_key = ""
        for leaf in self.plan:
            if self.exact_dtypes and leaf.kind != LeafKind.STRING:
                found = np.asarray(values[leaf.key]).dtype
                if found != leaf.dtype:
                    raise EpisodeContentError(
                        f"{where}: {leaf.key} holds {found} values where the features say "
                        f"{leaf.dtype}; nothing was cast"
                    )
            value = _as_leaf_array(values[leaf.key], leaf, where)
            if leaf.in_steps:
                if num_steps is None:
                    num_steps, first_key = len(value), leaf.key
                elif len(value) != num_steps:
                    raise EpisodeContentError(
                        f"{where}: {leaf.key} has {len(value)} steps where {first_key} has "
                        f"{num_steps}"
                    )
            out[leaf.key] = value
        return out, int(num_steps or 0)

    def row(self, columns: Mapping[str, Any], num_steps: int) -> dict[str, Any]:
        arrays = {}
        for key in self.table.keys:
            leaf = self.plan[key]
            arrays[key] = columns[key] if leaf.in_steps else _episode_column(columns[key], leaf)
        batch = DecodedBatch(np.zeros(1, np.int64), np.asarray([num_steps], np.int64), arrays)
        return rows_from_batch(self.table, batch)[0]


def _episode_column(value: Any, leaf: Leaf) -> np.ndarray:
    if leaf.kind == LeafKind.STRING:
        out = np.empty(1, object)
        out[0] = value
        return out
    return np.asarray(value)[None]


def _as_leaf_array(value: Any, leaf: Leaf, where: str) -> Any:
    if leaf.kind == LeafKind.STRING:
        array = np.asarray(value, dtype=object)
        shape = array.shape[1:] if leaf.in_steps else array.shape
        if tuple(shape) != leaf.shape:
            raise EpisodeContentError(
                f"{where}: {leaf.key} has shape {tuple(shape)}, the features say {leaf.shape}"
            )
        return array if leaf.in_steps else value
    array = np.asarray(value)
    shape = array.shape[1:] if leaf.in_steps else array.shape
    if leaf.in_steps and array.ndim == 0:
        raise EpisodeContentError(f"{where}: {leaf.key} is a scalar, expected one value per step")
    if tuple(shape) != leaf.shape:
        raise EpisodeContentError(
            f"{where}: {leaf.key} has shape {tuple(shape)} per "
            f"{'step' if leaf.in_steps else 'episode'}, the features say {leaf.shape}"
        )
    if array.dtype == leaf.dtype:
        return array
    if array.dtype.kind not in "biuf" or leaf.dtype.kind not in "biufc":
        raise EpisodeContentError(
            f"{where}: {leaf.key} holds {array.dtype} values, the features say {leaf.dtype}"
        )
    cast = array.astype(leaf.dtype)
    with np.errstate(invalid="ignore"):
        same = np.array_equal(cast.astype(array.dtype), array, equal_nan=array.dtype.kind == "f")
    if not same:
        raise EpisodeContentError(
            f"{where}: {leaf.key} holds {array.dtype} values that {leaf.dtype} (the features' "
            "dtype) cannot represent exactly; nothing was converted lossily"
        )
    return cast


def rlds_flags(num_steps: int, terminated: bool) -> dict[str, np.ndarray]:
    """``steps/is_first``, ``is_last`` and ``is_terminal`` columns of an episode."""
    first = np.zeros(num_steps, bool)
    last = np.zeros(num_steps, bool)
    terminal = np.zeros(num_steps, bool)
    if num_steps:
        first[0] = True
        last[-1] = True
        terminal[-1] = terminated
    return {
        f"{rlds.STEPS}/{rlds.IS_FIRST}": first,
        f"{rlds.STEPS}/{rlds.IS_LAST}": last,
        f"{rlds.STEPS}/{rlds.IS_TERMINAL}": terminal,
    }
