"""The pieces under the jobs, without a pipeline: shard planning, quantile sketches, the
staging directory's commit rules, hash-based decisions, runner flags."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlds_hub.beam.options import normalize_flags
from rlds_hub.beam.quantiles import QuantileSketch, merge_all
from rlds_hub.beam.selection import EpisodeFilter, assign_split, parse_fractions, unit_interval
from rlds_hub.beam.sink import PieceEntry, Sharding, plan_shards
from rlds_hub.beam.staging import OutputExistsError, Staging


def _entries(sizes, split="train"):
    return [
        PieceEntry((0, 0, i), split, "p", 0, size, {"num_steps": 1}) for i, size in enumerate(sizes)
    ]


def test_shards_are_cut_by_count_or_bytes_in_key_order():
    entries = _entries([10] * 10)
    tasks = plan_shards(reversed(entries), Sharding(num_shards=3))
    assert [len(t.entries) for t in tasks] == [3, 3, 4]
    assert [e.key[2] for t in tasks for e in t.entries] == list(range(10))
    assert [t.first_episode for t in tasks] == [0, 3, 6]
    by_bytes = plan_shards(
        _entries([40, 40, 40, 100, 10]),
        Sharding(max_episodes_per_shard=None, max_bytes_per_shard=90),
    )
    assert [[e.key[2] for e in t.entries] for t in by_bytes] == [[0, 1], [2], [3], [4]]
    assert len(plan_shards(_entries([1] * 5), Sharding(num_shards=50))) == 5


def test_shard_planning_refuses_duplicate_keys_and_orders_splits():
    with pytest.raises(ValueError, match="same key"):
        plan_shards(_entries([1, 1]) + _entries([1]), Sharding())
    tasks = plan_shards(
        _entries([1], "test") + _entries([1], "train"), Sharding(), split_order=["train"]
    )
    assert [t.split for t in tasks] == ["train", "test"]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=300), st.integers(1, 4))
def test_small_sketches_are_exact_inverted_cdf_quantiles(values, parts):
    data = np.asarray(values)
    sketch = QuantileSketch((), size=512)
    for chunk in np.array_split(data, parts):
        part = QuantileSketch((), size=512)
        part.update(chunk)
        sketch.merge(part)
    for q in (0.0, 0.05, 0.5, 0.95, 1.0):
        assert sketch.quantiles([q])[0] == np.quantile(data, q, method="inverted_cdf")
    assert sketch.rank_error == 0


def test_large_sketches_stay_within_their_rank_error_bound():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((200_000, 2)) * [1, 1000]
    data[::97, 1] = np.nan  # left out, as in the moments
    parts = []
    for chunk in np.array_split(data, 40):
        part = QuantileSketch((2,), size=256)
        part.update(chunk)
        parts.append(part)
    merged = merge_all(parts)
    assert 0 < merged.rank_error < 0.05
    for q in (0.05, 0.5, 0.95):
        got = merged.quantiles([q])[0]
        for column in range(2):
            finite = np.sort(data[:, column][np.isfinite(data[:, column])])
            rank = np.searchsorted(finite, got[column]) / len(finite)
            assert abs(rank - q) <= merged.rank_error + 1e-3


def test_staging_commits_atomically_and_refuses_what_it_must_not_replace(tmp_path):
    output = tmp_path / "out"
    staging = Staging(output)
    assert staging.path.parent == tmp_path and staging.path.name.startswith(".tmp-out-")
    (staging.path / "dataset_info.json").write_text("{}")
    assert not output.exists()  # nothing at the output until the commit
    staging.commit()
    assert (output / "dataset_info.json").exists() and not (output / ".pieces").exists()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        Staging(output)
    replacement = Staging(output, overwrite=True)
    (replacement.path / "dataset_info.json").write_text('{"new": 1}')
    replacement.commit()
    assert json.loads((output / "dataset_info.json").read_text()) == {"new": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    with pytest.raises(ValueError, match="overlaps the input"):
        Staging(output / "inner", inputs=[output])


def test_a_dead_jobs_staging_directory_is_removed_by_the_next_job(tmp_path):
    stale = tmp_path / ".tmp-out-0123456789ab"
    stale.mkdir()
    (stale / ".owner").write_text(json.dumps({"pid": 2**22 + 12345, "host": os.uname().nodename}))
    live = Staging(tmp_path / "out")
    assert not stale.exists() and live.path.exists()
    live.abort()
    assert not live.path.exists()


def test_hash_decisions_are_stable_and_uniform():
    assert unit_interval("split", 0, "train/3") == unit_interval("split", 0, "train/3")
    points = np.asarray([unit_interval("x", i) for i in range(4000)])
    assert abs(points.mean() - 0.5) < 0.02 and points.min() >= 0 and points.max() < 1
    fractions = parse_fractions("train=0.7,validation=0.2,test=0.1")
    counts = {}
    for i in range(3000):
        name = assign_split(fractions, 7, f"episode-{i}")
        counts[name] = counts.get(name, 0) + 1
    assert abs(counts["train"] / 3000 - 0.7) < 0.03 and abs(counts["test"] / 3000 - 0.1) < 0.02
    keep = EpisodeFilter(fraction=0.25, seed=1)
    rows = [{"episode": i, "num_steps": 3, "terminated": False} for i in range(2000)]
    kept = [keep("train", row) for row in rows]
    assert kept == [keep("train", row) for row in rows] and 0.2 < np.mean(kept) < 0.3


def test_runner_short_names_and_dask_partitions():
    flags = normalize_flags(["--runner=DaskRunner", "--dask_client_address=127.0.0.1:8786"])
    assert "--runner=apache_beam.runners.dask.dask_runner.DaskRunner" in flags
    assert "--dask_partition_size=1" in flags
    assert "--dask_partition_size=1" not in normalize_flags(
        ["--runner=DaskRunner", "--dask_npartitions=8"]
    )
    assert normalize_flags(["--runner=DirectRunner"])[0] == "--runner=DirectRunner"


def test_big_shards_are_read_as_record_ranges_by_several_units(tmp_path):
    from rlds_hub.beam.reading import _ReadUnit, record_units
    from rlds_hub.storage import iter_records, open_dataset
    from rlds_hub.storage.selection import Selection
    from rlds_hub.testing.beam_jobs import record_nested

    record_nested(tmp_path / "ds", episodes=9, per_shard=5)
    dataset = open_dataset(tmp_path / "ds")
    units = record_units([Selection(dataset, "train")], unit_bytes=2_500)
    assert len(units) > 2  # the two shards (5 + 4 episodes) are cut into record ranges
    assert [i for u in units for i in u.indices] == list(range(9))
    assert sum(u.checksum is not None for u in units) == 2  # each shard checksummed once
    reader = _ReadUnit(None)
    reader.setup()
    read = [e for u in units for e in reader.process(u)]
    assert [e.record for e in read] == [bytes(r.data) for r in iter_records(dataset, "train")]
    assert [e.key for e in read] == [(0, 0, i) for i in range(9)]
