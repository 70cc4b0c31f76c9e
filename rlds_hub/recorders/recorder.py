"""The Recorder: a dm_env wrapper that records lossless, crash-safe RLDS episodes."""

from __future__ import annotations

import datetime
import math
import os
import platform
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import dm_env

from rlds_hub._version import __version__
from rlds_hub.envs.wrapper import EnvironmentWrapper
from rlds_hub.format.features import ImageEncoding
from rlds_hub.format.metadata import (
    ENV_SPEC_KEYS,
    DatasetMetadata,
    MetadataError,
    Session,
    env_specs_json,
)
from rlds_hub.format.specs import SpecError, spec_differences
from rlds_hub.recorders.options import FileFormat, Provenance, WriterOptions, fold
from rlds_hub.storage.dataset_files import DatasetError
from rlds_hub.storage.writer import (
    DEFAULT_MAX_BYTES_PER_SHARD,
    DEFAULT_MAX_EPISODES_PER_SHARD,
    DatasetWriter,
    Durability,
    SpecMismatchError,
)

if TYPE_CHECKING:
    from rlds_hub.recorders.backend import RLDSBackend

_LAST = dm_env.StepType.LAST


class RecordingError(RuntimeError):
    """The recorder was used out of order (e.g. a step after the episode ended)."""


