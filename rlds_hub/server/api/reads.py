"""Reading an indexed episode for a route (in a worker thread): 404 for what the index does
not hold, 409 (and the dataset's state recorded in the index) for what the disk no longer
gives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rlds_hub.format.plan import Plan
from rlds_hub.server.api.deps import IndexedDataset, connect, find_dataset, resolve_split
from rlds_hub.server.core.errors import ApiError
from rlds_hub.server.index import queries
from rlds_hub.server.index.models import STATUS_ERROR, STATUS_MISSING
from rlds_hub.server.reading.episodes import DatasetUnavailable
from rlds_hub.server.service import Service


def locate(
    service: Service, name: str, split: str | None, index: int
) -> tuple[IndexedDataset, str, Any]:
    """(dataset, split, episode row) of an episode the index holds; 404 otherwise."""
    with connect(service) as connection:
        dataset = find_dataset(service, connection, name)
        chosen = resolve_split(dataset, split)
        found = queries.episode(connection, dataset.id, chosen, index)
    if found is None:
        count = dataset.splits.get(chosen, {}).get("episodes", 0)
        raise ApiError(
            404,
            "episode_not_found",
            f"dataset {name!r} split {chosen!r} has {count} episodes "
            f"(0..{count - 1}); there is no episode {index}",
        )
    return dataset, chosen, found


def _unavailable(service: Service, dataset: IndexedDataset, error: DatasetUnavailable) -> ApiError:
    state = STATUS_MISSING if error.code == "dataset_missing" else STATUS_ERROR
    service.indexer.mark(dataset.id, state, error.message)
    service.reader.forget(dataset.path)
    service.forget_states()
    return ApiError(409, error.code, error.message)


def plan(service: Service, dataset: IndexedDataset) -> Plan:
    try:
        return service.reader.dataset(dataset).plan
    except DatasetUnavailable as e:
        raise _unavailable(service, dataset, e) from e


def read_arrays(
    service: Service, dataset: IndexedDataset, split: str, index: int, keys: Sequence[str] | None
) -> dict[str, np.ndarray]:
    """The episode's flat arrays (cached per process)."""
    try:
        return service.reader.episode(dataset, split, index, keys)
    except DatasetUnavailable as e:
        raise _unavailable(service, dataset, e) from e
