"""What a job writes and how it runs: the two values every job function takes.

``Output`` is the output dataset (its path, whether an existing dataset there may be replaced,
the shard limits, the file format, the TFDS name, how images are stored); ``Run`` is how the
pipeline runs (Beam runner and options, progress bar or quiet)::

    reshard("data/robot", Output("data/robot_ar", file_format="array_record"),
            run=Run(runner="DaskRunner", beam_args=["--dask_client_address=HOST:8786"]))

A job refuses an ``Output`` field it has no use for (``export`` writes Parquet: no shards),
rather than ignoring it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence

from rlds_hub.beam.options import DEFAULT_RUNNER, normalize_flags
from rlds_hub.beam.sink import Sharding
from rlds_hub.format.features import IMAGE_ENCODINGS
from rlds_hub.storage import dataset_files


@dataclasses.dataclass(frozen=True)
class Output:
    """The dataset a job writes at ``path``.

    Attributes:
      path: the output directory (staged next to it, committed atomically).
      overwrite: replace a dataset already at ``path`` (anything else is never replaced).
      sharding: how each split is cut into shards (count, episodes or bytes per shard).
      file_format: ``tfrecord`` or ``array_record``; None: the input's (convert, record:
        ``tfrecord``).
      name: the TFDS dataset name; None: the input's (convert, record: from ``path``).
      image_encoding: ``png`` or ``raw`` for the images a job encodes (convert, map,
        record); None: ``png``. Jobs that copy records as they are refuse it.
    """

    path: str | os.PathLike
    overwrite: bool = False
    sharding: Sharding = dataclasses.field(default_factory=Sharding)
    file_format: str | None = None
    name: str | None = None
    image_encoding: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.sharding, Sharding):
            raise TypeError(
                f"Output.sharding must be a rlds_hub.beam.Sharding, got {self.sharding!r}"
            )
        if self.file_format is not None and self.file_format not in dataset_files.FILE_FORMATS:
            raise ValueError(
                f"Output.file_format must be one of {dataset_files.FILE_FORMATS} (or None for "
                f"the input's), got {self.file_format!r}"
            )
        if self.image_encoding is not None and self.image_encoding not in IMAGE_ENCODINGS:
            raise ValueError(
                f"Output.image_encoding must be one of {IMAGE_ENCODINGS}, got "
                f"{self.image_encoding!r}"
            )
        if self.name is not None:
            dataset_files.check_dataset_name(self.name)

    @classmethod
    def of(cls, output: Output | str | os.PathLike) -> Output:
        """``output`` itself, or an ``Output`` at that path with the defaults."""
        if isinstance(output, Output):
            return output
        if not isinstance(output, (str, os.PathLike)):
            raise TypeError(f"output must be a path or an Output, got {output!r}")
        return cls(output)

    def refuse(self, job: str, *fields: str) -> None:
        """Raises ValueError naming the first of ``fields`` that is set (not its default):
        ``job`` has no use for it."""
        defaults = Output(self.path)
        for field in fields:
            default = getattr(defaults, field)
            if getattr(self, field) != default:
                raise ValueError(
                    f"{job} does not use Output.{field} (got {getattr(self, field)!r}): "
                    f"leave it at {default!r}"
                )


@dataclasses.dataclass(frozen=True)
class Run:
    """How a job's pipeline runs.

    Attributes:
      runner: Beam's runner (``DirectRunner``, ``DaskRunner``, ``DataflowRunner``, ...).
      beam_args: further Beam flags (``["--direct_num_workers=4"]``). With neither, the
        DirectRunner runs one worker process per core.
      quiet: no progress bar, and Beam's and Dask's chatter kept off standard error.
    """

    runner: str | None = None
    beam_args: Sequence[str] | None = None
    quiet: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.beam_args, str):
            raise TypeError(f"Run.beam_args is a list of flags, got the string {self.beam_args!r}")

    @classmethod
    def of(cls, run: Run | None) -> Run:
        if run is None:
            return cls()
        if not isinstance(run, Run):
            raise TypeError(f"run must be a rlds_hub.beam.Run, got {run!r}")
        return run

    def flags(self) -> list[str]:
        """The Beam flags of this run (with rlds_hub's defaults, see
        :func:`~rlds_hub.beam.options.normalize_flags`)."""
        if self.runner is None and self.beam_args is None:
            return normalize_flags(
                [
                    f"--runner={DEFAULT_RUNNER}",
                    f"--direct_num_workers={os.cpu_count() or 1}",
                    "--direct_running_mode=multi_processing",
                ]
            )
        runner = [] if self.runner is None else [f"--runner={self.runner}"]
        return normalize_flags([*runner, *(self.beam_args or ())])


def output_from_args(args: argparse.Namespace) -> Output:
    """The ``Output`` that a job's command-line options (:mod:`rlds_hub.beam.arguments`) name."""
    return Output(
        args.output,
        overwrite=args.overwrite,
        sharding=Sharding(
            num_shards=args.num_shards,
            max_episodes_per_shard=args.max_episodes_per_shard,
            max_bytes_per_shard=args.max_bytes_per_shard,
        ),
        file_format=args.file_format,
        name=args.name,
        image_encoding=getattr(args, "image_encoding", None),
    )
