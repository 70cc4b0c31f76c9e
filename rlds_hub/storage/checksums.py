"""``checksums.json``: the size and CRC32C of every listed shard file, which
``rlds-hub validate`` verifies. Pipelines write it for their outputs; ``write_checksums``
adds it to any local dataset."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import crc32c

from rlds_hub.storage import dataset_files, files
from rlds_hub.storage.containment import open_regular

ALGORITHM = "crc32c"


def file_checksum(path: str | os.PathLike, *, within: str | None = None) -> dict[str, Any]:
    """``{"bytes": size, "crc32c": "8 hex digits"}`` of a file, read in 16 MiB pieces (a
    local one: a regular file, inside ``within`` if given, read up to its size)."""
    text = os.fspath(path)
    if files.is_remote(text):
        data = files.read_bytes(text)
        return {"bytes": len(data), "crc32c": f"{crc32c.crc32c(data):08x}"}
    crc, size = 0, 0
    with open_regular(text, within) as f:
        left = os.fstat(f.fileno()).st_size
        while left and (piece := f.read(min(16 * 2**20, left))):
            crc = crc32c.crc32c(piece, crc)
            size += len(piece)
            left -= len(piece)
    return {"bytes": size, "crc32c": f"{crc:08x}"}


def read_checksums(path: str | os.PathLike, *, within: str | None = None) -> dict[str, Any] | None:
    """The content of the dataset's ``checksums.json`` (``{"algorithm", "shards": {name:
    {"bytes", "crc32c"}}}``), or None when it has none.

    Raises:
      DatasetError: the file is not valid JSON or has no ``shards``.
    """
    target = files.join(path, dataset_files.CHECKSUMS)
    if not files.exists(target):
        return None
    try:
        content = json.loads(files.read_text(target, within=within))
    except json.JSONDecodeError as e:
        raise dataset_files.DatasetError(f"{target} is not valid JSON ({e})") from e
    if not isinstance(content, dict) or not isinstance(content.get("shards"), dict):
        raise dataset_files.DatasetError(f"{target} has no 'shards' table of checksums")
    return content


def checksums_content(shards: dict[str, dict[str, Any]]) -> bytes:
    """The file's content for ``{shard file name: file_checksum(...)}``."""
    return json.dumps(
        {"algorithm": ALGORITHM, "shards": dict(sorted(shards.items()))}, indent=1
    ).encode()


def write_checksums(path: str | os.PathLike) -> str:
    """Computes and writes ``checksums.json`` for the listed shards of a local dataset."""
    from rlds_hub.storage.dataset import open_dataset

    dataset = open_dataset(path)
    sums = {}
    for split in dataset.splits.values():
        for shard_path, _ in split.nonempty_shards:
            sums[os.path.basename(shard_path)] = file_checksum(shard_path, within=dataset.real_path)
    target = Path(dataset.path) / dataset_files.CHECKSUMS
    dataset_files.atomic_write(target, checksums_content(sums), sync=True)
    return os.fspath(target)
