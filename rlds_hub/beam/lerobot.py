"""``ExportLeRobot``: an RLDS dataset's episodes written as a LeRobot v3.0 dataset by parallel
work units (one shard or record range each; :mod:`rlds_hub.lerobot.writing` does the writing
and the export job numbers the files and writes the metadata when the pipeline ends)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam

from rlds_hub.beam import execution
from rlds_hub.beam.reading import record_units, write_source_checksum
from rlds_hub.lerobot.writing import ExportPlan, UnitSpec, write_unit
from rlds_hub.storage.dataset import open_dataset
from rlds_hub.storage.selection import Selection


def unit_specs(
    selections: Sequence[Selection], num_steps: dict[str, list[int]]
) -> tuple[list[UnitSpec], dict[str, str | None]]:
    """The work units of ``selections`` with their first LeRobot episode and frame
    (``num_steps``: each split's episode lengths), and each unit's shard to checksum."""
    specs, checksums = [], {}
    episode, frame = 0, 0
    for number, unit in enumerate(record_units(selections, 0)):
        specs.append(UnitSpec(number, unit.path, unit.split, unit.indices, episode, frame))
        checksums[str(number)] = unit.checksum
        lengths = num_steps[unit.split]
        episode += len(unit.indices)
        frame += sum(lengths[i] for i in unit.indices)
    return specs, checksums


class _WriteUnit(beam.DoFn):
    def __init__(
        self,
        directory: str,
        plan: ExportPlan,
        checksums: dict[str, str | None],
        progress: str | None,
        sources: str | None,
    ):
        self._directory, self._plan = directory, plan
        self._checksums, self._progress, self._sources = checksums, progress, sources

    def setup(self) -> None:
        self._datasets: dict[str, Any] = {}
        self._counter = execution.Counter(self._progress) if self._progress else None

    def teardown(self) -> None:
        if self._counter is not None:
            self._counter.close()

    def process(self, spec: UnitSpec) -> Iterator[int]:
        dataset = self._datasets.get(spec.path)
        if dataset is None:
            dataset = self._datasets[spec.path] = open_dataset(spec.path)
        write_unit(dataset, self._directory, spec, self._plan)
        checksum = self._checksums.get(str(spec.number))
        if checksum and self._sources:
            write_source_checksum(self._sources, spec.path, checksum)
        if self._counter is not None:
            self._counter.add(len(spec.indices))
        yield spec.number


class ExportLeRobot(beam.PTransform):
    """Writes every unit of ``specs`` into ``directory``'s ``.tmp-units/`` (see
    :func:`rlds_hub.lerobot.writing.write_unit`); a PCollection of the unit numbers."""

    def __init__(
        self,
        specs: Sequence[UnitSpec],
        directory: str | os.PathLike,
        plan: ExportPlan,
        *,
        checksums: dict[str, str | None] | None = None,
        sources_dir: str | os.PathLike | None = None,
        progress_dir: str | os.PathLike | None = None,
    ):
        super().__init__()
        self._specs = list(specs)
        self._write = _WriteUnit(
            os.fspath(directory),
            plan,
            checksums or {},
            None if progress_dir is None else os.fspath(progress_dir),
            None if sources_dir is None else os.fspath(sources_dir),
        )

    def expand(self, pbegin: Any) -> Any:
        return (
            pbegin
            | "Units" >> beam.Create(self._specs)
            | "SpreadUnits" >> beam.Reshuffle()
            | "WriteUnits" >> beam.ParDo(self._write)
        )
