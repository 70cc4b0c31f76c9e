"""rlds_hub.data.steps: single steps with frame history and action chunks, checked item by
item against a plain NumPy reference (tests/data/step_datasets.py) at episode starts and
ends, in both last-step layouts, with nested observations and actions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from step_datasets import (
    LENGTHS,
    camera_dataset,
    corrupt_frame,
    declared_rlds,
    reference_step,
    stored_episodes,
)

from rlds_hub import data
from rlds_hub.format.plan import flatten
from rlds_hub.storage.reader import EpisodeDecodeError


@pytest.fixture(scope="module")
def oxe():
    return camera_dataset()


@pytest.fixture(scope="module")
def rlds(oxe, tmp_path_factory):
    return declared_rlds(oxe, tmp_path_factory.mktemp("rlds"))


def _items(loader) -> list[dict]:
    """Every item of the loader's batches, as flat dicts."""
    items = []
    for batch in loader:
        flat = flatten(batch)
        size = len(flat["step_index"])
        items += [{key: value[i] for key, value in flat.items()} for i in range(size)]
    return items


def _all_steps(episodes: dict) -> list[tuple[int, int]]:
    """(episode, step) of every stored step (TFDS's writer shuffles the episodes)."""
    lengths = {e: len(episode["steps"]["is_first"]) for e, episode in episodes.items()}
    return sorted((e, t) for e, n in lengths.items() for t in range(n))


def _assert_same(expected: dict, found: dict, where: str) -> None:
    assert sorted(found) == sorted(expected), where
    for key, value in expected.items():
        value, got = np.asarray(value), np.asarray(found[key])
        assert got.dtype == value.dtype, f"{where} {key}: {got.dtype} != {value.dtype}"
        assert got.shape == value.shape, f"{where} {key}: {got.shape} != {value.shape}"
        assert np.array_equal(got, value), f"{where} {key}: {got} != {value}"


@pytest.mark.parametrize("layout", ["oxe", "rlds"])
@pytest.mark.parametrize(("history", "chunk"), [(0, 1), (2, 3), (4, 6), (0, 8), (6, 1)])
def test_steps_equal_the_numpy_reference(request, layout, history, chunk):
    path = request.getfixturevalue(layout)
    episodes = stored_episodes(path)
    loader = data.steps(path, batch_size=4, history=history, action_chunk=chunk, seed=1)
    items = _items(loader)
    # every step exactly once, shuffled
    found = [(int(i["episode_index"]), int(i["step_index"])) for i in items]
    assert sorted(found) == _all_steps(episodes)
    assert found != sorted(found)
    for item in items:
        e, t = int(item.pop("episode_index")), int(item["step_index"])
        expected = reference_step(episodes[e], t, history, chunk, final_action=layout == "oxe")
        _assert_same(expected, item, f"{layout} episode {e} step {t}")


def test_plain_steps_have_no_extra_axes(oxe):
    (batch,) = data.steps(oxe, batch_size=100, shuffle=False)
    assert "observation_mask" not in batch
    n = sum(LENGTHS)
    assert batch["observation"]["image"].shape == (n, 8, 8, 3)
    assert batch["action"].shape == (n, 7) and batch["action_mask"].shape == (n,)
    assert batch["language_instruction"].dtype == object
    assert set(batch["episode_metadata"]) == {"file_path", "success", "episode_id"}
    # in dataset order: each episode's steps in order
    assert batch["step_index"][batch["is_first"]].tolist() == [0] * len(LENGTHS)
    assert np.array_equal(np.diff(batch["episode_index"]) == 0, ~batch["is_first"][1:])


def test_nested_actions_are_chunked_and_a_missing_discount_derived():
    path = camera_dataset(fractal=True)
    episodes = stored_episodes(path)
    items = _items(data.steps(path, batch_size=8, history=1, action_chunk=3))
    assert len(items) == sum(LENGTHS)
    for item in items:
        e, t = int(item.pop("episode_index")), int(item["step_index"])
        discount = item.pop("discount")  # no stored discount: 1, and 0 on the terminal step
        last = len(episodes[e]["steps"]["is_first"]) - 1
        assert discount == (0.0 if t == last else 1.0)
        expected = reference_step(episodes[e], t, 1, 3, final_action=True)
        assert expected["action/world_vector"].shape == (3, 3)
        _assert_same(expected, item, f"episode {e} step {t}")


