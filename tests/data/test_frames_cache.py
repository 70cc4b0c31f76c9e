"""Decoded camera frames in the column cache ($RLDS_HUB_FRAME_CACHE=1, rlds_hub.data.columns):
the same batches as decoding, no decoding once built, a rewritten shard or a corrupt entry
detected and rebuilt, and nothing cached without the setting."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import rlds_hub.format.decode as decode_module
from rlds_hub import data
from rlds_hub.data import columns
from rlds_hub.testing.cameras import CameraWorkload, write_camera_datasets

WORKLOAD = CameraWorkload(episodes=4, steps=9, height=24, width=40, seed=2)
KEYS = ["observation", "action"]  # strings are never cached: a plan with one is not cached


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, str]:
    """The PNG store of two workloads of the same shape (seeds 2 and 3), two shards each."""
    root = tmp_path_factory.mktemp("frame_cache")
    out = {}
    for seed in (2, 3):
        workload = CameraWorkload(**{**WORKLOAD.__dict__, "seed": seed})
        out[seed] = write_camera_datasets(
            root / str(seed), workload, jpeg=False, workers=1, shards=2
        )
    return {seed: written.png for seed, written in out.items()}


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(columns.CACHE_ENV, str(root))
    monkeypatch.setenv(columns.MIN_BYTES_ENV, "0")
    return root


def _batches(path: str) -> list[dict]:
    loader = data.steps(path, batch_size=5, history=2, keys=KEYS, shuffle_buffer=2, seed=4)
    return list(loader)


def _equal(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x["observation"][k], y["observation"][k])
        and np.array_equal(x["action"], y["action"])
        for x, y in zip(a, b, strict=True)
        for k in x["observation"]
    )


def _entries(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob(columns.MANIFEST))


def _refuse_decoding(monkeypatch) -> None:
    def refuse(*_):
        raise AssertionError("a frame was decoded: the cache was not used")

    monkeypatch.setattr(decode_module, "decode_frames", refuse)


def test_frames_are_cached_only_when_asked(stores, cache, monkeypatch) -> None:
    decoded = _batches(stores[2])
    assert not _entries(cache)  # the plan holds frames: not cached by default
    monkeypatch.setenv(columns.FRAMES_ENV, "1")
    assert _equal(_batches(stores[2]), decoded)  # builds the entries
    entries = _entries(cache)
    assert len(entries) == 2  # one per shard
    frame_bytes = WORKLOAD.episodes * WORKLOAD.steps * 2 * 24 * 40 * 3
    assert sum((e / columns.DATA).stat().st_size for e in entries) >= frame_bytes
    _refuse_decoding(monkeypatch)
    assert _equal(_batches(stores[2]), decoded)  # read back without decoding a frame


def test_a_rewritten_shard_gets_a_new_entry(stores, cache, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(columns.FRAMES_ENV, "1")
    path = Path(shutil.copytree(stores[2], tmp_path / "copy"))
    _batches(str(path))
    other = _batches(stores[3])
    for shard in sorted(Path(stores[3]).glob("*.tfrecord-*")):  # same names, other frames
        shutil.copyfile(shard, path / shard.name)
    assert _equal(_batches(str(path)), other)


def test_a_corrupt_entry_is_rebuilt(stores, cache, monkeypatch) -> None:
    monkeypatch.setenv(columns.FRAMES_ENV, "1")
    decoded = _batches(stores[2])
    for entry in _entries(cache):
        blob = entry / columns.DATA
        raw = bytearray(blob.read_bytes())
        raw[len(raw) // 2 : len(raw) // 2 + 64] = bytes(64)  # inside the frames
        blob.write_bytes(bytes(raw))
    assert _equal(_batches(stores[2]), decoded)  # the CRC check finds it: decoded again
    _refuse_decoding(monkeypatch)  # rebuilt: read back without decoding
    assert _equal(_batches(stores[2]), decoded)


def test_a_bad_setting_is_refused(monkeypatch) -> None:
    monkeypatch.setenv(columns.FRAMES_ENV, "maybe")
    with pytest.raises(ValueError, match="RLDS_HUB_FRAME_CACHE must be 1"):
        columns.cache_frames()
