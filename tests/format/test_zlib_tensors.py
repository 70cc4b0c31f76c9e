"""Every tensor encoding TFDS writes (none, bytes, zlib) is read as TFDS reads it, and a
dataset the service cannot read answers 409 with the reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rlds_hub.storage import DatasetError, iter_episodes, open_dataset, read_episode
from rlds_hub.testing import assert_bit_equal, read_episodes_with_tfds, stack_steps
from rlds_hub.testing.oxe import write_tfds_dataset
from rlds_hub.testing.service import app_client

LENGTHS = (3, 1, 5, 4)


def _episode(index: int, rng: np.random.Generator) -> dict:
    n = LENGTHS[index]
    return {
        "steps": [
            {
                "observation": {
                    "state": rng.normal(size=6).astype(np.float32),
                    "depth": rng.integers(0, 2**16, (8, 5, 1), dtype=np.uint16),
                    "joints": rng.normal(size=(2, 3)),  # float64, encoding bytes
                },
                "action": rng.normal(size=7).astype(np.float32),
                "reward": np.float32(t == n - 1),
                "discount": np.float32(1.0),
                "is_first": t == 0,
                "is_last": t == n - 1,
                "is_terminal": t == n - 1,
            }
            for t in range(n)
        ],
        "episode_metadata": {"calibration": rng.normal(size=(3, 3)).astype(np.float32)},
    }


def encode(dataset, episode: dict, plan=None) -> bytes:
    """One episode serialized with rlds_hub's encoder (and the dataset's plan)."""
    from rlds_hub.format.encode import ExampleEncoder
    from rlds_hub.format.plan import flatten

    plan = plan or dataset.plan
    flat = flatten(episode)
    return ExampleEncoder(plan).encode({leaf.key: flat[leaf.key] for leaf in plan})


@pytest.fixture(scope="module")
def zlib_dataset(tmp_path_factory) -> Path:
    """A dataset written by TFDS itself with zlib-encoded tensors (as real kuka and
    envlogger's TFDS writer example store them)."""
    import tensorflow_datasets as tfds

    tensor = tfds.features.Tensor
    features = tfds.features.FeaturesDict(
        {
            "steps": tfds.features.Dataset(
                {
                    "observation": tfds.features.FeaturesDict(
                        {
                            "state": tensor(shape=(6,), dtype=np.float32, encoding="zlib"),
                            "depth": tensor(shape=(8, 5, 1), dtype=np.uint16, encoding="zlib"),
                            "joints": tensor(shape=(2, 3), dtype=np.float64, encoding="bytes"),
                        }
                    ),
                    "action": tensor(shape=(7,), dtype=np.float32, encoding="zlib"),
                    "reward": tfds.features.Scalar(dtype=np.float32),
                    "discount": tfds.features.Scalar(dtype=np.float32),
                    "is_first": tfds.features.Scalar(dtype=np.bool_),
                    "is_last": tfds.features.Scalar(dtype=np.bool_),
                    "is_terminal": tfds.features.Scalar(dtype=np.bool_),
                }
            ),
            "episode_metadata": tfds.features.FeaturesDict(
                {
                    "calibration": tensor(shape=(3, 3), dtype=np.float32, encoding="zlib"),
                }
            ),
        }
    )
    rng = np.random.default_rng(7)
    episodes = [_episode(i, rng) for i in range(len(LENGTHS))]
    directory = str(tmp_path_factory.mktemp("tfds"))
    return Path(write_tfds_dataset(directory, features, enumerate(episodes), "zlib_tensors", 2))


def test_zlib_and_bytes_tensors_decode_as_tfds_decodes_them(zlib_dataset):
    features = json.loads((zlib_dataset / "features.json").read_text())
    assert '"encoding": "zlib"' in json.dumps(features)
    expected = read_episodes_with_tfds(str(zlib_dataset))
    dataset = open_dataset(zlib_dataset)
    episodes = list(iter_episodes(dataset, "train"))
    lengths = [len(e["steps"]["reward"]) for e in episodes]
    assert lengths == [len(e["steps"]) for e in expected]  # TFDS's order (it shuffles)
    assert sorted(lengths) == sorted(LENGTHS)
    for want, got in zip(expected, episodes, strict=True):
        tfds_steps = stack_steps(want["steps"])
        for key in ("action", "reward", "is_last"):
            assert_bit_equal(tfds_steps[key], got["steps"][key])
        assert_bit_equal(tfds_steps["observation"], got["steps"]["observation"])
        assert_bit_equal(want["episode_metadata"], got["episode_metadata"])
    one = read_episode(dataset, "train", 2, keys=["steps/observation/depth"])
    assert_bit_equal(
        np.stack([s["observation"]["depth"] for s in expected[2]["steps"]]),
        one["steps"]["observation"]["depth"],
    )


def test_info_names_the_zlib_encoding(zlib_dataset):
    from rlds_hub.inspection import summarize

    steps = summarize(open_dataset(zlib_dataset), count_steps=False)["features"]["steps"]
    encodings = {entry["key"]: entry["encoding"] for entry in steps}
    assert encodings["action"] == "zlib" and encodings["observation/joints"] == "bytes"


def test_a_zlib_entry_that_inflates_beyond_its_shape_is_refused(zlib_dataset):
    import dataclasses

    from rlds_hub.format.decode import EpisodeDecoder, ParseError
    from rlds_hub.format.plan import Plan

    dataset = open_dataset(zlib_dataset)
    (leaf,) = [leaf for leaf in dataset.plan if leaf.key == "steps/action"]
    assert leaf.compression == "zlib"
    episode = next(iter(iter_episodes(dataset, "train")))
    steps = len(episode["steps"]["action"])
    # the same record, but each step's action a 10 MB run of zeros (a 10 kB zlib entry)
    bomb = dataclasses.replace(leaf, dtype=np.dtype(np.uint8), shape=(10**7,))
    plan = Plan([bomb if other.key == leaf.key else other for other in dataset.plan])
    episode["steps"]["action"] = np.zeros((steps, 10**7), np.uint8)
    record = encode(dataset, episode, plan)
    assert len(record) < 10**6
    with pytest.raises(ParseError, match="inflates to more than 28 bytes"):
        EpisodeDecoder(dataset.plan).decode([record])


def test_the_encoder_writes_zlib_tensors_tfds_reads(zlib_dataset, tmp_path):
    """rlds_hub's jobs re-encode with the input's features: TFDS reads what they write."""
    from rlds_hub.storage.shards import framed

    dataset = open_dataset(zlib_dataset)
    copy = Path(shutil.copytree(zlib_dataset, tmp_path / "copy"))
    episodes = list(iter_episodes(dataset, "train"))
    first = 0
    for path, count in dataset.split("train").nonempty_shards:
        data = b"".join(
            bytes(piece)
            for episode in episodes[first : first + count]
            for piece in framed(encode(dataset, episode))
        )
        (copy / Path(path).name).write_bytes(data)
        first += count
    for want, got in zip(
        read_episodes_with_tfds(str(zlib_dataset)), read_episodes_with_tfds(str(copy)), strict=True
    ):
        assert_bit_equal(stack_steps(want["steps"]), stack_steps(got["steps"]))
        assert_bit_equal(want["episode_metadata"], got["episode_metadata"])


def test_an_encoding_tfds_does_not_write_is_refused_with_the_field(zlib_dataset, tmp_path):
    copy = Path(shutil.copytree(zlib_dataset, tmp_path / "copy"))
    text = (copy / "features.json").read_text().replace('"zlib"', '"lz4"', 1)
    (copy / "features.json").write_text(text)
    with pytest.raises(DatasetError, match=r"encoding 'lz4' is not supported.*zlib"):
        open_dataset(copy)


@pytest.mark.slow
def test_the_service_answers_409_with_the_reason_for_a_dataset_it_cannot_read(
    zlib_dataset, tmp_path
):
    root = tmp_path / "root"
    shutil.copytree(zlib_dataset, root / "unreadable")
    text = (root / "unreadable" / "features.json").read_text().replace('"zlib"', '"lz4"', 1)
    (root / "unreadable" / "features.json").write_text(text)
    shutil.copytree(zlib_dataset, root / "kuka_like")
    with app_client([root], f"sqlite:///{tmp_path}/index.sqlite3") as client:
        for url in (
            "/api/v1/datasets/unreadable/episodes/0/steps",
            "/api/v1/datasets/unreadable/episodes/0",
            "/api/v1/datasets/unreadable/episodes",
        ):
            answer = client.get(url)
            assert answer.status_code == 409, (url, answer.text)
            assert answer.json()["error"]["code"] == "dataset_unreadable"
            assert "encoding 'lz4' is not supported" in answer.json()["error"]["message"]
        steps = client.get("/api/v1/datasets/kuka_like/episodes/2/steps")
        assert steps.status_code == 200, steps.text
        episode = read_episode(open_dataset(zlib_dataset), "train", 2)
        assert np.array_equal(
            np.asarray(steps.json()["fields"]["action"], np.float32), episode["steps"]["action"]
        )
