"""Recording episodes in parallel with Beam: each work unit records a range of episodes of
an environment with a policy (through rlds_hub's :class:`~rlds_hub.recorders.Recorder`, into
a scratch dataset), and the shared sink writes them as one dataset. Episode ``i`` is recorded
in an environment seeded ``seed + i``, so the dataset does not depend on how the episodes
were spread over workers. Used by the ``dm_control_expert`` TFDS builder."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam

from rlds_hub.beam import execution
from rlds_hub.beam.jobs import common
from rlds_hub.beam.reading import unit_rows
from rlds_hub.beam.session import WriteSession
from rlds_hub.beam.sink import EncodedEpisode, Sharding
from rlds_hub.beam.sources.base import even_ranges
from rlds_hub.format.features import episode_features
from rlds_hub.format.specs import spec_to_json
from rlds_hub.storage import dataset_files

DEFAULT_EPISODES_PER_UNIT = 5


def env_features(env_name: str) -> dict[str, Any]:
    """The features the recorder writes for ``env_name`` (no step or episode metadata)."""
    from rlds_hub.envs import make_env

    env = make_env(env_name, seed=0)
    return episode_features(
        observation_spec=env.observation_spec(),
        action_spec=env.action_spec(),
        reward_spec=env.reward_spec(),
        discount_spec=env.discount_spec(),
    )


class _RecordUnit(beam.DoFn):
    def __init__(
        self,
        env_name: str,
        policy: str,
        seed: int,
        split: str,
        scratch: str,
        features_json: dict[str, Any],
    ):
        self._env_name, self._policy, self._seed = env_name, policy, seed
        self._split, self._scratch, self._features = split, scratch, features_json

    def process(self, unit: tuple[int, int]) -> Iterator[EncodedEpisode]:
        from rlds_hub.envs import make_env, make_policy
        from rlds_hub.recorders import Recorder
        from rlds_hub.storage.dataset import open_dataset
        from rlds_hub.storage.reader import iter_records

        first, count = unit
        directory = tempfile.mkdtemp(prefix=f"unit-{first}-", dir=self._scratch)
        try:
            for index in range(first, first + count):
                env = make_env(self._env_name, seed=self._seed + index)
                policy = make_policy(self._policy, self._env_name, env, seed=self._seed + index)
                with Recorder(
                    env,
                    directory,
                    split=self._split,
                    env_name=self._env_name,
                    policy_name=self._policy,
                    seed=self._seed + index,
                    save_unfinished_episodes=False,
                    allow_env_change=True,
                ) as rec:
                    timestep = rec.reset()
                    policy.reset()
                    while not timestep.last():
                        timestep = rec.step(policy(timestep))
            dataset = open_dataset(directory)
            if dataset.features_json != self._features:
                raise dataset_files.DatasetError(
                    f"{self._env_name}: the recorder wrote other features than expected"
                )
            records = list(iter_records(dataset, self._split))
            rows = unit_rows(dataset, self._split, records)
            for offset, (record, row) in enumerate(zip(records, rows, strict=True)):
                row = {**row, "episode": first + offset}
                yield EncodedEpisode((0, 0, first + offset), self._split, bytes(record.data), row)
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def record_dataset(
    env_name: str,
    output: str | os.PathLike,
    *,
    policy: str = "expert",
    episodes: int = 50,
    seed: int = 0,
    split: str = "train",
    name: str | None = None,
    episodes_per_unit: int = DEFAULT_EPISODES_PER_UNIT,
    sharding: Sharding | None = None,
    overwrite: bool = False,
    beam_args: Sequence[str] | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Records ``episodes`` episodes of ``env_name`` with ``policy`` into ``output``."""
    from rlds_hub._version import __version__
    from rlds_hub.envs import canonical_env_name, make_env

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    env_name = canonical_env_name(env_name)
    features_json = env_features(env_name)
    env = make_env(env_name, seed=seed)
    specs = {
        "observation": spec_to_json(env.observation_spec()),
        "action": spec_to_json(env.action_spec()),
        "reward": spec_to_json(env.reward_spec()),
        "discount": spec_to_json(env.discount_spec()),
    }
    name = name or dataset_files.dataset_name_from_path(
        __import__("pathlib").Path(os.fspath(output))
    )
    sharding = sharding or Sharding()
    flags = common.default_flags(beam_args)
    units = even_ranges(episodes, episodes_per_unit)
    with WriteSession(output, overwrite=overwrite) as session:
        scratch = os.fspath(session.sources)

        def build(pipeline: Any) -> None:
            _ = (
                pipeline
                | "Units" >> beam.Create(units)
                | "SpreadUnits" >> beam.Reshuffle()
                | "Record"
                >> beam.ParDo(_RecordUnit(env_name, policy, seed, split, scratch, features_json))
                | session.write(name, sharding=sharding, split_order=[split])
            )

        seconds = session.run(flags, build, total=episodes, description="record", quiet=quiet)
        arguments = {
            "env": env_name,
            "policy": policy,
            "episodes": episodes,
            "seed": seed,
            "split": split,
            "name": name,
        }
        metadata = {
            "rlds_hub_version": __version__,
            "created": execution.now(),
            "env_name": env_name,
            "policy": policy,
            "seed": seed,
            "seeds": f"episode i: env seed {seed} + i",
            "specs": specs,
            "image_encoding": "png",
            "layout": "rlds",
            "provenance": execution.provenance("record", arguments, [], flags),
        }
        summary = session.finish(
            name=name,
            features_json=features_json,
            metadata=metadata,
            file_format="tfrecord",
            split_order=[split],
            description=f"{episodes} episodes of {env_name} with the "
            f"{policy} policy, recorded with rlds_hub {__version__}.",
        )
    summary["seconds"] = seconds
    return summary
