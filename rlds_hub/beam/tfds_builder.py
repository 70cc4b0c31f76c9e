"""TFDS dataset builders whose episodes are written by rlds_hub's Beam jobs.

``tfds build builders/<name>`` constructs a builder, which describes its source (a log
directory, a Minari dataset, a task to record); :meth:`ConvertedBuilder._download_and_prepare`
runs the shared pipeline (convert or reshard, on the runner TFDS's
``--beam_pipeline_options`` name, the DirectRunner by default) into a directory next to TFDS's
own temporary one, then moves the shards and rlds_hub's files (``episodes.jsonl``,
``checksums.json``, ``metadata.json``) into it and declares the splits. TFDS writes
``dataset_info.json`` and ``features.json`` and commits the directory as it does for any
builder, so the result is a plain TFDS dataset (``tfds.load``, ``builder_from_directory``)
that ``rlds-hub validate`` also verifies.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import tensorflow_datasets as tfds

from rlds_hub.format.metadata import DatasetMetadata
from rlds_hub.storage import dataset_files

_KEPT_FILES = (dataset_files.EPISODE_INDEX, dataset_files.CHECKSUMS, dataset_files.METADATA)


def beam_args_from(download_config: Any) -> list[str] | None:
    """Beam flags from TFDS's ``DownloadConfig.beam_options`` (None: rlds_hub's default)."""
    options = getattr(download_config, "beam_options", None)
    if options is None:
        return None
    from rlds_hub.beam.options import RUNNER_ALIASES

    values = options.get_all_options(drop_default=True, retain_unknown_options=True)
    flags = []
    for key, value in values.items():
        if value is None or value is False:
            continue
        if key == "runner":
            value = RUNNER_ALIASES.get(str(value), value)
        flags.append(f"--{key}" if value is True else f"--{key}={value}")
    if not any(f.startswith("--runner") for f in flags):
        flags.append("--runner=DirectRunner")
    if "--runner=DirectRunner" in flags:
        if not any(f.startswith("--direct_running_mode") for f in flags):
            flags.append("--direct_running_mode=multi_processing")
        if not any(f.startswith("--direct_num_workers") for f in flags):
            flags.append(f"--direct_num_workers={os.cpu_count() or 1}")
    return flags


class ConvertedBuilder(tfds.core.GeneratorBasedBuilder):
    """Base of rlds_hub's builders: subclasses implement :meth:`features_json` and
    :meth:`write_dataset` (which runs a job writing an RLDS dataset to a directory)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}  # noqa: RUF012  (TFDS reads a dict)

    def features_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def write_dataset(self, output: str, beam_args: list[str] | None) -> dict[str, Any]:
        """Writes the episodes as an RLDS dataset named ``self.name`` into ``output``."""
        raise NotImplementedError

    def description(self) -> str:
        return (self.__doc__ or "").strip()

    def converted_from(self) -> str | None:
        """The source path the episodes are converted from (None: no outside source)."""
        return None

    def download_and_prepare(
        self, *, download_dir: Any = None, download_config: Any = None, **kwargs: Any
    ) -> None:
        """TFDS's, refusing to reuse a prepared directory converted from another source
        (or from one that changed since): TFDS would silently keep the old data."""
        mode = getattr(download_config, "download_mode", None)
        overwrite = mode is not None and (
            mode.overwrite_dataset or mode == tfds.download.GenerateMode.UPDATE_DATASET_INFO
        )
        if not overwrite:
            check_prepared_source(Path(os.fspath(self.data_path)), self.converted_from(), self.name)
        super().download_and_prepare(
            download_dir=download_dir, download_config=download_config, **kwargs
        )

    def _info(self) -> tfds.core.DatasetInfo:
        features = tfds.features.FeatureConnector.from_json(self.features_json())
        return tfds.core.DatasetInfo(
            builder=self, description=self.description(), features=features
        )

    def _split_generators(self, dl_manager: Any) -> Any:  # pragma: no cover - not used
        raise NotImplementedError("rlds_hub builders write their shards with a Beam job")

    def _generate_examples(self, *args: Any) -> Any:  # pragma: no cover - not used
        raise NotImplementedError("rlds_hub builders write their shards with a Beam job")

    def _download_and_prepare(self, dl_manager: Any, download_config: Any) -> None:
        target = Path(os.fspath(self.data_path))
        scratch = Path(
            tempfile.mkdtemp(prefix=f"{dataset_files.TMP_PREFIX}{self.name}-", dir=target.parent)
        )
        try:
            output = scratch / "dataset"
            self.write_dataset(os.fspath(output), beam_args_from(download_config))
            info = json.loads((output / dataset_files.DATASET_INFO).read_text())
            splits = []
            for entry in info["splits"]:
                for index in range(len(entry["shardLengths"])):
                    name = dataset_files.shard_filename(
                        self.name, entry["name"], info["fileFormat"], index
                    )
                    os.replace(output / name, target / name)
                template = tfds.core.ShardedFileTemplate(
                    data_dir=target,
                    template=dataset_files.SHARD_TEMPLATE,
                    dataset_name=self.name,
                    split=entry["name"],
                    filetype_suffix=info["fileFormat"],
                )
                splits.append(
                    tfds.core.SplitInfo(
                        name=entry["name"],
                        shard_lengths=[int(n) for n in entry["shardLengths"]],
                        num_bytes=int(entry["numBytes"]),
                        filename_template=template,
                    )
                )
            for name in _KEPT_FILES:
                if (output / name).exists():
                    shutil.copyfile(output / name, target / name)
            kept = self.info.metadata
            if kept is not None and (target / dataset_files.METADATA).exists():
                # A rebuild over a directory TFDS had read: TFDS writes its (old, or lazily
                # loaded and now empty) metadata back; make it the new one.
                kept.load_metadata(target)
                if hasattr(kept, "_data_is_loaded"):
                    kept._data_is_loaded = True
            # (override_if_initialized: a rebuild over an existing directory, whose
            # dataset_info.json TFDS has already read)
            self.info.set_file_format(
                info["fileFormat"], override=True, override_if_initialized=True
            )
            self.info.set_splits(tfds.core.SplitDict(splits))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


