"""Reading an indexed episode for a route: 404 for what the index does not hold, 409 (and
the dataset's state recorded in the index) for what the disk no longer gives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection

from rlds_hub.format.plan import Plan
from rlds_hub.server.core.errors import ApiError
from rlds_hub.server.index import queries
from rlds_hub.server.index.models import STATUS_ERROR, STATUS_MISSING
from rlds_hub.server.reading.episodes import DatasetUnavailable
from rlds_hub.server.service import Service
from rlds_hub.storage import RLDSDataset


def episode_row(connection: Connection, row: Any, split: str, index: int) -> Any:
    found = queries.episode(connection, row.id, split, index)
    if found is None:
        count = (row.splits or {}).get(split, {}).get("episodes", 0)
        raise ApiError(404, "episode_not_found",
                       f"dataset {row.name!r} split {split!r} has {count} episodes; there is "
                       f"no episode {index}")
    return found


def _unavailable(service: Service, row: Any, error: DatasetUnavailable) -> ApiError:
    state = STATUS_MISSING if error.code == "dataset_missing" else STATUS_ERROR
    service.indexer.mark(row.id, state, error.message)
    service.reader.forget(row.path)
    return ApiError(409, error.code, error.message)


def open_dataset(service: Service, row: Any) -> RLDSDataset:
    try:
        return service.reader.dataset(row)
    except DatasetUnavailable as e:
        raise _unavailable(service, row, e) from e


def read_arrays(service: Service, row: Any, split: str, index: int,
                keys: Sequence[str] | None) -> dict[str, np.ndarray]:
    """The episode's flat arrays (cached per process)."""
    try:
        return service.reader.episode(row, split, index, keys)
    except DatasetUnavailable as e:
        raise _unavailable(service, row, e) from e


def dataset_plan(service: Service, row: Any) -> Plan:
    return open_dataset(service, row).plan
