"""StepMapDataset's skip_corrupt: the items a bad frame reaches are None (left out by
collate) and counted, as StepDataset and rlds_hub.data.steps skip and count them."""

from __future__ import annotations

import pytest
from step_datasets import camera_dataset, corrupt_frame, stored_episodes

from rlds_hub.storage.reader import EpisodeDecodeError

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

from rlds_hub.data.torch import StepDataset, StepMapDataset, collate  # noqa: E402


@pytest.fixture(scope="module")
def oxe():
    return camera_dataset()


def _kept(dataset: StepMapDataset) -> set[tuple[int, int]]:
    items = [dataset[i] for i in range(len(dataset))]
    return {(int(i["episode_index"]), int(i["step_index"])) for i in items if i is not None}


def test_skip_corrupt_map_dataset_skips_and_counts_as_step_dataset(oxe, tmp_path):
    path, _ = corrupt_frame(oxe, tmp_path, step=1)
    strict = StepMapDataset(path, history=2)
    with pytest.raises(EpisodeDecodeError, match="steps/observation/image: step 1: cannot decode"):
        [strict[i] for i in range(len(strict))]
    iterable = StepDataset(path, history=2, skip_corrupt=True, shuffle=False)
    with pytest.warns(UserWarning, match="step 1 steps/observation/image"):
        expected = {(int(s["episode_index"]), int(s["step_index"])) for s in iterable}
    mapped = StepMapDataset(path, history=2, skip_corrupt=True)
    with pytest.warns(UserWarning, match="step 1 steps/observation/image"):
        kept = _kept(mapped)
    assert kept == expected
    total = sum(len(ep["steps"]["is_first"]) for ep in stored_episodes(oxe).values())
    assert len(kept) < total
    assert mapped.skipped == {"steps": total - len(kept), "frames": 1, "episodes": 0}
    assert mapped.skipped == iterable.skipped
    # a DataLoader with collate leaves the skipped items out of its batches
    loader = DataLoader(mapped, batch_size=4, collate_fn=collate)
    found = {
        (int(e), int(t))
        for batch in loader
        for e, t in zip(batch["episode_index"], batch["step_index"], strict=True)
    }
    assert found == expected


def test_skip_corrupt_map_dataset_skips_an_episode_that_does_not_decode(oxe, tmp_path):
    path, _ = corrupt_frame(oxe, tmp_path, action=True)
    iterable = StepDataset(path, skip_corrupt=True, shuffle=False)
    with pytest.warns(UserWarning, match="skipped whole"):
        expected = {(int(s["episode_index"]), int(s["step_index"])) for s in iterable}
    mapped = StepMapDataset(path, skip_corrupt=True)
    with pytest.warns(UserWarning, match="skipped whole"):
        kept = _kept(mapped)
    assert kept == expected
    assert mapped.skipped["episodes"] == 1 == iterable.skipped["episodes"]
    assert mapped.skipped["steps"] == len(mapped) - len(kept)


def test_skip_corrupt_must_be_a_bool(oxe):
    with pytest.raises(ValueError, match="skip_corrupt must be True or False"):
        StepMapDataset(oxe, skip_corrupt="yes")


def test_collate_of_only_skipped_items_says_why():
    with pytest.raises(ValueError, match="skipped by skip_corrupt"):
        collate([None, None])
