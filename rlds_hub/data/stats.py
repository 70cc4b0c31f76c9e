"""Dataset statistics: per-feature moments and ranges, and episode length/return distributions.

``statistics`` streams a split once, in batches of episodes decoded with only the leaves it
needs, and merges per-batch moments with Chan et al.'s parallel algorithm (float64, each
batch's deviations taken from its own mean), so a feature like ``1e6 + small noise`` gets an
accurate standard deviation. The result is plain JSON, shared by the CLI (``rlds-hub stats``),
the server and the pipelines; :func:`format_statistics` prints it as a table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from rlds_hub import spec as rlds
from rlds_hub.data.episodes import (
    DEFAULT_BATCH_EPISODES,
    EpisodeSpec,
    PathOrDataset,
    as_dataset,
    batch_returns,
    episode_indices,
    iter_decoded_batches,
    table_plan,
)
from rlds_hub.decode import Leaf, compile_leaves
from rlds_hub.features import is_image_spec

HISTOGRAM_BINS = 20
QUANTILES = (5, 25, 50, 75, 95)
_STEPS_PREFIX = f"{rlds.STEPS}/"
_ALL_STEPS_FIELDS = (rlds.OBSERVATION,)  # every other step field is zero-filled on the last step


def statistics(
    path_or_dataset: PathOrDataset,
    split: str = "train",
    *,
    episodes: EpisodeSpec = None,
    keys: Iterable[str] | None = None,
    progress: Callable[[int], Any] | None = None,
    batch_episodes: int = DEFAULT_BATCH_EPISODES,
) -> dict[str, Any]:
    """Statistics of ``split`` (or of the given ``episodes`` of it), as JSON-serialisable data.

    Returns::

        {"split": "train", "num_episodes": E, "num_steps": S, "num_transitions": S - E,
         "features": {"observation/position": {
             "shape": [2], "dtype": "float64", "last_step_excluded": False,
             "count": 123,                  # steps aggregated
             "nan_count": 0, "inf_count": 0,  # non-finite values (all elements together)
             "mean": [..], "std": [..], "min": [..], "max": [..]},   # shaped like the feature
           ...},
         "skipped": {"observation/camera": "image", "observation/label": "string", ...},
         "lengths": {<distribution of episode lengths in RLDS steps>},
         "returns": {<distribution of episode returns>} or None}

    Features are the numeric step leaves, keyed by their flattened key without ``steps/``.
    Observations aggregate every step; action, reward, discount and step metadata leave out
    each episode's last step (zero-filled in RLDS). ``std`` is the population standard
    deviation; moments accumulate in float64. NaN and infinite values are counted in
    ``nan_count`` / ``inf_count`` and left out of mean, std, min and max (an element with no
    finite value gets ``None`` there). Images, strings, complex numbers and the RLDS flags
    (``is_first``...) are not aggregated; they are listed under ``skipped`` with the reason.

    A distribution (over episodes, from the rows :func:`rlds_hub.data.episode_table` gives,
    computed in the same pass) is ``{"count", "nan_count", "inf_count", "mean", "std", "min",
    "max", "p5", "p25", "p50", "p75", "p95", "histogram": {"edges": [21], "counts": [20]}}``
    over its finite values. ``returns`` is None when the reward is not a scalar number.

    Args:
      path_or_dataset: a dataset directory or an already opened ``RLDSDataset``.
      split: the split.
      episodes: only these episodes (a range, slice or sequence of indices, e.g. the result
        of :func:`rlds_hub.data.select_episodes`); default all.
      keys: only these features: flattened keys like "observation/position", or a prefix of
        them at a "/" ("observation" selects every observation leaf).
      progress: called with the number of episodes done after every batch.
      batch_episodes: episodes decoded at once (memory is bounded by one batch and one shard).

    Raises:
      DatasetError: not a dataset, no such split, or an episode index out of range.
      ValueError: a key that names no step feature.
    """
    dataset = as_dataset(path_or_dataset)
    num_episodes = dataset.split(split).num_episodes
    indices = episode_indices(episodes, num_episodes)
    leaves = compile_leaves(dataset.features)
    plan = table_plan(dataset)
    step_leaves = _select(
        [leaf for leaf in leaves if leaf.in_steps and leaf.key.startswith(_STEPS_PREFIX)], keys
    )
    skipped = {}
    moments: dict[str, _Moments] = {}
    for leaf in step_leaves:
        reason = _skip_reason(leaf)
        if reason:
            skipped[_name(leaf)] = reason
        else:
            moments[leaf.key] = _Moments(leaf)

    lengths: list[np.ndarray] = []
    returns: list[np.ndarray] = []
    done = 0
    batches = iter_decoded_batches(
        dataset, split, plan.step_keys | set(moments), episodes=indices,
        batch_episodes=batch_episodes,
    )
    for batch in batches:
        not_last = ~batch.last_step
        for key, accumulator in moments.items():
            values = batch.arrays[key]
            accumulator.update(values if accumulator.all_steps else values[not_last])
        lengths.append(batch.num_steps)
        totals = batch_returns(plan, batch)
        if totals is not None:
            returns.append(totals)
        done += len(batch.num_steps)
        if progress is not None:
            progress(done)

    episode_lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    total_steps = int(episode_lengths.sum())
    return {
        "split": split,
        "num_episodes": len(episode_lengths),
        "num_steps": total_steps,
        "num_transitions": int(np.maximum(episode_lengths - 1, 0).sum()),
        "features": {_name(m.leaf): m.result() for m in moments.values()},
        "skipped": skipped,
        "lengths": distribution(episode_lengths),
        "returns": (
            distribution(np.concatenate(returns) if returns else np.zeros(0))
            if plan.reward_key is not None else None
        ),
    }


def _name(leaf: Leaf) -> str:
    return leaf.key.removeprefix(_STEPS_PREFIX)


def _select(leaves: list[Leaf], keys: Iterable[str] | None) -> list[Leaf]:
    if keys is None:
        return leaves
    if isinstance(keys, str):
        keys = [keys]
    chosen: list[Leaf] = []
    for key in keys:
        key = key.removeprefix(_STEPS_PREFIX).strip("/")
        matches = [
            leaf for leaf in leaves if _name(leaf) == key or _name(leaf).startswith(key + "/")
        ]
        if not matches:
            raise ValueError(
                f"no step feature {key!r}; the step features are "
                f"{sorted(_name(leaf) for leaf in leaves)}"
            )
        chosen += [leaf for leaf in matches if leaf not in chosen]
    return [leaf for leaf in leaves if leaf in chosen]  # dataset order


def _skip_reason(leaf: Leaf) -> str | None:
    field = _name(leaf).split("/")[0]
    if field in rlds.FLAG_FIELDS:
        return "RLDS flag"
    if leaf.kind == "image":
        return "image"
    if leaf.kind == "string":
        return "string"
    dtype = np.dtype(leaf.dtype.as_numpy_dtype)
    if is_image_spec(leaf.shape, dtype):
        return "image (raw-encoded uint8)"
    if dtype.kind == "c":
        return "complex numbers"
    if dtype.kind not in "biuf":
        return f"dtype {dtype} is not numeric"
    return None


class _Moments:
    """Elementwise count, mean, M2 (sum of squared deviations), min and max of one leaf,
    over finite values, merged batch by batch (Chan, Golub and LeVeque's update) in float64
    on values shifted by each element's first value."""

    def __init__(self, leaf: Leaf):
        self.leaf = leaf
        self.dtype = np.dtype(leaf.dtype.as_numpy_dtype)
        self.all_steps = _name(leaf).split("/")[0] in _ALL_STEPS_FIELDS
        shape = leaf.shape
        self.steps = 0
        self.nan_count = 0
        self.inf_count = 0
        self.n = np.zeros(shape, np.int64)
        self.shift = np.zeros(shape, np.float64)
        self.mean = np.zeros(shape, np.float64)  # of the values minus ``shift``
        self.m2 = np.zeros(shape, np.float64)
        # min/max in the leaf's own dtype (exact for int64), bools as 0/1
        range_dtype = np.uint8 if self.dtype == np.bool_ else self.dtype
        self.min: np.ndarray | None = None
        self.max: np.ndarray | None = None
        self._range_dtype = range_dtype

    def update(self, values: np.ndarray) -> None:
        rows = values.shape[0]
        if rows == 0:
            return
        self.steps += rows
        values = values.astype(self._range_dtype, copy=False)
        as_float = values.astype(np.float64)
        finite = None
        if self.dtype.kind == "f" and not np.isfinite(as_float).all():
            finite = np.isfinite(as_float)
            nan = np.isnan(as_float)
            self.nan_count += int(nan.sum())
            self.inf_count += int((~finite & ~nan).sum())
            count = finite.sum(axis=0)
        else:
            count = np.full(self.leaf.shape, rows, np.int64)
        # Deviations are taken from a per-element shift (the element's first finite value):
        # the batch means merged below are then small numbers, exact to far more digits
        # than means near a large offset would be.
        first = (self.n == 0) & (count > 0)
        if first.any():
            row = 0 if finite is None else np.argmax(finite, axis=0)
            start = as_float[0] if finite is None else np.take_along_axis(
                as_float, np.expand_dims(row, 0), axis=0
            )[0]
            self.shift = np.where(first, start, self.shift)
        shifted = as_float - self.shift
        if finite is None:
            mean = shifted.mean(axis=0)
            m2 = np.square(shifted - mean).sum(axis=0)
            low, high = values.min(axis=0), values.max(axis=0)
        else:
            shifted = np.where(finite, shifted, 0.0)
            mean = shifted.sum(axis=0) / np.maximum(count, 1)
            m2 = np.square(np.where(finite, shifted - mean, 0.0)).sum(axis=0)
            low = np.where(finite, values, np.inf).min(axis=0)
            high = np.where(finite, values, -np.inf).max(axis=0)
        total = self.n + count
        share = np.divide(count, total, out=np.zeros(total.shape), where=total > 0)
        delta = mean - self.mean
        self.mean = self.mean + delta * share
        self.m2 = self.m2 + m2 + np.square(delta) * self.n * share
        self.n = total
        self.min = low if self.min is None else np.minimum(self.min, low)
        self.max = high if self.max is None else np.maximum(self.max, high)

    def result(self) -> dict[str, Any]:
        empty = self.n == 0
        std = np.sqrt(np.divide(self.m2, self.n, out=np.zeros(self.m2.shape), where=~empty))
        low = self.min if self.min is not None else np.zeros(self.leaf.shape)
        high = self.max if self.max is not None else np.zeros(self.leaf.shape)
        return {
            "shape": list(self.leaf.shape),
            "dtype": self.dtype.name,
            "last_step_excluded": not self.all_steps,
            "count": self.steps,
            "nan_count": self.nan_count,
            "inf_count": self.inf_count,
            "mean": _json_array(self.shift + self.mean, empty),
            "std": _json_array(std, empty),
            "min": _json_array(low, empty),
            "max": _json_array(high, empty),
        }


def _json_array(values: np.ndarray, empty: np.ndarray) -> Any:
    """Nested lists (a scalar for shape ()) of Python numbers, None where ``empty``."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        values = values.astype(np.float64)
    if not empty.any():
        return values.tolist()
    out = values.astype(object)
    out[empty] = None
    return out.tolist()


def distribution(values: np.ndarray, bins: int = HISTOGRAM_BINS) -> dict[str, Any]:
    """Summary of a 1-D sample over its finite values: moments, quantiles and a histogram."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = values[np.isfinite(values)]
    nan_count = int(np.isnan(values).sum())
    out: dict[str, Any] = {
        "count": int(finite.size),
        "nan_count": nan_count,
        "inf_count": int(values.size - finite.size - nan_count),
    }
    names = ("mean", "std", "min", "max", *(f"p{q}" for q in QUANTILES))
    if not finite.size:
        out.update(dict.fromkeys(names))
        out["histogram"] = {"edges": [], "counts": []}
        return out
    quantiles = np.percentile(finite, QUANTILES)
    summary = [finite.mean(), finite.std(), finite.min(), finite.max(), *quantiles]
    out.update({name: float(value) for name, value in zip(names, summary, strict=True)})
    counts, edges = np.histogram(finite, bins=bins)
    out["histogram"] = {"edges": edges.tolist(), "counts": counts.tolist()}
    return out


# ---- the table ---------------------------------------------------------------------------


def format_statistics(stats: dict[str, Any], max_elements: int = 4) -> str:
    """A compact human-readable table of :func:`statistics` output.

    Array features show their first ``max_elements`` elements (then "…").
    """
    lines = [
        f"split {stats.get('split', '?')}: {stats['num_episodes']} episodes, "
        f"{stats['num_steps']} steps, {stats['num_transitions']} transitions"
    ]
    columns = ("mean", "std", "min", "p50", "max")
    table = [("", "count", *columns)]
    for label, dist in (("length (steps)", stats.get("lengths")),
                        ("return", stats.get("returns"))):
        if dist:
            table.append((label, str(dist["count"]), *(_number(dist.get(c)) for c in columns)))
    if len(table) > 1:
        lines += ["", *_align(table)]

    features = stats.get("features", {})
    if features:
        rows = [("feature", "shape", "count", "mean", "std", "min", "max", "non-finite")]
        for name, f in features.items():
            bad = f["nan_count"] + f["inf_count"]
            rows.append((
                name + (" *" if f["last_step_excluded"] else ""),
                str(tuple(f["shape"])),
                str(f["count"]),
                *(_cell(f[c], max_elements) for c in ("mean", "std", "min", "max")),
                f"{f['nan_count']} nan, {f['inf_count']} inf" if bad else "",
            ))
        lines += ["", *_align(rows), "* last step of each episode excluded"]
    skipped = stats.get("skipped", {})
    if skipped:
        by_reason: dict[str, list[str]] = {}
        for name, reason in skipped.items():
            by_reason.setdefault(reason, []).append(name)
        lines += ["", "skipped: " + "; ".join(
            f"{', '.join(names)} ({reason})" for reason, names in by_reason.items()
        )]
    return "\n".join(lines)


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def _cell(value: Any, max_elements: int) -> str:
    if not isinstance(value, list):
        return _number(value)
    flat = list(_flatten(value))
    shown = " ".join(_number(v) for v in flat[:max_elements])
    return f"[{shown}{' …' if len(flat) > max_elements else ''}]"


def _flatten(value: Any) -> Iterable[Any]:
    if isinstance(value, list):
        for item in value:
            yield from _flatten(item)
    else:
        yield value


def _align(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
