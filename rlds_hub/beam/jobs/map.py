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
from rlds_hub.beam.job_values import Output, Run, output_from_args
from rlds_hub.beam.jobs import common
from rlds_hub.beam.mapping import MapFunctionError
from rlds_hub.beam.transforms import MapEpisodes
from rlds_hub.storage.reader import iter_records

JOB = "map"
__all__ = ["JOB", "MapFunctionError", "main", "map_dataset"]


def map_dataset(
    input: str | os.PathLike,
    output: Output | str | os.PathLike,
    *,
    episode_fn: Callable[..., Any] | str | None = None,
    step_fn: Callable[..., Any] | str | None = None,
    split: str | None = None,
    run: Run | None = None,
) -> dict[str, Any]:
    """Applies ``episode_fn`` or ``step_fn`` (a callable or ``module:function``) to every
    episode of ``input`` and writes the results to ``output`` (images the function returns
    stored as its ``image_encoding``, default PNG)."""
    output = Output.of(output)
    if (episode_fn is None) == (step_fn is None):
        raise ValueError("give exactly one of episode_fn (--episode-fn) and step_fn (--step-fn)")
    spec = episode_fn if episode_fn is not None else step_fn
    function = ShippedFunction(load_function(spec))
    dataset = common.open_input(input)
    selections = common.input_selections(dataset, split)
    first = next((r for s in selections for r in iter_records(s)), None)
    if first is None:
        raise ValueError(f"{dataset.path}: the selection holds no episode to map")
    image_encoding = output.image_encoding or "png"
    mapping = MapEpisodes(
        dataset, function, per_step=step_fn is not None, image_encoding=image_encoding, sample=first
    )
    return common.run_rlds_job(
        job_name=JOB,
        arguments={
            "input": input,
            "split": split,
            "episode_fn" if episode_fn is not None else "step_fn": function.name,
            "image_encoding": image_encoding,
        },
        datasets=[dataset],
        selections=[selections],
        output=output,
        run=Run.of(run),
        transform="Map" >> mapping,
        features_json=mapping.features_json,
        split_order=[s.split for s in selections],
        drop_metadata=("specs",),  # the environment's specs no longer describe the output
    )


def main(args: argparse.Namespace, flags: Sequence[str]) -> int:
    summary = map_dataset(
        args.input,
        output_from_args(args),
        episode_fn=args.episode_fn,
        step_fn=args.step_fn,
        split=args.split,
        run=Run(beam_args=flags, quiet=args.quiet),
    )
    common.print_summary(JOB, summary)
    return 0
