"""Stage 1 of the loaders: shards read, episodes decoded and turned into items, in chunks.

A chunk is ``episodes_per_chunk`` consecutive episodes of the (per-epoch shuffled) shard
order, read with :mod:`rlds_hub.storage.reader` and decoded with
:mod:`rlds_hub.format.decode` — or sliced from the shards' cached columns
(:mod:`rlds_hub.data.columns`) — and turned into items — (n-step) transitions, windows or
single steps, by the index kernels of :mod:`rlds_hub.data.indices` — in a random order
seeded by ``(seed, chunk number)``. Transitions and windows are gathered a block of
``block_items`` at a time (``np.take`` per field), ``BLOCKS_AHEAD`` blocks ahead of the
consumer on two threads (NumPy releases the GIL): small blocks stay in the CPU caches and
reuse memory, where gathering a whole chunk at once wrote it all to fresh memory. A chunk's
first blocks are smaller (``first_block_items``, doubling up to ``block_items``), so its
first batches do not wait for a whole block; the fields that share an index look up a
block's rows once (:meth:`Deferred.gather`); and a pass's first chunk is shuffled ahead,
from the episode index, while the shards are opened (:meth:`ChunkSource._shuffle_ahead`).
Background
threads produce the chunks ahead of the consumer; the order of the chunks and blocks, and so
every batch, is the same whatever the threads' timing.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import queue
import threading
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.random import default_rng  # imported here: numpy loads it lazily (~10 ms)

from rlds_hub.data import indices
from rlds_hub.data.columns import CachedEpisode, ColumnCache, decode_cached
from rlds_hub.data.frame_blocks import EncodedFrames, FrameChunks, FrameRows
from rlds_hub.data.joined import JoinedColumns, joined_columns
from rlds_hub.data.lenient import Skipped, decode_skipping
from rlds_hub.data.step_items import step_items, usable_steps
from rlds_hub.format.decode import NUM_STEPS, EpisodeDecoder
from rlds_hub.format.plan import LeafKind, Plan
from rlds_hub.storage import files
from rlds_hub.storage.episodes import LAYOUT_OXE
from rlds_hub.storage.reader import EpisodeDecodeError, ShardReader, decode_records
from rlds_hub.storage.selection import Selection, ShardRead

# Gathers larger than this are split over two threads.
_PARALLEL_GATHER_BYTES = 1 << 20
# Episodes made ahead of the consumer, at most (at least one chunk): what is in flight is
# bounded in episodes, not chunks, since a chunk holds a whole shuffle buffer.
AHEAD_EPISODES = 128
# Deferred gathers are made this many items at a time (rounded to whole batches), a few
# blocks ahead of the consumer: small outputs stay in the CPU caches and reuse memory.
BLOCK_ITEMS = 8192
BLOCKS_AHEAD = 2
# Single steps' fields whose rows are this large (camera frames) are gathered block by block.
_DEFERRED_ROW_BYTES = 4096
MASK = "mask"
NEXT_OBSERVATION = "next_observation"
DISCOUNT = "discount"
_STEPS = "steps/"


@dataclasses.dataclass(frozen=True)
class ItemSpec:
    """What items to make: transitions (``n_step``, ``gamma``), windows (``size``,
    ``shift``, ``pad``) or single steps (``history``, ``action_chunk``), with which fields in
    the output (step fields; for steps also episode fields)."""

    kind: str  # "transitions", "windows" or "steps"
    outputs: tuple[str, ...]
    n_step: int = 1
    gamma: float = 1.0
    size: int = 1
    shift: int = 1
    pad: bool = True
    layout: str = "rlds"  # the dataset's last-step layout (storage.episodes)
    history: int = 0
    action_chunk: int = 1
    skip_corrupt: bool = False  # steps only: skip (and count) steps whose frame is corrupt


class ChunkSource:
    """Produces chunks of items (flat keys without ``steps/``) from a selection."""

    def __init__(
        self,
        selection: Selection,
        plan: Plan,
        items: ItemSpec,
        *,
        episodes_per_chunk: int,
        shuffle: bool,
        seed: int,
        num_epochs: int | None,
        ahead: int | None = None,
        workers: int = 2,
        block_items: int = BLOCK_ITEMS,
        first_block_items: int | None = None,
    ):
        self.selection = selection
        self.items = items
        self._decoder = EpisodeDecoder(plan)
        self._fields = list(plan.step_leaves)
        self._episode_fields = list(plan.episode_leaves)
        self._warned_truncated = False
        self._per_chunk = episodes_per_chunk
        self._shuffle = shuffle
        self._seed = seed
        self._num_epochs = num_epochs
        self._ahead = ahead or max(1, AHEAD_EPISODES // episodes_per_chunk)
        self._workers = workers
        self._block_items = block_items
        self._first_block_items = min(first_block_items or block_items, block_items)
        self._frames = any(leaf.kind == LeafKind.IMAGE for leaf in plan.leaves)
        # camera frames decoded where the items need them (rlds_hub.data.frame_blocks)
        self._frame_chunks = (
            FrameChunks(plan, str(selection.dataset.path)) if self._frames else None
        )
        self._gather_pool: ThreadPoolExecutor | None = None
        self.skipped = Skipped()
        # decoded columns cached on disk (rlds_hub.data.columns); not with skip_corrupt,
        # which needs the records to find the bad frames
        self._cache = None if items.skip_corrupt else ColumnCache(selection.dataset, plan)
        self._joined: JoinedColumns | None = None
        self._joined_tried = False
        # first chunks' orders computed ahead and used (_shuffle_ahead); of them, mapped
        # onto joined transitions ahead too
        self.orders_ahead = self.mapped_ahead = 0

    def reseed(self, seed: int) -> None:
        """Passes started after this call shuffle with ``seed`` (call it between passes: one
        under way reads the seed as it goes)."""
        self._seed = seed

    # ---- records ---------------------------------------------------------------------------

    def _episode_groups(self) -> Iterator[list[Any]]:
        """Lists of ``episodes_per_chunk`` episode records, epoch after epoch."""
        reads = self.selection.shard_reads()
        reader = ShardReader(self.selection.dataset)
        epoch = 0
        group: list[Any] = []
        joined = self._joined_columns(reads)
        while self._num_epochs is None or epoch < self._num_epochs:
            order = range(len(reads))
            if self._shuffle:
                order = default_rng([self._seed, epoch]).permutation(len(reads))
            reader.plan([reads[i] for i in order])  # remote shards fetched ahead
            for i in order:
                if joined is not None:
                    columns = joined.shards[reads[i].path]
                elif self._cache is not None:
                    columns = self._cache.columns(reads[i])
                else:
                    columns = None
                if columns is not None:
                    episodes = self._cache.episodes(reads[i], columns)
                else:
                    episodes = reader.records(reads[i])
                for episode in episodes:
                    group.append(episode)
                    if len(group) == self._per_chunk:
                        yield group
                        group = []
            epoch += 1
        if group:
            yield group

    def _joined_columns(self, reads: Sequence[Any]) -> JoinedColumns | None:
        """The split-level columns of transitions' shards (rlds_hub.data.joined), once."""
        if not self._joined_tried:
            self._joined_tried = True
            if self._cache is not None and self.items.kind == "transitions":
                self._joined = joined_columns(self._cache, reads)
        return self._joined

    # ---- items -----------------------------------------------------------------------------

    def make_items(
        self, records: Sequence[Any], chunk: int, shuffled: Future | None = None
    ) -> dict[str, Any]:
        """One chunk's items, in random order if shuffling: arrays, and for transitions and
        windows :class:`Deferred` gathers (made a block at a time as the consumer goes).
        ``shuffled``: the chunk's order computed ahead (:meth:`_shuffle_ahead`)."""
        joined = self._one_step_joined(records, chunk, shuffled)
        if joined is not None:
            return joined
        bad = None
        if self.items.skip_corrupt:
            decoded, bad, records, reports, frames = decode_skipping(
                self._decoder, records, str(self.selection.dataset.path)
            )
            if reports:
                self.skipped.add(frames=frames, episodes=len(reports) - frames, reports=reports)
        else:
            try:
                # single steps decode their frames block by block, straight into batches
                single = self.items.kind == "steps" and not self.items.history
                decoded = self._decode(records, frames_encoded=single)
            except EpisodeDecodeError as e:  # name the dataset too: a loader may read several
                raise EpisodeDecodeError(f"{self.selection.dataset.path}: {e}") from None
        lengths = decoded[NUM_STEPS]
        steps = {f.key[len(_STEPS) :]: decoded[f.key] for f in self._fields}
        rng = default_rng([self._seed, chunk]) if self._shuffle else None
        spec = self.items
        if DISCOUNT in spec.outputs and DISCOUNT not in steps:  # the dataset has none
            steps[DISCOUNT] = indices.missing_discounts(
                lengths, steps["is_terminal"], final_transition=spec.layout == LAYOUT_OXE
            )
        if spec.kind == "steps":
            episode_fields = {f.key: decoded[f.key] for f in self._episode_fields}
            episode_ids = np.fromiter((r.index for r in records), np.int64, len(records))
            count = int(lengths.sum())
            order = self._order(chunk, count, shuffled) if rng is not None else None
            if bad is not None and bad.any():
                order = np.arange(len(bad)) if order is None else order
                keep = usable_steps(bad, lengths, order, spec.history)
                self.skipped.add(steps=int((~keep).sum()))
                order = order[keep]
            frames = self._frame_chunks
            take = _deferring_frames(self._take, frames) if frames is not None else self._take
            return step_items(steps, episode_fields, lengths, episode_ids, spec, order, take)
        if spec.kind == "windows":
            count = int(indices.window_counts(lengths, spec.size, spec.shift, spec.pad).sum())
            order = rng.permutation(count) if rng is not None else None
            found = indices.window_indices(lengths, spec.size, spec.shift, spec.pad, order)
            mask = found[MASK]
            out = {}
            for key, value in steps.items():
                if _requested(key, spec.outputs):
                    out[key] = Deferred(value, found["index"], mask)
            out[MASK] = mask
            return out
        final = spec.layout == LAYOUT_OXE
        if final:
            self._warn_truncated(lengths, steps["is_terminal"])
        count = int(np.sum(lengths if final else np.maximum(lengths - 1, 0)))
        order = self._order(chunk, count, shuffled) if rng is not None else None
        found = indices.transition_indices(
            lengths,
            steps["reward"],
            steps["discount"],
            steps["is_terminal"],
            spec.n_step,
            spec.gamma,
            order,
            final_transition=final,
        )
        out = {"reward": found["reward"], "discount": found["discount"]}
        for key, value in steps.items():
            field = key.split("/")[0]
            if field in ("reward", "discount") or not _requested(key, spec.outputs):
                continue
            out[key] = Deferred(value, found["source"])
            if field == "observation":
                out[NEXT_OBSERVATION + key[len("observation") :]] = Deferred(value, found["next"])
        return out

    def _one_step_joined(
        self, records: Sequence[Any], chunk: int, shuffled: Future | None = None
    ) -> dict[str, Any] | None:
        """One-step transitions (``rlds`` layout) of episodes all in split-level joined
        columns, as gathers straight from them and their precomputed transitions (no copy of
        the chunk's columns, no index building but the shuffle); None otherwise. The batches
        are those of the general path: the chunk's transitions are mapped to the joined ones
        episode by episode, then permuted by the same random order."""
        spec = self.items
        if spec.kind != "transitions" or spec.n_step != 1 or spec.layout == LAYOUT_OXE:
            return None
        if not records or not isinstance(records[0], CachedEpisode):
            return None
        base = records[0].columns.base
        if base is None or base.transitions is None:
            return None
        runs: list[list[int]] = []  # [first, end) joined episodes
        for record in records:
            if not isinstance(record, CachedEpisode) or record.columns.base is not base:
                return None
            episode = record.columns.base_episode + record.position
            if runs and runs[-1][1] == episode:
                runs[-1][1] += 1
            else:
                runs.append([episode, episode + 1])
        lengths = base.lengths
        starts, total = base.transition_starts, len(base.transitions["source"])
        bounds = [
            (
                int(starts[a]),
                int(starts[b - 1] + max(lengths[b - 1] - 1, 0)),
            )
            for a, b in runs
        ]
        count = sum(hi - lo for lo, hi in bounds)
        ahead = shuffled.result() if shuffled is not None else None
        if self._shuffle and ahead is not None and ahead.bounds == bounds:
            order = ahead.mapped  # mapped too, computed ahead from the same runs
            self.orders_ahead += 1
            self.mapped_ahead += 1
        elif self._shuffle:
            order = self._order(chunk, count, shuffled)
            if bounds != [(0, total)]:
                order = _runs(bounds)[order]
        else:
            order = np.concatenate([np.arange(lo, hi) for lo, hi in bounds])
        source = base.transitions["source"]
        out: dict[str, Any] = {
            "reward": Deferred(base.transitions["reward"], order),
            "discount": Deferred(base.transitions["discount"], order),
        }
        for leaf in self._fields:
            key = leaf.key[len(_STEPS) :]
            field = key.split("/")[0]
            if field in ("reward", "discount") or not _requested(key, spec.outputs):
                continue
            values = base.arrays[leaf.key]
            out[key] = Deferred(values, order, via=source)
            if field == "observation":  # the next step's row: the same gather, one row on
                out[NEXT_OBSERVATION + key[len("observation") :]] = Deferred(
                    values[1:], order, via=source
                )
        return out

    def _order(self, chunk: int, count: int, shuffled: Future | None) -> np.ndarray:
        """The random order of a chunk of ``count`` items: ``permutation(count)`` of the
        generator seeded ``(seed, chunk)`` — the one computed ahead if its count is this."""
        if shuffled is not None:
            ahead = shuffled.result()
            if ahead is not None and ahead.count == count:
                self.orders_ahead += 1
                return ahead.order
        return default_rng([self._seed, chunk]).permutation(count)

    def _shuffle_ahead(self, pool: ThreadPoolExecutor) -> Future | None:
        """The first chunk's order, started on ``pool`` before its records are read.

        A pass's first chunk waits for its shuffle (a permutation of all its items: ~3 ms
        for 200,000) after the shards are opened and their columns checked; its count is
        known before, from the episode index (``episodes.jsonl``) and the order of the
        shards, so it is computed meanwhile — for one-step transitions from joined columns
        (:meth:`_one_step_joined`) mapped onto the joined transitions too. Each result is
        used only where the chunk's count (and runs of joined episodes) are the ones computed
        (:meth:`_order`): a missing or stale index, skipped episodes or windows only cost
        the work done ahead. None where there is nothing to compute."""
        spec = self.items
        if not self._shuffle or spec.kind == "windows":
            return None
        dataset = self.selection.dataset
        if files.is_remote(dataset.path) and "episode_index" not in vars(dataset):
            return None  # not a request (of unknown latency) that the first chunk waits on
        seed, per_chunk, epochs = self._seed, self._per_chunk, self._num_epochs
        every_step = spec.kind == "steps" or spec.layout == LAYOUT_OXE
        joined = spec.kind == "transitions" and spec.n_step == 1 and not every_step
        joined = joined and self._cache is not None  # else no joined columns to map onto

        def first() -> _FirstChunk | None:
            rows = self._index_steps
            reads = self.selection.shard_reads()
            if rows is None or not reads:
                return None
            taken: list[tuple[ShardRead, int]] = []  # the first chunk's episodes, in order
            epoch = 0
            while len(taken) < per_chunk and (epochs is None or epoch < epochs):
                for i in default_rng([seed, epoch]).permutation(len(reads)):
                    taken.extend((reads[i], k) for k in range(reads[i].take))
                    if len(taken) >= per_chunk:
                        break
                epoch += 1
            taken = taken[:per_chunk]
            lengths = rows[[r.first + k for r, k in taken]]
            count = int(np.sum(lengths if every_step else np.maximum(lengths - 1, 0)))
            order = default_rng([seed, 0]).permutation(count)
            if not joined:
                return _FirstChunk(count, order)
            bounds, total = _joined_runs(rows, reads, taken)
            mapped = order if bounds == [(0, total)] else _runs(bounds)[order]
            return _FirstChunk(count, order, bounds, mapped)

        def guarded() -> _FirstChunk | None:
            try:
                return first()
            except Exception:  # an index without the fields: the chunk shuffles itself
                return None

        return pool.submit(guarded)

    @functools.cached_property
    def _index_steps(self) -> np.ndarray | None:
        """Each episode's step count in the split, from the episode index (read once; None
        without one)."""
        rows = self.selection.dataset.episode_rows(self.selection.split)
        return None if rows is None else np.array([r["num_steps"] for r in rows], np.int64)

    def _decode(self, records: Sequence[Any], frames_encoded: bool = False) -> dict[str, Any]:
        """Decoded episodes, from cached columns where they are cached (runs of each kind
        decoded together, then joined in order); camera frames of records that are not
        cached decoded by :class:`FrameChunks` (left encoded if ``frames_encoded``)."""
        if self._frame_chunks is not None and not any(
            isinstance(record, CachedEpisode) for record in records
        ):
            return self._frame_chunks.decode(records, keep_encoded=frames_encoded)
        runs: list[list[Any]] = []
        for record in records:
            cached = isinstance(record, CachedEpisode)
            if runs and isinstance(runs[-1][0], CachedEpisode) == cached:
                runs[-1].append(record)
            else:
                runs.append([record])
        parts = [
            decode_cached(self._decoder.plan, run)
            if isinstance(run[0], CachedEpisode)
            else decode_records(self._decoder, run)
            for run in runs
        ]
        if len(parts) == 1:
            return parts[0]
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}

    def _take(self, values: np.ndarray, index: np.ndarray) -> np.ndarray:
        """``np.take(values, index, axis=0)``, in two halves on two threads when large."""
        if values.dtype == object or index.size * values[:1].nbytes < _PARALLEL_GATHER_BYTES:
            return np.take(values, index, axis=0)
        if self._gather_pool is None:
            self._gather_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rlds-gather")
        out = np.empty((*index.shape, *values.shape[1:]), values.dtype)
        half = len(index) // 2
        # mode="clip" writes straight into ``out`` (indices come from the kernels: in range)
        parts = [
            self._gather_pool.submit(np.take, values, index[lo:hi], 0, out[lo:hi], "clip")
            for lo, hi in ((0, half), (half, len(index)))
        ]
        for part in parts:
            part.result()
        return out

    def _warn_truncated(self, lengths: np.ndarray, is_terminal: np.ndarray) -> None:
        if self._warned_truncated or not len(lengths):
            return
        last = np.cumsum(lengths)[lengths > 0] - 1
        truncated = int((~is_terminal.reshape(-1)[last].astype(bool)).sum())
        if truncated:
            self._warned_truncated = True
            warnings.warn(
                f"{self.selection.dataset.path} follows the Open X-Embodiment layout (the last "
                f"step holds a real action and reward) and {truncated} of {len(last)} episodes "
                "of the first chunk are truncated, not terminated: their final transition has "
                "no later observation, so it bootstraps from its own observation (next "
                "observation = observation). Filter with terminated=True to leave them out.",
                stacklevel=2,
            )

    # ---- the producer ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        """Chunks of items, in order, made ``ahead`` chunks in advance.

        A reader thread reads the shards (file reads and CRCs release the GIL) and hands
        groups of records to ``workers`` threads that decode them and make the items; the
        consumer takes the results in chunk order. With two workers, one decodes (Python,
        holding the GIL) while the other gathers items (NumPy, releasing it).
        """
        futures: queue.Queue = queue.Queue()
        # Chunks being made or made and not yet taken: at most ``ahead`` (a slot is taken
        # before the next group of records is read, and given back when the consumer takes
        # the chunk), so memory holds the consumer's chunk and ``ahead`` more.
        slots = threading.Semaphore(self._ahead)
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="rlds-items")

        def slot() -> bool:
            while not stop.is_set():
                if slots.acquire(timeout=0.1):
                    return True
            return False

        shuffled = self._shuffle_ahead(pool)  # while the reader opens the shards

        def read() -> None:
            nonlocal shuffled
            try:
                groups = self._episode_groups()
                chunk = 0
                while slot():
                    group = next(groups, None)
                    if group is None:
                        futures.put(("done", None))
                        return
                    ahead, shuffled = shuffled, None  # held by the first chunk's items only
                    futures.put(("items", pool.submit(self.make_items, group, chunk, ahead)))
                    group = None
                    chunk += 1
            except BaseException as e:  # handed to the consumer
                futures.put(("error", e))

        thread = threading.Thread(target=read, name="rlds-reader", daemon=True)
        thread.start()
        try:
            while True:
                kind, value = futures.get()
                if kind == "items":
                    items, value = value.result(), None
                    slots.release()
                    yield from self._blocks(items)
                    items = None  # the consumer has it: not held here while the next is made
                elif kind == "done":
                    return
                else:
                    raise value
        finally:
            stop.set()
            while thread.is_alive():
                try:
                    kind, value = futures.get_nowait()
                    if kind == "items":
                        value.cancel()
                except queue.Empty:
                    thread.join(timeout=0.05)
            pool.shutdown(wait=True, cancel_futures=True)
            if self._gather_pool is not None:
                self._gather_pool.shutdown(wait=True)
                self._gather_pool = None

    def _blocks(self, items: dict[str, Any]) -> Iterator[dict[str, np.ndarray]]:
        """A chunk's items, whole, or — when it holds :class:`Deferred` gathers — in
        consecutive blocks gathered ``BLOCKS_AHEAD`` blocks ahead on the gather threads."""
        if not any(isinstance(v, (Deferred, FrameRows)) for v in items.values()):
            yield items
            return
        size = len(next(iter(items.values())))
        if self._gather_pool is None:
            self._gather_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rlds-gather")
        bounds, lo, block = [], 0, self._first_block_items
        while lo < size:  # small blocks first: the consumer starts before a full block is made
            bounds.append((lo, min(lo + block, size)))
            lo, block = lo + block, min(2 * block, self._block_items)
        pending: collections.deque = collections.deque()
        for lo, hi in bounds:
            pending.append(self._gather_pool.submit(_gather_block, items, lo, hi))
            if len(pending) > BLOCKS_AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


@dataclasses.dataclass(frozen=True)
class _FirstChunk:
    """A pass's first chunk's order computed ahead (:meth:`ChunkSource._shuffle_ahead`):
    the permutation of its ``count`` items, and for one-step transitions from joined
    columns the ``bounds`` of its runs of joined transitions and the order ``mapped`` onto
    them."""

    count: int
    order: np.ndarray
    bounds: list[tuple[int, int]] | None = None
    mapped: np.ndarray | None = None


def _runs(bounds: Sequence[tuple[int, int]]) -> np.ndarray:
    """The transitions of runs ``[lo, hi)``, in order."""
    return np.concatenate([np.arange(lo, hi) for lo, hi in bounds])


def _joined_runs(
    rows: np.ndarray, reads: Sequence[ShardRead], taken: Sequence[tuple]
) -> tuple[list[tuple[int, int]], int]:
    """The runs of joined transitions that the episodes ``taken`` ((read, k) pairs, in
    chunk order) cover, as :meth:`ChunkSource._one_step_joined` finds them from the joined
    columns (:mod:`rlds_hub.data.joined`: the selection's shards whole, in the order of
    their first read), here from ``rows``, the split's step counts by episode; and the
    joined transitions' total."""
    base: dict[str, int] = {}  # each shard's first episode in the joined columns
    parts: list[np.ndarray] = []
    joined = 0
    for read in reads:
        if read.path not in base:
            base[read.path] = joined
            first = read.first - read.skip  # the shard's first episode in the split
            parts.append(rows[first : first + read.shard_episodes])
            joined += read.shard_episodes
    counts = np.maximum(np.concatenate(parts) - 1, 0)
    starts = np.cumsum(counts) - counts
    runs: list[list[int]] = []
    for read, k in taken:
        episode = base[read.path] + read.skip + k
        if runs and runs[-1][1] == episode:
            runs[-1][1] += 1
        else:
            runs.append([episode, episode + 1])
    bounds = [(int(starts[a]), int(starts[b - 1] + counts[b - 1])) for a, b in runs]
    return bounds, int(counts.sum())


