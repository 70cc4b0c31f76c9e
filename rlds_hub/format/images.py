"""Encoded image frames (PNG, JPEG) to arrays, pixel for pixel as TFDS decodes them.

TFDS decodes ``Image`` features with TensorFlow's ``decode_image``, whose JPEG path uses
libjpeg-turbo with the *fast* integer IDCT (``JDCT_IFAST``) and fancy upsampling. PIL
decodes with the accurate IDCT, which differs on most pixels by a few levels. JPEG frames
are therefore decoded with ``simplejpeg`` (libjpeg-turbo) set to the same options as
TensorFlow, which gives identical pixels (``tests/format/test_images.py`` compares every pixel with
TensorFlow's decoder). PNG is lossless, and PIL decodes it identically.
"""

from __future__ import annotations

import io
import mmap
import os
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rlds_hub.format.plan import Leaf

_PNG_MAGIC = b"\x89PNG"
_JPEG_MAGIC = b"\xff\xd8"
_PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
# Threads that decode an episode's frames: $RLDS_HUB_DECODE_THREADS, else every usable core.
THREADS_ENV = "RLDS_HUB_DECODE_THREADS"
# Fewer frames than this decode on the calling thread (a pool's hand-off costs more).
_PARALLEL_FRAMES = 8
# FrameBuffers' idle budget in MiB (default 1024).
BUFFERS_ENV = "RLDS_HUB_FRAME_BUFFERS_MB"
# FrameBuffers' alignment (bytes): XLA's, so JAX on the CPU can use the memory uncopied.
_ALIGN = 64
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


class ImageDecodeError(ValueError):
    """A frame that is not a decodable image of the feature's shape."""


class FrameDecodeError(ImageDecodeError):
    """:func:`decode_frames`' error: ``position`` is the frame's position in its batch and
    ``reason`` what was wrong (the message is ``"step {position}: {reason}"``)."""

    def __init__(self, position: int, reason: str):
        super().__init__(f"step {position}: {reason}")
        self.position = position
        self.reason = reason


def image_format(blob: bytes) -> str:
    """ "png", "jpeg" or "other" from the first bytes of an encoded frame."""
    if blob[:4] == _PNG_MAGIC:
        return "png"
    if blob[:2] == _JPEG_MAGIC:
        return "jpeg"
    return "other"


def decode_image(blob: bytes, leaf: Leaf) -> np.ndarray:
    """One encoded frame as an array of ``leaf.shape`` and ``leaf.dtype``.

    Raises:
      ImageDecodeError: undecodable bytes, or a frame of another size.
    """
    channels = leaf.shape[-1] if len(leaf.shape) == 3 else 1
    try:
        if image_format(blob) == "jpeg" and leaf.dtype == np.uint8:
            frame = _decode_jpeg(blob, channels)
        else:
            frame = _decode_with_pil(blob, channels, leaf.dtype)
    except ImageDecodeError:
        raise
    except Exception as e:  # PIL and libjpeg raise many types for broken data
        raise ImageDecodeError(f"cannot decode an image frame ({type(e).__name__}: {e})") from e
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.shape != tuple(leaf.shape):
        if len(leaf.shape) == 2 and frame.shape == (*leaf.shape, 1):
            return frame[..., 0]
        raise ImageDecodeError(
            f"an image frame is {frame.shape[1]}x{frame.shape[0]} with {frame.shape[2]} "
            f"channel(s); the feature says {tuple(leaf.shape)}"
        )
    return frame


