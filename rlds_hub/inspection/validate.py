"""``rlds-hub validate``: checks the RLDS contract on every episode and says where it breaks.

Errors break the contract or make the dataset unreadable (a corrupt or truncated shard, a
shard holding a different number of episodes than ``dataset_info.json`` says, a shard whose
checksum differs from ``checksums.json``, steps with misplaced ``is_first`` / ``is_last`` /
``is_terminal``, fields of different lengths, an episode that TFDS's own parser rejects).
A NaN or infinite action (other than on the zero-filled last step) is an error too: no
environment takes one. Warnings are legal but suspicious (a last step that is not
zero-filled in the RLDS layout, a terminal episode whose final transition has a non-zero
discount, non-finite rewards, NaN or infinite observation values — counted, with the first
step —, actions outside the action spec's bounds, an index row that disagrees).

Episodes are decoded with rlds_hub's NumPy decoder; with ``tensorflow=True`` every record is
also parsed with TFDS's own parse spec by TensorFlow, as plain TFDS would read it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from typing import Any

import crc32c
import numpy as np

from rlds_hub import rlds_types as rlds
from rlds_hub.extras import require
from rlds_hub.format.decode import EpisodeDecoder, ParseError, value_counts
from rlds_hub.format.images import ImageDecodeError
from rlds_hub.format.plan import Plan, unflatten
from rlds_hub.format.specs import bounds_of
from rlds_hub.storage import dataset_files, files, shards
from rlds_hub.storage.checksums import read_checksums
from rlds_hub.storage.dataset import RLDSDataset, open_dataset
from rlds_hub.storage.episodes import LAYOUT_DESCRIPTIONS, LAYOUT_OXE, dataset_layout

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
    layout: str = ""
    problems: list[Problem] = dataclasses.field(default_factory=list)
    checked_with_tensorflow: bool = False
    checksums_verified: int = 0

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
    path: str | os.PathLike | RLDSDataset,
    *,
    splits: Iterable[str] | None = None,
    progress: Callable[[int], None] | None = None,
    tensorflow: bool = False,
) -> Report:
    """Checks every episode of ``splits`` (default: all) of the dataset at ``path``.

    Args:
      tensorflow: also parse every record with TFDS's own parse spec (imports TensorFlow).
    """
    dataset = path if isinstance(path, RLDSDataset) else open_dataset(path)
    report = Report(dataset.path, layout=dataset_layout(dataset))
    checker = _EpisodeChecker(dataset, report.layout)
    tf_parse = _tf_parser(dataset) if tensorflow else None
    report.checked_with_tensorflow = tf_parse is not None
    expected_sums = _checksums(dataset, report)
    for split in splits or sorted(dataset.splits):
        dataset.split(split)
        _validate_split(dataset, split, checker, tf_parse, expected_sums, report, progress)
    return report


class _EpisodeChecker:
    """The contract checks of one episode (record)."""

    def __init__(self, dataset: RLDSDataset, layout_name: str):
        self.plan: Plan = dataset.plan
        self.decoder = EpisodeDecoder(self.plan)
        self.length_leaf = self.plan.length_leaf()
        self.oxe = layout_name == LAYOUT_OXE
        specs = dataset.dataset_metadata.specs or {}
        self.action_bounds = []
        if isinstance(specs.get("action"), dict):
            for leaf_path, low, high in bounds_of(specs["action"]):
                key = f"{_STEP}{rlds.ACTION}" + (f"/{leaf_path}" if leaf_path else "")
                if key in self.plan:
                    self.action_bounds.append((key, leaf_path or rlds.ACTION, low, high))

    def check(
        self, where: str, record: Any, row: dict[str, Any] | None
    ) -> tuple[list[Problem], int | None]:
        """The problems of one episode, and its number of steps (None if undecodable)."""
        problems: list[Problem] = []

        def error(message: str) -> None:
            problems.append(Problem("error", where, message))

        def warn(message: str) -> None:
            problems.append(Problem("warning", where, message))

        try:
            counts = value_counts(self.plan, record)
        except ParseError as e:
            error(f"cannot decode: {e}")
            return problems, None
        n = counts[self.length_leaf.key] // max(self.length_leaf.values_per_entry, 1)
        for leaf in self.plan:
            per = leaf.values_per_entry
            expected = n * per if leaf.in_steps else per
            if counts[leaf.key] != expected:
                unit = f"{per} per step" if leaf.in_steps else "per episode"
                error(f"{leaf.key} has {counts[leaf.key]} values, expected {expected} ({unit})")
        if problems:
            return problems, n  # checked (and counted), but its fields cannot be aligned
        try:
            flat, n = self.decoder.decode_episode(record)
        except (ParseError, ImageDecodeError) as e:
            error(f"cannot decode: {e}")
            return problems, None
        if n == 0:
            error("has no steps (an episode has at least one step)")
            return problems, 0
        steps = unflatten({k[len(_STEP) :]: v for k, v in flat.items() if k.startswith(_STEP)})
        self._check_flags(steps, n, error)
        terminal = np.asarray(steps.get(rlds.IS_TERMINAL, np.zeros(n, bool)))
        if not self.oxe:
            for field in rlds.ZERO_FILLED_ON_LAST:
                if field in steps and _any_nonzero(steps[field], n - 1):
                    warn(f"step {n - 1} (last): {field} is not zero-filled")
        if rlds.REWARD in steps:
            rewards = _leaves(steps[rlds.REWARD])
            scope = slice(None) if self.oxe else slice(0, -1)
            if any(r.dtype.kind in "fc" and not np.all(np.isfinite(r[scope])) for r in rewards):
                warn("has non-finite rewards")
        discounts = _leaves(steps[rlds.DISCOUNT]) if rlds.DISCOUNT in steps else []
        if (
            not self.oxe
            and n >= 2
            and terminal[-1]
            and any(np.any(d[n - 2] != 0) for d in discounts)
        ):
            warn(f"step {n - 2}: terminal episode, but the final transition's discount is not 0")
        self._check_finite(flat, n, error, warn)
        self._check_bounds(flat, n, warn)
        if row is not None:
            self._check_row(steps, row, n, error)
        return problems, n

    @staticmethod
    def _check_flags(steps: dict[str, Any], n: int, error: Callable[[str], None]) -> None:
        for flag, position, name in ((rlds.IS_FIRST, 0, "first"), (rlds.IS_LAST, n - 1, "last")):
            if flag not in steps:
                error(f"steps have no {flag} field")
                continue
            values = np.asarray(steps[flag])
            if not values[position]:
                error(f"step {position}: {flag} is false on the {name} step")
            others = np.flatnonzero(values)
            others = others[others != position]
            if others.size:
                error(
                    f"step {int(others[0])}: {flag} is true on a step that is not the {name} "
                    f"({others.size} such steps)"
                )
        terminal = np.asarray(steps.get(rlds.IS_TERMINAL, np.zeros(n, bool)))
        early = np.flatnonzero(terminal[:-1])
        if early.size:
            error(f"step {int(early[0])}: is_terminal is true before the last step")

    def _check_finite(
        self,
        flat: dict[str, Any],
        n: int,
        error: Callable[[str], None],
        warn: Callable[[str], None],
    ) -> None:
        """NaN or infinite actions are errors (no environment takes one; the zero-filled
        last step of the rlds layout aside), in observations warnings (a sensor may report
        NaN), each with counts and the first step."""
        rows = n if self.oxe else n - 1
        for key, value in flat.items():
            name = key[len(_STEP) :]
            field = name.split("/")[0]
            if not key.startswith(_STEP) or field not in (rlds.ACTION, rlds.OBSERVATION):
                continue
            values = np.asarray(value[:rows] if field == rlds.ACTION else value)
            if not values.size or values.dtype.kind not in "fc":
                continue
            bad = ~np.isfinite(values)
            count = int(bad.sum())
            if not count:
                continue
            nan = int(np.isnan(values).sum())
            steps = bad.reshape(len(values), -1).any(axis=1)
            message = (
                f"{name} has {_count(count, 'non-finite value')} ({nan} NaN, "
                f"{count - nan} infinite) in {_count(int(steps.sum()), 'step')} "
                f"(first: step {int(np.argmax(steps))})"
            )
            if field == rlds.ACTION:
                error(f"{message}; no environment takes it")
            else:
                warn(message)

    def _check_bounds(self, flat: dict[str, Any], n: int, warn: Callable[[str], None]) -> None:
        rows = n if self.oxe else n - 1
        for key, name, low, high in self.action_bounds:
            values = np.asarray(flat[key][:rows])
            if not values.size or values.dtype.kind not in "biuf":
                continue
            outside = ((values < low) | (values > high)) & np.isfinite(values)  # (errors)
            outside = outside.reshape(rows, -1).any(axis=1)
            if outside.any():
                step = int(np.argmax(outside))
                warn(
                    f"{int(outside.sum())} step(s) with {name} outside the action spec's bounds "
                    f"[{_short(low)}, {_short(high)}] (first: step {step}, "
                    f"{np.asarray(values[step]).tolist()})"
                )

    def _check_row(
        self, steps: dict[str, Any], row: dict[str, Any], n: int, error: Callable[[str], None]
    ) -> None:
        if row.get("num_steps") not in (None, n):
            error(f"episodes.jsonl says {row.get('num_steps')} steps, the episode has {n}")
        if "return" in row and rlds.REWARD in steps:
            reward = np.asarray(steps[rlds.REWARD])
            if reward.ndim == 1 and reward.dtype.kind in "biuf":
                total = float(np.sum(reward if self.oxe else reward[:-1], dtype=np.float64))
                stored = row["return"]
                if isinstance(stored, str):
                    stored = float(stored)
                if isinstance(stored, (int, float)) and not (
                    np.isclose(stored, total, rtol=1e-9, equal_nan=True)
                    or (np.isinf(stored) and stored == total)
                ):
                    error(f"episodes.jsonl says return {stored}, the rewards sum to {total}")


def _validate_split(
    dataset: RLDSDataset,
    split: str,
    checker: _EpisodeChecker,
    tf_parse: Any,
    expected_sums: dict[str, Any] | None,
    report: Report,
    progress: Callable[[int], None] | None,
) -> None:
    info = dataset.split(split)
    rows = [r for r in (dataset.episode_index or []) if r.get("split") == split]
    episode = 0
    for shard_path, expected in zip(info.shard_paths, info.shard_lengths, strict=True):
        shard = os.path.basename(shard_path)
        first, episode = episode, episode + expected  # numbered as dataset_info.json says
        if expected == 0:
            continue
        if not files.exists(shard_path):
            report.problems.append(Problem("error", f"{split}/{shard}", "shard file is missing"))
            if progress:
                progress(expected)
            continue
        records, failure, data = _read_shard(shard_path, dataset.file_format)
        if failure is not None:
            report.problems.append(Problem("error", f"{split}/{shard}", failure))
        if expected_sums is not None:
            _check_checksum(shard, data, shard_path, expected_sums, report, split)
        if len(records) != expected:
            report.problems.append(
                Problem(
                    "error",
                    f"{split}/{shard}",
                    f"holds {len(records)} episodes but dataset_info.json lists {expected}",
                )
            )
        for start in range(0, len(records), _BATCH):
            batch = records[start : start + _BATCH]
            tf_failures = tf_parse(batch) if tf_parse is not None else {}
            for i, record in enumerate(batch):
                index = first + start + i
                where = f"{split} episode {index} ({shard}, record {start + i})"
                row = rows[index] if index < len(rows) else None
                problems, n = checker.check(where, record, row)
                if i in tf_failures:
                    problems.append(
                        Problem("error", where, f"TFDS's own parser rejects it: {tf_failures[i]}")
                    )
                report.problems.extend(problems)
                if n is not None:
                    report.episodes += 1
                    report.steps += n
            if progress:
                progress(len(batch))
        if progress and len(records) < expected:
            progress(expected - len(records))
    if dataset.episode_index is not None and len(rows) != info.num_episodes:
        report.problems.append(
            Problem(
                "warning",
                f"{split}",
                f"episodes.jsonl has {len(rows)} rows for {info.num_episodes} episodes",
            )
        )


def _read_shard(path: str, file_format: str) -> tuple[list[Any], str | None, bytes | None]:
    """The records readable from a shard, what went wrong reading the rest (if anything),
    and the file's bytes (TFRecord)."""
    records: list[Any] = []
    data = None
    try:
        if file_format == "tfrecord":
            data = shards.read_bytes(path)
            for _, record in shards.iter_tfrecord(path, data):
                records.append(record)
        else:
            records = shards.read_records(path, file_format)
    except Exception as e:  # corrupt, truncated or unreadable shard
        return records, f"{_strip_path(e, path)} (after {len(records)} readable episodes)", data
    return records, None, data


