"""``rlds-hub validate``: checks the RLDS contract on every episode and says where it breaks.

Errors break the contract or make the dataset unreadable (a corrupt or truncated shard, a
shard holding a different number of episodes than ``dataset_info.json`` says, steps with
misplaced ``is_first``/``is_last``/``is_terminal``, fields of different lengths). Warnings
are legal but suspicious (a last step that is not zero-filled, a terminal episode whose final
transition has a non-zero discount, non-finite rewards, an index row that disagrees).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import tensorflow as tf

from rlds_hub import spec as rlds
from rlds_hub.dataset import RLDSDataset, open_dataset
from rlds_hub.decode import NUM_STEPS, EpisodeDecoder, split_episodes, string_tensor
from rlds_hub.storage import shards

_BATCH = 32
_STEP = f"{rlds.STEPS}/"


@dataclasses.dataclass(frozen=True)
class Problem:
    """One finding, located as precisely as possible."""

    severity: str  # "error" or "warning"
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity.upper()}: {self.where}: {self.message}"


@dataclasses.dataclass
class Report:
    """What ``validate`` checked and found."""

    path: str
    episodes: int = 0
    steps: int = 0
    problems: list[Problem] = dataclasses.field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors


def validate(
    path: str | os.PathLike,
    *,
    splits: Iterable[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Checks every episode of ``splits`` (default: all) of the dataset at ``path``."""
    dataset = open_dataset(path)
    report = Report(dataset.path)
    decoder = EpisodeDecoder(dataset.features)
    for split in splits or sorted(dataset.splits):
        _validate_split(dataset, dataset.split(split).name, decoder, report, progress)
    return report


def _validate_split(dataset: RLDSDataset, split: str, decoder, report: Report, progress) -> None:
    info = dataset.split(split)
    rows = [r for r in (dataset.episode_index or []) if r.get("split") == split]
    episode = 0
    for shard_path, expected in zip(info.shard_paths, info.shard_lengths, strict=True):
        shard = os.path.basename(shard_path)
        first, episode = episode, episode + expected  # numbered as dataset_info.json says
        if expected == 0:
            continue
        if not tf.io.gfile.exists(shard_path):
            report.problems.append(Problem("error", f"{split}/{shard}", "shard file is missing"))
            continue
        records, failure = _read_shard(shard_path, dataset.file_format)
        if failure is not None:
            report.problems.append(Problem("error", f"{split}/{shard}", failure))
        if len(records) != expected:
            report.problems.append(Problem(
                "error", f"{split}/{shard}",
                f"holds {len(records)} episodes but dataset_info.json lists {expected}",
            ))
        for start in range(0, len(records), _BATCH):
            batch = records[start : start + _BATCH]
            for i, decoded in enumerate(_decode(decoder, batch)):
                index = first + start + i
                where = f"{split} episode {index} ({shard}, record {start + i})"
                if isinstance(decoded, Exception):
                    report.problems.append(Problem("error", where, f"cannot decode: {decoded}"))
                    continue
                row = rows[index] if index < len(rows) else None
                report.problems.extend(_check_episode(where, decoded, row))
                report.episodes += 1
                report.steps += _num_steps(decoded)
            if progress:
                progress(len(batch))
    if dataset.episode_index is not None and len(rows) != info.num_episodes:
        report.problems.append(Problem(
            "warning", f"{split}",
            f"episodes.jsonl has {len(rows)} rows for {info.num_episodes} episodes",
        ))


def _read_shard(path: str, file_format: str) -> tuple[list[bytes], str | None]:
    """The records readable from a shard, and what went wrong reading the rest (if anything)."""
    records: list[bytes] = []
    try:
        if file_format == "tfrecord":
            for _, record in shards.iter_tfrecord(path):
                records.append(record)
        else:
            records = shards.read_records(path, file_format)
    except Exception as e:  # corrupt, truncated or unreadable shard
        return records, f"{e} (after {len(records)} readable episodes)"
    return records, None


def _decode(decoder: EpisodeDecoder, records: list[bytes]) -> list[Any]:
    """Decoded episodes (with per-field counts), or the exception for each bad record."""
    try:
        return _decode_batch(decoder, records)
    except Exception:  # locate the bad records one by one
        out: list[Any] = []
        for record in records:
            try:
                out.extend(_decode_batch(decoder, [record]))
            except Exception as e:  # reported with its location
                out.append(e)
        return out


