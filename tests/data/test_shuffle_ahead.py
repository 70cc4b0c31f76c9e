"""A pass's first chunk is shuffled ahead, while the shards are opened (from the episode
index): the batches are the ones the chunk's own shuffle gives, for every kind of item,
selection and chunking, and the order computed ahead is the one used."""

import numpy as np
import pytest
from dm_env import specs
from step_datasets import flat_batches

from rlds_hub import data
from rlds_hub.data import chunks, columns
from rlds_hub.testing import CounterEnv, record

LENGTHS = [5, 1, 9, 3, 7, 4, 2, 6]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    env = CounterEnv(
        LENGTHS,
        terminate=[i % 3 == 0 for i in range(len(LENGTHS))],
        observation=lambda e, t: {"x": np.full(3, 100.0 * e + t, np.float32)},
        observation_spec={"x": specs.Array((3,), np.float32)},
        reward=lambda e, t: 0.5 * t + e,
        discount=0.9,
        action_spec=specs.Array((2,), np.int32),
    )
    path = tmp_path_factory.mktemp("ahead") / "d"
    record(
        env,
        path,
        episodes=len(LENGTHS),
        policy=lambda ts: np.array([env.t, env.episode], np.int32),
        max_episodes_per_shard=3,
    )
    return str(path)


@pytest.fixture(params=["joined", "off"])
def cache(request, tmp_path, monkeypatch) -> str:
    """The column cache on (one-step transitions come from joined columns) or off."""
    if request.param == "off":
        monkeypatch.setenv(columns.CACHE_ENV, "off")
    else:
        monkeypatch.setenv(columns.CACHE_ENV, str(tmp_path / "cache"))
        monkeypatch.setenv(columns.MIN_BYTES_ENV, "0")
    return request.param


LOADERS = {
    "transitions": lambda p: data.transitions(p, batch_size=4, seed=3),
    "a selection": lambda p: data.transitions(p, batch_size=4, seed=4, episodes=[1, 2, 5, 6]),
    "three epochs in a chunk": lambda p: data.transitions(p, batch_size=5, num_epochs=3),
    "small chunks": lambda p: data.transitions(
        p, batch_size=3, seed=5, shuffle_buffer=2, episodes_per_chunk=2, num_epochs=2
    ),
    "n_step": lambda p: data.transitions(p, batch_size=4, seed=6, n_step=2, gamma=0.5),
    "steps": lambda p: data.steps(p, batch_size=4, seed=7, history=1, action_chunk=2),
}


@pytest.mark.parametrize("name", LOADERS)
def test_batches_are_the_ones_the_chunk_shuffles_itself(dataset, cache, monkeypatch, name):
    ahead = LOADERS[name](dataset)
    got = flat_batches(ahead)
    assert ahead.chunks().orders_ahead == 1  # the order made ahead was the one used
    one_step = name not in ("n_step", "steps")  # from joined columns with the cache on
    assert ahead.chunks().mapped_ahead == (cache == "joined" and one_step)
    monkeypatch.setattr(chunks.ChunkSource, "_shuffle_ahead", lambda self, pool: None)
    itself = LOADERS[name](dataset)
    want = flat_batches(itself)
    assert itself.chunks().orders_ahead == 0
    assert len(got) == len(want) and sum(len(b["reward/"]) for b in got) > 10
    for a, b in zip(got, want, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_windows_and_unshuffled_passes_compute_nothing_ahead(dataset):
    for loader in (
        data.windows(dataset, size=3, batch_size=4),
        data.transitions(dataset, batch_size=4, shuffle=False),
    ):
        flat_batches(loader)
        assert loader.chunks().orders_ahead == 0


def test_a_stale_index_costs_only_the_work_done_ahead(dataset, monkeypatch):
    """An episode index whose step counts are not the shards' is not trusted: the chunk
    shuffles itself and the batches are its own."""
    want = flat_batches(data.transitions(dataset, batch_size=4, seed=3))
    real = chunks.ChunkSource._shuffle_ahead

    def stale(self, pool):
        rows = [
            dict(row, num_steps=row["num_steps"] + 1)
            for row in self.selection.dataset.episode_rows("train")
        ]
        monkeypatch.setattr(type(self.selection.dataset), "episode_rows", lambda ds, split: rows)
        return real(self, pool)

    monkeypatch.setattr(chunks.ChunkSource, "_shuffle_ahead", stale)
    loader = data.transitions(dataset, batch_size=4, seed=3)
    got = flat_batches(loader)
    assert loader.chunks().orders_ahead == 0
    for a, b in zip(got, want, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