def _strip_path(error: Exception, path: str) -> str:
    return str(error).removeprefix(f"{path}: ")


def _checksums(dataset: RLDSDataset, report: Report) -> dict[str, Any] | None:
    try:
        content = read_checksums(dataset.path)
    except dataset_files.DatasetError as e:
        report.problems.append(Problem("error", dataset_files.CHECKSUMS, str(e)))
        return None
    return None if content is None else dict(content["shards"])


def _check_checksum(
    shard: str, data: bytes | None, path: str, expected: dict[str, Any], report: Report, split: str
) -> None:
    entry = expected.get(shard)
    if entry is None:
        report.problems.append(
            Problem("warning", f"{split}/{shard}", f"not listed in {dataset_files.CHECKSUMS}")
        )
        return
    if data is None:
        data = files.read_bytes(path)
    found = {"bytes": len(data), "crc32c": f"{crc32c.crc32c(data):08x}"}
    if int(entry.get("bytes", -1)) != found["bytes"] or entry.get("crc32c") != found["crc32c"]:
        report.problems.append(
            Problem(
                "error",
                f"{split}/{shard}",
                f"checksum mismatch: {dataset_files.CHECKSUMS} says {entry.get('bytes')} bytes, crc32c "
                f"{entry.get('crc32c')}; the file has {found['bytes']} bytes, crc32c "
                f"{found['crc32c']}",
            )
        )
    else:
        report.checksums_verified += 1


