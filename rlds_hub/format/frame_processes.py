"""Camera frames decoded in worker processes, straight into shared memory.

Threads decode frames in parallel (libjpeg-turbo and PIL release the GIL), but a thread must
retake the GIL after every frame, and in a loader whose other threads run Python (reading,
shuffling, gathering) a decoding thread waits for it between frames. Here forked worker
processes decode instead, with no GIL of the caller's to wait for:

- :class:`Arena`: one anonymous shared mapping, made before the workers fork, from which the
  caller's frame arrays are carved (64-byte aligned, as XLA wants; a region is free again once
  every view of its array is gone). Workers write the pixels straight into those arrays.
- :meth:`FramePool.decode`: a call's encoded frames are copied into the arena (one copy a
  frame), split into ranges, and each range is queued on a worker as a small message (the
  leaf, the frames' offsets, the output's offset); the caller waits for its ranges, and a
  collector thread hands out the replies.

Errors: a frame that does not decode is reported by the worker (its position and reason) and
raised in the caller as :class:`~rlds_hub.format.images.FrameDecodeError`, as the threads
raise it; a worker that dies raises :class:`FrameWorkerError` in every caller waiting on the
pool (all its workers are stopped first, so none still writes to memory handed back; the next
call starts a new pool) — never a hang.

The loaders make their single steps' frame arrays with :func:`frames_array` and decode
with :func:`decode_into` (windows' and histories' chunk-sized arrays decode in threads:
they ran slower here, see docs/benchmarks.md). Where workers decode (:func:`shared_array`): ``$RLDS_HUB_DECODE_PROCESSES`` = ``1`` (always), ``0`` (never:
threads) or unset / ``auto``: where ``fork`` exists, with two or more decoding cores
(:func:`~rlds_hub.format.images.decode_threads`, one worker each), frames of at least
``MIN_FRAME_BYTES`` decoded (smaller frames decode in threads: the hand-off would cost more
than it saves), and not inside a daemonic process (a ``DataLoader`` worker may not have
children: it decodes in threads). Arrays that do not fit the arena
(``$RLDS_HUB_DECODE_ARENA_MB``, default 1024) are made in private memory and decoded in
threads. A forked child never uses its parent's workers.
"""

from __future__ import annotations

import bisect
import itertools
import mmap
import multiprocessing
import os
import signal
import threading
import warnings
import weakref
from collections.abc import Sequence
from concurrent.futures import Future
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any

import numpy as np

from rlds_hub.format.images import (
    FrameBuffers,
    FrameDecodeError,
    _decode_range,
    decode_frames,
    decode_threads,
)

if TYPE_CHECKING:
    from rlds_hub.format.plan import Leaf

PROCESSES_ENV = "RLDS_HUB_DECODE_PROCESSES"
ARENA_ENV = "RLDS_HUB_DECODE_ARENA_MB"
_ARENA_MB = 1024
# Frames smaller than this (decoded bytes) decode in threads (84x84x3 is 21 KB).
MIN_FRAME_BYTES = 48 * 1024
# Calls with fewer frames decode on the calling thread (images._PARALLEL_FRAMES).
MIN_FRAMES = 8
_ALIGN = 64  # XLA's alignment: JAX on the CPU uses the arrays uncopied
_POLL_S = 0.5  # how often an idle worker looks whether its parent is gone


class FrameWorkerError(RuntimeError):
    """A frame-decoding worker process died (or failed) while decoding."""


def processes_setting() -> str:
    """``$RLDS_HUB_DECODE_PROCESSES``: "1", "0" or "auto" (unset).

    Raises:
      ValueError: another value.
    """
    value = os.environ.get(PROCESSES_ENV, "") or "auto"
    if value not in ("1", "0", "auto"):
        raise ValueError(
            f"${PROCESSES_ENV} must be 1 (decode frames in worker processes), 0 (in threads) "
            f"or auto, got {value!r}"
        )
    return value


def arena_bytes() -> int:
    """The shared arena's size: ``$RLDS_HUB_DECODE_ARENA_MB`` MiB (default 1024).

    Raises:
      ValueError: not a whole number >= 1.
    """
    value = os.environ.get(ARENA_ENV, "")
    try:
        megabytes = int(value) if value else _ARENA_MB
    except ValueError:
        megabytes = 0
    if megabytes < 1:
        raise ValueError(f"${ARENA_ENV} must be a whole number of MiB >= 1, got {value!r}")
    return megabytes << 20


