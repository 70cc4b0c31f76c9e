"""PTransforms on ``EncodedEpisode`` s for users' own pipelines (the filter and map jobs use
them too): keep episodes by their table row, apply an episode or step function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import apache_beam as beam

from rlds_hub.beam.functions import ShippedFunction
from rlds_hub.beam.mapping import EpisodeMapper, MapEpisodeFn, infer_features
from rlds_hub.beam.selection import EpisodeFilter
from rlds_hub.storage.episodes import dataset_layout
from rlds_hub.storage.reader import iter_records


class FilterEpisodes(beam.PTransform):
    """Keeps the episodes for which ``keep(split, row)`` is true (e.g. an
    :class:`~rlds_hub.beam.selection.EpisodeFilter`, or any picklable callable)."""

    def __init__(self, keep: EpisodeFilter | Callable[[str, dict[str, Any]], bool]):
        super().__init__()
        self._keep = keep

    def expand(self, episodes: Any) -> Any:
        keep = self._keep
        return episodes | "Keep" >> beam.Filter(lambda e: keep(e.split, e.row))


class MapEpisodes(beam.PTransform):
    """Applies an episode function (or a step function, ``per_step=True``) to every episode
    of ``dataset`` read by ``ReadEpisodes``; the output's features are inferred from the
    function's result on the dataset's first episode (``self.features_json``, for
    :func:`~rlds_hub.beam.sink.finish_dataset`)."""

    def __init__(
        self,
        dataset: Any,
        function: Callable[..., Any],
        *,
        per_step: bool = False,
        image_encoding: str = "png",
        sample: Any = None,
    ):
        super().__init__()
        shipped = function if isinstance(function, ShippedFunction) else ShippedFunction(function)
        self._mapper = EpisodeMapper(dataset.plan, shipped, per_step=per_step)
        first = sample or next(iter_records(dataset, next(iter(dataset.splits))), None)
        if first is None:
            raise ValueError(f"{dataset.path} holds no episode to infer the output from")
        result = self._mapper(bytes(first.data), first.index, f"episode {first.index} (the first)")
        self.features_json = infer_features(result, image_encoding)
        self._layout = dataset_layout(dataset)

    def expand(self, episodes: Any) -> Any:
        return episodes | "Map" >> beam.ParDo(
            MapEpisodeFn(self._mapper, self.features_json, self._layout)
        )