@dataclasses.dataclass(frozen=True)
class Deferred:
    """Rows ``values[index]``, gathered a block at a time by :meth:`ChunkSource.__iter__`."""

    values: np.ndarray
    index: np.ndarray
    real: np.ndarray | None = None  # where False, the rows are zero (b"" for strings)
    via: np.ndarray | None = None  # rows ``values[via[index]]``

    def __len__(self) -> int:
        return len(self.index)

    def gather(
        self, lo: int = 0, hi: int | None = None, rows: dict[Any, np.ndarray] | None = None
    ) -> np.ndarray:
        """Items ``lo:hi`` (default all); ``rows`` keeps a block's rows of ``values`` for
        the other fields that share the index (looked up once per block, not per field)."""
        key = (id(self.index), id(self.via))
        index = None if rows is None else rows.get(key)
        if index is None:
            index = self.index[lo:hi]
            if self.via is not None:
                index = np.take(self.via, index)
            if rows is not None:
                rows[key] = index
        gathered = np.take(self.values, index, axis=0)
        if self.real is not None:
            gathered[~self.real[lo:hi]] = b"" if gathered.dtype == object else 0
        return gathered


def _deferring_frames(take: Any, frames: FrameChunks) -> Any:
    """``take`` that leaves camera frames (encoded, or rows of >= ``_DEFERRED_ROW_BYTES``)
    as gathers made a block at a time (:meth:`FrameChunks.rows`): a chunk then holds its
    frames once, not once per step and history position, and each block of items is
    decoded or gathered as the consumer goes."""

    def gather(values: Any, index: np.ndarray) -> Any:
        if isinstance(values, EncodedFrames) or (
            values.dtype != object and values[:1].nbytes >= _DEFERRED_ROW_BYTES
        ):
            return frames.rows(values, index)
        return take(values, index)

    return gather


def _gather_block(items: dict[str, Any], lo: int, hi: int) -> dict[str, np.ndarray]:
    rows: dict[Any, np.ndarray] = {}  # the block's rows per index (Deferred.gather)
    return {
        key: value.gather(lo, hi, rows)
        if isinstance(value, Deferred)
        else value.gather(lo, hi)
        if isinstance(value, FrameRows)
        else value[lo:hi]
        for key, value in items.items()
    }


def _requested(key: str, fields: Sequence[str]) -> bool:
    return key.split("/")[0] in fields