def wanted(frame_bytes: int, frames: int) -> bool:
    """Whether ``frames`` frames of ``frame_bytes`` decoded bytes each go to the workers."""
    setting = processes_setting()
    if setting == "0" or frames < MIN_FRAMES:
        return False
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    if multiprocessing.current_process().daemon:  # may not have children
        return False
    if setting == "1":
        return True
    return decode_threads() > 1 and frame_bytes >= MIN_FRAME_BYTES


class Arena:
    """Aligned arrays carved from one anonymous shared mapping (seen by forked children).

    A region is free again once every view of its array is gone; the memory touched stays
    mapped (reused without page faults), so the arena's size bounds what it holds.
    """

    def __init__(self, size: int):
        self.size = size
        self.memory = mmap.mmap(-1, size)  # MAP_SHARED | MAP_ANONYMOUS
        self.address = np.frombuffer(self.memory, np.uint8, count=1).ctypes.data
        self._free: list[tuple[int, int]] = [(0, size)]  # (offset, size), sorted by offset
        self._lock = threading.Lock()

    def array(self, shape: Sequence[int], dtype: Any) -> np.ndarray | None:
        """An uninitialised array in the arena, or None when no free region is large enough."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes == 0:
            return None
        size = -(-nbytes // _ALIGN) * _ALIGN
        with self._lock:
            for i, (offset, free) in enumerate(self._free):
                if free >= size:
                    if free == size:
                        del self._free[i]
                    else:
                        self._free[i] = (offset + size, free - size)
                    break
            else:
                return None
        # made from the mapping itself (not a slice of an array): every view of ``flat``
        # refers to it, so the region is freed only when nothing sees it any more
        flat = np.frombuffer(self.memory, np.uint8, count=nbytes, offset=offset)
        weakref.finalize(flat, self._release, offset, size).atexit = False
        return flat.view(dtype).reshape(shape)

    def _release(self, offset: int, size: int) -> None:
        with self._lock:
            free = self._free
            i = bisect.bisect(free, (offset, size))
            if i < len(free) and offset + size == free[i][0]:  # joins the next region
                size += free.pop(i)[1]
            if i and free[i - 1][0] + free[i - 1][1] == offset:  # and the previous one
                offset, size = free[i - 1][0], free[i - 1][1] + size
                free[i - 1] = (offset, size)
            else:
                free.insert(i, (offset, size))

    def offset(self, array: np.ndarray) -> int | None:
        """Where a C-contiguous ``array`` starts in the arena, or None if it is not in it."""
        if not array.flags.c_contiguous:
            return None
        offset = array.ctypes.data - self.address
        return offset if offset >= 0 and offset + array.nbytes <= self.size else None

    def free_bytes(self) -> int:
        """Bytes in free regions."""
        with self._lock:
            return sum(size for _, size in self._free)


class _Worker:
    def __init__(self, process: Any, conn: Any):
        self.process = process
        self.conn = conn
        self.send_lock = threading.Lock()
        self.queued = 0  # frames sent and not yet answered


class FramePool:
    """``workers`` forked processes that decode frames into :attr:`arena`.

    Callers queue ranges of frames on the workers' pipes (the least loaded worker first), so
    a worker goes from one range to the next without waiting for the caller's process to be
    scheduled; a collector thread hands each reply to the caller waiting for it, and stops
    the pool and fails every waiting caller when a worker dies.
    """

    def __init__(self, workers: int, size: int):
        import simplejpeg  # noqa: F401  (imported before forking, not in the children)
        from PIL import Image, PngImagePlugin  # noqa: F401

        self.arena = Arena(size)
        self.workers = workers
        self.broken: str | None = None
        self._all: list[_Worker] = []
        self._lock = threading.Lock()  # the pending tasks, queued counts and ``broken``
        self._pending: dict[int, tuple[Future, _Worker, int, int]] = {}
        self._ids = itertools.count()
        context = multiprocessing.get_context("fork")
        for _ in range(workers):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_serve,
                args=(theirs, ours, self.arena.memory, os.getpid()),
                name="rlds-frames",
                daemon=True,
            )
            with warnings.catch_warnings():  # JAX warns of any fork; the workers run no JAX
                warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
                process.start()
            theirs.close()
            self._all.append(_Worker(process, ours))
        self._collector = threading.Thread(
            target=self._collect, name="rlds-frames-collector", daemon=True
        )
        self._collector.start()

    @property
    def pids(self) -> list[int]:
        """The workers' process ids."""
        return [w.process.pid for w in self._all]

    def decode(self, blobs: Sequence[bytes | memoryview], leaf: Leaf, out: np.ndarray) -> bool:
        """The frames decoded into ``out`` (an array of the arena) by the workers; False,
        with nothing done, when ``out`` is not in the arena or the frames' bytes do not fit.

        Raises:
          FrameDecodeError: the first step whose frame does not decode (as the threads).
          FrameWorkerError: a worker died or failed (also one that died since the last call).
        """
        out_offset = self.arena.offset(out)
        count = len(blobs)
        if out_offset is None or count == 0 or len(out) != count:
            return False
        if self.broken:
            raise FrameWorkerError(self.broken)
        lengths = np.fromiter((len(b) for b in blobs), np.int64, count)
        ends = np.cumsum(lengths)
        inputs = self.arena.array((int(ends[-1]),), np.uint8)
        if inputs is None:
            return False
        view = memoryview(inputs)
        starts = ends - lengths
        for blob, lo, hi in zip(blobs, starts.tolist(), ends.tolist(), strict=True):
            view[lo:hi] = blob
        spans = np.stack([starts + self.arena.offset(inputs), lengths], axis=1)
        row = out.strides[0]
        size = max(MIN_FRAMES // 2, -(-count // (2 * self.workers)))
        futures = []
        try:
            for lo in range(0, count, size):
                hi = min(lo + size, count)
                task = (leaf, spans[lo:hi].tobytes(), out_offset + lo * row, hi - lo)
                futures.append(self._submit(task, lo))
        finally:  # every range sent is waited for: none still writes once this returns
            replies = [f.exception() or f.result() for f in futures]
        del view, inputs  # frees the input region
        failed = [r for r in replies if isinstance(r, BaseException)]
        if failed:
            raise failed[0]
        errors = [r for r in replies if r is not None]
        frames = [r for r in errors if r[0] == "frame"]
        if frames:
            _, position, reason = min(frames, key=lambda r: r[1])
            raise FrameDecodeError(position, reason)
        if errors:
            raise FrameWorkerError(f"a frame-decoding worker failed: {errors[0][2]}")
        return True

    def _submit(self, task: tuple, lo: int) -> Future:
        """``task`` queued on the least loaded worker; its future gives the reply (None, or
        an error with its position made absolute)."""
        future: Future = Future()
        with self._lock:
            if self.broken:
                raise FrameWorkerError(self.broken)
            worker = min(self._all, key=lambda w: w.queued)
            worker.queued += task[3]
            number = next(self._ids)
            self._pending[number] = (future, worker, task[3], lo)
        try:
            with worker.send_lock:
                worker.conn.send((number, *task))
        except OSError:
            self._fail(worker)
        return future

    def _collect(self) -> None:
        """The collector thread: replies to their futures; a dead worker fails the pool."""
        conns = {w.conn: w for w in self._all}
        sentinels = {w.process.sentinel: w for w in self._all}
        try:
            while not self.broken:
                ready = wait([*conns, *sentinels])
                for conn in [r for r in ready if r in conns]:
                    try:
                        number, reply = conn.recv()
                    except (EOFError, OSError):
                        self._fail(conns[conn])
                        return
                    with self._lock:
                        future, worker, frames, lo = self._pending.pop(number)
                        worker.queued -= frames
                    if reply is not None:
                        kind, position, reason = reply
                        reply = (kind, lo + position, reason)
                    future.set_result(reply)
                dead = [sentinels[r] for r in ready if r in sentinels]
                if dead:
                    self._fail(dead[0])
        except BaseException as e:  # never leave a caller waiting
            self._fail(None, f"the frame-decoding collector failed: {type(e).__name__}: {e}")

    def _fail(self, worker: _Worker | None, reason: str | None = None) -> None:
        """Stops every worker (none writes to the arena afterwards), marks the pool broken
        (``reason``, else why ``worker`` ended) and fails every waiting caller."""
        with self._lock:
            if self.broken:
                return
            if reason is None and worker is not None:
                worker.process.join(timeout=1)
                code = worker.process.exitcode
                how = f"was killed by signal {-code}" if code and code < 0 else "exited"
                reason = (
                    f"a frame-decoding worker process (pid {worker.process.pid}) {how} "
                    f"(exit code {code}) while decoding; the pool is discarded and the "
                    f"next call starts a new one. If it ran out of memory, lower "
                    f"${ARENA_ENV} or decode in threads (${PROCESSES_ENV}=0)"
                )
            self.broken = reason or "the frame-decoding pool was closed"
            for w in self._all:
                if w.process.is_alive():
                    w.process.kill()
            for w in self._all:  # their pipes stay open: the collector may be reading
                w.process.join(timeout=5)
            pending, self._pending = self._pending, {}
        for future, *_ in pending.values():
            future.set_exception(FrameWorkerError(self.broken))

    def close(self) -> None:
        """Stops the workers (waiting callers get :class:`FrameWorkerError`)."""
        self._fail(None, "the frame-decoding pool was closed")


def _serve(conn: Any, parents_end: Any, memory: mmap.mmap, parent: int) -> None:
    """A worker: decodes the ranges it is sent into the arena until told to stop (None),
    its parent's end closes, or its parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    parents_end.close()
    arena = memoryview(memory)
    while True:
        try:
            if not conn.poll(_POLL_S):
                if os.getppid() != parent:
                    return
                continue
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        number, leaf, spans, out_offset, count = task
        try:
            pairs = np.frombuffer(spans, np.int64).reshape(-1, 2).tolist()
            blobs = [arena[start : start + length] for start, length in pairs]
            items = count * int(np.prod(leaf.shape, dtype=np.int64))
            out = np.frombuffer(memory, leaf.dtype, count=items, offset=out_offset)
            _decode_range(blobs, leaf, out.reshape(count, *leaf.shape), 0, count)
            reply = None
        except FrameDecodeError as e:
            reply = ("frame", e.position, e.reason)
        except Exception as e:  # a bug, not a bad frame: reported, the worker goes on
            reply = ("failed", 0, f"{type(e).__name__}: {e}")
        finally:
            out = blobs = None
        conn.send((number, reply))


_pool: FramePool | None = None
_pool_lock = threading.Lock()


def frame_pool() -> FramePool:
    """The process's pool (made on first use; remade after a failure or when the number of
    decoding cores changed)."""
    global _pool
    with _pool_lock:
        workers = decode_threads()
        if _pool is None or _pool.broken or _pool.workers != workers:
            if _pool is not None:
                _pool.close()
            _pool = FramePool(workers, arena_bytes())
        return _pool


def shared_array(shape: Sequence[int], dtype: Any) -> np.ndarray | None:
    """An array of ``shape`` (frames first) in the pool's arena when its frames are to be
    decoded by the workers (:func:`wanted`), else None (the caller makes its own)."""
    dtype = np.dtype(dtype)
    if not shape:
        return None
    frame_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    if not wanted(frame_bytes, int(shape[0])):
        return None
    return frame_pool().arena.array(shape, dtype)


def frames_array(count: int, leaf: Leaf, buffers: FrameBuffers) -> np.ndarray:
    """An array for ``count`` frames of ``leaf``: in the arena when the workers are to
    decode them (:func:`shared_array`), else from ``buffers`` (reused private memory)."""
    shape = (count, *leaf.shape)
    shared = shared_array(shape, leaf.dtype)
    return shared if shared is not None else buffers.array(shape, leaf.dtype)


def decode_into(blobs: Sequence[bytes | memoryview], leaf: Leaf, out: np.ndarray) -> np.ndarray:
    """``blobs`` decoded into ``out``: by the workers when ``out`` is in their arena
    (:func:`frames_array`), else by :func:`~rlds_hub.format.images.decode_frames`' threads.

    Raises:
      FrameDecodeError: the first step whose frame does not decode (or has another size).
      FrameWorkerError: a worker process died.
      ValueError: ``out`` of another shape or dtype.
    """
    shape = (len(blobs), *leaf.shape)
    if out.shape != shape or out.dtype != leaf.dtype:
        raise ValueError(f"decode_into: out is {out.dtype}{out.shape}, needs {leaf.dtype}{shape}")
    if decode_shared(blobs, leaf, out):
        return out
    return decode_frames(blobs, leaf, out)


def decode_shared(blobs: Sequence[bytes | memoryview], leaf: Leaf, out: np.ndarray) -> bool:
    """``blobs`` decoded into ``out`` by the workers if ``out`` is in the current pool's
    arena (:func:`shared_array`); False, with nothing done, otherwise."""
    pool = _pool
    if pool is None or len(blobs) < MIN_FRAMES:
        return False
    return pool.decode(blobs, leaf, out)  # a broken pool's array: FrameWorkerError


def _forget_pool_in_child() -> None:
    """A forked child does not own its parent's workers: it starts its own if it may."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_pool_in_child)
