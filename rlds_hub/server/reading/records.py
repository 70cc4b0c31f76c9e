"""One episode's arrays for a route: the core reads only that episode's record
(:func:`rlds_hub.storage.read_record`: a TFRecord shard's record offsets come from its
headers, cached per file; both CRCs are checked) and its decoder decodes it. The decoder of
each set of keys is kept with the opened dataset. ``benchmarks/server_load.py`` measures the
read against reading the whole shard.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rlds_hub.format.decode import EpisodeDecoder, ParseError
from rlds_hub.format.images import ImageDecodeError
from rlds_hub.storage import RLDSDataset, ShardError, read_record
from rlds_hub.storage.reader import decoder_for


class RecordLocator:
    """Reads single episodes' arrays through the core's random-access record read."""

    def read(self, dataset: RLDSDataset, split: str, index: int,
             keys: Sequence[str] | None) -> dict[str, np.ndarray]:
        """Flat arrays of episode ``index`` of ``split`` (only ``keys``; None: every leaf).

        Raises:
          ShardError: the shard is missing, truncated or corrupt (file and byte named), or
            the record does not decode.
        """
        record = read_record(dataset, split, index)
        try:
            values, _ = self._decoder(dataset, keys).decode_episode(record.data)
        except (ParseError, ImageDecodeError) as e:
            raise ShardError(f"{record.shard}: episode {index} (record {record.position}) "
                             f"does not decode: {e}") from e
        return {key: np.array(value) for key, value in values.items()}  # own the memory

    @staticmethod
    def _decoder(dataset: RLDSDataset, keys: Sequence[str] | None) -> EpisodeDecoder:
        """The decoder of ``keys``, kept with the opened dataset."""
        key = ("rlds_hub.server decoder", None if keys is None else tuple(keys))
        decoder = dataset.cache.get(key)
        if decoder is None:
            decoder = dataset.cache[key] = decoder_for(dataset, keys)
        return decoder
