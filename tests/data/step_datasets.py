"""Small camera datasets for the single-step loaders' tests (tests/data/test_steps.py,
test_torch.py), the plain NumPy reference of a step with history and an action chunk, and
a loader's batches flattened for comparing them."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from rlds_hub.format.plan import flatten
from rlds_hub.storage import iter_episodes, open_dataset
from rlds_hub.testing import oxe_episode, write_oxe_dataset

# Steps per episode: shorter than, equal to and longer than the history and chunks tested.
LENGTHS = [1, 2, 5, 7, 3]


def write_camera_dataset(directory: Path, *, fractal: bool = False) -> str:
    """An Open X-Embodiment-like dataset (JPEG and PNG cameras, nested observations, a
    language instruction, episode metadata), in the oxe layout."""
    rng = np.random.default_rng(3)
    episodes = [
        oxe_episode(i, n, rng, image_size=8, fractal=fractal) for i, n in enumerate(LENGTHS)
    ]
    return write_oxe_dataset(str(directory), episodes)


@functools.cache
def camera_dataset(*, fractal: bool = False) -> str:
    """:func:`write_camera_dataset`, written once per test process (test_steps.py and
    test_torch.py share it; TFDS's writer takes seconds) and removed when the process exits."""
    directory = Path(tempfile.mkdtemp(prefix="rlds_hub_steps_"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return write_camera_dataset(directory, fractal=fractal)


def declared_rlds(path: str, directory: Path) -> str:
    """A copy of ``path`` declared in the rlds layout (the last step's action not real)."""
    copy = directory / "declared_rlds"
    shutil.copytree(path, copy)
    (copy / "metadata.json").write_text(json.dumps({"layout": "rlds"}))
    return str(copy)


def stored_episodes(path: str) -> dict[int, dict[str, Any]]:
    """Episode index -> {"steps": flat step arrays, "episode": flat episode fields}."""
    out = {}
    for episode in iter_episodes(open_dataset(path), "train"):
        index = episode.pop("__index__")
        steps = flatten(episode.pop("steps"))
        out[index] = {"steps": steps, "episode": flatten(episode)}
    return out


def reference_step(
    episode: dict[str, Any], t: int, history: int, chunk: int, final_action: bool
) -> dict[str, Any]:
    """Step ``t`` of ``episode`` with frame history and an action chunk, one loop at a time:
    what the loaders must return (flat keys)."""
    steps = episode["steps"]
    length = len(steps["is_first"])
    real_actions = length if final_action else length - 1
    past = list(range(t - history, t + 1))
    ahead = list(range(t, t + chunk))
    sample: dict[str, Any] = {}
    for key, values in steps.items():
        field = key.split("/")[0]
        if field == "observation" and history:
            sample[key] = _stack([values[max(s, 0)] for s in past], values)
        elif field == "action" and chunk > 1:
            zero = np.zeros_like(values[0])
            sample[key] = _stack([values[s] if s < real_actions else zero for s in ahead], values)
        else:
            sample[key] = values[t]
    sample.update(episode["episode"])
    if history:
        sample["observation_mask"] = np.array([s >= 0 for s in past])
    mask = np.array([s < real_actions for s in ahead])
    sample["action_mask"] = mask if chunk > 1 else mask[0]
    sample["step_index"] = t
    return sample


def _stack(rows: list[Any], like: np.ndarray) -> np.ndarray:
    """``rows`` stacked with ``like``'s dtype (strings stay an object array of bytes)."""
    out = np.empty((len(rows), *like.shape[1:]), like.dtype)
    for i, row in enumerate(rows):
        out[i] = row
    return out


def corrupt_frame(
    path: str, directory: Path, *, step: int = 1, action: bool = False
) -> tuple[str, int]:
    """A copy of ``path`` in which the first record of the first shard with more than
    ``step`` steps holds broken JPEG bytes in ``observation/image`` at ``step`` (the shard
    rewritten with valid CRCs); returns the copy and the record's position. ``action``: the
    record's ``action`` loses its last value instead (the episode does not decode at all)."""
    import tensorflow as tf

    copy = directory / "corrupt"
    shutil.copytree(path, copy)
    shard = sorted(copy.glob("*.tfrecord-*"))[0]
    records = [bytes(r.numpy()) for r in tf.data.TFRecordDataset(str(shard))]
    key = "steps/observation/image"
    examples = [tf.train.Example.FromString(r) for r in records]
    record = next(
        i for i, e in enumerate(examples) if len(e.features.feature[key].bytes_list.value) > step
    )
    example = examples[record]
    if action:
        del example.features.feature["steps/action"].float_list.value[-1]
    else:
        example.features.feature[key].bytes_list.value[step] = b"\xff\xd8\xff\xe0 not a JPEG"
    records[record] = example.SerializeToString()
    with tf.io.TFRecordWriter(str(shard)) as writer:
        for data in records:
            writer.write(data)
    return str(copy), record


def flat_batches(loader: Any) -> list[dict[str, np.ndarray]]:
    """Each batch of ``loader`` as ``{"field/leaf": array}`` (one level of nesting; ``"field/"``
    for an unnested field), copied."""
    out = []
    for batch in loader:
        flat = {}
        for key, value in batch.items():
            for sub, leaf in value.items() if isinstance(value, dict) else [("", value)]:
                flat[f"{key}/{sub}"] = np.array(leaf)
        out.append(flat)
    return out
