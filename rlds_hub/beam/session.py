"""One job's write session: stage, write, finish and commit — or abort.

Every job that writes a dataset (or an export) runs inside a :class:`WriteSession`::

    with WriteSession(output, overwrite=overwrite, inputs=[input]) as session:
        seconds = session.run(flags, build, total=n, description="reshard", quiet=quiet)
        summary = session.finish(name=name, features_json=..., metadata=..., file_format=...)

``build(pipeline)`` ends with ``| session.write(name, ...)``. Leaving the ``with`` block
without a commit — an exception in the pipeline, in ``finish``, anywhere in the block, or no
``finish`` at all — deletes the staging directory, so nothing is left next to the output and
nothing appears at it. The commit protocol itself is :class:`~rlds_hub.beam.staging.Staging`
and :mod:`rlds_hub.storage.publish`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from rlds_hub.beam import execution
from rlds_hub.beam.sink import Sharding, WriteDataset, finish_dataset
from rlds_hub.beam.staging import Staging


class WriteSession:
    """The staging directory of one job writing ``output``, committed by :meth:`finish` (or
    :meth:`commit`) and deleted when the ``with`` block ends without a commit."""

    def __init__(
        self,
        output: str | os.PathLike,
        *,
        overwrite: bool = False,
        inputs: Iterable[str | os.PathLike] = (),
    ):
        self.staging = Staging(output, overwrite=overwrite, inputs=inputs)
        self.committed: Path | str | None = None  # str: an object-store URL

    def __enter__(self) -> WriteSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.committed is None:
            self.staging.abort()

    @property
    def output(self) -> Path | str:
        return self.staging.output

    @property
    def path(self) -> Path:
        """The staging directory (what the job writes besides the shards goes here)."""
        return self.staging.path

    @property
    def pieces(self) -> Path:
        return self.staging.pieces

    @property
    def sources(self) -> Path:
        """Where readers record the checksums of the input files they read."""
        return self.staging.sources

    def write(
        self,
        name: str,
        *,
        file_format: str = "tfrecord",
        sharding: Sharding | None = None,
        split_order: Sequence[str] = (),
    ) -> WriteDataset:
        """The PTransform that writes a PCollection of episodes into this session."""
        return WriteDataset(
            self.staging,
            name,
            file_format=file_format,
            sharding=sharding,
            split_order=split_order,
        )

    def run(
        self,
        flags: Sequence[str],
        build: Callable[[Any], None],
        *,
        total: int | None = None,
        description: str = "",
        quiet: bool = False,
        progress_dir: str | os.PathLike | None = None,
    ) -> float:
        """Runs the pipeline ``build(pipeline)`` builds (:func:`rlds_hub.beam.execution.run_pipeline`;
        progress counts the pieces unless ``progress_dir``); returns the seconds it took."""
        return execution.run_pipeline(
            flags,
            build,
            progress_dir=self.pieces if progress_dir is None else progress_dir,
            total=total,
            description=description,
            quiet=quiet,
        )

    def finish(self, **kwargs: Any) -> dict[str, Any]:
        """Writes the dataset's metadata and commits it (:func:`~rlds_hub.beam.sink.finish_dataset`,
        same arguments and summary)."""
        summary = finish_dataset(self.staging, **kwargs)
        self.committed = self.staging.output if self.staging.remote else Path(summary["path"])
        return summary

    def commit(self) -> Path | str:
        """Publishes what the staging directory holds as it is (a job that is not a dataset
        writer, like the Parquet export, writes its own files first)."""
        self.committed = self.staging.commit()
        return self.committed
