"""envlogger_logs: RLDS episodes converted from envlogger Riegeli log directories.

Build with ``RLDS_HUB_ENVLOGGER_LOGS=/path/to/logs tfds build builders/envlogger_logs``, or
in Python with a config naming the directory::

    builder = Builder(config=EnvloggerLogsConfig(name="robot_a", path="/data/logs/a"))
    builder.download_and_prepare()

Every log directory below the path (each has a ``metadata.riegeli``) is converted by
rlds_hub's convert job (``--beam_pipeline_options=runner=DaskRunner,...`` to distribute it),
losslessly, aligned as TFDS's own envlogger reader aligns steps.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import tensorflow_datasets as tfds

from rlds_hub.beam.tfds_builder import ConvertedBuilder, source_path

VARIABLE = "RLDS_HUB_ENVLOGGER_LOGS"


@dataclasses.dataclass
class EnvloggerLogsConfig(tfds.core.BuilderConfig):
    """``path``: the directory holding the log directories (default: $RLDS_HUB_ENVLOGGER_LOGS)."""

    path: str | None = None


class Builder(ConvertedBuilder):
    """RLDS episodes converted from envlogger Riegeli logs by rlds_hub."""

    BUILDER_CONFIGS = [  # noqa: RUF012  (TFDS reads a list)
        EnvloggerLogsConfig(name="default", description="the logs at $RLDS_HUB_ENVLOGGER_LOGS"),
    ]

    @property
    def source(self) -> str:
        return source_path(self.builder_config.path, VARIABLE, "envlogger log directory")

    def converted_from(self) -> str:
        return self.source

    @functools.cached_property
    def _description(self) -> Any:
        from rlds_hub.beam.sources import describe_source

        return describe_source(self.source, "envlogger")

    def features_json(self) -> dict[str, Any]:
        from rlds_hub.beam.converting import source_features

        return source_features(self._description)

    def write_dataset(self, output: str, beam_args: list[str] | None) -> dict[str, Any]:
        from rlds_hub.beam.job_values import Output, Run
        from rlds_hub.beam.jobs.convert import convert

        return convert(
            self.source,
            Output(output, name=self.name),
            source_format="envlogger",
            run=Run(beam_args=beam_args),
        )
