"""The running service: settings, the index database, the indexer, the episode reader and
the background scans, shared by every request of one process."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from rlds_hub.server.core.cache import LRUCache
from rlds_hub.server.core.config import Settings
from rlds_hub.server.core.limits import ByteBudget, QueryPool
from rlds_hub.server.index import database
from rlds_hub.server.index.facts import ProgressFactory, no_progress
from rlds_hub.server.index.indexer import Indexer, ScanReport
from rlds_hub.server.index.queries import CountCache, ResultSets
from rlds_hub.server.reading.episodes import EpisodeReader

log = logging.getLogger("rlds_hub.server")


def _weigh(value: Any) -> int:
    return len(value) if isinstance(value, bytes) else 4096


class Service:
    """What one server process holds. ``start`` migrates the index and starts the scans;
    ``stop`` ends them."""

    def __init__(self, settings: Settings, progress: ProgressFactory = no_progress):
        self.settings = settings
        self.database_url = settings.resolved_database_url()
        self.engine = database.make_engine(self.database_url)
        # requests' reads: every statement is stopped after query_timeout seconds
        self.query_engine = database.make_engine(
            self.database_url, statement_timeout=settings.query_timeout or None
        )
        self.query_pool = QueryPool(settings.query_threads, settings.query_queue)
        self.bulk_budget = ByteBudget(settings.bulk_budget_bytes)
        self.indexer = Indexer(
            self.engine,
            settings.roots,
            compute_statistics=settings.compute_statistics,
            compute_checksums=settings.compute_checksums,
            progress=progress,
        )
        self.reader = EpisodeReader(settings.dataset_cache, settings.episode_cache_bytes)
        self.counts = CountCache()
        self.results = ResultSets(settings.page_cache_bytes)
        # Answers and index rows kept per state of a dataset row (keys hold its token).
        self.pages: LRUCache[Any] = LRUCache(settings.page_cache_bytes, _weigh)
        # name -> (what the routes need of the dataset's row, when it was read)
        self.states: dict[str, tuple[Any, float]] = {}
        self._epoch = 0
        self.scans = 0
        self.last_scan: dict[str, Any] | None = None
        self.scan_error: str | None = None
        self._scan_lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.initial_scan_done = threading.Event()

    def fresh_state(self, name: str) -> Any:
        """The dataset state read less than ``state_seconds`` ago, or None (no I/O)."""
        entry = self.states.get(name)
        if entry is None or time.monotonic() - entry[1] >= self.settings.state_seconds:
            return None
        return entry[0]

    def remember_state(self, name: str, state: Any) -> None:
        if len(self.states) > 10_000:
            self.states.clear()
        self.states[name] = (state, time.monotonic())

    def forget_states(self) -> None:
        """After this process changed the index: read it again on the next request."""
        self.states.clear()
        self._epoch += 1

    def list_key(self, *parts: Any) -> tuple | None:
        """A cache key for an answer that depends on the whole index (the dataset list):
        valid for ``state_seconds``, and never across this process's own changes. None when
        such answers are not to be kept (``state_seconds`` is 0)."""
        seconds = self.settings.state_seconds
        if seconds <= 0:
            return None
        return ("list", self._epoch, int(time.monotonic() / seconds), *parts)

    @property
    def writes_enabled(self) -> bool:
        return self.settings.token is not None and bool(self.settings.token.get_secret_value())

    def start(self) -> None:
        database.migrate(self.engine)
        if self.settings.scan_on_start:
            self._spawn(self._initial_scan, "rlds-hub-scan")
        else:
            self.initial_scan_done.set()
        if self.settings.scan_interval > 0:
            self._spawn(self._periodic_scans, "rlds-hub-rescan")

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self.engine.dispose()
        self.query_engine.dispose()

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _initial_scan(self) -> None:
        try:
            self.scan()
        finally:
            self.initial_scan_done.set()

    def _periodic_scans(self) -> None:
        while not self._stopping.wait(self.settings.scan_interval):
            self.scan()

    def scan(self) -> ScanReport | None:
        """Scans the roots (one scan at a time per process); None if the scan failed."""
        with self._scan_lock:
            try:
                report = self.indexer.scan()
            except Exception as e:  # the database went away: keep serving, say so
                self.scan_error = database.describe_error(e)  # no SQL text
                log.exception("scan failed")
                return None
            self.scan_error = None
            self.forget_states()
            for outcome in report.outcomes:
                if outcome.action in ("indexed", "removed", "failed"):
                    self.reader.forget(outcome.path)
            self.record_scan(summarize_scan(report))
            return report

    def record_scan(self, summary: dict[str, Any]) -> None:
        """Counts a finished scan (also one ``rlds-hub serve`` made before the app started)."""
        self.scans += 1
        self.last_scan = summary


def summarize_scan(report: ScanReport) -> dict[str, Any]:
    """What /readyz shows of a scan."""
    return {
        "finished": time.time(),
        "seconds": report.seconds,
        "indexed": report.count("indexed"),
        "unchanged": report.count("unchanged"),
        "failed": report.count("failed"),
        "removed": report.count("removed"),
    }
