"""The loaders gather transitions and windows a block at a time: the batches do not depend on
the block size, and no block is larger than asked."""

import numpy as np
import pytest
from dm_env import specs
from step_datasets import flat_batches

from rlds_hub import data
from rlds_hub.data import pipeline
from rlds_hub.testing import CounterEnv, record

LENGTHS = [5, 1, 9, 3, 7, 4, 2, 6, 11, 8]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    env = CounterEnv(
        LENGTHS,
        terminate=[i % 2 == 0 for i in range(len(LENGTHS))],
        observation=lambda e, t: {"x": np.full(3, 100.0 * e + t, np.float32)},
        observation_spec={"x": specs.Array((3,), np.float32)},
        reward=lambda e, t: 0.5 * t + e,
        discount=0.9,
    )
    path = tmp_path_factory.mktemp("blocks") / "d"
    record(env, path, episodes=len(LENGTHS), max_episodes_per_shard=4)
    return str(path)


LOADERS = {
    "transitions": lambda p: data.transitions(p, batch_size=4, seed=1, num_epochs=2),
    "n_step": lambda p: data.transitions(p, batch_size=3, n_step=2, gamma=0.5, shuffle=False),
    "windows": lambda p: data.windows(p, size=3, shift=2, batch_size=5, seed=2),
}


@pytest.mark.parametrize("name", LOADERS)
def test_batches_do_not_depend_on_the_block_size(dataset, monkeypatch, name) -> None:
    monkeypatch.setattr(pipeline, "BLOCK_ITEMS", 10**9)  # the whole chunk at once
    whole = flat_batches(LOADERS[name](dataset))
    assert sum(len(b["reward/"]) for b in whole) > 20
    for block in (1, 7, 16):
        monkeypatch.setattr(pipeline, "BLOCK_ITEMS", block)
        blocked = flat_batches(LOADERS[name](dataset))
        assert len(blocked) == len(whole), block
        for a, b in zip(blocked, whole, strict=True):
            assert a.keys() == b.keys()
            for key in a:
                assert a[key].dtype == b[key].dtype
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{key}, block {block}")


@pytest.mark.parametrize("name", ["transitions", "windows"])
def test_no_block_is_larger_than_asked(dataset, monkeypatch, name) -> None:
    monkeypatch.setattr(pipeline, "BLOCK_ITEMS", 8)  # rounded down to whole batches
    loader = LOADERS[name](dataset)
    sizes = [len(block["reward"]) for block in loader.chunks()]
    per_block = max(1, 8 // loader.batch_size) * loader.batch_size
    assert max(sizes) == per_block
    assert sum(sizes) == sum(len(b["reward/"]) for b in flat_batches(LOADERS[name](dataset)))


def test_a_chunks_first_blocks_are_small_and_double(dataset, monkeypatch) -> None:
    """The first batches of a chunk wait for a small block, not a whole one: blocks of an
    eighth of the block size (whole batches), doubling up to it."""
    monkeypatch.setattr(pipeline, "BLOCK_ITEMS", 32)
    loader = data.transitions(dataset, batch_size=4, seed=1)
    sizes = [len(block["reward"]) for block in loader.chunks()]
    # one chunk (10 episodes, within the default shuffle buffer) of 56 transitions
    assert sizes == [4, 8, 16, 28] and sum(LENGTHS) == 56
