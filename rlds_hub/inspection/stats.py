"""Dataset statistics — the one implementation: per-feature moments and ranges, and episode
length/return distributions.

``statistics`` streams a split once, in batches of episodes decoded with only the leaves it
needs, and merges per-batch moments with Chan et al.'s parallel algorithm (float64, each
batch's deviations taken from its own mean), so a feature like ``1e6 + small noise`` gets an
accurate standard deviation. :class:`Moments` merge across batches and workers (the Beam
stats job uses them). The result is plain JSON, shared by ``rlds-hub info``, ``rlds-hub
stats``, the plots, the server, the pipelines and the learners (observation normalisation);
:func:`format_statistics` prints it as a table, :func:`save_statistics` stores it with the
dataset (``statistics.json``).

Conventions (the same everywhere in rlds_hub):

- ``std`` is the population standard deviation (divides by the count: ddof = 0). The
  ``rlds``-compatible :func:`rlds_hub.transforms.mean_and_std` keeps rlds's sample standard
  deviation (ddof = 1).
- In the RLDS layout, observations aggregate every step; action, reward, discount and step
  metadata leave out each episode's zero-filled last step. In the Open X-Embodiment layout
  every field aggregates every step.
- NaN and infinite values are counted (``nan_count`` / ``inf_count``) and left out of the
  moments and ranges; an element with no finite value gets ``None``. Episode returns that are
  NaN or infinite are counted in their distribution the same way — never dropped silently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from rlds_hub import rlds_types as rlds
from rlds_hub.format.features import is_image_spec
from rlds_hub.format.plan import Leaf, LeafKind
from rlds_hub.storage import dataset_files, files
from rlds_hub.storage.dataset import RLDSDataset
from rlds_hub.storage.episodes import (
    LAYOUT_OXE,
    PathOrDataset,
    batch_returns,
    table_plan,
)
from rlds_hub.storage.names import as_dataset
from rlds_hub.storage.reader import DEFAULT_BATCH_EPISODES, iter_batches
from rlds_hub.storage.selection import EpisodeSpec, Selection, episode_indices

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
      path_or_dataset: a dataset directory, a dataset name or an already opened ``RLDSDataset``.
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
    dataset = as_dataset(path_or_dataset, "statistics()", selection=False)
    num_episodes = dataset.split(split).num_episodes
    indices = episode_indices(episodes, num_episodes)
    plan = table_plan(dataset)
    moments, skipped = feature_moments(dataset, keys)
    # Validate everything before the first read, so a bad key fails before any progress.
    selection = Selection(dataset, split, None if indices is None else tuple(indices.tolist()))
    lengths: list[np.ndarray] = []
    returns: list[np.ndarray] = []
    done = 0
    batches = iter_batches(
        selection, keys=plan.step_keys | set(moments), batch_episodes=batch_episodes
    )
    for batch in batches:
        update_moments(moments, batch)
        lengths.append(batch.num_steps)
        totals = batch_returns(plan, batch)
        if totals is not None:
            returns.append(totals)
        done += len(batch.num_steps)
        if progress is not None:
            progress(done)

    episode_lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    return summarize(
        split,
        plan.layout,
        episode_lengths,
        (np.concatenate(returns) if returns else np.zeros(0))
        if plan.reward_key is not None
        else None,
        moments,
        skipped,
    )


def feature_moments(
    dataset: RLDSDataset, keys: Iterable[str] | None = None
) -> tuple[dict[str, Moments], dict[str, str]]:
    """Empty accumulators for the numeric step leaves (``keys``: names or prefixes, see
    :func:`statistics`), and the leaves left out with the reason."""
    layout_name = table_plan(dataset).layout
    step_leaves = _select(list(dataset.plan.step_leaves), keys)
    skipped = {}
    moments: dict[str, Moments] = {}
    for leaf in step_leaves:
        reason = _skip_reason(leaf)
        if reason:
            skipped[leaf.name] = reason
        else:
            moments[leaf.key] = Moments(leaf, all_steps=layout_name == LAYOUT_OXE)
    return moments, skipped


def update_moments(moments: dict[str, Moments], batch: Any) -> None:
    """Adds a :class:`~rlds_hub.storage.reader.DecodedBatch` to the accumulators."""
    not_last = None
    for key, accumulator in moments.items():
        values = batch.arrays[key]
        if not accumulator.all_steps:
            not_last = ~batch.last_step if not_last is None else not_last
            values = values[not_last]
        accumulator.update(values)


def summarize(
    split: str,
    layout_name: str,
    episode_lengths: np.ndarray,
    returns: np.ndarray | None,
    moments: dict[str, Moments],
    skipped: dict[str, str],
) -> dict[str, Any]:
    """The statistics JSON from per-episode lengths and returns and merged moments."""
    episode_lengths = np.asarray(episode_lengths, np.int64)
    transitions = (
        episode_lengths if layout_name == LAYOUT_OXE else np.maximum(episode_lengths - 1, 0)
    )
    return {
        "split": split,
        "layout": layout_name,
        "num_episodes": len(episode_lengths),
        "num_steps": int(episode_lengths.sum()),
        "num_transitions": int(transitions.sum()),
        "features": {m.leaf.name: m.result() for m in moments.values()},
        "skipped": skipped,
        "lengths": distribution(episode_lengths),
        "returns": None if returns is None else distribution(returns),
    }


def save_statistics(
    path: str | os.PathLike, result: dict[str, Any] | list[dict[str, Any]], **provenance: Any
) -> str:
    """Stores statistics (one split's, or a list of splits') as ``statistics.json`` in the
    dataset directory, where the service and the learners find them; returns its path."""
    from rlds_hub._version import __version__

    splits = result if isinstance(result, list) else [result]
    content = {
        "rlds_hub_version": __version__,
        **provenance,
        "splits": {s["split"]: s for s in splits},
    }
    target = files.join(path, dataset_files.STATISTICS)
    existing = saved_statistics(path) if files.exists(target) else None
    if existing:
        old = existing.get("splits", {})
        for name, entry in content["splits"].items():
            if name in old:
                content["splits"][name] = _keep_quantiles(entry, old[name], existing)
        content["splits"] = {**old, **content["splits"]}
    if files.is_remote(target):
        raise dataset_files.DatasetError(f"{target}: statistics are saved into local datasets only")
    from pathlib import Path

    dataset_files.atomic_write(Path(target), json.dumps(content, indent=1).encode(), sync=True)
    return target


_QUANTILE_KEYS = ("p5", "p25", "p50", "p75", "p95", "quantile_rank_error")
_PROVENANCE_KEYS = ("computed_by", "time", "runner", "sketch_size")


def _keep_quantiles(
    new: dict[str, Any], old: dict[str, Any], saved: dict[str, Any]
) -> dict[str, Any]:
    """``new`` with the quantiles of ``old`` (the Beam job's, which in-process statistics do
    not compute) kept when both describe the same data: the same episodes and steps, and
    per feature the same count, min and max and means equal to 1e-9. Where the quantiles
    came from goes under ``quantiles``. Stale quantiles (other data) are dropped."""
    old_features = old.get("features") or {}
    same = all(new.get(k) == old.get(k) for k in ("num_episodes", "num_steps")) and all(
        name in old_features and _same_moments(feature, old_features[name])
        for name, feature in new.get("features", {}).items()
    )
    if not same or not any(k in f for f in old_features.values() for k in _QUANTILE_KEYS):
        return new
    out = {**new, "features": {}}
    for name, feature in new.get("features", {}).items():
        quantiles = {k: old_features[name][k] for k in _QUANTILE_KEYS if k in old_features[name]}
        out["features"][name] = {**feature, **quantiles}
    out["quantiles"] = old.get("quantiles") or {k: saved[k] for k in _PROVENANCE_KEYS if k in saved}
    return out


def _same_moments(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if any(
        a.get(k) != b.get(k)
        for k in ("shape", "dtype", "count", "nan_count", "inf_count", "min", "max")
    ):
        return False
    try:
        return bool(
            np.allclose(
                np.asarray(a.get("mean"), float),
                np.asarray(b.get("mean"), float),
                rtol=1e-9,
                atol=0,
                equal_nan=True,
            )
        )
    except (TypeError, ValueError):
        return False


def saved_statistics(source: PathOrDataset) -> dict[str, Any] | None:
    """The content of the dataset's ``statistics.json``, or None."""
    path = source.path if isinstance(source, RLDSDataset) else os.fspath(source)
    within = (
        source.real_path
        if isinstance(source, RLDSDataset)
        else None
        if files.is_remote(path)
        else os.path.realpath(path)
    )
    target = files.join(path, dataset_files.STATISTICS)
    if not files.exists(target):
        return None
    try:  # a link out of the dataset is refused (DatasetError), never read
        return json.loads(files.read_text(target, within=within))
    except json.JSONDecodeError:
        return None


