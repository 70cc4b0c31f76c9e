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
from collections.abc import Callable, Sequence
from typing import Any

from rlds_hub.beam.functions import ShippedFunction, load_function
from rlds_hub.beam.jobs import common
from rlds_hub.beam.mapping import MapFunctionError
from rlds_hub.beam.sink import Sharding
from rlds_hub.beam.transforms import MapEpisodes
from rlds_hub.format.features import IMAGE_ENCODINGS
from rlds_hub.storage.reader import iter_records

JOB = "map"
__all__ = ["JOB", "MapFunctionError", "main", "map_dataset"]


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
    mapping = MapEpisodes(
        dataset, function, per_step=step_fn is not None, image_encoding=image_encoding, sample=first
    )
    features_json = mapping.features_json
    sharding = sharding or Sharding()
    arguments = {
        "input": input,
        "output": output,
        "split": split,
        "episode_fn" if episode_fn is not None else "step_fn": function.name,
        "image_encoding": image_encoding,
        "sharding": vars(sharding),
        "file_format": file_format,
        "name": name,
    }
    summary = common.run_rlds_job(
        job_name=JOB,
        arguments=arguments,
        datasets=[dataset],
        selections=[selections],
        output=output,
        overwrite=overwrite,
        flags=common.default_flags(beam_args),
        transform=lambda episodes: episodes | mapping,
        features_json=features_json,
        name=name,
        file_format=file_format or dataset.file_format,
        sharding=sharding,
        split_order=[s.split for s in selections],
        quiet=quiet,
        drop_metadata=("specs",),  # the environment's specs no longer describe the output
    )
    return summary


def main(args: argparse.Namespace, flags: Sequence[str]) -> int:
    summary = map_dataset(
        args.input,
        args.output,
        episode_fn=args.episode_fn,
        step_fn=args.step_fn,
        split=args.split,
        image_encoding=args.image_encoding,
        sharding=common.sharding_from_args(args),
        file_format=args.file_format,
        name=args.name,
        overwrite=args.overwrite,
        beam_args=flags,
        quiet=args.quiet,
    )
    common.print_summary(JOB, summary)
    return 0
