"""Applying a user's episode or step function to encoded episodes: decode, call, check the
result, infer the output's features from the first result, encode again. The reusable part
of the map job (:class:`~rlds_hub.beam.transforms.MapEpisodes` and
:mod:`rlds_hub.beam.jobs.map` use it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import apache_beam as beam
import numpy as np

from rlds_hub import rlds_types as rlds
from rlds_hub.beam.encoder import EpisodeContentError, EpisodeEncoder, flatten_nested
from rlds_hub.beam.sink import SOURCE, EncodedEpisode
from rlds_hub.format.decode import EpisodeDecoder
from rlds_hub.format.features import episode_features
from rlds_hub.format.plan import Plan, unflatten
from rlds_hub.format.specs import SpecError, infer_spec
from rlds_hub.storage.reader import INDEX

_REQUIRED = (*rlds.CORE_STEP_FIELDS,)


class MapFunctionError(ValueError):
    """A map function that raised or returned something that cannot be stored."""


class EpisodeMapper:
    """Decodes a record, applies the user's function, returns the new nested episode."""

    def __init__(self, plan: Plan, function: Callable[..., Any], per_step: bool):
        self._plan = plan
        self._function = function
        self._per_step = per_step
        self._decoder: EpisodeDecoder | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_decoder": None}

    def episode(self, record: bytes, index: int) -> dict[str, Any]:
        if self._decoder is None:
            self._decoder = EpisodeDecoder(self._plan)
        flat, _ = self._decoder.decode_episode(record)
        episode = unflatten(flat)
        episode.setdefault(rlds.STEPS, {})
        episode[INDEX] = index
        return episode

    def __call__(self, record: bytes, index: int, where: str) -> dict[str, Any]:
        return self.apply(self.episode(record, index), where)

    def apply(self, episode: dict[str, Any], where: str) -> dict[str, Any]:
        """The function's result on a decoded episode (see :meth:`episode`)."""
        try:
            if self._per_step:
                return _map_steps(episode, self._function, where)
            result = self._function(episode)
        except MapFunctionError:
            raise
        except Exception as e:
            raise MapFunctionError(
                f"{where}: the map function raised {type(e).__name__}: {e}"
            ) from e
        if not isinstance(result, Mapping) or rlds.STEPS not in result:
            raise MapFunctionError(
                f"{where}: the episode function must return a dict with "
                f"'{rlds.STEPS}', got {type(result).__name__}"
            )
        return dict(result)


def _map_steps(episode: dict[str, Any], function: Callable[..., Any], where: str) -> dict[str, Any]:
    flat = flatten_nested(episode[rlds.STEPS], "")
    count = len(next(iter(flat.values()))) if flat else 0
    outputs = []
    for t in range(count):
        step = unflatten({k: v[t] for k, v in flat.items()})
        try:
            result = function(step)
        except Exception as e:
            raise MapFunctionError(
                f"{where}, step {t}: the step function raised {type(e).__name__}: {e}"
            ) from e
        if not isinstance(result, Mapping):
            raise MapFunctionError(
                f"{where}, step {t}: the step function must return a dict, "
                f"got {type(result).__name__}"
            )
        outputs.append(flatten_nested(dict(result), ""))
    keys = outputs[0].keys() if outputs else {}
    steps = {}
    for key in keys:
        try:
            steps[key] = np.stack([np.asarray(o[key]) for o in outputs])
        except (KeyError, ValueError) as e:
            raise MapFunctionError(
                f"{where}: the step function returned {key!r} on some steps "
                f"only, or with different shapes ({e})"
            ) from None
    out = {k: v for k, v in episode.items() if k not in (rlds.STEPS, INDEX)}
    out[rlds.STEPS] = unflatten(steps)
    return out