def _decode_batch(decoder: EpisodeDecoder, records: list[bytes]) -> list[dict[str, Any]]:
    batch = decoder.decode(string_tensor(records), with_lengths=True)
    batch = {k: v.numpy() for k, v in batch.items()}
    if len(records) > 1:
        # Episodes are split by their is_first counts: if any field disagrees in any
        # episode, that split would shift the others. Decode one by one instead.
        num_steps = batch[NUM_STEPS]
        for leaf in decoder.leaves:
            per = decoder.expected_values(leaf)
            expected = num_steps * per if leaf.in_steps else np.full_like(num_steps, per)
            if not np.array_equal(batch[f"{leaf.key}#values"], expected):
                raise ValueError("field lengths disagree within the batch")
    episodes = split_episodes(batch, decoder.leaves)
    for i, episode in enumerate(episodes):
        counts = {}
        for leaf in decoder.leaves:
            per = decoder.expected_values(leaf)
            values = int(batch[f"{leaf.key}#values"][i])
            counts[leaf.key] = (values, per)
        episode["__counts__"] = counts
        episode[NUM_STEPS] = int(batch[NUM_STEPS][i])
    return episodes


def _num_steps(episode: dict[str, Any]) -> int:
    return int(episode[NUM_STEPS])


def _check_episode(where: str, episode: dict[str, Any], row: dict[str, Any] | None) -> list[Problem]:
    problems: list[Problem] = []

    def error(message: str) -> None:
        problems.append(Problem("error", where, message))

    def warn(message: str) -> None:
        problems.append(Problem("warning", where, message))

    n = _num_steps(episode)
    for key, (values, per) in episode["__counts__"].items():
        expected = n * per if key.startswith(_STEP) else per
        if values != expected:
            unit = f"{per} per step" if key.startswith(_STEP) else "per episode"
            error(f"{key} has {values} values, expected {expected} ({unit})")
    if problems:
        return problems
    if n == 0:
        error("has no steps (an episode has at least one step)")
        return problems
    steps = episode[rlds.STEPS]
    for flag, position, name in (
        (rlds.IS_FIRST, 0, "first"),
        (rlds.IS_LAST, n - 1, "last"),
    ):
        if flag not in steps:
            error(f"steps have no {flag} field")
            continue
        values = np.asarray(steps[flag])
        if not values[position]:
            error(f"step {position}: {flag} is false on the {name} step")
        others = np.flatnonzero(values)
        others = others[others != position]
        if others.size:
            error(f"step {int(others[0])}: {flag} is true on a step that is not the {name} "
                  f"({others.size} such steps)")
    terminal = np.asarray(steps.get(rlds.IS_TERMINAL, np.zeros(n, bool)))
    early = np.flatnonzero(terminal[:-1])
    if early.size:
        error(f"step {int(early[0])}: is_terminal is true before the last step")
    for field in rlds.ZERO_FILLED_ON_LAST:
        if field in steps and _any_nonzero(steps[field], n - 1):
            warn(f"step {n - 1} (last): {field} is not zero-filled")
    if rlds.REWARD in steps:
        rewards = _leaves(steps[rlds.REWARD])
        if any(r.dtype.kind in "fc" and not np.all(np.isfinite(r[:-1])) for r in rewards):
            warn("has non-finite rewards")
    discounts = _leaves(steps[rlds.DISCOUNT]) if rlds.DISCOUNT in steps else []
    if n >= 2 and terminal[-1] and any(np.any(d[n - 2] != 0) for d in discounts):
        warn(f"step {n - 2}: terminal episode, but the final transition's discount is not 0")
    if row is not None:
        if row.get("num_steps") not in (None, n):
            error(f"episodes.jsonl says {row.get('num_steps')} steps, the episode has {n}")
        if "return" in row and rlds.REWARD in steps:
            reward = np.asarray(steps[rlds.REWARD])
            if reward.ndim == 1 and reward.dtype.kind in "biuf":
                total = float(np.sum(reward[:-1], dtype=np.float64))
                stored = row["return"]
                if isinstance(stored, (int, float)) and not np.isclose(stored, total, rtol=1e-9):
                    error(f"episodes.jsonl says return {stored}, the rewards sum to {total}")
    return problems


def _leaves(value: Any) -> list[np.ndarray]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    return [np.asarray(value)]


def _any_nonzero(value: Any, index: int) -> bool:
    for leaf in _leaves(value):
        item = leaf[index]
        if leaf.dtype.kind in "OSU":
            if any(bool(x) for x in np.asarray(item, dtype=object).ravel()):
                return True
        elif np.any(item != 0):
            return True
    return False


def format_report(report: Report, limit: int = 50) -> str:
    """Human-readable report: the problems (up to ``limit``) and a one-line verdict."""
    lines = [str(p) for p in report.problems[:limit]]
    if len(report.problems) > limit:
        lines.append(f"... and {len(report.problems) - limit} more problems")
    verdict = "OK" if report.ok else "FAILED"
    lines.append(
        f"{verdict}: {report.path}: {report.episodes} episodes, {report.steps} steps checked; "
        f"{len(report.errors)} errors, {len(report.warnings)} warnings"
    )
    return "\n".join(lines)
