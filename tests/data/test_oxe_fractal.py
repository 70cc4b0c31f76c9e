"""Datasets shaped like most of Open X-Embodiment (fractal, bridge, kuka, taco_play): no
``discount`` step field, a dict of action arrays, a string in the observation. A missing
discount reads as 1, and 0 on a transition that ends in a terminal state, in every loader;
the learners name what they cannot use instead of a missing field."""

import json
import shutil

import numpy as np
import pytest

from rlds_hub import data
from rlds_hub.testing import oxe_episode, write_oxe_dataset

LENGTHS = [4, 6, 3, 5]  # steps per episode; every episode ends with a terminal step


@pytest.fixture(scope="module")
def fractal(tmp_path_factory):
    rng = np.random.default_rng(1)
    episodes = [oxe_episode(i, n, rng, image_size=16, fractal=True) for i, n in enumerate(LENGTHS)]
    return write_oxe_dataset(str(tmp_path_factory.mktemp("fractal")), episodes)


@pytest.fixture(scope="module")
def fractal_rlds(fractal, tmp_path_factory):
    """The same data declared in the RLDS layout (last step zero-filled): N - 1 transitions."""
    copy = tmp_path_factory.mktemp("declared") / "fractal"
    shutil.copytree(fractal, copy)
    (copy / "metadata.json").write_text(json.dumps({"layout": "rlds"}))
    return str(copy)


def _all(loader):
    batches = list(loader)
    return {key: np.concatenate([b[key] for b in batches]) for key in ("reward", "discount")}


def test_the_fixture_has_no_discount(fractal):
    from rlds_hub.storage import open_dataset

    assert "discount" not in open_dataset(fractal).step_fields


def test_transitions_read_a_missing_discount_as_one(fractal, fractal_rlds):
    found = _all(data.transitions(fractal, batch_size=8, shuffle=False))
    assert len(found["discount"]) == sum(LENGTHS)
    # every episode's final transition is terminal: 0 there, 1 everywhere else
    assert (found["discount"] == 0).sum() == len(LENGTHS)
    assert set(found["discount"].tolist()) == {0.0, 1.0}
    assert found["discount"].dtype == found["reward"].dtype == np.float32
    n_step = _all(data.transitions(fractal, n_step=3, gamma=0.5, shuffle=False))
    assert (n_step["discount"] == 0).sum() > len(LENGTHS)  # every transition reaching the end
    assert set(np.round(n_step["discount"], 6).tolist()) <= {0.0, 1.0, 0.5, 0.25}

    rlds = _all(data.transitions(fractal_rlds, batch_size=8, shuffle=False))
    assert len(rlds["discount"]) == sum(LENGTHS) - len(LENGTHS)
    assert (rlds["discount"] == 0).sum() == len(LENGTHS)


def test_windows_read_a_missing_discount_as_one(fractal, fractal_rlds):
    # oxe layout: 0 on the terminal last step; rlds layout: 0 on the step before it (the
    # final transition) and on the zero-filled last step
    for path, zeros in ((fractal, [-1]), (fractal_rlds, [-2, -1])):
        windows = list(
            data.windows(path, size=max(LENGTHS), shift=max(LENGTHS), batch_size=16, shuffle=False)
        )
        assert len(windows) == 1
        mask, discount = windows[0]["mask"], windows[0]["discount"]
        assert discount.shape == mask.shape and discount.dtype == np.float32
        for row, length in zip(discount, mask.sum(axis=1), strict=True):
            expected = np.ones(length, np.float32)
            expected[zeros] = 0.0
            assert row[:length].tolist() == expected.tolist()
            assert not row[length:].any()  # padding stays zero
        only = list(data.windows(path, size=2, keys=["discount"], shuffle=False))
        assert sum(float(w["discount"].sum()) for w in only) > 0


def test_in_memory_sampler_reads_a_dataset_without_discount(fractal, tmp_path):
    from rlds_hub.data import InMemorySampler

    # fractal's observation holds a string: named, since no JAX array can hold it
    with pytest.raises(
        ValueError,
        match=r"observation/natural_language_instruction'\] hold "
        "strings",
    ):
        InMemorySampler.from_dataset(fractal)
    rng = np.random.default_rng(2)
    episodes = [oxe_episode(i, n, rng, image_size=8, fractal=True) for i, n in enumerate(LENGTHS)]
    for episode in episodes:
        for step in episode["steps"]:
            del step["observation"]["natural_language_instruction"]
    numeric = write_oxe_dataset(str(tmp_path), episodes)
    sampler = InMemorySampler.from_dataset(numeric)
    assert sampler.size == sum(LENGTHS)
    assert float(np.asarray(sampler.items["discount"]).sum()) == sum(LENGTHS) - len(LENGTHS)
    windows = InMemorySampler.from_dataset(fractal, windows=2, keys=["reward", "discount"])
    assert windows.size > 0 and float(np.asarray(windows.items["discount"]).min()) == 0.0


def test_tf_transitions_read_a_missing_discount_as_one(fractal):
    from rlds_hub import load, transforms

    episodes = load(fractal).map(lambda e: {"steps": e["steps"]})
    found = list(transforms.transitions(episodes).as_numpy_iterator())
    # the tf.data kernels follow the RLDS layout (the last step is not a source)
    assert len(found) == sum(LENGTHS) - len(LENGTHS)
    discounts = np.array([t["discount"] for t in found])
    assert (discounts == 0).sum() == len(LENGTHS) and (discounts == 1).sum() == len(found) - 4
    single = transforms.episode_transitions(
        {
            "observation": np.zeros((3, 2)),
            "action": np.zeros((3, 1)),
            "reward": np.zeros(3, np.float32),
            "is_terminal": np.array([False, False, True]),
        }
    )
    assert np.asarray(single["discount"]).tolist() == [1.0, 0.0]


def test_train_names_what_the_learners_cannot_use(fractal, tmp_path, capsys):
    from rlds_hub.cli import main

    args = [
        "train",
        "bc",
        "--dataset",
        fractal,
        "--env",
        "gym/Pendulum-v1",
        "--out",
        str(tmp_path / "run"),
        "--quiet",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "need an observation and an action" not in err
    for part in (
        "observation/image is an image (uint8[16, 16, 3])",
        "observation/wrist_image is an image",
        "observation/natural_language_instruction is a string",
        "the action is a dict of 3 fields (gripper_closedness_action float32[1], "
        "rotation_delta float32[3], world_vector float32[3])",
    ):
        assert part in err, err
    assert not (tmp_path / "run").exists()


def test_stats_mark_the_last_step_only_where_it_is_left_out(fractal, fractal_rlds, capsys):
    from rlds_hub.cli import main

    assert main(["stats", fractal]) == 0
    oxe = capsys.readouterr().out
    assert "last step" not in oxe and " *" not in oxe
    assert main(["stats", fractal_rlds]) == 0
    rlds = capsys.readouterr().out
    assert "action/world_vector *" in rlds
    assert "* the zero-filled last step of each episode is excluded" in rlds
