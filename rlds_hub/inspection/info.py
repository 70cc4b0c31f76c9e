"""``rlds-hub info``: what a dataset holds — features, splits, episode and step counts,
returns, layout, recording sessions, metadata and size — as a dict (for programs) or text
(for people)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from rlds_hub.format.metadata import DatasetMetadata
from rlds_hub.format.plan import LeafKind, Plan
from rlds_hub.inspection.labels import class_labels
from rlds_hub.inspection.labels import describe as describe_labels
from rlds_hub.inspection.stats import distribution
from rlds_hub.storage import dataset_files, files
from rlds_hub.storage.dataset import RLDSDataset
from rlds_hub.storage.episodes import LAYOUT_DESCRIPTIONS, dataset_layout, episode_table
from rlds_hub.storage.names import as_dataset

_ENCODINGS = {"native": "native", "raw": "bytes", "string": "string"}


def summarize(path: str | os.PathLike | RLDSDataset, *, count_steps: bool = True) -> dict[str, Any]:
    """A JSON-serialisable summary of the dataset at ``path`` (or a name:
    :func:`rlds_hub.storage.names.resolve`).

    Step counts and returns come from ``episodes.jsonl`` when every episode has a row;
    otherwise (datasets written by other tools) from the records, decoding only the
    lengths, rewards and terminations — unless ``count_steps`` is False.
    """
    dataset = as_dataset(path, "summarize()", selection=False)
    splits = {}
    session_episodes: Counter[int] = Counter()
    for name, split in sorted(dataset.splits.items()):
        entry: dict[str, Any] = {
            "episodes": split.num_episodes,
            "shards": len(split.nonempty_shards),
            "bytes": split.num_bytes,
        }
        indexed = dataset.episode_rows(name)
        if split.num_episodes and (indexed is not None or count_steps):
            rows = episode_table(dataset, name)
            lengths = np.array([r["num_steps"] for r in rows], dtype=np.int64)
            entry["steps"] = int(lengths.sum())
            entry["transitions"] = int(sum(r["num_transitions"] for r in rows))
            entry["episode_steps"] = distribution(lengths)
            returns = [r["return"] for r in rows]
            if returns and all(r is not None for r in returns):
                entry["return"] = distribution(np.asarray(returns, dtype=np.float64))
            entry["terminated"] = sum(bool(r["terminated"]) for r in rows)
            if indexed is not None:
                session_episodes.update(r.get("session", 0) for r in indexed)
        elif not split.num_episodes:
            entry["steps"] = 0
        splits[name] = entry
    meta = dataset.dataset_metadata
    layout_name = dataset_layout(dataset) if count_steps else meta.layout
    sessions = [
        {**session.to_json(), "index": i, "env_name": env, "episodes": session_episodes.get(i)}
        for i, (session, env) in enumerate(zip(meta.sessions or (), meta.session_envs, strict=True))
    ]
    size, unlisted = _sizes(dataset)
    return {
        "path": dataset.path,
        "name": dataset.name,
        "version": dataset.version,
        "file_format": dataset.file_format,
        "size_bytes": size,
        "unlisted_files": unlisted,
        "layout": layout_name,
        "splits": splits,
        "features": describe_features(dataset.plan, class_labels(dataset)),
        "sessions": sessions,
        "metadata": dataset.metadata,
    }


def describe_features(
    plan: Plan, labels: Mapping[str, Any] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Step and episode leaves: key, dtype, shape, encoding, and for a ClassLabel (in
    ``labels``, :func:`rlds_hub.inspection.labels.class_labels`) its ``class_label``."""
    steps, episode = [], []
    for leaf in plan:
        entry = {
            "key": leaf.name,
            "dtype": "string" if leaf.kind == LeafKind.STRING else leaf.dtype.name,
            "shape": list(leaf.shape),
            "encoding": leaf.compression
            or _ENCODINGS.get(leaf.kind)
            or f"{leaf.image_format or 'png/jpeg'} image",
        }
        if labels and leaf.key in labels:
            entry["class_label"] = dict(labels[leaf.key])
        (steps if leaf.in_steps else episode).append(entry)
    return {"steps": steps, "episode": episode}