class Recorder(EnvironmentWrapper):
    """Wraps a ``dm_env.Environment`` and records every episode into an RLDS dataset.

    Use it exactly like the environment, then ``close()`` it (or use it as a context
    manager). Each episode is published to disk when its last timestep is returned: a
    process killed at any moment loses at most the episode in progress, and the dataset
    always loads with plain ``tfds.builder_from_directory(data_dir)``.

    Like envlogger's ``EnvLogger(env, step_fn, episode_fn, metadata, backend)``, the options
    are two values: ``options`` (:class:`~rlds_hub.recorders.WriterOptions`: how episodes are
    written, which backend) and ``provenance`` (:class:`~rlds_hub.recorders.Provenance`:
    environment, policy, seed, your metadata). Every option is also a keyword of its own
    (below); give each option once, as a keyword or in its value.

    Args:
      env: the environment to record.
      data_dir: the dataset directory (created; appended to if it holds a dataset).
      name: TFDS dataset name (default: from the directory name).
      split: the split to record into.
      max_episodes_per_shard / max_bytes_per_shard: shard size limits (whichever first).
      file_format: "tfrecord" (default), "array_record" (TFDS's random-access format; read
        it with ``builder.as_data_source``), or "riegeli" (envlogger's own format, written
        by envlogger's Riegeli backend and read with ``envlogger.Reader``; it refuses the
        options it cannot honour: ``name``, ``split``, ``max_bytes_per_shard``,
        ``durability``, ``image_encoding``, the metadata specs,
        ``save_unfinished_episodes=False`` and ``allow_env_change``).
      step_fn: ``step_fn(timestep, action, env) -> dict`` called after every step; its
        values are stored as step metadata aligned with the action (zero-filled on the last
        step). Its result at ``reset`` (action ``None``) is used only to learn its spec.
      episode_fn: ``episode_fn(timestep, action, env) -> dict`` called on every step; its
        last value is stored as episode metadata.
      metadata: JSON-serialisable dataset-level metadata (stored in ``metadata.json``).
      env_name / policy_name / seed: provenance stored with the dataset metadata.
      durability: "process" (the default: each completed episode survives the process dying
        at any moment) or "os" (also fsync'd before ``step`` returns: survives power loss).
      image_encoding: "png" (the default: lossless and compressed) or "raw" for uint8 images.
      step_metadata_spec / episode_metadata_spec: explicit dm_env specs for the metadata
        (default: inferred from the first value returned).
      save_unfinished_episodes: when ``reset`` or ``close`` interrupts an episode that has at
        least one transition, store it as truncated (default) instead of dropping it.
      allow_env_change: append to a dataset recorded from another environment (with the
        same specs); refused by default, since mixing environments is usually a mistake.
        Every session's environment, policy and seed are kept in ``metadata.json`` and each
        episode's row in ``episodes.jsonl`` names its session.
      options / provenance: the options above as values (keywords left at their defaults).
    """

    def __init__(
        self,
        env: dm_env.Environment,
        data_dir: str | os.PathLike,
        *,
        name: str | None = None,
        split: str = "train",
        max_episodes_per_shard: int | None = DEFAULT_MAX_EPISODES_PER_SHARD,
        max_bytes_per_shard: int | None = DEFAULT_MAX_BYTES_PER_SHARD,
        file_format: FileFormat = "tfrecord",
        step_fn: Callable[[dm_env.TimeStep, Any, dm_env.Environment], Any] | None = None,
        episode_fn: Callable[[dm_env.TimeStep, Any, dm_env.Environment], Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        env_name: str | None = None,
        policy_name: str | None = None,
        seed: int | None = None,
        durability: Durability | None = None,
        image_encoding: ImageEncoding | None = None,
        step_metadata_spec: Mapping[str, Any] | None = None,
        episode_metadata_spec: Mapping[str, Any] | None = None,
        save_unfinished_episodes: bool = True,
        allow_env_change: bool = False,
        options: WriterOptions | None = None,
        provenance: Provenance | None = None,
    ):
        import envlogger

        if not isinstance(env, dm_env.Environment):
            raise TypeError(
                f"Recorder wraps a dm_env.Environment, got {type(env).__name__}; wrap a "
                "gymnasium.Env with rlds_hub.recorders.GymnasiumEnv first"
            )
        keywords = dict(
            name=name,
            split=split,
            max_episodes_per_shard=max_episodes_per_shard,
            max_bytes_per_shard=max_bytes_per_shard,
            file_format=file_format,
            durability=durability,
            image_encoding=image_encoding,
            step_metadata_spec=step_metadata_spec,
            episode_metadata_spec=episode_metadata_spec,
            save_unfinished_episodes=save_unfinished_episodes,
            allow_env_change=allow_env_change,
            env_name=env_name,
            policy_name=policy_name,
            seed=seed,
            metadata=metadata,
        )
        options, provenance = fold(options, provenance, keywords)
        super().__init__(env)
        self.options, self.provenance = options, provenance
        self._save_unfinished = options.save_unfinished_episodes
        self._episode_active = False
        self._closed = False
        env_specs = {
            "observation": env.observation_spec(),
            "action": env.action_spec(),
            "reward": env.reward_spec(),
            "discount": env.discount_spec(),
        }
        self.env_name = provenance.env_name or type(env).__name__
        self.file_format = options.file_format
        self._dataset_metadata = _dataset_metadata(
            env_specs_json(*env_specs.values()),
            self.env_name,
            options,
            provenance,
            control_rate(env),
        )
        # envlogger's Riegeli writer counts nothing for us: completed episodes and their
        # RLDS steps (N + 1 per episode of N transitions), for this session
        self._riegeli_counts = [0, 0]  # episodes, steps
        self._riegeli_episode_steps = 0
        if options.backend == "riegeli":  # envlogger's own writer
            from rlds_hub.recorders import riegeli

            self._backend = None
            self._log_dir = os.path.abspath(os.path.expanduser(os.fspath(data_dir)))
            self._logger = riegeli.open_logger(
                env,
                data_dir,
                options,
                riegeli.log_metadata(self._dataset_metadata),
                step_fn,
                episode_fn,
            )
        else:  # rlds_hub's RLDS writer, as envlogger's backend
            self._backend = self._open_rlds_backend(data_dir, env_specs, step_fn, episode_fn)
            self._logger = envlogger.EnvLogger(
                env, step_fn=step_fn, episode_fn=episode_fn, backend=self._backend
            )
            self._put_action = self._backend.buffer.put_action

    def _open_rlds_backend(
        self,
        data_dir: str | os.PathLike,
        env_specs: Mapping[str, Any],
        step_fn: Callable[..., Any] | None,
        episode_fn: Callable[..., Any] | None,
    ) -> RLDSBackend:
        """The RLDS backend over a dataset writer, its features checked against the dataset
        being appended to as soon as they are known."""
        from rlds_hub.recorders.backend import RLDSBackend

        options = self.options
        writer = DatasetWriter(
            data_dir,
            name=options.name,
            split=options.split,
            file_format=options.file_format,
            max_episodes_per_shard=options.max_episodes_per_shard,
            max_bytes_per_shard=options.max_bytes_per_shard,
            durability=options.durability or "process",
            description=f"RLDS episodes of {self.env_name} recorded with rlds_hub {__version__}.",
        )
        try:
            self._check_env_specs(writer)
            backend = RLDSBackend(
                writer,
                observation_spec=env_specs["observation"],
                action_spec=env_specs["action"],
                reward_spec=env_specs["reward"],
                discount_spec=env_specs["discount"],
                step_metadata_spec=options.step_metadata_spec,
                episode_metadata_spec=options.episode_metadata_spec,
                infer_step_metadata=step_fn is not None,
                infer_episode_metadata=episode_fn is not None,
                image_encoding=self._dataset_metadata.image_encoding,
            )
            backend.set_dataset_metadata(self._dataset_metadata, self._describe_mismatch)
            if (step_fn is None or options.step_metadata_spec is not None) and (
                episode_fn is None or options.episode_metadata_spec is not None
            ):
                backend.open_dataset()  # features known now: check them against disk
        except BaseException:
            writer.close()
            raise
        return backend

    # ---- dm_env.Environment ----------------------------------------------------------------

    def reset(self) -> dm_env.TimeStep:
        self._check_open()
        if self._episode_active:
            self._end_unfinished_episode()
        timestep = self._logger.reset()
        self._episode_active = True
        self._riegeli_episode_steps = 1
        return timestep

    def step(self, action: Any) -> dm_env.TimeStep:
        if not self._episode_active:
            self._check_open()
            raise RecordingError(
                "no episode in progress: the last episode ended (or reset() was never "
                "called); call reset() to start a new episode"
            )
        backend = self._backend
        if backend is not None:
            self._put_action(action)
        try:
            timestep = self._logger.step(action)
        except SpecError:
            # The environment stepped but returned data that violates its specs: the
            # episode cannot be stored faithfully. Completed episodes are already on disk.
            self.discard_episode()
            raise
        self._riegeli_episode_steps += 1
        if timestep.step_type is _LAST:
            self._episode_active = False
            if backend is not None:
                backend.finish_episode(terminal=_is_termination(timestep.discount))
            else:
                self._riegeli_counts[0] += 1
                self._riegeli_counts[1] += self._riegeli_episode_steps
        return timestep

    def close(self) -> None:
        """Stores or drops an unfinished episode, seals shards, syncs, closes the env."""
        if self._closed:
            return
        try:
            if self._episode_active:
                self._end_unfinished_episode()
        finally:
            self._closed = True
            self._logger.close()

    # ---- recording control -----------------------------------------------------------------

    def discard_episode(self) -> None:
        """Drops the episode in progress (e.g. a failed human demonstration).

        Completed episodes are unaffected; call ``reset()`` to start the next one.
        """
        if self._backend is None:
            raise RecordingError("discard_episode() is not supported with file_format='riegeli'")
        self._backend.discard_episode()
        self._episode_active = False

    @property
    def episodes_recorded(self) -> int:
        """Episodes published by this recorder (this session)."""
        return self._backend.episodes_written if self._backend else self._riegeli_counts[0]

    @property
    def steps_recorded(self) -> int:
        """RLDS steps published by this recorder (N + 1 per episode of N transitions)."""
        return self._backend.steps_written if self._backend else self._riegeli_counts[1]

    @property
    def num_episodes(self) -> int:
        """Episodes of the recorded split on disk, including earlier sessions (a Riegeli log
        has no earlier sessions: this recorder's completed episodes)."""
        return self._backend.writer.num_episodes if self._backend else self._riegeli_counts[0]

    @property
    def data_dir(self) -> str:
        """The dataset directory (the log directory for a Riegeli recording)."""
        return os.fspath(self._backend.writer.path if self._backend else self._log_dir)

    # ---- helpers -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RecordingError("the recorder is closed; create a new Recorder to record more")

    def _end_unfinished_episode(self) -> None:
        self._episode_active = False
        if self._backend is None:
            return
        if self._save_unfinished and self._backend.buffer.num_transitions > 0:
            self._backend.finish_episode(terminal=False)
        else:
            self._backend.discard_episode()

    def _check_env_specs(self, writer: DatasetWriter) -> None:
        existing = _existing_metadata(writer)
        if existing is None or existing.specs is None:
            return
        envs = existing.recorded_envs
        if envs and self.env_name not in envs and not self.options.allow_env_change:
            raise DatasetError(
                f"cannot append to {writer.path}: it holds episodes of {', '.join(envs)}, and "
                f"this recorder records {self.env_name}. Record into another directory, or "
                "pass allow_env_change=True (rlds-hub record --allow-env-change) to mix "
                "environments in one dataset (each episode stays tied to its session's env)."
            )
        differences = self._describe_mismatch(existing)
        if differences:
            raise SpecMismatchError(
                f"cannot append to {writer.path}: the environment's specs do not match the "
                "dataset's:\n  " + "\n  ".join(differences) + "\nRecord into a new directory, "
                "or use an environment with the same specs."
            )

    def _describe_mismatch(self, existing: DatasetMetadata) -> list[str]:
        stored = existing.specs or {}
        ours = self._dataset_metadata.specs or {}
        differences = []
        for key in ENV_SPEC_KEYS:
            if key in stored:
                differences += spec_differences(stored[key], ours[key], key)
        fps, stored_fps = self._dataset_metadata.extra.get("fps"), existing.extra.get("fps")
        if fps is not None and stored_fps is not None and fps != stored_fps:
            differences.append(
                f"fps: the dataset was recorded at {stored_fps} steps per second, this "
                f"environment steps at {fps}"
            )
        encoding = self._dataset_metadata.image_encoding
        if existing.image_encoding and existing.image_encoding != encoding:
            differences.append(
                f"image_encoding: the dataset uses {existing.image_encoding!r}, this recorder "
                f"{encoding!r}"
            )
        return differences


def control_rate(env: Any) -> float | None:
    """The environment's control rate in steps per second, when it says (else None):
    dm_control's ``1 / env.control_timestep()``; a Gymnasium env's ``1 / env.unwrapped.dt``
    (MuJoCo's frame skip x timestep, Pendulum's 0.05 s), else its
    ``metadata["render_fps"]`` (CartPole: 50). Whole rates come back as ``int``."""
    rate = None
    timestep = getattr(env, "control_timestep", None)
    gym_env = getattr(env, "gym_env", None)
    if callable(timestep):
        rate = _inverse(timestep())
    elif gym_env is not None:
        rate = _inverse(getattr(gym_env.unwrapped, "dt", None))
        if rate is None:
            rate = _positive((getattr(gym_env, "metadata", None) or {}).get("render_fps"))
    if rate is None:
        return None
    rounded = round(rate, 6)
    return int(rounded) if rounded == int(rounded) else rounded


def _inverse(period: Any) -> float | None:
    period = _positive(period)
    return None if period is None else 1.0 / period


def _positive(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _dataset_metadata(
    specs: dict[str, Any],
    env_name: str,
    options: WriterOptions,
    provenance: Provenance,
    fps: float | None = None,
) -> DatasetMetadata:
    """The ``metadata.json`` of a new dataset, holding this recording session (``fps``:
    the environment's control rate, stored as the top-level ``fps`` when known)."""
    started = _now()
    unset = frozenset(
        key
        for key, value in (("policy", provenance.policy_name), ("seed", provenance.seed))
        if value is None
    )  # written as null, as they always were
    session = Session(
        started=started,
        split=options.split,
        env_name=env_name,
        policy=provenance.policy_name,
        seed=provenance.seed,
        rlds_hub_version=__version__,
        host=platform.node(),
        nulls=unset,
    )
    return DatasetMetadata(
        rlds_hub_version=__version__,
        created=started,
        env_name=env_name,
        policy=provenance.policy_name,
        seed=provenance.seed,
        specs=specs,
        image_encoding=options.image_encoding or "png",
        layout="rlds",
        user=dict(provenance.metadata or {}),
        sessions=(session,),
        extra={} if fps is None else {"fps": fps},
        nulls=unset,
    )


def _existing_metadata(writer: DatasetWriter) -> DatasetMetadata | None:
    """The metadata of the dataset being appended to (None for a new dataset)."""
    if not writer.existing_metadata:
        return None
    try:
        return DatasetMetadata.from_json(writer.existing_metadata)
    except MetadataError as e:
        raise DatasetError(f"cannot append to {writer.path}: in its metadata.json, {e}") from None


def _is_termination(discount: Any) -> bool:
    """dm_env: a LAST timestep with discount 0 is a termination; otherwise a truncation."""
    import numpy as np
    import tree

    return all(np.all(np.asarray(d) == 0) for d in tree.flatten(discount))


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
