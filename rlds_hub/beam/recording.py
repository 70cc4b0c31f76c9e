"""Recording episodes in parallel with Beam: each work unit records a range of episodes of
an environment with a policy (through rlds_hub's :class:`~rlds_hub.recorders.Recorder`, into
a scratch dataset), and the shared sink writes them as one dataset (:class:`RecordEpisodes`,
the job :func:`record_dataset`). Episode ``i`` is recorded
in an environment seeded ``seed + i``, so the dataset does not depend on how the episodes
were spread over workers. Used by the ``dm_control_expert`` TFDS builder."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apache_beam as beam

from rlds_hub.beam import execution
from rlds_hub.beam.job_values import Output, Run
from rlds_hub.beam.reading import unit_rows
from rlds_hub.beam.session import WriteSession
from rlds_hub.beam.sink import EncodedEpisode
from rlds_hub.beam.sources.base import even_ranges
from rlds_hub.format.features import episode_features
from rlds_hub.format.metadata import DatasetMetadata, env_specs_json
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
        scratch: str | None,
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


class RecordEpisodes(beam.PTransform):
    """Records ``episodes`` episodes of ``env_name`` with ``policy`` as ``EncodedEpisode`` s
    of one split, keyed ``(0, 0, episode)``; episode ``i`` in an environment seeded
    ``seed + i``, whichever worker records it::

        record = RecordEpisodes("point_mass", episodes=20)
        pipeline | record | session.write(name)  # then finish with record.features_json

    Args:
      env_name: an :func:`rlds_hub.envs.make_env` name.
      policy: an :func:`rlds_hub.envs.make_policy` name.
      episodes: how many episodes.
      seed: the first episode's environment and policy seed.
      split: the split the episodes go to.
      episodes_per_unit: episodes a worker records at a time.
      scratch_dir: where workers record before the episodes are read back (a directory every
        worker can write; default: each worker's temporary directory).
    """

    def __init__(
        self,
        env_name: str,
        *,
        policy: str = "expert",
        episodes: int = 50,
        seed: int = 0,
        split: str = "train",
        episodes_per_unit: int = DEFAULT_EPISODES_PER_UNIT,
        scratch_dir: str | os.PathLike | None = None,
    ):
        from rlds_hub.envs import canonical_env_name

        super().__init__()
        if episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {episodes}")
        if episodes_per_unit < 1:
            raise ValueError(f"episodes_per_unit must be >= 1, got {episodes_per_unit}")
        dataset_files.check_split_name(split)
        self.env_name = canonical_env_name(env_name)
        self.policy, self.episodes, self.seed, self.split = policy, episodes, seed, split
        self.features_json = env_features(self.env_name)
        self._units = even_ranges(episodes, episodes_per_unit)
        self._scratch = os.fspath(scratch_dir) if scratch_dir is not None else None

    def expand(self, pbegin: Any) -> Any:
        record = _RecordUnit(
            self.env_name,
            self.policy,
            self.seed,
            self.split,
            self._scratch,
            self.features_json,
        )
        return (
            pbegin
            | "Units" >> beam.Create(self._units)
            | "SpreadUnits" >> beam.Reshuffle()
            | "Record" >> beam.ParDo(record)
        )


def record_dataset(
    env_name: str,
    output: Output | str | os.PathLike,
    *,
    policy: str = "expert",
    episodes: int = 50,
    seed: int = 0,
    split: str = "train",
    episodes_per_unit: int = DEFAULT_EPISODES_PER_UNIT,
    run: Run | None = None,
) -> dict[str, Any]:
    """Records ``episodes`` episodes of ``env_name`` with ``policy`` into ``output`` (file
    format default ``tfrecord``, name default from its path)."""
    from rlds_hub._version import __version__
    from rlds_hub.envs import make_env
    from rlds_hub.recorders.recorder import control_rate

    output, run = Output.of(output), Run.of(run)
    output.refuse("record", "image_encoding")  # the recorder stores images as PNG
    file_format = output.file_format or "tfrecord"
    name = output.name or dataset_files.dataset_name_from_path(Path(os.fspath(output.path)))
    flags = run.flags()
    with WriteSession(output.path, overwrite=output.overwrite) as session:
        recording = RecordEpisodes(
            env_name,
            policy=policy,
            episodes=episodes,
            seed=seed,
            split=split,
            episodes_per_unit=episodes_per_unit,
            scratch_dir=session.sources,
        )
        env_name = recording.env_name
        env = make_env(env_name, seed=seed)
        specs = env_specs_json(
            env.observation_spec(), env.action_spec(), env.reward_spec(), env.discount_spec()
        )
        fps = control_rate(env)  # the control rate, which exports to LeRobot need

        def build(pipeline: Any) -> None:
            _ = (
                pipeline
                | "RecordEpisodes" >> recording
                | session.write(
                    name, file_format=file_format, sharding=output.sharding, split_order=[split]
                )
            )

        seconds = session.run(flags, build, total=episodes, description="record", quiet=run.quiet)
        arguments = {
            "env": env_name,
            "policy": policy,
            "episodes": episodes,
            "seed": seed,
            "split": split,
            "name": name,
        }
        metadata = DatasetMetadata(
            rlds_hub_version=__version__,
            created=execution.now(),
            env_name=env_name,
            policy=policy,
            seed=seed,
            seeds=f"episode i: env seed {seed} + i",
            specs=specs,
            image_encoding="png",
            layout="rlds",
            provenance=execution.provenance("record", arguments, [], flags),
            extra={} if fps is None else {"fps": fps},
        )
        summary = session.finish(
            name=name,
            features_json=recording.features_json,
            metadata=metadata.to_json(),
            file_format=file_format,
            split_order=[split],
            description=f"{episodes} episodes of {env_name} with the "
            f"{policy} policy, recorded with rlds_hub {__version__}.",
        )
    summary["seconds"] = seconds
    return summary