class SourceChangedError(ValueError):
    """A prepared dataset was converted from another source than the builder's."""


def check_prepared_source(directory: Path, source: str | None, name: str) -> None:
    """Refuses to reuse ``directory`` (a prepared dataset) when ``source`` is not the path
    its ``metadata.json`` says it was converted from, or a file recorded there has another
    size now.

    Raises:
      SourceChangedError: saying what differs and how to rebuild.
    """
    if source is None or not (directory / dataset_files.DATASET_INFO).exists():
        return
    try:
        text = (directory / dataset_files.METADATA).read_text()
        provenance = DatasetMetadata.from_json(json.loads(text)).provenance
    except (OSError, ValueError):  # MetadataError is a ValueError
        return
    if provenance is None or not provenance.sources or not isinstance(provenance.sources[0], dict):
        return  # not converted by rlds_hub: nothing to compare with
    recorded = provenance.sources[0]
    current = os.path.abspath(source)
    old = recorded.get("path")
    problem = None
    if old != current:
        problem = f"was converted from {old}, and the source is now {current}"
    else:
        root = Path(current)
        for file, entry in (recorded.get("files") or {}).items():
            path = root if root.is_file() else root / file
            try:
                size = path.stat().st_size
            except OSError:
                problem = f"was converted from {current}, whose {file} is gone now"
                break
            if size != entry.get("bytes"):
                problem = (
                    f"was converted from {current}, whose {file} has changed "
                    f"({entry.get('bytes')} bytes then, {size} now)"
                )
                break
    if problem:
        raise SourceChangedError(
            f"{directory} already holds {name}, which {problem}; TFDS would reuse the old "
            "episodes. Rebuild it with `tfds build --overwrite` (download_mode="
            "FORCE_REDOWNLOAD in Python), or build into another --data_dir"
        )


def source_path(config_path: str | None, variable: str, what: str) -> str:
    """The source path of a builder: its config's, else the environment variable's."""
    path = config_path or os.environ.get(variable)
    if not path:
        raise ValueError(
            f"no {what} to build from: set {variable}=/path (for `tfds build`), or pass a "
            "config with path=... to the builder"
        )
    return path
