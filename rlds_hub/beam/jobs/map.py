"""map: apply a user's episode or step function (``module:function``) to every episode;
the output's features are derived from what the function returns on the first episode, and
every later episode must match them.

- An episode function takes an episode as :func:`rlds_hub.storage.reader.iter_episodes`
  gives it (``{"steps": {"observation": [T, ...], ...}, <metadata>..., "__index__": i}``,
  NumPy arrays) and returns one in the same shape (it may drop, add or change fields, or
  drop steps; ``__index__`` is not stored).
- A step function takes one step (``{"observation": ..., "action": ..., ...}``) and returns
  the new step; episode metadata pass through unchanged.

The returned steps must hold ``observation``, ``action``, ``reward``, ``discount``,
``is_first``, ``is_last`` and ``is_terminal``; other step fields become step metadata, other
top-level fields episode metadata. Values are stored losslessly (float64 as bytes, images as
PNG).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
import numpy as np

from rlds_hub import spec as rlds
from rlds_hub.beam.episodes import EpisodeContentError, EpisodeEncoder, flatten_nested
from rlds_hub.beam.functions import ShippedFunction, load_function
from rlds_hub.beam.jobs import common
from rlds_hub.beam.sink import SOURCE, EncodedEpisode, Sharding
from rlds_hub.format.decode import EpisodeDecoder
from rlds_hub.format.features import IMAGE_ENCODINGS, episode_features
from rlds_hub.format.plan import Plan, unflatten
from rlds_hub.format.specs import SpecError, infer_spec
from rlds_hub.storage.reader import INDEX, iter_records

JOB = "map"
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
            raise MapFunctionError(f"{where}: the map function raised {type(e).__name__}: "
                                   f"{e}") from e
        if not isinstance(result, Mapping) or rlds.STEPS not in result:
            raise MapFunctionError(f"{where}: the episode function must return a dict with "
                                   f"'{rlds.STEPS}', got {type(result).__name__}")
        return dict(result)


def _map_steps(episode: dict[str, Any], function: Callable[..., Any], where: str
               ) -> dict[str, Any]:
    flat = flatten_nested(episode[rlds.STEPS], "")
    count = len(next(iter(flat.values()))) if flat else 0
    outputs = []
    for t in range(count):
        step = unflatten({k: v[t] for k, v in flat.items()})
        try:
            result = function(step)
        except Exception as e:
            raise MapFunctionError(f"{where}, step {t}: the step function raised "
                                   f"{type(e).__name__}: {e}") from e
        if not isinstance(result, Mapping):
            raise MapFunctionError(f"{where}, step {t}: the step function must return a dict, "
                                   f"got {type(result).__name__}")
        outputs.append(flatten_nested(dict(result), ""))
    keys = outputs[0].keys() if outputs else {}
    steps = {}
    for key in keys:
        try:
            steps[key] = np.stack([np.asarray(o[key]) for o in outputs])
        except (KeyError, ValueError) as e:
            raise MapFunctionError(f"{where}: the step function returned {key!r} on some steps "
                                   f"only, or with different shapes ({e})") from None
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
        raise MapFunctionError(f"the returned steps lack {missing}; RLDS steps hold "
                               f"{list(_REQUIRED)} (other fields become step metadata)")

    def step_spec(value: Any, name: str) -> Any:
        if isinstance(value, Mapping):
            return {k: step_spec(v, f"{name}/{k}") for k, v in value.items()}
        array = np.asarray(value)
        if array.ndim == 0:
            raise MapFunctionError(f"steps/{name}: a scalar; step fields hold one value per "
                                   "step (a leading step axis)")
        if len(array) == 0:
            raise MapFunctionError(f"steps/{name}: the first episode has no steps to infer "
                                   "the feature from")
        return infer_spec(array[0], name)

    try:
        specs = {k: step_spec(v, k) for k, v in steps.items()}
        for flag in rlds.FLAG_FIELDS:
            if np.asarray(steps[flag]).dtype != np.bool_:
                raise MapFunctionError(f"steps/{flag} must be bool")
        extra_steps = {k: v for k, v in specs.items() if k not in _REQUIRED}
        episode_meta = {k: infer_spec(v, k) for k, v in episode.items()
                        if k not in (rlds.STEPS, INDEX)}
        return episode_features(
            observation_spec=specs[rlds.OBSERVATION], action_spec=specs[rlds.ACTION],
            reward_spec=specs[rlds.REWARD], discount_spec=specs[rlds.DISCOUNT],
            step_metadata_spec=extra_steps, episode_metadata_spec=episode_meta,
            image_encoding=image_encoding)
    except SpecError as e:
        raise MapFunctionError(f"the map function's output cannot be stored: {e}") from e


class _MapEpisodes(beam.DoFn):
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
            out = self._encoder.encode(episode.key, episode.split, flat, where,
                                       source=episode.row.get(SOURCE))
        except EpisodeContentError as e:
            raise MapFunctionError(
                f"{e} (the map function must return the same fields, shapes and dtypes for "
                "every episode as for the first one, which fixed the output's features)") from e
        if (episode.row.get("return") is not None and out.row.get("return") is not None
                and _same_bits(reward, result[rlds.STEPS].get(rlds.REWARD))):
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
    return (before.dtype == after.dtype and before.shape == after.shape
            and before.tobytes() == np.ascontiguousarray(after).tobytes())


def map_dataset(
    input: str | os.PathLike,
    output: str | os.PathLike,
    *,
    episode_fn: Callable[..., Any] | str | None = None,
    step_fn: Callable[..., Any] | str | None = None,
    split: str | None = None,
    image_encoding: str = "png",
    sharding: Sharding | None = None,
    file_format: str | None = None,
    name: str | None = None,
    overwrite: bool = False,
    beam_args: Sequence[str] | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Applies ``episode_fn`` or ``step_fn`` (a callable or ``module:function``) to every
    episode of ``input`` and writes the results to ``output``."""
    if (episode_fn is None) == (step_fn is None):
        raise ValueError("give exactly one of episode_fn (--episode-fn) and step_fn (--step-fn)")
    if image_encoding not in IMAGE_ENCODINGS:
        raise ValueError(f"image_encoding must be one of {IMAGE_ENCODINGS}")
    spec = episode_fn if episode_fn is not None else step_fn
    function = ShippedFunction(load_function(spec))
    dataset = common.open_input(input)
    selections = common.input_selections(dataset, split)
    first = next((r for s in selections for r in iter_records(s)), None)
    if first is None:
        raise ValueError(f"{dataset.path}: the selection holds no episode to map")
    from rlds_hub.beam.transforms import MapEpisodes

    mapping = MapEpisodes(dataset, function, per_step=step_fn is not None,
                          image_encoding=image_encoding, sample=first)
    features_json = mapping.features_json
    sharding = sharding or Sharding()
    arguments = {"input": input, "output": output, "split": split,
                 "episode_fn" if episode_fn is not None else "step_fn": function.name,
                 "image_encoding": image_encoding, "sharding": vars(sharding),
                 "file_format": file_format, "name": name}
    summary = common.run_rlds_job(
        job_name=JOB, arguments=arguments, datasets=[dataset], selections=[selections],
        output=output, overwrite=overwrite, flags=common.default_flags(beam_args),
        transform=lambda episodes: episodes | mapping,
        features_json=features_json, name=name,
        file_format=file_format or dataset.file_format, sharding=sharding,
        split_order=[s.split for s in selections], quiet=quiet,
        drop_metadata=("specs",),  # the environment's specs no longer describe the output
    )
    return summary


def main(args: argparse.Namespace, flags: Sequence[str]) -> int:
    summary = map_dataset(args.input, args.output, episode_fn=args.episode_fn,
                          step_fn=args.step_fn, split=args.split,
                          image_encoding=args.image_encoding,
                          sharding=common.sharding_from_args(args),
                          file_format=args.file_format, name=args.name,
                          overwrite=args.overwrite, beam_args=flags, quiet=args.quiet)
    common.print_summary(JOB, summary)
    return 0
