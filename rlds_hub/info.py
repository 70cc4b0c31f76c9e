"""``rlds-hub info``: what a dataset holds — features, splits, episode and step counts,
returns, metadata and size — as a dict (for programs) or text (for people)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from rlds_hub import spec as rlds
from rlds_hub.dataset import RLDSDataset, open_dataset
from rlds_hub.decode import compile_leaves, string_tensor


def summarize(path: str | os.PathLike, *, count_steps: bool = True) -> dict[str, Any]:
    """A JSON-serialisable summary of the dataset at ``path``.

    Step counts and returns come from ``episodes.jsonl`` when every episode has a row;
    otherwise (datasets written by other tools) steps are counted by parsing only one step
    field of each episode, unless ``count_steps`` is False.
    """
    dataset = open_dataset(path)
    splits = {}
    for name, split in sorted(dataset.splits.items()):
        entry: dict[str, Any] = {
            "episodes": split.num_episodes,
            "shards": len(split.nonempty_shards),
            "bytes": split.num_bytes,
        }
        rows = dataset.episode_rows(name)
        if rows is not None:
            lengths = np.array([r["num_steps"] for r in rows], dtype=np.int64)
            entry.update(_length_stats(lengths))
            returns = [r["return"] for r in rows if isinstance(r.get("return"), (int, float))]
            if returns:
                entry["return"] = _stats(np.asarray(returns, dtype=np.float64))
            entry["terminated"] = sum(bool(r.get("terminated")) for r in rows)
        elif count_steps and split.num_episodes:
            entry.update(_length_stats(_count_steps(dataset, name)))
        splits[name] = entry
    return {
        "path": dataset.path,
        "name": dataset.name,
        "version": dataset.version,
        "file_format": dataset.file_format,
        "size_bytes": _size_on_disk(dataset.path),
        "splits": splits,
        "features": _describe_features(dataset.features),
        "metadata": dataset.metadata,
    }


def _length_stats(lengths: np.ndarray) -> dict[str, Any]:
    if lengths.size == 0:
        return {"steps": 0}
    return {"steps": int(lengths.sum()), "episode_steps": _stats(lengths.astype(np.float64))}


def _stats(values: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(values.mean()),
        "min": float(values.min()),
        "max": float(values.max()),
        "std": float(values.std()),
    }


def _count_steps(dataset: RLDSDataset, split: str) -> np.ndarray:
    """Episode lengths from the row lengths of one step field (nothing else is decoded)."""
    leaves = [leaf for leaf in compile_leaves(dataset.features) if leaf.in_steps]
    leaf = next((x for x in leaves if x.key.endswith(rlds.IS_FIRST)), leaves[0])
    per_step = 1 if leaf.kind in ("raw", "image") or not leaf.shape else int(np.prod(leaf.shape))
    spec = {leaf.key: tf.io.RaggedFeature(leaf.serialized_dtype, row_splits_dtype=tf.int64)}
    lengths = []
    batch: list[bytes] = []

    def flush() -> None:
        if batch:
            parsed = tf.io.parse_example(string_tensor(batch), spec)[leaf.key]
            lengths.extend((parsed.row_lengths().numpy() // per_step).tolist())
            batch.clear()

    for _, _, record in dataset.iter_records(split):
        batch.append(record)
        if len(batch) >= 256:
            flush()
    flush()
    return np.asarray(lengths, dtype=np.int64)


def _describe_features(features: tfds.features.FeaturesDict) -> dict[str, list[dict[str, Any]]]:
    steps, episode = [], []
    for leaf in compile_leaves(features):
        entry = {
            "key": leaf.key.removeprefix(f"{rlds.STEPS}/"),
            "dtype": leaf.dtype.name,
            "shape": list(leaf.shape),
            "encoding": {"native": "native", "raw": "bytes", "string": "string"}.get(
                leaf.kind, "png/jpeg image"
            ),
        }
        (steps if leaf.in_steps else episode).append(entry)
    return {"steps": steps, "episode": episode}


def _size_on_disk(path: str) -> int:
    total = 0
    for name in tf.io.gfile.listdir(path):
        full = os.path.join(path, name)
        if not tf.io.gfile.isdir(full):
            total += tf.io.gfile.stat(full).length
    return total


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as aligned text."""
    meta = summary["metadata"]
    lines = [
        f"dataset   {summary['name']} {summary['version']} ({summary['file_format']})",
        f"path      {summary['path']}",
        f"size      {_bytes(summary['size_bytes'])}",
    ]
    if meta:
        lines.append(
            f"env       {meta.get('env_name', '?')}   policy {meta.get('policy') or '?'}   "
            f"seed {meta.get('seed')}"
        )
        lines.append(
            f"created   {meta.get('created', '?')} by rlds_hub {meta.get('rlds_hub_version', '?')}"
            f"   sessions {len(meta.get('sessions', []))}"
        )
    lines.append("splits")
    for name, split in summary["splits"].items():
        text = f"  {name:<10} {split['episodes']:>8,} episodes"
        if "steps" in split:
            text += f" {split['steps']:>11,} steps"
        text += f" {split['shards']:>5} shards {_bytes(split['bytes']):>10}"
        if "episode_steps" in split:
            text += f"   length mean {split['episode_steps']['mean']:.1f}"
        if "return" in split:
            r = split["return"]
            text += f"   return mean {r['mean']:.2f} [{r['min']:.2f}, {r['max']:.2f}]"
        if "terminated" in split:
            text += f"   terminated {split['terminated']}"
        lines.append(text)
    for title, key in (("step features", "steps"), ("episode features", "episode")):
        entries = summary["features"][key]
        if not entries:
            continue
        lines.append(title)
        for entry in entries:
            shape = "[" + ", ".join(map(str, entry["shape"])) + "]"
            lines.append(f"  {entry['key']:<32} {entry['dtype']:<8} {shape:<14} {entry['encoding']}")
    if meta.get("user"):
        lines.append(f"user metadata  {meta['user']}")
    return "\n".join(lines)


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