class FrameBuffers:
    """Large arrays reused once nothing refers to them any more (decoded frames).

    A new array of a few hundred MB costs a page fault per 4 KB on its first write (about as
    long as decoding into it); :meth:`array` hands out an earlier array's memory instead once
    every view of that array is gone (batches the caller dropped): the smallest idle buffer
    that holds the request and is at most a quarter larger. Idle buffers are kept up to
    ``max_idle_bytes`` in all (``$RLDS_HUB_FRAME_BUFFERS_MB``, default 1024), the oldest
    dropped first, so the memory held is bounded by what is in use plus that budget, whatever
    mix of sizes variable-length episodes make.
    """

    def __init__(self, max_idle_bytes: int | None = None):
        self.max_idle_bytes = idle_budget() if max_idle_bytes is None else max_idle_bytes
        self._idle: list[mmap.mmap] = []  # oldest first
        self._idle_total = 0
        # re-entrant: a garbage collection inside the lock may release a buffer (same thread)
        self._lock = threading.RLock()

    def array(self, shape: Sequence[int], dtype: np.dtype) -> np.ndarray:
        """An uninitialised array of ``shape`` and ``dtype`` (reused memory if idle)."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        with self._lock:
            memory = self._take(nbytes + _ALIGN)
        if memory is None:
            # an anonymous mapping: its pages are zeroed by the kernel when first written,
            # with no zeroing pass of our own. Not an ndarray: the views of ``flat`` then
            # keep ``flat`` (their base) alive, which the release below relies on.
            memory = mmap.mmap(-1, nbytes + _ALIGN)
        # aligned to 64 bytes, as XLA wants: JAX on the CPU then uses the batch's memory
        # instead of copying it (a window batch is ~90 MB)
        offset = -np.frombuffer(memory, np.uint8, count=1).ctypes.data % _ALIGN
        # every view of ``flat`` refers to it: when it is collected, nothing sees ``memory``
        flat = np.frombuffer(memory, np.uint8, count=nbytes, offset=offset)
        weakref.finalize(flat, self._release, memory).atexit = False
        return flat.view(dtype).reshape(shape)

    def _take(self, need: int) -> mmap.mmap | None:
        best = None
        for i, memory in enumerate(self._idle):
            fits = need <= len(memory) <= need + need // 4
            if fits and (best is None or len(memory) < len(self._idle[best])):
                best = i
        if best is None:
            return None
        memory = self._idle.pop(best)
        self._idle_total -= len(memory)
        return memory

    def _release(self, memory: mmap.mmap) -> None:
        with self._lock:
            if len(memory) > self.max_idle_bytes:
                return
            self._idle.append(memory)
            self._idle_total += len(memory)
            while self._idle_total > self.max_idle_bytes:
                self._idle_total -= len(self._idle.pop(0))

    def idle_bytes(self) -> int:
        """Bytes held by idle buffers (their alignment slack left out)."""
        with self._lock:
            return sum(len(memory) - _ALIGN for memory in self._idle)


def idle_budget() -> int:
    """:class:`FrameBuffers`' idle budget in bytes: ``$RLDS_HUB_FRAME_BUFFERS_MB`` MiB (1024).

    Raises:
      ValueError: not a whole number >= 0.
    """
    value = os.environ.get(BUFFERS_ENV, "").strip() or "1024"
    try:
        megabytes = int(value)
    except ValueError:
        megabytes = -1
    if megabytes < 0:
        raise ValueError(
            f"${BUFFERS_ENV}={value!r}: give the MiB of idle frame buffers to keep, a whole "
            "number >= 0 (0 keeps none)"
        )
    return megabytes << 20


def decode_threads() -> int:
    """How many threads decode frames: ``$RLDS_HUB_DECODE_THREADS`` or the usable cores."""
    value = os.environ.get(THREADS_ENV, "")
    if value:
        try:
            threads = int(value)
        except ValueError:
            threads = 0
        if threads < 1:
            raise ValueError(f"${THREADS_ENV} must be a whole number >= 1, got {value!r}")
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _frame_pool(threads: int) -> ThreadPoolExecutor:
    """The process's frame-decoding threads (made on first use, remade if the count
    changed). libjpeg-turbo (simplejpeg) and PIL's PNG decoder release the GIL, so threads
    decode on every core."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers != threads:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rlds-frames")
        return _pool