def split_statistics(source: PathOrDataset, split: str = "train") -> dict[str, Any]:
    """A split's statistics: saved with the dataset when present, computed otherwise."""
    saved = saved_statistics(source)
    if saved and split in saved.get("splits", {}):
        return saved["splits"][split]
    return statistics(source, split)


def _select(leaves: list[Leaf], keys: Iterable[str] | None) -> list[Leaf]:
    if keys is None:
        return leaves
    if isinstance(keys, str):
        keys = [keys]
    chosen: list[Leaf] = []
    for key in keys:
        key = key.removeprefix(_STEPS_PREFIX).strip("/")
        matches = [leaf for leaf in leaves if leaf.name == key or leaf.name.startswith(key + "/")]
        if not matches:
            raise ValueError(
                f"no step feature {key!r}; the step features are "
                f"{sorted(leaf.name for leaf in leaves)}"
            )
        chosen += [leaf for leaf in matches if leaf not in chosen]
    return [leaf for leaf in leaves if leaf in chosen]  # dataset order


def _skip_reason(leaf: Leaf) -> str | None:
    if leaf.field in rlds.FLAG_FIELDS:
        return "RLDS flag"
    if leaf.kind == LeafKind.IMAGE:
        return "image"
    if leaf.kind == LeafKind.STRING:
        return "string"
    dtype = leaf.dtype
    if is_image_spec(leaf.shape, dtype):
        return "image (raw-encoded uint8)"
    if dtype.kind == "c":
        return "complex numbers"
    if dtype.kind not in "biuf":
        return f"dtype {dtype} is not numeric"
    return None


