"""``episodes.jsonl``: one JSON line per published episode (split, ordinal, length, return, ...).

It lets ``info``, episode selection by metadata and the server answer questions about
episodes without decoding them. ``dataset_info.json`` stays the truth about which episodes
exist: readers keep, per split, only as many rows as the split has episodes, and ignore a
partial last line left by a crash; the writer trims both when it resumes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def json_safe(value: Any) -> Any:
    """Converts numpy scalars/arrays to JSON values; bytes become text. Non-finite floats stay
    numbers (written as ``NaN`` / ``Infinity``, which Python's ``json`` reads back)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist"):
        return json_safe(value.tolist())
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return value


def read_episode_index(data: bytes, counts: Mapping[str, int]) -> list[dict[str, Any]]:
    """Rows of the published episodes in ``episodes.jsonl``'s content: the first
    ``counts[split]`` rows of each split."""
    return _keep_published(_parse_lines(data)[0], counts)


def _parse_lines(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """Complete, valid lines and the byte length they span (a torn last line is dropped)."""
    rows, end = [], 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
        end += len(line)
    return rows, end


class EpisodeIndex:
    """Append-only writer of ``episodes.jsonl``."""

    def __init__(self, path: Path):
        self._path = path
        self._fd: int | None = None

    def truncate_to(self, counts: Mapping[str, int]) -> None:
        """Keeps, per split, the first ``counts[split]`` rows (drops unpublished and torn rows)."""
        if not self._path.exists():
            return
        data = self._path.read_bytes()
        rows, end = _parse_lines(data)
        kept = _keep_published(rows, counts)
        if len(kept) == len(rows) and end == len(data):
            return
        tmp = self._path.with_name(f".tmp-{self._path.name}")
        tmp.write_bytes(b"".join(index_line(r) for r in kept))
        os.replace(tmp, self._path)

    def covers(self, counts: Mapping[str, int]) -> bool:
        """True if the file has a row for every published episode of every split."""
        if not any(counts.values()):
            return True
        if not self._path.exists():
            return False
        rows = read_episode_index(self._path.read_bytes(), counts)
        seen: dict[str, int] = {}
        for row in rows:
            seen[row["split"]] = seen.get(row["split"], 0) + 1
        return all(seen.get(split, 0) == n for split, n in counts.items())

    def rewrite(self, rows: list[Mapping[str, Any]]) -> None:
        """Replaces the file's content with ``rows`` (atomically)."""
        self.close()
        tmp = self._path.with_name(f".tmp-{self._path.name}")
        tmp.write_bytes(b"".join(index_line(r) for r in rows))
        os.replace(tmp, self._path)

    def append(self, row: Mapping[str, Any]) -> None:
        if self._fd is None:
            self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(self._fd, index_line(row))

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None


def _keep_published(rows: list[dict[str, Any]], counts: Mapping[str, int]) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for row in rows:
        split = row.get("split")
        if split in counts and seen.get(split, 0) < counts[split]:
            seen[split] = seen.get(split, 0) + 1
            kept.append(row)
    return kept


def index_line(row: Mapping[str, Any]) -> bytes:
    """One row of ``episodes.jsonl`` as its compact JSON line. Non-finite returns are kept
    as numbers (``NaN``, ``Infinity``), which Python's json reads back."""
    text = json.dumps(row, separators=(",", ":"), default=json_safe)
    return (text + "\n").encode()
