"""One episode's arrays for a route: the core reads only that episode's record
(:func:`rlds_hub.storage.read_record`: a TFRecord shard's record offsets come from its
headers, cached per file; both CRCs are checked) and its decoder decodes it. The decoder of
each set of keys is kept with the opened dataset. ``benchmarks/server_load.py`` measures the
read against reading the whole shard.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rlds_hub.format.decode import ParseError
from rlds_hub.format.images import ImageDecodeError
from rlds_hub.storage import RLDSDataset, ShardError, read_record
from rlds_hub.storage.reader import cached_decoder


class RecordLocator:
    """Reads single episodes' arrays through the core's random-access record read."""

    def read(
        self, dataset: RLDSDataset, split: str, index: int, keys: Sequence[str] | None
    ) -> dict[str, np.ndarray]:
        """Flat arrays of episode ``index`` of ``split`` (only ``keys``; None: every leaf).

        Raises:
          ShardError: the shard is missing, truncated or corrupt (file and byte named), or
            the record does not decode.
        """
        record = read_record(dataset, split, index)
        try:
            values, _ = cached_decoder(dataset, keys).decode_episode(record.data)
        except (ParseError, ImageDecodeError) as e:
            raise ShardError(
                f"{record.shard}: episode {index} (record {record.position}) does not decode: {e}"
            ) from e
        return {key: np.array(value) for key, value in values.items()}  # own the memory
