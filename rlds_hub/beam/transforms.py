"""PTransforms on ``EncodedEpisode`` s for users' own pipelines (the filter, map and split
jobs use them too): keep episodes by their table row, apply an episode or step function,
assign episodes to splits by a hash of their id."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import apache_beam as beam

from rlds_hub.beam.functions import ShippedFunction
from rlds_hub.beam.mapping import EpisodeMapper, MapEpisodeFn, infer_features
from rlds_hub.beam.selection import EpisodeFilter, assign_split
from rlds_hub.beam.sink import EncodedEpisode
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


class _Assign:
    def __init__(self, fractions: dict[str, float], seed: int, id_key: str | None):
        self.fractions, self.seed, self.id_key = fractions, seed, id_key

    def __call__(self, episode: EncodedEpisode) -> EncodedEpisode:
        if self.id_key is None:
            episode_id = f"{episode.split}/{episode.row['episode']}"
        else:
            values = episode.row.get("metadata") or {}
            if self.id_key not in values:
                raise ValueError(
                    f"episode {episode.row['episode']} of split {episode.split!r} "
                    f"has no metadata {self.id_key!r}"
                )
            episode_id = str(values[self.id_key])
        target = assign_split(self.fractions, self.seed, episode_id)
        return EncodedEpisode(episode.key, target, episode.record, episode.row)


class AssignSplits(beam.PTransform):
    """Moves every episode to the split :func:`~rlds_hub.beam.selection.assign_split` gives
    its id: the episode metadata field ``id_key``, or ``<split>/<index>`` when None.

    Args:
      fractions: output split -> share (e.g. from
        :func:`~rlds_hub.beam.selection.parse_fractions`).
      seed: the seed of the hash; an episode's split depends only on its id and the seed.
      id_key: a scalar episode metadata field (None: ``<split>/<index>``).
    """

    def __init__(self, fractions: dict[str, float], *, seed: int = 0, id_key: str | None = None):
        super().__init__()
        self._assign = _Assign(dict(fractions), seed, id_key)

    def expand(self, episodes: Any) -> Any:
        return episodes | "Assign" >> beam.Map(self._assign)
