"""Whole batches from DataLoader workers cross to the training process as one packed block
and arrive as the same nested dicts of tensors — values, dtypes, shapes and strings — as the
batches made in the training process itself."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from step_datasets import camera_dataset

from rlds_hub import data
from rlds_hub.format.plan import flatten

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

from rlds_hub.data.torch import PackedBatch, StepDataset, to_torch  # noqa: E402


@pytest.fixture(scope="module")
def path():
    return camera_dataset()


def _rows(batches) -> dict[tuple[int, int], dict]:
    """Every sample of the batches, flat, keyed by (episode, step)."""
    rows = {}
    for batch in batches:
        flat = flatten(batch)
        keys = zip(flat["episode_index"].tolist(), flat["step_index"].tolist(), strict=True)
        for i, key in enumerate(keys):
            rows[key] = {name: value[i] for name, value in flat.items()}
    return rows


def _assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for step, row in want.items():
        assert row.keys() == got[step].keys()
        for name, value in row.items():
            other = got[step][name]
            if isinstance(value, torch.Tensor):
                assert other.dtype == value.dtype and other.shape == value.shape, name
                assert torch.equal(other, value), (step, name)
            else:
                assert other == value, (step, name)


def test_a_packed_batch_unpickles_as_the_batch(path) -> None:
    batch = next(iter(data.steps(path, batch_size=5, history=1, action_chunk=3)))
    unpacked = pickle.loads(pickle.dumps(PackedBatch(batch)))
    want = to_torch(batch)
    assert sorted(flatten(unpacked)) == sorted(flatten(want))
    _assert_same(_rows([unpacked]), _rows([want]))
    strings = [k for k, v in flatten(want).items() if isinstance(v, list)]
    assert strings, "the workload has a string field"


@pytest.mark.slow
def test_worker_batches_equal_in_process_batches(path) -> None:
    options = {"batch_size": 4, "history": 2, "action_chunk": 3, "shuffle": False}
    here = list(DataLoader(StepDataset(path, **options), batch_size=None, num_workers=0))
    workers = list(DataLoader(StepDataset(path, **options), batch_size=None, num_workers=2))
    assert all(not isinstance(b, PackedBatch) for b in workers)
    _assert_same(_rows(workers), _rows(here))
    assert {
        np.dtype(str(v.dtype).removeprefix("torch."))
        for v in flatten(workers[0]).values()
        if isinstance(v, torch.Tensor)
    } >= {np.dtype(np.uint8), np.dtype(np.bool_)}