class Moments:
    """Elementwise count, mean, M2 (sum of squared deviations), min and max of one leaf,
    over finite values, merged batch by batch (Chan, Golub and LeVeque's update) in float64
    on values shifted by each element's first value. ``all_steps``: aggregate every step
    (observations, and every field in the Open X-Embodiment layout)."""

    def __init__(self, leaf: Leaf, all_steps: bool = False):
        self.leaf = leaf
        self.dtype = leaf.dtype
        self.all_steps = all_steps or leaf.field in _ALL_STEPS_FIELDS
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
            start = (
                as_float[0]
                if finite is None
                else np.take_along_axis(as_float, np.expand_dims(row, 0), axis=0)[0]
            )
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
        self._merge(count, mean, m2, low, high)

    def _merge(
        self, count: np.ndarray, mean: np.ndarray, m2: np.ndarray, low: np.ndarray, high: np.ndarray
    ) -> None:
        """Chan et al.'s update with a summary whose mean is taken from ``self.shift``."""
        total = self.n + count
        share = np.divide(count, total, out=np.zeros(total.shape), where=total > 0)
        delta = mean - self.mean
        self.mean = self.mean + delta * share
        self.m2 = self.m2 + m2 + np.square(delta) * self.n * share
        self.n = total
        self.min = low if self.min is None else np.minimum(self.min, low)
        self.max = high if self.max is None else np.maximum(self.max, high)

    def merge(self, other: Moments) -> None:
        """Adds another accumulator of the same leaf (e.g. from another worker)."""
        if other.leaf.key != self.leaf.key:
            raise ValueError(f"cannot merge moments of {other.leaf.key} into {self.leaf.key}")
        self.steps += other.steps
        self.nan_count += other.nan_count
        self.inf_count += other.inf_count
        if other.min is None:
            return
        if self.min is None:
            self.shift = other.shift.copy()
        fresh = self.n == 0
        self.shift = np.where(fresh, other.shift, self.shift)
        # other's mean, re-expressed relative to this accumulator's shift
        mean = other.mean + (other.shift - self.shift)
        self._merge(other.n, np.where(other.n > 0, mean, 0.0), other.m2, other.min, other.max)

    def result(self) -> dict[str, Any]:
        """The leaf's statistics (see :func:`statistics`)."""
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


def print_statistics(
    results: list[dict[str, Any]], *, as_json: bool = False, saved: str | os.PathLike | None = None
) -> None:
    """What ``rlds-hub stats`` prints (in-process and Beam): one JSON value (a list for several
    splits) or each split's table, then ``saved PATH`` when ``saved`` is given."""
    if as_json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    else:
        print("\n\n".join(format_statistics(r) for r in results))
    if saved is not None:
        print(f"saved {os.fspath(saved)}")


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
    for label, dist in (("length (steps)", stats.get("lengths")), ("return", stats.get("returns"))):
        if dist:
            table.append((label, str(dist["count"]), *(_number(dist.get(c)) for c in columns)))
    if len(table) > 1:
        lines += ["", *_align(table)]

    features = stats.get("features", {})
    if features:
        rows = [("feature", "shape", "count", "mean", "std", "min", "max", "non-finite")]
        for name, f in features.items():
            bad = f["nan_count"] + f["inf_count"]
            rows.append(
                (
                    name + (" *" if f["last_step_excluded"] else ""),
                    str(tuple(f["shape"])),
                    str(f["count"]),
                    *(_cell(f[c], max_elements) for c in ("mean", "std", "min", "max")),
                    f"{f['nan_count']} nan, {f['inf_count']} inf" if bad else "",
                )
            )
        lines += ["", *_align(rows)]
        if any(f["last_step_excluded"] for f in features.values()):  # never in the oxe layout
            lines.append("* the zero-filled last step of each episode is excluded")
    skipped = stats.get("skipped", {})
    if skipped:
        by_reason: dict[str, list[str]] = {}
        for name, reason in skipped.items():
            by_reason.setdefault(reason, []).append(name)
        lines += [
            "",
            "skipped: "
            + "; ".join(f"{', '.join(names)} ({reason})" for reason, names in by_reason.items()),
        ]
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