def infer_features(episode: Mapping[str, Any], image_encoding: str) -> dict[str, Any]:
    """``features.json`` content for episodes shaped like ``episode``."""
    steps = episode[rlds.STEPS]
    if not isinstance(steps, Mapping):
        raise MapFunctionError(f"'{rlds.STEPS}' must be a dict of step fields")
    missing = [f for f in _REQUIRED if f not in steps]
    if missing:
        raise MapFunctionError(
            f"the returned steps lack {missing}; RLDS steps hold "
            f"{list(_REQUIRED)} (other fields become step metadata)"
        )

    def step_spec(value: Any, name: str) -> Any:
        if isinstance(value, Mapping):
            return {k: step_spec(v, f"{name}/{k}") for k, v in value.items()}
        array = np.asarray(value)
        if array.ndim == 0:
            raise MapFunctionError(
                f"steps/{name}: a scalar; step fields hold one value per step (a leading step axis)"
            )
        if len(array) == 0:
            raise MapFunctionError(
                f"steps/{name}: the first episode has no steps to infer the feature from"
            )
        return infer_spec(array[0], name)

    try:
        specs = {k: step_spec(v, k) for k, v in steps.items()}
        for flag in rlds.FLAG_FIELDS:
            if np.asarray(steps[flag]).dtype != np.bool_:
                raise MapFunctionError(f"steps/{flag} must be bool")
        extra_steps = {k: v for k, v in specs.items() if k not in _REQUIRED}
        episode_meta = {
            k: infer_spec(v, k) for k, v in episode.items() if k not in (rlds.STEPS, INDEX)
        }
        return episode_features(
            observation_spec=specs[rlds.OBSERVATION],
            action_spec=specs[rlds.ACTION],
            reward_spec=specs[rlds.REWARD],
            discount_spec=specs[rlds.DISCOUNT],
            step_metadata_spec=extra_steps,
            episode_metadata_spec=episode_meta,
            image_encoding=image_encoding,
        )
    except SpecError as e:
        raise MapFunctionError(f"the map function's output cannot be stored: {e}") from e


class MapEpisodeFn(beam.DoFn):
    """Applies an :class:`EpisodeMapper` to each ``EncodedEpisode`` and encodes the result
    with the output's features (an unchanged reward keeps the input's return exactly)."""

    def __init__(self, mapper: EpisodeMapper, features_json: dict[str, Any], layout_name: str):
        self._mapper = mapper
        self._features = features_json
        self._layout = layout_name

    def setup(self) -> None:
        self._encoder = EpisodeEncoder(self._features, self._layout, exact_dtypes=True)

    def process(self, episode: EncodedEpisode) -> Iterator[EncodedEpisode]:
        where = f"episode {episode.row['episode']} of split {episode.split!r}"
        decoded = self._mapper.episode(episode.record, int(episode.row["episode"]))
        reward = _copy(decoded[rlds.STEPS].get(rlds.REWARD))
        result = self._mapper.apply(decoded, where)
        flat = flatten_nested({k: v for k, v in result.items() if k != INDEX}, "")
        try:
            out = self._encoder.encode(
                episode.key, episode.split, flat, where, source=episode.row.get(SOURCE)
            )
        except EpisodeContentError as e:
            raise MapFunctionError(
                f"{e} (the map function must return the same fields, shapes and dtypes for "
                "every episode as for the first one, which fixed the output's features)"
            ) from e
        if (
            episode.row.get("return") is not None
            and out.row.get("return") is not None
            and _same_bits(reward, result[rlds.STEPS].get(rlds.REWARD))
        ):
            # Unchanged rewards keep the input's return exactly (not re-summed).
            out.row["return"] = episode.row["return"]
        yield out


def _copy(value: Any) -> np.ndarray | None:
    return None if value is None else np.array(value, copy=True)


def _same_bits(before: np.ndarray | None, after: Any) -> bool:
    """True if ``after`` holds exactly the values (dtype, shape, bytes) of ``before``."""
    if before is None or after is None:
        return False
    after = np.asarray(after)
    return (
        before.dtype == after.dtype
        and before.shape == after.shape
        and before.tobytes() == np.ascontiguousarray(after).tobytes()
    )
