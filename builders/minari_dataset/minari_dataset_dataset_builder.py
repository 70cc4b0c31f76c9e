"""minari_dataset: RLDS episodes converted from a Minari dataset (HDF5 or Arrow storage).

(The folder is not called ``minari``: ``tfds build`` imports a builder folder as a package
of that name, which would hide the ``minari`` library itself.)

Build with ``RLDS_HUB_MINARI_DATASET=/path/to/dataset tfds build builders/minari_dataset`` (the
Minari dataset directory, the one holding ``data/``), or in Python with
``Builder(config=MinariConfig(name="pen_expert", path=...))``. Nested Dict / Tuple spaces
become nested features, infos the step field ``infos``; see
:mod:`rlds_hub.beam.sources.minari_source` for the alignment.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import tensorflow_datasets as tfds

from rlds_hub.beam.tfds_builder import ConvertedBuilder, source_path

VARIABLE = "RLDS_HUB_MINARI_DATASET"


@dataclasses.dataclass
class MinariConfig(tfds.core.BuilderConfig):
    """``path``: the Minari dataset directory (default: $RLDS_HUB_MINARI_DATASET)."""

    path: str | None = None


class Builder(ConvertedBuilder):
    """RLDS episodes converted from a Minari dataset by rlds_hub."""

    BUILDER_CONFIGS = [  # noqa: RUF012  (TFDS reads a list)
        MinariConfig(name="default", description="the dataset at $RLDS_HUB_MINARI_DATASET"),
    ]

    @property
    def source(self) -> str:
        return source_path(self.builder_config.path, VARIABLE, "Minari dataset")

    def converted_from(self) -> str:
        return self.source

    @functools.cached_property
    def _description(self) -> Any:
        from rlds_hub.beam.sources import describe_source

        return describe_source(self.source, "minari")

    def features_json(self) -> dict[str, Any]:
        from rlds_hub.beam.converting import source_features

        return source_features(self._description)

    def write_dataset(self, output: str, beam_args: list[str] | None) -> dict[str, Any]:
        from rlds_hub.beam.job_values import Output, Run
        from rlds_hub.beam.jobs.convert import convert

        return convert(
            self.source,
            Output(output, name=self.name),
            source_format="minari",
            run=Run(beam_args=beam_args),
        )
