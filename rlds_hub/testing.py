"""Test utilities: an environment that emits random values of any spec and logs them.

``RandomSpecEnv`` returns random *bit patterns* (NaN payloads, infinities, signed zeros,
subnormals, extreme integers, non-ASCII strings), so a recording compared bit for bit with
its log proves the storage lossless for every dtype.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import dm_env
import numpy as np
from dm_env import specs

_ALPHABET = np.array(list("abcxyz019 _-éßж漢😀\t"), dtype=object)


def random_value(spec: Any, rng: np.random.Generator) -> Any:
    """A random value matching ``spec`` exactly (random bits for numbers)."""
    if isinstance(spec, specs.StringArray):

        def one() -> Any:
            text = "".join(rng.choice(_ALPHABET, size=int(rng.integers(0, 6))))
            return text.encode() if spec.string_type is bytes else text

        if spec.shape == ():
            return one()
        out = np.empty(spec.shape, dtype=object)
        for index in np.ndindex(spec.shape):
            out[index] = one()
        return out
    if isinstance(spec, specs.Array):
        dtype = np.dtype(spec.dtype)
        if dtype == np.bool_:
            return rng.integers(0, 2, size=spec.shape).astype(np.bool_)
        size = int(np.prod(spec.shape, dtype=np.int64)) * dtype.itemsize
        raw = rng.integers(0, 256, size=size, dtype=np.uint8)
        return raw.view(dtype).reshape(spec.shape).copy()
    if isinstance(spec, Mapping):
        return {k: random_value(v, rng) for k, v in spec.items()}
    if isinstance(spec, (tuple, list)):
        return tuple(random_value(v, rng) for v in spec)
    raise TypeError(f"unsupported spec {spec!r}")


class RandomSpecEnv(dm_env.Environment):
    """A dm_env whose observations, rewards and discounts are random values of its specs.

    Episode ``i`` has ``episode_lengths[i % len]`` transitions and ends in a termination
    (discount 0) when ``terminate[i % len]`` is true, else in a truncation (non-zero
    discount). Every timestep returned is logged (deep-copied) in ``episodes``.
    """

    def __init__(
        self,
        observation_spec: Any,
        action_spec: Any = None,
        *,
        reward_spec: Any = None,
        discount_spec: Any = None,
        episode_lengths: Sequence[int] = (5,),
        terminate: Sequence[bool] = (False,),
        seed: int = 0,
    ):
        self._observation_spec = observation_spec
        self._action_spec = action_spec or specs.BoundedArray((2,), np.float32, -1.0, 1.0)
        self._reward_spec = reward_spec or specs.Array((), np.float64, name="reward")
        self._discount_spec = discount_spec or specs.BoundedArray(
            (), np.float64, 0.0, 1.0, name="discount"
        )
        self._lengths = list(episode_lengths)
        self._terminate = list(terminate)
        self._rng = np.random.default_rng(seed)
        self._episode = -1
        self._t = 0
        self.episodes: list[list[dm_env.TimeStep]] = []
        self.actions: list[list[Any]] = []

    def reset(self) -> dm_env.TimeStep:
        self._episode += 1
        self._t = 0
        timestep = dm_env.restart(random_value(self._observation_spec, self._rng))
        self.episodes.append([copy.deepcopy(timestep)])
        self.actions.append([])
        return timestep

    def step(self, action: Any) -> dm_env.TimeStep:
        self._t += 1
        self.actions[-1].append(copy.deepcopy(action))
        observation = random_value(self._observation_spec, self._rng)
        reward = random_value(self._reward_spec, self._rng)
        length = self._lengths[self._episode % len(self._lengths)]
        if self._t >= length:
            step_type = dm_env.StepType.LAST
            if self._terminate[self._episode % len(self._terminate)]:
                discount = _zeros_like_spec(self._discount_spec)
            else:
                discount = self._nonzero_discount()
        else:
            discount = random_value(self._discount_spec, self._rng)
            step_type = dm_env.StepType.MID
        timestep = dm_env.TimeStep(step_type, reward, discount, observation)
        self.episodes[-1].append(copy.deepcopy(timestep))
        return timestep

    def _nonzero_discount(self) -> Any:
        while True:
            value = random_value(self._discount_spec, self._rng)
            if np.all(np.asarray(value) != 0):
                return value

    def observation_spec(self) -> Any:
        return self._observation_spec

    def action_spec(self) -> Any:
        return self._action_spec

    def reward_spec(self) -> Any:
        return self._reward_spec

    def discount_spec(self) -> Any:
        return self._discount_spec


def _zeros_like_spec(spec: Any) -> Any:
    return np.zeros(spec.shape, dtype=spec.dtype)


def read_episodes_with_tfds(path: str, split: str = "train") -> list[list[dict[str, Any]]]:
    """Every episode of ``split`` as a list of numpy step dicts, read with plain TFDS only."""
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directory(path)
    episodes = []
    for episode in builder.as_dataset(split=split, shuffle_files=False):
        steps = list(episode["steps"].as_numpy_iterator())
        metadata = {k: _numpy(v) for k, v in episode.items() if k != "steps"}
        episodes.append({"steps": steps, **metadata})
    return episodes


def _numpy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _numpy(v) for k, v in value.items()}
    return value.numpy()


def assert_bit_equal(expected: Any, actual: Any, path: str = "") -> None:
    """Asserts ``actual`` (as read back) holds exactly the bits of ``expected`` (as produced).

    Tuples are compared against the ``{"0": ..., "1": ...}`` dicts TFDS returns for them;
    ``str`` values against their UTF-8 bytes.
    """
    if isinstance(expected, Mapping):
        assert isinstance(actual, Mapping), f"{path}: expected a dict, got {type(actual)}"
        assert set(map(str, expected)) == set(actual), f"{path}: keys {set(actual)}"
        for key, value in expected.items():
            assert_bit_equal(value, actual[str(key)], f"{path}/{key}")
        return
    if isinstance(expected, tuple):
        assert isinstance(actual, Mapping), f"{path}: expected a tuple-dict, got {type(actual)}"
        for i, value in enumerate(expected):
            assert_bit_equal(value, actual[str(i)], f"{path}/{i}")
        return
    if isinstance(expected, (str, bytes)) or (
        isinstance(expected, np.ndarray) and expected.dtype == object
    ):
        flat_expected = np.asarray(expected, dtype=object).ravel()
        flat_actual = np.asarray(actual, dtype=object).ravel()
        assert flat_expected.shape == flat_actual.shape, f"{path}: shape"
        for e, a in zip(flat_expected, flat_actual, strict=True):
            e_bytes = e.encode() if isinstance(e, str) else bytes(e)
            assert e_bytes == a, f"{path}: {e!r} != {a!r}"
        return
    expected_array = np.asarray(expected)
    actual_array = np.asarray(actual)
    assert expected_array.dtype == actual_array.dtype, (
        f"{path}: dtype {actual_array.dtype} != {expected_array.dtype}"
    )
    assert expected_array.shape == actual_array.shape, (
        f"{path}: shape {actual_array.shape} != {expected_array.shape}"
    )
    assert expected_array.tobytes() == actual_array.tobytes(), (
        f"{path}: bits differ: {actual_array!r} != {expected_array!r}"
    )


def stack_steps(steps: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A list of (nested) step dicts as one dict of arrays stacked over steps."""
    first = steps[0]
    out: dict[str, Any] = {}
    for key, value in first.items():
        if isinstance(value, Mapping):
            out[key] = stack_steps([s[key] for s in steps])
        elif isinstance(value, bytes) or np.asarray(value).dtype.kind in "OSU":
            rows = [np.asarray(s[key], dtype=object) for s in steps]
            out[key] = (
                np.stack(rows)
                if rows[0].ndim
                else np.array([s[key] for s in steps] + [None], dtype=object)[:-1]
            )
        else:
            out[key] = np.stack([np.asarray(s[key]) for s in steps])
    return out


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
    episode_list = list(episodes)

    class OxeLike(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=features)

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            yield from enumerate(episode_list)

    builder = OxeLike(data_dir=directory, config=None)
    builder.__class__.name = name
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(max_examples_per_split=None, num_shards=shards)
    )
    return str(builder.data_dir)