def _tf_parser(dataset: RLDSDataset) -> Callable[[list[Any]], dict[int, str]]:
    """Parses records with TFDS's own parse spec; returns {position: error} for failures."""
    tf = require("tensorflow", "tf", "validate(tensorflow=True)")

    spec = dataset.features.tf_example_spec

    def parse(records: list[Any]) -> dict[int, str]:
        def one(record: Any) -> str | None:
            try:
                tf.io.parse_single_example(bytes(record), spec)
            except tf.errors.OpError as e:
                return e.message.splitlines()[0]
            return None

        try:
            tf.io.parse_example(tf.constant([bytes(r) for r in records]), spec)
            return {}
        except tf.errors.OpError:
            return {i: message for i, r in enumerate(records) if (message := one(r))}

    return parse


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


def _short(bound: np.ndarray) -> str:
    flat = np.asarray(bound).ravel()
    if flat.size and np.all(flat == flat[0]):
        return f"{flat[0]:g}"
    return str(np.asarray(bound).tolist())


def format_report(report: Report, limit: int | None = 50) -> str:
    """Human-readable report: the problems (up to ``limit``; None or negative: all), the
    layout, and a one-line verdict."""
    problems = report.problems
    shown = problems if limit is None or limit < 0 else problems[:limit]
    lines = [str(p) for p in shown]
    if len(problems) > len(shown):
        lines.append(f"... and {len(problems) - len(shown)} more problems")
    if report.layout:
        lines.append(f"layout: {report.layout} ({LAYOUT_DESCRIPTIONS[report.layout]})")
    checks = []
    if report.checksums_verified:
        checks.append(f"{report.checksums_verified} shard checksums verified")
    if report.checked_with_tensorflow:
        checks.append("every episode also parsed by TFDS's own parser")
    verdict = "OK" if report.ok else "FAILED"
    lines.append(
        f"{verdict}: {report.path}: {report.episodes} episodes, {report.steps} steps checked"
        + (f" ({'; '.join(checks)})" if checks else "")
        + f"; {_count(len(report.errors), 'error')}, {_count(len(report.warnings), 'warning')}"
    )
    return "\n".join(lines)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