def _sizes(dataset: RLDSDataset) -> tuple[int, dict[str, Any]]:
    """Bytes of the dataset's own files, and what else lies in the directory."""
    listed = dataset.listed_files()
    if files.is_remote(dataset.path):
        return _remote_sizes(dataset, listed)
    size = 0
    stray: list[str] = []
    stray_bytes = 0
    for name in files.listdir(dataset.path):
        full = files.join(dataset.path, name)
        if name == dataset_files.LOCK or files.isdir(full):
            continue
        if name in listed:
            size += files.size(full)
        elif name.startswith(dataset_files.TMP_PREFIX) or dataset_files.is_shard_name(name):
            stray.append(name)
            # a stray link is not followed: nothing outside the directory is measured
            stray_bytes += files.size(full) if files.is_remote(full) else os.lstat(full).st_size
    return size, {"count": len(stray), "bytes": stray_bytes, "names": stray[:10]}


def _remote_sizes(dataset: RLDSDataset, listed: set[str]) -> tuple[int, dict[str, Any]]:
    """:func:`_sizes` of a remote dataset, from the store's listing (sizes included: one
    request for S3 and GCS); where the server lists nothing (a bucket's HTTPS URL), the sizes
    of the dataset's own files, one request each, and no strays."""
    try:
        found = files.remote_sizes(dataset.path)
    except FileNotFoundError:
        size = sum(files.size(files.join(dataset.path, name)) for name in sorted(listed))
        return size, {"count": 0, "bytes": 0, "names": []}
    size = sum(found[name] for name in listed if name in found)
    stray = sorted(
        name
        for name in found
        if name not in listed
        and (name.startswith(dataset_files.TMP_PREFIX) or dataset_files.is_shard_name(name))
    )
    return size, {"count": len(stray), "bytes": sum(found[n] for n in stray), "names": stray[:10]}


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as aligned text."""
    meta = DatasetMetadata.from_json(summary["metadata"])
    lines = [
        f"dataset   {summary['name']} {summary['version']} ({summary['file_format']})",
        f"path      {summary['path']}",
        f"size      {_bytes(summary['size_bytes'])}",
    ]
    unlisted = summary.get("unlisted_files") or {}
    if unlisted.get("count"):
        lines[-1] += (
            f"   + {unlisted['count']} leftover file(s) of an interrupted writer "
            f"({_bytes(unlisted['bytes'])}; not part of the dataset: `rlds-hub validate "
            f"--repair` removes them)"
        )
    if summary.get("layout"):
        lines.append(f"layout    {summary['layout']}: {LAYOUT_DESCRIPTIONS[summary['layout']]}")
    if meta.created:
        lines.append(f"created   {meta.created} by rlds_hub {meta.rlds_hub_version or '?'}")
    sessions = summary.get("sessions") or []
    if sessions:
        lines.append("sessions")
        table = [("#", "started", "split", "env", "policy", "seed", "episodes")]
        for s in sessions:
            table.append(
                (
                    str(s["index"]),
                    str(s.get("started", "?")),
                    str(s.get("split", "?")),
                    str(s.get("env_name") or "?"),
                    str(s.get("policy") or "?"),
                    str(s.get("seed")),
                    "?" if s.get("episodes") is None else str(s["episodes"]),
                )
            )
        lines += ["  " + row for row in _align(table)]
    lines.append("splits")
    for name, split in summary["splits"].items():
        text = f"  {name:<10} {split['episodes']:>8,} episodes"
        if "steps" in split:
            text += f" {split['steps']:>11,} steps"
        text += f" {split['shards']:>5} shards {_bytes(split['bytes']):>10}"
        if "episode_steps" in split and split["episode_steps"]["count"]:
            text += f"   length mean {split['episode_steps']['mean']:.1f} steps"
        if "return" in split:
            text += "   return " + _describe_returns(split["return"])
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
            text = f"  {entry['key']:<32} {entry['dtype']:<8} {shape:<14} {entry['encoding']}"
            if entry.get("class_label"):
                text += "   class label, " + describe_labels(entry["class_label"])
            lines.append(text)
    if meta.user:
        lines.append(f"user metadata  {meta.user}")
    return "\n".join(lines)


def _describe_returns(dist: dict[str, Any]) -> str:
    if dist["count"]:
        text = f"mean {dist['mean']:.2f} [{dist['min']:.2f}, {dist['max']:.2f}]"
    else:
        text = "none finite"
    bad = [
        f"{dist[k]} {label}"
        for k, label in (("nan_count", "NaN"), ("inf_count", "infinite"))
        if dist.get(k)
    ]
    return text + (f" ({', '.join(bad)})" if bad else "")


def _align(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
