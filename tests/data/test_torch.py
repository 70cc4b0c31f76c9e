"""rlds_hub.data.torch with a real DataLoader and 2 worker processes: every step once per
epoch, the stored dtypes, nested dicts, history and action chunks equal to the NumPy loader's,
the map-style dataset, LeRobot's delta_timestamps, and errors that end the epoch (a corrupt
frame, a worker that dies) instead of hanging."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from step_datasets import camera_dataset, corrupt_frame, stored_episodes

from rlds_hub import data
from rlds_hub.format.plan import flatten

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader, get_worker_info  # noqa: E402

from rlds_hub.data.torch import (  # noqa: E402
    StepDataset,
    StepMapDataset,
    collate,
    from_delta_timestamps,
)


@pytest.fixture(scope="module")
def path():
    return camera_dataset()


@pytest.fixture(autouse=True)
def no_hang():
    """A DataLoader that hangs fails the test after 60 s instead of blocking the suite."""

    def expired(*_):
        raise TimeoutError("the DataLoader hung")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _keys(batch) -> list[tuple[int, int]]:
    return list(zip(batch["episode_index"].tolist(), batch["step_index"].tolist(), strict=True))


def _all_steps(path) -> list[tuple[int, int]]:
    episodes = stored_episodes(path)
    return sorted((e, t) for e, ep in episodes.items() for t in range(len(ep["steps"]["is_first"])))


def _numpy_items(path, **options) -> dict[tuple[int, int], dict]:
    items = {}
    for batch in data.steps(path, batch_size=64, **options):
        flat = flatten(batch)
        for i in range(len(flat["step_index"])):
            key = (int(flat["episode_index"][i]), int(flat["step_index"][i]))
            items[key] = {k: v[i] for k, v in flat.items()}
    return items


def _assert_sample_equals(sample: dict, expected: dict, where) -> None:
    flat = flatten(sample)
    assert sorted(flat) == sorted(expected), where
    for key, value in expected.items():
        got = flat[key]
        if isinstance(got, torch.Tensor):
            assert got.numpy().dtype == np.asarray(value).dtype, (where, key)
            assert np.array_equal(got.numpy(), value), (where, key)
        else:  # strings: str, or lists of str for a history
            assert np.array_equal(np.array(got, object), np.vectorize(bytes.decode)(value)), key


def test_two_workers_yield_every_step_once_per_epoch(path):
    dataset = StepDataset(path, history=2, action_chunk=3, seed=4)
    loader = DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=collate)
    epochs = []
    for _ in range(2):
        seen = [key for batch in loader for key in _keys(batch)]
        assert sorted(seen) == _all_steps(path)  # no duplicate, no gap
        epochs.append(seen)
    assert epochs[0] != epochs[1]  # reshuffled (and parts rotated) every epoch
    assert len(dataset) == len(_all_steps(path))
    # set_epoch replays an epoch exactly
    dataset.set_epoch(1)
    again = [key for batch in loader for key in _keys(batch)]
    dataset.set_epoch(1)
    assert [key for batch in loader for key in _keys(batch)] == again


@pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")
def test_epochs_stay_exact_when_loaders_of_other_worker_counts_ran_before(path):
    dataset = StepDataset(path, keys=["action"])
    next(iter(dataset))  # a look at one sample in the training process
    for workers in (2, 1, 2):
        loader = DataLoader(dataset, batch_size=4, num_workers=workers)
        assert sorted(key for batch in loader for key in _keys(batch)) == _all_steps(path)


def test_a_selection_split_over_more_workers_than_it_has_episodes(path):
    dataset = StepDataset(path, episodes=[0, 2, 4], shuffle=False)
    expected = [key for key in _all_steps(path) if key[0] in (0, 2, 4)]
    loader = DataLoader(dataset, batch_size=2, num_workers=3)
    assert sorted(key for batch in loader for key in _keys(batch)) == expected
    for workers in (1, 2, 3, 4, 7):
        parts = dataset.parts(workers)
        assert len(parts) == workers
        assert [i for part in parts for i in part.indices] == [0, 2, 4]


@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true but no accelerator")
@pytest.mark.slow  # spawned workers import torch and rlds_hub afresh (seconds)
def test_spawned_workers_share_the_epoch_and_yield_every_step_once(path):
    dataset = StepDataset(path, keys=["action"], skip_corrupt=True)
    loader = DataLoader(dataset, batch_size=4, num_workers=2, multiprocessing_context="spawn")
    first = [key for batch in loader for key in _keys(batch)]
    second = [key for batch in loader for key in _keys(batch)]
    assert sorted(first) == sorted(second) == _all_steps(path)
    assert first != second  # the epoch advanced in the spawned workers too
    assert dataset.skipped == {"steps": 0, "frames": 0, "episodes": 0}
    mapped = StepMapDataset(path, keys=["action"])
    loader = DataLoader(mapped, batch_size=4, num_workers=2, multiprocessing_context="spawn")
    assert sorted(key for batch in loader for key in _keys(batch)) == _all_steps(path)


def test_samples_equal_the_numpy_loader_with_stored_dtypes_and_nested_dicts(path):
    expected = _numpy_items(path, history=3, action_chunk=4)
    dataset = StepDataset(path, history=3, action_chunk=4)
    loader = DataLoader(dataset, batch_size=5, num_workers=2, pin_memory=True)  # default collate
    count = 0
    for batch in loader:
        assert isinstance(batch["observation"], dict) and isinstance(
            batch["episode_metadata"], dict
        )
        assert batch["observation"]["image"].dtype == torch.uint8
        assert batch["observation"]["image"].shape[1:] == (4, 8, 8, 3)
        assert batch["action"].shape[1:] == (4, 7) and batch["action_mask"].dtype == torch.bool
        assert batch["is_first"].dtype == torch.bool and batch["step_index"].dtype == torch.int64
        for i, key in enumerate(_keys(batch)):
            sample = {k: v[i] for k, v in flatten(batch).items()}
            _assert_sample_equals(sample, expected[key], key)
            count += 1
    assert count == len(expected)


def test_map_style_items_equal_the_iterable_ones(path):
    expected = _numpy_items(path, history=1, action_chunk=2)
    dataset = StepMapDataset(path, history=1, action_chunk=2)
    assert len(dataset) == len(expected)
    loader = DataLoader(dataset, batch_size=3, shuffle=True, num_workers=2, collate_fn=collate)
    seen = []
    for batch in loader:
        size = len(batch["step_index"])
        assert batch["observation"]["image"].shape == (size, 2, 8, 8, 3)  # collated, nested
        assert len(batch["language_instruction"]) == size
        assert batch["episode_metadata"]["success"].dtype == torch.bool
        for i, key in enumerate(_keys(batch)):
            _assert_sample_equals({k: v[i] for k, v in flatten(batch).items()}, expected[key], key)
            seen.append(key)
    assert sorted(seen) == sorted(expected)
    assert dataset[-1]["step_index"] == dataset[len(dataset) - 1]["step_index"]
    with pytest.raises(IndexError, match="out of range"):
        dataset[len(dataset)]


def test_whole_batches_with_batch_size_none(path):
    dataset = StepDataset(path, batch_size=4, keys=["observation", "action"], action_chunk=2)
    batches = list(DataLoader(dataset, batch_size=None, num_workers=2))
    assert sorted(key for b in batches for key in _keys(b)) == _all_steps(path)
    assert batches[0]["observation"]["state"].shape == (4, 8)
    assert batches[0]["action"].shape == (4, 2, 7)


def test_delta_timestamps_map_to_history_and_chunk(path, tmp_path):
    stamps = {"observation.image": [-0.2, -0.1, 0.0], "observation.state": [-0.2, -0.1, 0.0]}
    assert from_delta_timestamps({**stamps, "action": [0.0, 0.1, 0.2, 0.3]}, 10) == (2, 4)
    assert from_delta_timestamps({"action": [0.0]}, 10) == (0, 1)
    for bad, message in [
        ({"observation.image": [-0.1, 0.0], "observation.state": [0.0]}, "same frames"),
        ({"observation.image": [-0.2, 0.0]}, "-H/fps"),
        ({"action": [0.1, 0.2]}, "0, 1/fps"),
        ({"action": [0.0, 0.05]}, "not whole frames"),
        ({"next.reward": [0.0]}, "not supported"),
    ]:
        with pytest.raises(ValueError, match=message):
            from_delta_timestamps(bad, 10)
    with pytest.raises(ValueError, match=r"does not record one.*fps=.*history="):
        StepDataset(path, delta_timestamps={"action": [0.0, 0.1]})
    with pytest.raises(ValueError, match="not both"):
        StepDataset(path, history=1, delta_timestamps={"action": [0.0, 0.1]}, fps=10)
    explicit = StepDataset(path, delta_timestamps={**stamps, "action": [0.0, 0.1]}, fps=10)
    assert (explicit.history, explicit.action_chunk) == (2, 2)
    # the rate recorded in metadata.json
    copy = tmp_path / "with_fps"
    shutil.copytree(path, copy)
    (copy / "metadata.json").write_text(json.dumps({"layout": "oxe", "control_frequency": 5}))
    recorded = StepDataset(str(copy), delta_timestamps={"action": [0.0, 0.2, 0.4]})
    assert recorded.action_chunk == 3
    sample = next(iter(recorded))
    assert sample["action"].shape == (3, 7)


def test_a_corrupt_frame_in_a_worker_ends_the_epoch_with_a_clear_error(path, tmp_path):
    broken, record = corrupt_frame(path, tmp_path, step=1)
    loader = DataLoader(StepDataset(broken), batch_size=2, num_workers=2)
    with pytest.raises(Exception, match="EpisodeDecodeError") as error:  # torch re-raises
        list(loader)
    for part in (broken, "tfrecord-00000", f"record {record})", "steps/observation/image: step 1"):
        assert part in str(error.value)
    with pytest.raises(Exception, match="step 1"):
        [StepMapDataset(broken)[i] for i in range(len(StepMapDataset(broken)))]


def test_skip_corrupt_across_workers_counts_what_it_skipped(path, tmp_path):
    broken, record = corrupt_frame(path, tmp_path, step=1)
    dataset = StepDataset(broken, skip_corrupt=True)  # no history: only the bad step goes
    seen = [
        key for batch in DataLoader(dataset, batch_size=3, num_workers=2) for key in _keys(batch)
    ]
    assert sorted(seen) == [key for key in _all_steps(path) if key != (record, 1)]
    assert dataset.skipped == {"steps": 1, "frames": 1, "episodes": 0}


def test_skip_counts_add_up_over_epochs_of_whole_batches(path, tmp_path):
    """In the training process the dataset reuses its loader from epoch to epoch: each
    epoch adds what it skipped, once (not the loader's count since it was made)."""
    broken, record = corrupt_frame(path, tmp_path, step=1)
    dataset = StepDataset(broken, skip_corrupt=True, batch_size=3)
    for epoch in range(1, 4):
        with pytest.warns(UserWarning, match="skip_corrupt"):
            seen = [key for batch in dataset.loader() for key in _keys(batch)]
        assert sorted(seen) == [key for key in _all_steps(path) if key != (record, 1)]
        assert dataset.skipped == {"steps": epoch, "frames": epoch, "episodes": 0}


class DyingDataset(StepDataset):
    """Worker 1 dies (as if killed) after its first sample."""

    def __iter__(self):
        info = get_worker_info()
        for i, sample in enumerate(super().__iter__()):
            if info is not None and info.id == 1 and i == 1:
                os._exit(3)
            yield sample


def test_a_worker_that_dies_ends_the_epoch_with_an_error(path):
    loader = DataLoader(DyingDataset(path), batch_size=1, num_workers=2)
    with pytest.raises(RuntimeError, match=r"exited unexpectedly|killed"):
        list(loader)


def test_bad_arguments_fail_when_the_dataset_is_made(path):
    with pytest.raises(ValueError, match="history must be"):
        StepDataset(path, history=-1)
    with pytest.raises(ValueError, match="action_chunk must be"):
        StepMapDataset(path, action_chunk=0)
    with pytest.raises(ValueError, match="batch_size must be"):
        StepDataset(path, batch_size=0)
    with pytest.raises(TypeError, match="Did you mean 'min_length'"):
        StepDataset(path, min_lenght=2)
    with pytest.raises(ValueError, match="epoch must be"):
        StepDataset(path).set_epoch(-1)


def test_importing_rlds_hub_data_does_not_import_torch():
    code = "import sys, rlds_hub.data; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