def test_keys_pick_fields_and_the_batches_reach_jax(oxe):
    loader = data.steps(oxe, keys=["observation", "action"], history=2, action_chunk=4)
    batch = next(iter(loader))
    assert set(batch) == {
        "observation",
        "action",
        "observation_mask",
        "action_mask",
        "episode_index",
        "step_index",
    }
    no_strings = data.steps(oxe, keys=["observation", "action", "episode_metadata"], batch_size=4)
    with pytest.raises(ValueError, match="hold strings"):
        next(no_strings.as_jax_iterator())
    with warnings.catch_warnings():  # int64 indices become int32 without a warning: < 2**31
        warnings.simplefilter("error")
        jax_batch = next(data.steps(oxe, keys=["action"], action_chunk=4).as_jax_iterator())
    assert jax_batch["action"].shape[1:] == (4, 7)
    assert jax_batch["step_index"].max() < 7


def test_same_seed_same_batches_and_epochs(oxe):
    first = [b["step_index"].tolist() for b in data.steps(oxe, batch_size=3, seed=5)]
    again = [b["step_index"].tolist() for b in data.steps(oxe, batch_size=3, seed=5)]
    assert first == again
    two = _items(data.steps(oxe, batch_size=5, num_epochs=2, keys=["reward"]))
    assert len(two) == 2 * sum(LENGTHS)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"history": -1}, "history must be an integer >= 0"),
        ({"history": 1.5}, "history must be an integer >= 0"),
        ({"action_chunk": 0}, "action_chunk must be an integer >= 1"),
        ({"keys": ["observation", "nope"]}, r"no field\(s\) \['nope'\]"),
        ({"keys": "action"}, "keys must be a sequence"),
        ({"min_lenght": 3}, "min_lenght"),
        ({"batch_size": 0}, "batch_size must be"),
    ],
)
def test_bad_arguments_say_what_is_wrong(oxe, arguments, message):
    with pytest.raises((ValueError, TypeError), match=message):
        data.steps(oxe, **arguments)


def test_a_corrupt_frame_names_dataset_file_episode_step_and_field(oxe, tmp_path):
    path, record = corrupt_frame(oxe, tmp_path, step=1)
    with pytest.raises(EpisodeDecodeError) as error:
        list(data.steps(path, batch_size=4))
    message = str(error.value)
    for part in (path, "tfrecord-00000", f"record {record})", "step 1", "steps/observation/image"):
        assert part in message, message
    assert "cannot decode an image frame" in message


def test_skip_corrupt_skips_and_counts_the_steps_a_bad_frame_reaches(oxe, tmp_path):
    path, record = corrupt_frame(oxe, tmp_path, step=1)
    episode = record  # the first shard holds the first episodes
    clean = {(int(i["episode_index"]), int(i["step_index"])): i for i in _items(data.steps(oxe))}
    loader = data.steps(path, batch_size=4, history=2, skip_corrupt=True)
    with pytest.warns(UserWarning, match=r"1 frames.*step 1 steps/observation/image"):
        items = _items(loader)
    length = max(t for e, t in clean if e == episode) + 1
    reached = {(episode, t) for t in range(1, min(4, length))}  # t - 2 <= 1 <= t
    found = {(int(i["episode_index"]), int(i["step_index"])) for i in items}
    assert found == set(clean) - reached and len(items) == len(found)
    assert (loader.skipped.steps, loader.skipped.frames, loader.skipped.episodes) == (
        len(reached),
        1,
        0,
    )
    for item in items:  # the kept steps are intact
        key = (int(item["episode_index"]), int(item["step_index"]))
        assert np.array_equal(item["observation/image"][-1], clean[key]["observation/image"])


def test_skip_corrupt_skips_an_episode_that_does_not_decode_at_all(oxe, tmp_path):
    path, record = corrupt_frame(oxe, tmp_path, action=True)
    with pytest.raises(EpisodeDecodeError, match="steps/action"):
        list(data.steps(path))
    loader = data.steps(path, skip_corrupt=True)
    with pytest.warns(UserWarning, match="skipped whole"):
        found = {int(e) for batch in loader for e in batch["episode_index"]}
    assert record not in found and len(found) == len(LENGTHS) - 1
    assert loader.skipped.episodes == 1
