"""Indexing: scan the roots, (re-)index a dataset into the database, remove what vanished.

A dataset whose fingerprint (names, sizes and mtimes of its files) is unchanged is skipped
after one ``stat`` per file. A dataset is dropped only when its directory is gone (or became
a link); one whose ``dataset_info.json`` went missing keeps its name, registration and last
good rows, marked as damaged. Otherwise its facts are gathered first (statistics and
checksums may read the data), then one write transaction replaces its rows, streaming the
episode table in chunks: readers see the old index or the new one, never a mixture. Several
processes may index at once (PostgreSQL row locks, SQLite's write lock); a dataset another
process indexed meanwhile is left alone.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from rlds_hub.server.index import discovery, facts
from rlds_hub.server.index.database import write_connection
from rlds_hub.server.index.models import (
    STATUS_ERROR,
    STATUS_MISSING,
    STATUS_OK,
    DatasetRow,
    EpisodeRow,
    EpisodeValueRow,
    ExcludedPathRow,
)
from rlds_hub.storage import DatasetError, dataset_files, files, open_dataset
from rlds_hub.storage.episodes import table_plan

log = logging.getLogger("rlds_hub.server")
Action = Literal["indexed", "unchanged", "failed", "removed", "excluded"]
_DATASETS = DatasetRow.__table__
_EPISODES = EpisodeRow.__table__
_VALUES = EpisodeValueRow.__table__
_EXCLUDED = ExcludedPathRow.__table__


@dataclasses.dataclass
class Outcome:
    """What happened to one dataset directory."""

    name: str
    path: str
    action: Action
    episodes: int = 0
    seconds: float = 0.0
    error: str | None = None
    code: str | None = None  # why it failed: name_taken, dataset_unreadable


@dataclasses.dataclass
class ScanReport:
    outcomes: list[Outcome]
    seconds: float

    def count(self, action: Action) -> int:
        return sum(o.action == action for o in self.outcomes)


class NameTaken(ValueError):
    """The dataset name is used by another directory."""


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Indexer:
    """Writes the index of the datasets under ``roots`` into the database behind ``engine``."""

    def __init__(
        self,
        engine: Engine,
        roots: Sequence[discovery.Place],
        *,
        compute_statistics: bool = True,
        compute_checksums: bool = True,
        progress: facts.ProgressFactory = facts.no_progress,
    ):
        self.engine = engine
        self.roots = list(roots)
        self.compute_statistics = compute_statistics
        self.compute_checksums = compute_checksums
        self.progress = progress
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # ---- scanning ----------------------------------------------------------------------

    def scan(self) -> ScanReport:
        """Indexes every dataset under the roots (unchanged ones cost a ``stat`` per file),
        drops from the index the datasets whose directory is gone or became a link, and marks
        as damaged those whose directory no longer holds a dataset."""
        started = time.perf_counter()
        outcomes: list[Outcome] = []
        excluded = self._excluded()
        found: set[str] = set()
        for root in self.roots:
            for path in discovery.find_datasets(root):
                found.add(str(path))
                if str(path) in excluded:
                    outcomes.append(
                        Outcome(discovery.default_name(path, root), str(path), "excluded")
                    )
                    continue
                outcomes.append(self.index_path(path, root=root))
        outcomes += self._reconcile_unfound(found)
        report = ScanReport(outcomes, time.perf_counter() - started)
        log.info(
            "scan: %d indexed, %d unchanged, %d failed, %d removed in %.2f s",
            report.count("indexed"),
            report.count("unchanged"),
            report.count("failed"),
            report.count("removed"),
            report.seconds,
        )
        return report

    def _excluded(self) -> set[str]:
        with self.engine.connect() as connection:
            return set(connection.execute(select(_EXCLUDED.c.path)).scalars())

    def _reconcile_unfound(self, found: set[str]) -> list[Outcome]:
        """Indexed datasets the scan did not find: dropped if the directory is gone or is now
        a link (indexed paths are resolved), marked damaged (keeping name, registration and
        last good rows) if it is there without a dataset in it."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(
                    _DATASETS.c.id,
                    _DATASETS.c.name,
                    _DATASETS.c.path,
                    _DATASETS.c.status,
                    _DATASETS.c.error,
                )
            ).all()
        outcomes = []
        for row in rows:
            if row.path in found:
                continue
            if files.is_remote(row.path):
                outcome = self._reconcile_remote(row)
                if outcome is not None:
                    outcomes.append(outcome)
                continue
            path = Path(row.path)
            if os.path.realpath(path) != row.path or not path.is_dir():
                with write_connection(self.engine) as connection:
                    connection.execute(delete(_DATASETS).where(_DATASETS.c.id == row.id))
                outcomes.append(Outcome(row.name, row.path, "removed"))
                continue
            if (path / dataset_files.DATASET_INFO).is_file():
                continue  # not reached by the scan (hidden or deep): registered, left as is
            message = f"dataset {row.name!r}: " + dataset_files.missing_info_message(
                row.path, _names(path)
            )
            if row.status != STATUS_ERROR or row.error != message:
                log.warning("cannot index %s: %s", row.path, message)
                self.mark(row.id, STATUS_ERROR, message)
            outcomes.append(
                Outcome(row.name, row.path, "failed", error=message, code="dataset_unreadable")
            )
        return outcomes

    def _reconcile_remote(self, row: Any) -> Outcome | None:
        """A remote dataset the scan did not find: left as is if its ``dataset_info.json`` is
        there (registered, not reached), else dropped (object stores have no directories)."""
        if files.exists(files.join(row.path, dataset_files.DATASET_INFO)):
            return None
        with write_connection(self.engine) as connection:
            connection.execute(delete(_DATASETS).where(_DATASETS.c.id == row.id))
        return Outcome(row.name, row.path, "removed")

    # ---- one dataset -------------------------------------------------------------------

    def index_path(
        self,
        path: discovery.Place,
        *,
        root: discovery.Place | None = None,
        name: str | None = None,
        registered: bool = False,
        force: bool = False,
    ) -> Outcome:
        """Indexes the dataset directory ``path`` (resolved, inside ``root``)."""
        if root is None:
            path, root = discovery.inside_roots(path, self.roots)
        with self._lock(str(path)):
            return self._index(path, root, name, registered, force)

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _index(
        self,
        path: discovery.Place,
        root: discovery.Place,
        name: str | None,
        registered: bool,
        force: bool,
    ) -> Outcome:
        started = time.perf_counter()
        fingerprint = discovery.fingerprint(path)
        existing = self._row_by_path(str(path))
        if name is None:
            name = existing.name if existing is not None else discovery.default_name(path, root)
        if (
            existing is not None
            and not force
            and existing.fingerprint == fingerprint
            and existing.status == STATUS_OK
            and existing.name == name
        ):
            return Outcome(name, str(path), "unchanged", existing.num_episodes)
        try:
            within = None if isinstance(path, str) else os.path.realpath(root)
            dataset = open_dataset(path, within=within)
            gathered = facts.gather(
                dataset,
                compute_statistics=self.compute_statistics,
                compute_checksums=self.compute_checksums,
                progress=self.progress,
            )
            episodes = self._write(
                dataset, gathered, path, root, name, registered, fingerprint, force, started
            )
            if episodes is not None:
                self._analyze()
        except NameTaken as e:
            return Outcome(name, str(path), "failed", error=str(e), code="name_taken")
        except IntegrityError:
            # another process inserted this dataset (or its name) while we were reading
            return Outcome(name, str(path), "unchanged")
        except (DatasetError, ValueError, OSError) as e:
            message = str(e)
            log.warning("cannot index %s: %s", path, message)
            self._record_failure(path, root, name, registered, fingerprint, message)
            return Outcome(
                name,
                str(path),
                "failed",
                error=message,
                code="dataset_unreadable",
                seconds=time.perf_counter() - started,
            )
        if episodes is None:
            return Outcome(name, str(path), "unchanged")
        return Outcome(name, str(path), "indexed", episodes, time.perf_counter() - started)

    def _analyze(self) -> None:
        """Refreshes the planner's statistics, so filters and orderings pick good indexes
        (best effort: a busy database is analysed next time)."""
        try:
            with write_connection(self.engine) as connection:
                connection.exec_driver_sql(
                    "ANALYZE"
                    if self.engine.dialect.name == "sqlite"
                    else "ANALYZE episodes, episode_values"
                )
        except OperationalError as e:
            log.warning("cannot analyse the index: %s", e)

    def _row_by_path(self, path: str) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(select(_DATASETS).where(_DATASETS.c.path == path)).first()

    def _check_name(self, connection: Connection, name: str, path: str) -> None:
        discovery.check_name(name)
        other = connection.execute(
            select(_DATASETS.c.path).where(_DATASETS.c.name == name, _DATASETS.c.path != path)
        ).first()
        if other is not None:
            raise NameTaken(
                f"the name {name!r} is already used by {other.path}; register {path} with "
                "another name"
            )

    def _write(
        self,
        dataset: Any,
        gathered: facts.DatasetFacts,
        path: discovery.Place,
        root: discovery.Place,
        name: str,
        registered: bool,
        fingerprint: str,
        force: bool,
        started: float,
    ) -> int | None:
        """Replaces the dataset's rows in one transaction; the number of episodes written,
        or None if another process indexed this very content meanwhile."""
        plan = table_plan(dataset)
        with write_connection(self.engine) as connection:
            self._check_name(connection, name, str(path))
            current = connection.execute(
                select(_DATASETS).where(_DATASETS.c.path == str(path)).with_for_update()
            ).first()
            if (
                current is not None
                and not force
                and current.fingerprint == fingerprint
                and current.status == STATUS_OK
                and current.name == name
            ):
                return None
            values = {
                "name": name,
                "root": str(root),
                "status": STATUS_OK,
                "error": None,
                **{
                    f.name: getattr(gathered, f.name)
                    for f in dataclasses.fields(gathered)
                    if f.name not in ("metadata",)
                },
                "metadata": gathered.metadata,
                "fingerprint": fingerprint,
            }
            if current is None:
                dataset_id = connection.execute(
                    insert(_DATASETS)
                    .values(path=str(path), registered=registered, generation=1, **values)
                    .returning(_DATASETS.c.id)
                ).scalar_one()
            else:
                dataset_id = current.id
                connection.execute(delete(_VALUES).where(_VALUES.c.dataset_id == dataset_id))
                connection.execute(delete(_EPISODES).where(_EPISODES.c.dataset_id == dataset_id))
                connection.execute(
                    update(_DATASETS)
                    .where(_DATASETS.c.id == dataset_id)
                    .values(
                        registered=current.registered or registered,
                        generation=current.generation + 1,
                        **values,
                    )
                )
            episodes = steps = transitions = 0
            splits = dict(gathered.splits)
            for split in sorted(dataset.splits):
                split_steps = split_transitions = terminated = 0
                for chunk in facts.iter_row_chunks(dataset, split, plan, self.progress):
                    connection.execute(
                        insert(_EPISODES),
                        [facts.episode_record(dataset_id, split, row) for row in chunk],
                    )
                    value_rows = [
                        v
                        for row in chunk
                        for v in facts.value_records(
                            dataset_id, split, row, gathered.episode_fields
                        )
                    ]
                    if value_rows:
                        connection.execute(insert(_VALUES), value_rows)
                    split_steps += sum(int(r["num_steps"]) for r in chunk)
                    split_transitions += sum(int(r["num_transitions"]) for r in chunk)
                    terminated += sum(bool(r["terminated"]) for r in chunk)
                    episodes += len(chunk)
                splits[split] = {
                    **splits.get(split, {}),
                    "steps": split_steps,
                    "transitions": split_transitions,
                    "terminated": terminated,
                }
                steps += split_steps
                transitions += split_transitions
            connection.execute(
                update(_DATASETS)
                .where(_DATASETS.c.id == dataset_id)
                .values(
                    num_steps=steps,
                    num_transitions=transitions,
                    splits=splits,
                    indexed_at=now(),
                    index_seconds=time.perf_counter() - started,
                )
            )
        return episodes

    def _record_failure(
        self,
        path: discovery.Place,
        root: discovery.Place,
        name: str,
        registered: bool,
        fingerprint: str,
        message: str,
    ) -> None:
        """Marks the dataset as failed (keeping its last good rows), or adds a row saying so."""
        try:
            with write_connection(self.engine) as connection:
                current = connection.execute(
                    select(_DATASETS.c.id).where(_DATASETS.c.path == str(path))
                ).first()
                values = {
                    "status": STATUS_ERROR,
                    "error": message,
                    "fingerprint": fingerprint,
                    "indexed_at": now(),
                }
                if current is not None:
                    connection.execute(
                        update(_DATASETS).where(_DATASETS.c.id == current.id).values(**values)
                    )
                    return
                taken = connection.execute(
                    select(_DATASETS.c.id).where(_DATASETS.c.name == name)
                ).first()
                if taken is not None:
                    return
                connection.execute(
                    insert(_DATASETS).values(
                        name=name,
                        path=str(path),
                        root=str(root),
                        registered=registered,
                        generation=0,
                        **values,
                    )
                )
        except (IntegrityError, OperationalError) as e:
            log.warning("cannot record the failure of %s: %s", path, e)

    # ---- state changes the API makes ----------------------------------------------------

    def mark(self, dataset_id: int, status: str, message: str | None) -> None:
        """Sets a dataset's status after a read failed (best effort: never raises)."""
        try:
            with write_connection(self.engine) as connection:
                connection.execute(
                    update(_DATASETS)
                    .where(_DATASETS.c.id == dataset_id)
                    .values(status=status, error=message)
                )
        except (IntegrityError, OperationalError) as e:
            log.warning("cannot mark dataset %d as %s: %s", dataset_id, status, e)

    def remove(self, dataset_id: int, path: str) -> None:
        """Drops a dataset from the index and keeps scans from adding it back."""
        with write_connection(self.engine) as connection:
            connection.execute(delete(_DATASETS).where(_DATASETS.c.id == dataset_id))
            connection.execute(delete(_EXCLUDED).where(_EXCLUDED.c.path == path))
            connection.execute(insert(_EXCLUDED).values(path=path, removed_at=now()))

    def include(self, path: str) -> None:
        """Lets scans index ``path`` again (an explicit registration)."""
        with write_connection(self.engine) as connection:
            connection.execute(delete(_EXCLUDED).where(_EXCLUDED.c.path == path))


def _names(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


__all__ = ["STATUS_MISSING", "Indexer", "NameTaken", "Outcome", "ScanReport"]
