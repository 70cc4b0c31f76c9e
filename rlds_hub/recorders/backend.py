"""rlds_hub's envlogger backend: buffers steps, then encodes and publishes whole episodes."""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from envlogger import step_data
from envlogger.backends import backend_writer

from rlds_hub import rlds_types as rlds
from rlds_hub.format.encode import ExampleEncoder
from rlds_hub.format.features import ImageEncoding, episode_features
from rlds_hub.format.metadata import DatasetMetadata
from rlds_hub.format.specs import (
    SpecError,
    bounds_of,
    infer_spec,
    spec_differences,
    spec_to_json,
)
from rlds_hub.recorders.episode_buffer import EpisodeBuffer, conform
from rlds_hub.storage.writer import DatasetWriter


class OutOfBoundsWarning(UserWarning):
    """An episode held actions outside the action spec's bounds (recorded as given)."""


class RLDSBackend(backend_writer.BackendWriter):
    """An ``envlogger`` backend writing RLDS episodes into a TFDS dataset directory.

    ``EnvLogger`` calls ``record_step`` (on reset and every step) and
    ``set_episode_metadata``; the :class:`~rlds_hub.recorders.Recorder` around it calls
    :meth:`put_action` before each step and :meth:`finish_episode` after the last one, since
    envlogger reports the final episode metadata only after the last ``record_step``.
    """

    def __init__(
        self,
        writer: DatasetWriter,
        *,
        observation_spec: Any,
        action_spec: Any,
        reward_spec: Any,
        discount_spec: Any,
        step_metadata_spec: Mapping[str, Any] | None = None,
        episode_metadata_spec: Mapping[str, Any] | None = None,
        infer_step_metadata: bool = False,
        infer_episode_metadata: bool = False,
        image_encoding: ImageEncoding = "png",
        metadata: dict[str, Any] | None = None,
    ):
        super().__init__(metadata=metadata)
        self._writer = writer
        self._specs = dict(
            observation_spec=observation_spec,
            action_spec=action_spec,
            reward_spec=reward_spec,
            discount_spec=discount_spec,
        )
        self.buffer = EpisodeBuffer(**self._specs, step_metadata_spec=step_metadata_spec)
        self._episode_metadata_spec = (
            dict(episode_metadata_spec) if episode_metadata_spec is not None else None
        )
        self._infer_step_metadata = infer_step_metadata and step_metadata_spec is None
        self._infer_episode_metadata = infer_episode_metadata and episode_metadata_spec is None
        self._image_encoding = image_encoding
        self._encoder: ExampleEncoder | None = None
        self._episode_metadata: Any = None
        self._reward_is_scalar = _is_scalar_number(reward_spec)
        self._action_bounds = [
            (f"{rlds.STEPS}/{rlds.ACTION}" + (f"/{path}" if path else ""), path, low, high)
            for path, low, high in bounds_of(spec_to_json(action_spec))
        ]
        self._session = 0
        self._episode_started_at = 0.0
        self.episodes_written = 0
        self.steps_written = 0
        self._closed = False
        self._dataset_metadata = DatasetMetadata(specs={})
        self._describe_env_mismatch: Callable[[DatasetMetadata], list[str]] = lambda existing: []

    # ---- envlogger's BackendWriter interface ---------------------------------------------

    def record_step(self, data: step_data.StepData, is_new_episode: bool) -> None:
        # Overrides BackendWriter.record_step (one call less per step); schedulers, which
        # would drop steps, are not supported: an RLDS episode needs every step.
        if not is_new_episode and not self._infer_step_metadata:
            timestep, _, custom_data = data  # tuple unpacking beats four attribute lookups
            _, reward, discount, observation = timestep
            self.buffer.add_step(reward, discount, observation, custom_data)
        else:
            self._record_step(data, is_new_episode)

    def _record_step(self, data: step_data.StepData, is_new_episode: bool) -> None:
        timestep = data.timestep
        if is_new_episode:
            self._episode_metadata = None
            self._episode_started_at = time.time()
            self.buffer.start(timestep.observation)
            if self._infer_step_metadata and data.custom_data is not None:
                try:
                    self._declare_step_metadata(data.custom_data)
                except SpecError as e:
                    raise SpecError(
                        f"{e} (step_fn is also called at reset, with action None: return None "
                        "there, or pass step_metadata_spec)"
                    ) from None
            return
        custom = data.custom_data
        if self._infer_step_metadata:  # the first step: its value (maybe None) fixes the spec
            self._declare_step_metadata(custom if custom is not None else {})
        self.buffer.add_step(timestep.reward, timestep.discount, timestep.observation, custom)

    def set_episode_metadata(self, data: Any) -> None:
        self._episode_metadata = data
        if self._infer_episode_metadata and data is not None:
            if not isinstance(data, Mapping):
                raise SpecError(f"episode_fn must return a dict, got {type(data).__name__}")
            self._episode_metadata_spec = infer_spec(dict(data), "episode_metadata")
            self._infer_episode_metadata = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._encoder is not None:
            self._encoder.close()
        self._writer.close()

    # ---- driven by the Recorder ----------------------------------------------------------

    def finish_episode(self, terminal: bool) -> None:
        """Encodes the buffered episode and publishes it (durable when this returns)."""
        if self._encoder is None:
            self.open_dataset()
        steps = self.buffer.finish(terminal)
        values = dict(steps)
        episode_row: dict[str, Any] = {}
        if self._episode_metadata_spec:
            metadata = self._episode_metadata
            if not isinstance(metadata, Mapping):
                raise SpecError(
                    f"episode_fn returned {type(metadata).__name__} for the episode that just "
                    "ended; it must return a dict on every episode"
                )
            for key, spec in self._episode_metadata_spec.items():
                if key not in metadata:
                    raise SpecError(f"episode_fn's result has no key {key!r}")
                leaves = conform(key, spec, metadata[key])
                values.update(leaves)
                episode_row.update({k: v for k, v in leaves.items() if np.ndim(v) == 0})
        record = self._encoder.encode_pieces(values)
        num_steps = len(steps[f"{rlds.STEPS}/{rlds.IS_FIRST}"][0])
        self._check_bounds(steps)
        row = {
            "num_steps": num_steps,
            "terminated": bool(terminal),
            "recorded_at": round(self._episode_started_at, 3),
            "session": self._session,
        }
        if self._reward_is_scalar:
            blocks = steps[f"{rlds.STEPS}/{rlds.REWARD}"]
            # The last reward is zero-filled; NaN and inf returns are kept as numbers.
            row["return"] = float(sum(np.sum(b, dtype=np.float64) for b in blocks))
        if episode_row:
            row["metadata"] = episode_row
        self._writer.append(record, row)
        self.episodes_written += 1
        self.steps_written += num_steps

    def discard_episode(self) -> None:
        self.buffer.discard()

    def _check_bounds(self, steps: Mapping[str, Any]) -> None:
        """Warns when the episode's actions leave the action spec's bounds (one vectorised
        comparison per action leaf, at the end of the episode)."""
        for key, path, low, high in self._action_bounds:
            blocks = steps.get(key)
            if not blocks:
                continue
            column = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
            column = column[:-1]  # the last step's action is zero-filled
            if not column.size or column.dtype.kind not in "biuf":
                continue
            with np.errstate(invalid="ignore", over="ignore"):
                values = column.astype(np.float64, copy=False)
                outside = (values < low) | (values > high)
            if outside.any():
                flat = outside.reshape(len(values), -1).any(axis=1)
                step = int(np.argmax(flat))
                warnings.warn(
                    f"episode {self._writer.num_episodes} of {self._writer.path.name}: "
                    f"{int(flat.sum())} action(s) outside the action spec's bounds "
                    f"({path or 'action'} in [{_short(low)}, {_short(high)}]); first at step "
                    f"{step}: {values[step].tolist()}. Recorded as given.",
                    OutOfBoundsWarning,
                    stacklevel=4,
                )

    @property
    def writer(self) -> DatasetWriter:
        return self._writer

    def set_dataset_metadata(
        self,
        metadata: DatasetMetadata,
        describe_env_mismatch: Callable[[DatasetMetadata], list[str]],
    ) -> None:
        """Dataset-level metadata for a new dataset, and how to explain a spec mismatch."""
        self._dataset_metadata = metadata
        self._describe_env_mismatch = describe_env_mismatch

    def open_dataset(self) -> None:
        """Fixes the features (once metadata specs are known) and checks them against disk."""
        metadata_specs = {
            "step_metadata": self.buffer.step_metadata_spec,
            "episode_metadata": self._episode_metadata_spec,
        }
        specs_json = {k: spec_to_json(v) for k, v in metadata_specs.items() if v}
        self._dataset_metadata = dataclasses.replace(
            self._dataset_metadata, specs={**(self._dataset_metadata.specs or {}), **specs_json}
        )

        def describe(existing_json: Mapping[str, Any]) -> list[str]:
            existing = DatasetMetadata.from_json(existing_json)
            differences = self._describe_env_mismatch(existing)
            stored = existing.specs or {}
            for key in metadata_specs:
                old, new = stored.get(key), specs_json.get(key)
                if old is not None and new is not None:
                    differences += spec_differences(old, new, key)
                elif old != new:
                    state = "has" if old is not None else "has no"
                    differences.append(
                        f"{key}: the dataset {state} {key} but this recorder "
                        f"{'does' if new is not None else 'does not'}"
                    )
            return differences

        features = self._features()
        self._session = self._writer.set_features(
            features, metadata=self._dataset_metadata, describe_mismatch=describe
        )
        self._encoder = ExampleEncoder(features)

    # ---- helpers -------------------------------------------------------------------------

    def _declare_step_metadata(self, value: Any) -> None:
        if not isinstance(value, Mapping):
            raise SpecError(f"step_fn must return a dict (or None), got {type(value).__name__}")
        spec = infer_spec(dict(value), "step_metadata") if value else {}
        self.buffer.set_step_metadata_spec(spec)
        self._infer_step_metadata = False

    def _features(self):
        return episode_features(
            **self._specs,
            step_metadata_spec=self.buffer.step_metadata_spec,
            episode_metadata_spec=self._episode_metadata_spec,
            image_encoding=self._image_encoding,
        )


def _short(bound: np.ndarray) -> str:
    flat = np.asarray(bound).ravel()
    if flat.size and np.all(flat == flat[0]):
        return f"{flat[0]:g}"
    return str(np.asarray(bound).tolist())


def _is_scalar_number(spec: Any) -> bool:
    shape = getattr(spec, "shape", None)
    dtype = getattr(spec, "dtype", None)
    return shape == () and dtype is not None and np.dtype(dtype).kind in "biuf"
