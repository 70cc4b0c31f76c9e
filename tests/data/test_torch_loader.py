"""StepDataset.loader(): whole batches of state-only steps through a real DataLoader with the
pass-through collate, in the training process and from worker processes — the same steps,
values and stored dtypes as the NumPy loader, every step once per epoch."""

from __future__ import annotations

import numpy as np
import pytest
from dm_env import specs

from rlds_hub import data
from rlds_hub.testing import CounterEnv, record

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

from rlds_hub.data.torch import StepDataset, passthrough  # noqa: E402

LENGTHS = [7, 3, 12, 5, 9, 4]


@pytest.fixture(scope="module")
def path(tmp_path_factory) -> str:
    """State only, a flat observation (one array): the loader's one-comprehension path."""
    env = CounterEnv(
        LENGTHS,
        terminate=[i % 2 == 0 for i in range(len(LENGTHS))],
        observation=lambda e, t: np.arange(4, dtype=np.float32) + 100 * e + t,
        observation_spec=specs.Array((4,), np.float32),
        reward=lambda e, t: 0.5 * t - e,
        action_spec=specs.Array((2,), np.int32),
    )
    directory = tmp_path_factory.mktemp("state") / "flat"
    record(
        env,
        directory,
        episodes=len(LENGTHS),
        policy=lambda ts: np.array([env.t, env.episode], np.int32),
        max_episodes_per_shard=2,
    )
    return str(directory)


def _rows(batches) -> dict[tuple[int, int], dict[str, np.ndarray]]:
    rows = {}
    for batch in batches:
        keys = zip(batch["episode_index"].tolist(), batch["step_index"].tolist(), strict=True)
        for i, key in enumerate(keys):
            assert key not in rows, f"step {key} came twice"
            rows[key] = {
                name: value[i].numpy() if isinstance(value, torch.Tensor) else value[i]
                for name, value in batch.items()
            }
    return rows


def _assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()  # every step once, no other
    for step, row in want.items():
        assert got[step].keys() == row.keys(), step
        for name, value in row.items():
            assert got[step][name].dtype == value.dtype, (step, name)
            np.testing.assert_array_equal(got[step][name], value, err_msg=f"{step} {name}")


OPTIONS = {"history": 2, "action_chunk": 3}


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_batches_equal_the_numpy_loader(path, workers) -> None:
    want = _rows(data.steps(path, batch_size=5, **OPTIONS))
    dataset = StepDataset(path, batch_size=5, **OPTIONS)
    loader = dataset.loader(num_workers=workers)
    assert isinstance(loader, DataLoader) and loader.collate_fn is passthrough
    for _ in range(2):  # two epochs: each yields every step once
        batches = list(loader)
        assert all(isinstance(b, dict) for b in batches)
        assert all(isinstance(v, torch.Tensor) for b in batches for v in b.values())
        _assert_same(_rows(batches), want)


def test_loader_refuses_samples_and_batching_of_its_own(path) -> None:
    with pytest.raises(ValueError, match="batch_size=B"):
        StepDataset(path).loader()
    dataset = StepDataset(path, batch_size=4)
    for option in ({"batch_size": 8}, {"collate_fn": None}, {"shuffle": True}):
        with pytest.raises(ValueError, match="leave out"):
            dataset.loader(**option)
    assert dataset.loader(num_workers=2).persistent_workers


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_opens_no_profiler_range_per_batch_unless_profiling(
    path, monkeypatch, workers
) -> None:
    loader = StepDataset(path, batch_size=4).loader(num_workers=workers)
    ranges = []
    real = torch.autograd.profiler.record_function

    def counted(name, *args):
        ranges.append(name)
        return real(name, *args)

    monkeypatch.setattr(torch.autograd.profiler, "record_function", counted)
    batches = list(loader)
    assert batches and not [r for r in ranges if "DataLoader" in r]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]):
        again = list(loader)
    assert len([r for r in ranges if "DataLoader" in r]) == len(again) + 1  # + StopIteration
    assert sorted(_rows(again)) == sorted(_rows(batches))


def _order(batches) -> list[tuple[int, int]]:
    return [
        (int(e), int(t))
        for batch in batches
        for e, t in zip(batch["episode_index"], batch["step_index"], strict=True)
    ]


def test_each_epoch_of_a_reused_loader_has_the_order_of_that_epoch(path) -> None:
    """The dataset keeps its loader across epochs (reseeded, not remade): epoch k's batches
    are the ones a fresh dataset gives for set_epoch(k), and they differ between epochs."""
    dataset = StepDataset(path, batch_size=4, seed=3, **OPTIONS)
    reused = [_order(dataset.loader()) for _ in range(3)]
    fresh = []
    for epoch in range(3):
        other = StepDataset(path, batch_size=4, seed=3, **OPTIONS)
        other.set_epoch(epoch)
        fresh.append(_order(other.loader()))
    assert reused == fresh
    assert len({tuple(order) for order in reused}) == 3
    assert all(sorted(order) == sorted(reused[0]) for order in reused)


def test_an_epoch_left_early_does_not_change_the_next_epochs(path) -> None:
    """A loop that breaks out of an epoch hands the loader back for the next one."""
    dataset = StepDataset(path, batch_size=4, seed=5, **OPTIONS)
    first = iter(dataset.loader())
    next(first)
    del first
    nested = [_order(dataset.loader()), _order(dataset.loader())]
    other = StepDataset(path, batch_size=4, seed=5, **OPTIONS)
    other.set_epoch(1)
    assert nested[0] == _order(other.loader())
    assert len(set(nested[0])) == len(nested[0]) and sorted(nested[0]) == sorted(nested[1])
