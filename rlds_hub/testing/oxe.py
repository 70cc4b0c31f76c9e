"""Datasets in the Open X-Embodiment layout, written with TFDS's own builder machinery."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np


def oxe_episode(
    index: int,
    num_steps: int,
    rng: np.random.Generator,
    *,
    image_size: int = 32,
    fractal: bool = False,
) -> dict[str, Any]:
    """An episode in the Open X-Embodiment layout (real action and success reward on the
    last step, images, a language instruction, nested ``episode_metadata``).

    ``fractal``: shaped like RT-1's fractal20220817_data (and most of OXE): no ``discount``
    field, a dict of action arrays, the instruction inside the observation."""
    success = index % 3 != 2
    steps = []
    for t in range(num_steps):
        base = np.linspace(0, 255, image_size, dtype=np.float64)
        image = (
            base[None, :, None] * 0.5
            + base[:, None, None] * 0.5
            + rng.integers(0, 60, (image_size, image_size, 3))
        ) % 256
        last = t == num_steps - 1
        step = {
            "observation": {
                "image": image.astype(np.uint8),
                "wrist_image": rng.integers(
                    0, 256, (image_size // 2, image_size // 2, 3), dtype=np.uint8
                ),
                "state": rng.normal(size=8).astype(np.float32),
            },
            "action": rng.normal(size=7).astype(np.float32),
            "reward": np.float32(1.0 if last and success else 0.0),
            "discount": np.float32(1.0),
            "is_first": t == 0,
            "is_last": last,
            "is_terminal": last,
            "language_instruction": f"pick up block {index} (étape {t})",
        }
        if fractal:
            del step["discount"]
            step["observation"]["natural_language_instruction"] = step.pop("language_instruction")
            step["action"] = {
                "world_vector": step["action"][:3],
                "rotation_delta": step["action"][3:6],
                "gripper_closedness_action": step["action"][6:],
            }
        steps.append(step)
    return {
        "steps": steps,
        "episode_metadata": {
            "file_path": f"/data/raw/episode_{index}.h5",
            "success": success,
            "episode_id": np.int64(index),
        },
    }


def write_oxe_dataset(
    directory: str,
    episodes: Sequence[Mapping[str, Any]],
    *,
    name: str = "oxe_like",
    shards: int = 2,
) -> str:
    """Writes ``episodes`` (see :func:`oxe_episode`) with TFDS's own builder machinery, in
    the Open X-Embodiment feature layout (JPEG ``image``, PNG ``wrist_image``); returns the
    dataset directory (``directory/name/1.0.0``)."""
    import tensorflow_datasets as tfds

    first = episodes[0]["steps"][0]
    size = first["observation"]["image"].shape[0]
    observation = {
        "image": tfds.features.Image(shape=(size, size, 3), encoding_format="jpeg"),
        "wrist_image": tfds.features.Image(shape=(size // 2, size // 2, 3), encoding_format="png"),
        "state": tfds.features.Tensor(shape=(8,), dtype=np.float32),
    }
    steps = {
        "action": tfds.features.Tensor(shape=(7,), dtype=np.float32),
        "reward": tfds.features.Scalar(dtype=np.float32),
        "discount": tfds.features.Scalar(dtype=np.float32),
        "is_first": tfds.features.Scalar(dtype=np.bool_),
        "is_last": tfds.features.Scalar(dtype=np.bool_),
        "is_terminal": tfds.features.Scalar(dtype=np.bool_),
        "language_instruction": tfds.features.Text(),
    }
    if "discount" not in first:  # oxe_episode(fractal=True)
        del steps["discount"], steps["language_instruction"]
        if "natural_language_instruction" in first["observation"]:
            observation["natural_language_instruction"] = tfds.features.Text()
        steps["action"] = tfds.features.FeaturesDict(
            {
                key: tfds.features.Tensor(shape=np.shape(value), dtype=np.float32)
                for key, value in first["action"].items()
            }
        )
    features = tfds.features.FeaturesDict(
        {
            "steps": tfds.features.Dataset(
                {
                    "observation": tfds.features.FeaturesDict(observation),
                    **steps,
                }
            ),
            "episode_metadata": tfds.features.FeaturesDict(
                {
                    "file_path": tfds.features.Text(),
                    "success": tfds.features.Scalar(dtype=np.bool_),
                    "episode_id": tfds.features.Scalar(dtype=np.int64),
                }
            ),
        }
    )
    return write_tfds_dataset(directory, features, enumerate(list(episodes)), name, shards)


def write_tfds_dataset(
    directory: str,
    features: Any,
    examples: Iterable[tuple[Any, Mapping[str, Any]]],
    name: str,
    shards: int,
) -> str:
    """Writes ``(key, episode)`` pairs of ``features`` (a ``tfds.features.FeaturesDict``)
    as the ``train`` split with TFDS's own builder; returns ``directory/name/1.0.0``."""
    import tensorflow_datasets as tfds

    class OxeLike(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=features)

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            yield from examples

    OxeLike.name = name  # before the builder is made: its info and splits carry the name
    builder = OxeLike(data_dir=directory, config=None)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(max_examples_per_split=None, num_shards=shards)
    )
    return str(builder.data_dir)