def _forget_pool_in_child() -> None:
    """A forked child (a DataLoader worker) has none of the parent's pool threads: it makes
    its own pool on first use instead of waiting forever on the inherited one."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def decode_frames(
    blobs: Sequence[bytes | memoryview], leaf: Leaf, out: np.ndarray | None = None
) -> np.ndarray:
    """Encoded frames (one per step) as one ``[len(blobs), *leaf.shape]`` array, decoded in
    parallel on :func:`decode_threads` threads, each frame written in place (no stacking
    copy); pixels exactly as :func:`decode_image` gives them.

    ``out``: the array to decode into (e.g. a reused buffer), else a new one.

    Raises:
      FrameDecodeError: naming the first step (position in ``blobs``) whose frame does not
        decode or has another size.
      ValueError: ``out`` of another shape or dtype.
    """
    shape = (len(blobs), *leaf.shape)
    if out is None:
        out = np.empty(shape, leaf.dtype)
    elif out.shape != shape or out.dtype != leaf.dtype:
        raise ValueError(f"decode_frames: out is {out.dtype}{out.shape}, needs {leaf.dtype}{shape}")
    threads = decode_threads()
    if len(blobs) < _PARALLEL_FRAMES or threads == 1:
        _decode_range(blobs, leaf, out, 0, len(blobs))
        return out
    # a few ranges per thread: large enough to amortise the hand-off, small enough to balance
    size = max(1, -(-len(blobs) // (4 * threads)))
    ranges = [(lo, min(lo + size, len(blobs))) for lo in range(0, len(blobs), size)]
    pool = _frame_pool(threads)
    futures = [pool.submit(_decode_range, blobs, leaf, out, lo, hi) for lo, hi in ranges]
    errors = [f.exception() for f in futures]  # waits for all: none still writes to ``out``
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        raise first
    return out


def _decode_range(
    blobs: Sequence[bytes | memoryview], leaf: Leaf, out: np.ndarray, lo: int, hi: int
) -> None:
    """Frames ``lo:hi`` into ``out[lo:hi]``; errors name the step."""
    jpeg_rgb = leaf.dtype == np.uint8 and len(leaf.shape) == 3 and leaf.shape[-1] == 3
    for step in range(lo, hi):
        blob = blobs[step]
        try:
            if jpeg_rgb and _decode_jpeg_into(blob, out[step]):
                continue
            out[step] = decode_image(blob, leaf)
        except ImageDecodeError as e:
            raise FrameDecodeError(step, str(e)) from None


def _decode_jpeg_into(blob: bytes | memoryview, row: np.ndarray) -> bool:
    """A JPEG frame of ``row``'s size decoded straight into ``row`` (TensorFlow's pixels);
    False for anything else (other formats, sizes, or bytes libjpeg refuses), which
    :func:`decode_image` then decodes or reports."""
    if image_format(blob) != "jpeg":
        return False
    import simplejpeg

    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(blob)
        if (height, width) != row.shape[:2]:
            return False
        simplejpeg.decode_jpeg(blob, colorspace="RGB", fastdct=True, fastupsample=False, buffer=row)
    except Exception:  # libjpeg raises ValueError / others: decode_image words the error
        return False
    return True


def _decode_jpeg(blob: bytes, channels: int) -> np.ndarray:
    import simplejpeg

    if channels == 1:
        return simplejpeg.decode_jpeg(blob, colorspace="GRAY", fastdct=True, fastupsample=False)
    if channels != 3:
        raise ImageDecodeError(
            f"a JPEG frame cannot be decoded to {channels} channels (JPEG has no alpha; "
            "TFDS refuses it too)"
        )
    return simplejpeg.decode_jpeg(blob, colorspace="RGB", fastdct=True, fastupsample=False)


def _decode_with_pil(blob: bytes, channels: int, dtype: np.dtype) -> np.ndarray:
    from PIL import Image

    image = Image.open(io.BytesIO(blob))
    if dtype == np.uint16:
        return np.asarray(image, dtype=np.uint16)
    mode = _PIL_MODES.get(channels)
    if mode is None:
        raise ImageDecodeError(f"images with {channels} channels are not supported")
    if image.mode != mode:
        image = image.convert(mode)
    return np.asarray(image, dtype=np.uint8)


def encode_png(frame: np.ndarray, compress_level: int = 1) -> bytes:
    """Lossless PNG of one ``H x W x C`` uint8 frame (C in 1, 3, 4)."""
    from PIL import Image

    if frame.ndim == 3 and frame.shape[-1] == 1:
        frame = frame[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(
        buffer, format="PNG", compress_level=compress_level
    )
    return buffer.getvalue()
