"""PyTorch datasets of single steps (the ``torch`` extra): :class:`StepDataset` (iterable,
shuffled, split across ``DataLoader`` workers) and :class:`StepMapDataset` (map-style), with
the semantics of :func:`rlds_hub.data.steps` — every field of the step, frame history and
action chunks with their masks — as tensors of the stored dtypes.

Importing this module imports torch; ``import rlds_hub.data`` does not.

A LeRobot training script switches to an RLDS dataset by changing its dataset line::

    dataset = StepDataset("data/robot", delta_timestamps={"observation.image": [-0.1, 0.0],
                                                          "action": [0.0, 0.1, 0.2]}, fps=10)
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, num_workers=4)
"""

from __future__ import annotations

import collections
import functools
import itertools
import math
import multiprocessing
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from rlds_hub.data.frame_shapes import check_frame_shapes
from rlds_hub.data.lenient import decode_skipping
from rlds_hub.data.pipeline import _selection, step_plan, steps
from rlds_hub.data.step_items import decoded_step_items, usable_steps
from rlds_hub.extras import require
from rlds_hub.format.decode import NUM_STEPS, EpisodeDecoder
from rlds_hub.format.plan import unflatten
from rlds_hub.storage.dataset_files import DatasetError
from rlds_hub.storage.episodes import episode_table
from rlds_hub.storage.reader import EpisodeDecodeError, decode_records, read_record
from rlds_hub.storage.selection import Selection

torch = require("torch", "torch", "rlds_hub.data.torch")
from torch.utils.data import (  # noqa: E402
    DataLoader,
    Dataset,
    IterableDataset,
    default_collate,
    get_worker_info,
)

_from_numpy = torch.from_numpy
# whether a torch profiler is recording (unknown: as if it were)
_profiling = getattr(torch.autograd, "_profiler_enabled", lambda: True)

# Epochs are counted per (number of workers, worker) up to this many DataLoader workers;
# with more, the epoch comes from set_epoch() only.
_MAX_WORKERS = 64
# Counters shared with the DataLoader's workers, whatever their start method.
_SHARED = multiprocessing.get_context("spawn")
# Metadata keys (metadata.json) that give a dataset's control rate in Hz, in this order.
FPS_KEYS = ("fps", "control_frequency")


# ---- tensors -------------------------------------------------------------------------------


def to_torch(tree: Mapping[str, Any]) -> dict[str, Any]:
    """A nested dict of NumPy arrays as tensors (no copy; dtypes kept), strings as ``str``
    (UTF-8 ``bytes`` decoded; arrays of strings as nested lists)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if type(value) is np.ndarray and value.dtype.kind != "O":  # the common case, first
            out[key] = torch.from_numpy(value)
        elif isinstance(value, Mapping):
            out[key] = to_torch(value)
        elif isinstance(value, np.ndarray) and value.dtype == object:
            out[key] = _strings(value.tolist())
        elif isinstance(value, bytes | np.bytes_):
            out[key] = _strings(bytes(value))
        else:
            out[key] = torch.from_numpy(np.asarray(value))
    return out


def tensor_split(array: np.ndarray, parts: int) -> Sequence[Any]:
    """A block of ``parts`` batches of one field as the batches' values (the loader's
    :class:`~rlds_hub.data.mixer.Mixer` ``split``): numbers as tensors, views of the block
    made by one ``unbind`` (cheaper than a tensor per batch from NumPy: a ``from_numpy`` and
    a slice per batch and field); strings as :func:`to_torch` gives them."""
    batches = array.reshape(parts, len(array) // parts, *array.shape[1:])
    if array.dtype.kind in "OSUV":
        return [_strings(batch.tolist()) for batch in batches]
    return _from_numpy(batches).unbind(0)


def tensor_value(array: np.ndarray) -> Any:
    """One batch's field as :func:`to_torch` makes it (the ``Mixer``'s ``wrap``)."""
    if array.dtype.kind in "OSUV":
        return _strings(array.tolist())
    return _from_numpy(array)


def passthrough(batch: Any) -> Any:
    """A ``collate_fn`` that hands on what the dataset yields as it is.

    :class:`StepDataset` ``(batch_size=B)`` yields whole batches, already dicts of tensors;
    ``DataLoader(batch_size=None)``'s default ``collate_fn`` (``default_convert``) walks
    every one of them again, a cost per batch and field that this one does not have. Use it
    with ``batch_size=None`` only (or through :meth:`StepDataset.loader`)."""
    return batch


class _LeanNext:
    """``DataLoader`` iterators' ``__next__`` without the profiler range torch opens around
    every batch (``record_function``: ~6.5 µs a batch on this project's machine, as much as
    the NumPy loader's whole cost for a batch of 64 state-only steps) unless a profiler is
    running, when the range is kept (torch's own ``__next__``)."""

    def __next__(self) -> Any:
        if _profiling():
            return super().__next__()
        if self._sampler_iter is None:
            self._reset()
        data = self._next_data()
        self._num_yielded += 1
        return data


try:  # torch's iterators (private): without them, loader() is a plain DataLoader
    from torch.utils.data.dataloader import (
        _MultiProcessingDataLoaderIter,
        _SingleProcessDataLoaderIter,
    )

    class _LeanSingle(_LeanNext, _SingleProcessDataLoaderIter):
        pass

    class _LeanWorkers(_LeanNext, _MultiProcessingDataLoaderIter):
        pass

    _LEAN: tuple[type, type] | None = (_LeanSingle, _LeanWorkers)
except ImportError:  # pragma: no cover - another torch's internals
    _LEAN = None


class StepLoader(DataLoader):
    """The ``DataLoader`` :meth:`StepDataset.loader` makes: torch's, iterated without a
    profiler range around each batch unless a profiler is running (:class:`_LeanNext`)."""

    def _get_iterator(self) -> Any:
        if _LEAN is None or not hasattr(_SingleProcessDataLoaderIter, "_next_data"):
            return super()._get_iterator()
        if self.num_workers == 0:
            return _LEAN[0](self)
        self.check_worker_number_rationality()
        return _LEAN[1](self)


def _strings(value: Any) -> Any:
    if isinstance(value, list):
        return [_strings(v) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def collate(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Samples to a batch, keeping nested dicts: tensors stacked on a new first axis,
    strings (and lists of them) gathered in lists; ``None`` samples (skipped by
    :class:`StepMapDataset`'s ``skip_corrupt``) are left out. Pass as
    ``DataLoader(collate_fn=...)``."""
    samples = [sample for sample in samples if sample is not None]  # skip_corrupt's skips
    if not samples:
        raise ValueError(
            "collate() needs at least one sample (every sample of this batch was skipped by "
            "skip_corrupt, or the batch is empty)"
        )
    first = samples[0]
    out: dict[str, Any] = {}
    for key, value in first.items():
        values = [sample[key] for sample in samples]
        if isinstance(value, Mapping):
            out[key] = collate(values)
        elif isinstance(value, torch.Tensor):
            out[key] = default_collate(values)  # stacked (in a worker: in shared memory)
        else:
            out[key] = values
    return out


def _samples(batch: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The samples of a batch of tensors (views of it), nested as the batch."""
    flat = _flatten(batch)
    leaves = [(key.split("/"), value) for key, value in flat.items()]
    for i in range(len(flat["step_index"])):
        sample: dict[str, Any] = {}
        for path, value in leaves:
            node = sample
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value[i]
        yield sample


class PackedBatch:
    """A batch crossing from a ``DataLoader`` worker to the training process as one block.

    torch sends every tensor of a worker's batch through a shared-memory segment of its own,
    a fixed cost per tensor that dominates batches of small state vectors. A packed batch
    copies the arrays into one shared-memory ``uint8`` tensor (64-byte aligned) and unpickles
    in the training process as the plain nested dict of tensors (views of that block, the
    stored dtypes) that :func:`to_torch` gives; strings travel as ``str`` lists.
    """

    def __init__(self, batch: Mapping[str, Any]):
        flat = _flatten(batch)
        layout: list[tuple[str, Any, Any, int]] = []  # key, dtype (None: strings), shape, at
        arrays, size = [], 0
        for key, value in flat.items():
            value = np.asarray(value)
            if value.dtype == object:
                layout.append((key, None, _strings(value.tolist()), 0))
                continue
            size += -size % _ALIGN
            layout.append((key, value.dtype.str, value.shape, size))
            arrays.append((size, value))
            size += value.nbytes
        self.block = torch.empty(size, dtype=torch.uint8).share_memory_()
        block = self.block.numpy()
        for at, value in arrays:
            block[at : at + value.nbytes] = np.ascontiguousarray(value).reshape(-1).view(np.uint8)
        self.layout = layout

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _unpack, (self.block, self.layout)


_ALIGN = 64


def _unpack(block: Any, layout: Sequence[tuple[str, Any, Any, int]]) -> dict[str, Any]:
    """:class:`PackedBatch`'s tensors, unflattened (in the training process)."""
    flat: dict[str, Any] = {}
    for key, dtype, shape, at in layout:
        if dtype is None:
            flat[key] = shape  # the strings
            continue
        dtype = np.dtype(dtype)
        count = math.prod(shape) * dtype.itemsize
        if dtype == np.bool_:
            values = block[at : at + count].view(torch.bool)
        else:
            values = block[at : at + count].view(_torch_dtype(dtype))
        flat[key] = values.view(shape)
    return unflatten(flat)


@functools.lru_cache(maxsize=64)
def _torch_dtype(dtype: np.dtype) -> Any:
    return torch.from_numpy(np.empty(0, dtype)).dtype


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else key
        out.update(_flatten(value, path) if isinstance(value, Mapping) else {path: value})
    return out


# ---- LeRobot's delta_timestamps ------------------------------------------------------------


def from_delta_timestamps(
    delta_timestamps: Mapping[str, Sequence[float]], fps: float
) -> tuple[int, int]:
    """``(history, action_chunk)`` for LeRobot-style ``delta_timestamps`` at ``fps`` Hz.

    Observation keys (``"observation..."``) must all ask for the same frames, ``-H/fps ..
    0`` every ``1/fps``; ``"action"`` for ``0 .. (C-1)/fps`` every ``1/fps``.

    Raises:
      ValueError: another key, or timestamps that are not such a run of frames.
    """
    if not fps or fps <= 0:
        raise ValueError(f"fps must be a positive frame rate in Hz, got {fps!r}")
    history, chunk = 0, 1
    observed: dict[str, list[int]] = {}
    for key, stamps in delta_timestamps.items():
        frames = _frames(key, stamps, fps)
        if key.startswith("observation"):
            observed[key] = frames
        elif key == "action":
            if frames != list(range(len(frames))):
                raise ValueError(
                    f"delta_timestamps['action'] must be 0, 1/fps, 2/fps, ... (this step's "
                    f"action and the next ones), got {list(stamps)} at {fps} Hz"
                )
            chunk = len(frames)
        else:
            raise ValueError(
                f"delta_timestamps key {key!r} is not supported: only observation keys "
                "('observation...', one history for all of them) and 'action'"
            )
    if observed:
        runs = {tuple(frames) for frames in observed.values()}
        if len(runs) > 1:
            raise ValueError(
                f"every observation key must ask for the same frames (one history for all "
                f"of them), got {dict(observed)} (in frames at {fps} Hz)"
            )
        (frames,) = (list(run) for run in runs)
        if frames != list(range(-len(frames) + 1, 1)):
            raise ValueError(
                "observation delta_timestamps must be -H/fps, ..., -1/fps, 0 (earlier frames "
                f"up to the current one), got {frames} frames at {fps} Hz"
            )
        history = len(frames) - 1
    return history, chunk


def _frames(key: str, stamps: Sequence[float], fps: float) -> list[int]:
    if isinstance(stamps, str) or not len(stamps):
        raise ValueError(f"delta_timestamps[{key!r}] must be a non-empty list of seconds")
    frames = [float(t) * fps for t in stamps]
    rounded = [round(f) for f in frames]
    if any(abs(f - r) > 1e-3 for f, r in zip(frames, rounded, strict=True)):
        raise ValueError(
            f"delta_timestamps[{key!r}] = {list(stamps)} are not whole frames at {fps} Hz "
            "(multiples of 1/fps)"
        )
    return rounded


def dataset_fps(selection: Selection) -> float | None:
    """The dataset's control rate in Hz if ``metadata.json`` records it (``FPS_KEYS``)."""
    metadata = selection.dataset.dataset_metadata.extra  # keys rlds_hub does not write
    for key in FPS_KEYS:
        value = metadata.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


def _history_and_chunk(
    selection: Selection,
    history: int,
    action_chunk: int,
    delta_timestamps: Mapping[str, Sequence[float]] | None,
    fps: float | None,
) -> tuple[int, int]:
    if delta_timestamps is None:
        return history, action_chunk
    if (history, action_chunk) != (0, 1):
        raise ValueError("pass either delta_timestamps or history / action_chunk, not both")
    rate = fps if fps is not None else dataset_fps(selection)
    if rate is None:
        raise ValueError(
            f"delta_timestamps needs the dataset's frame rate, and {selection.dataset.path} "
            f"does not record one (metadata.json has none of {list(FPS_KEYS)}): pass fps=, "
            "or history= (earlier frames) and action_chunk= (actions) in steps instead"
        )
    return from_delta_timestamps(delta_timestamps, rate)


# ---- the iterable dataset ------------------------------------------------------------------


class StepDataset(IterableDataset):
    """Single steps of a dataset selection as a ``torch.utils.data.IterableDataset``.

    Each sample is a dict of tensors with the stored dtypes: every step field
    (``observation`` nested as stored, ``action``, ``reward``, ``discount``, ``is_first``,
    ``is_last``, ``is_terminal``, ``language_instruction`` as ``str`` where present), the
    episode's fields, ``episode_index``, ``step_index`` and ``action_mask``; ``history`` and
    ``action_chunk`` (or LeRobot's ``delta_timestamps``) add axes and masks exactly as in
    :func:`rlds_hub.data.steps`.

    Under ``DataLoader(num_workers=N)`` the selection's episodes are split into N parts of
    about equal steps, one per worker (the assignment rotates every epoch), so one epoch
    yields every step exactly once. Each worker shuffles its part with a seed of
    ``(seed, epoch, part)``; the epoch advances by itself each time the dataset is
    iterated (counted per number of workers; beyond 64 workers only :meth:`set_epoch`
    sets it), or is set with :meth:`set_epoch` (as with ``DistributedSampler``).

    Args:
      path: a dataset path or name, an opened dataset, or a :class:`Selection`.
      split / filters: which episodes (``episodes=``, ``where=``, ``min_return=``, ...).
      history, action_chunk, keys: as in :func:`rlds_hub.data.steps`.
      delta_timestamps / fps: LeRobot's way of asking for them (seconds at ``fps`` Hz;
        default: the dataset's recorded rate).
      batch_size: yield whole batches (collated dicts) instead of samples; use with
        ``DataLoader(batch_size=None)`` — the fastest way (no per-sample Python).
      shuffle_buffer / episodes_per_chunk: as in :func:`rlds_hub.data.steps`, per worker.
      skip_corrupt: skip the steps whose frames do not decode instead of raising; counted
        in :attr:`skipped` (default: a corrupt frame ends the epoch with an error naming the
        dataset, file, episode, record, step and field).
    """

    def __init__(
        self,
        path: Any,
        *,
        split: str = "train",
        history: int = 0,
        action_chunk: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        keys: Sequence[str] | None = None,
        delta_timestamps: Mapping[str, Sequence[float]] | None = None,
        fps: float | None = None,
        batch_size: int | None = None,
        shuffle_buffer: int = 32,
        episodes_per_chunk: int = 8,
        skip_corrupt: bool = False,
        **filters: Any,
    ):
        episodes, where = filters.pop("episodes", None), filters.pop("where", None)
        self.selection = _selection(path, split, episodes, where, filters, "StepDataset()")
        if self.selection.num_episodes == 0:
            raise DatasetError(f"no episode of {self.selection.split!r} was selected")
        history, action_chunk = _history_and_chunk(
            self.selection, history, action_chunk, delta_timestamps, fps
        )
        spec, _ = step_plan(self.selection, keys, history, action_chunk)  # bad arguments fail
        check_frame_shapes(self.selection, spec.outputs)  # frames of mixed sizes fail here
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(f"batch_size must be None or an integer >= 1, got {batch_size!r}")
        self.history, self.action_chunk = history, action_chunk
        self.shuffle, self.seed, self.keys = shuffle, seed, keys
        self.batch_size = batch_size
        self._options = {
            "shuffle_buffer": shuffle_buffer,
            "episodes_per_chunk": episodes_per_chunk,
            "skip_corrupt": skip_corrupt,
        }
        # steps, frames and whole episodes skipped (skip_corrupt), added up over the workers
        self._skipped = _SHARED.Array("q", 3)
        rows = episode_table(
            self.selection.dataset, self.selection.split, episodes=self._episodes()
        )
        self._lengths = np.array([row["num_steps"] for row in rows], np.int64)
        # [0]: the epoch set_epoch() asked for (-1: none); then, for each number of workers
        # N, one counter of iterations per worker: the workers of one DataLoader count
        # alike, whatever other loaders (or the training process itself) iterated before.
        # (made in a spawn context: shareable with fork, spawn and forkserver workers alike)
        slots = _MAX_WORKERS * (_MAX_WORKERS + 1) // 2
        self._epochs = _SHARED.Array("q", [-1] + [0] * slots)
        # this process's loader of the last epoch, by (workers, part): reseeded and reused
        self._loaders: dict[tuple[int, int], Any] = {}
        self._loaders_pid = os.getpid()

    def _episodes(self) -> Sequence[int]:
        indices = self.selection.indices
        return range(self.selection.num_episodes) if indices is None else indices

    def __len__(self) -> int:
        """Steps of the selection (samples per epoch; batches with ``batch_size``, one
        worker)."""
        total = int(self._lengths.sum())
        return total if self.batch_size is None else math.ceil(total / self.batch_size)

    @property
    def skipped(self) -> dict[str, int]:
        """With ``skip_corrupt``: steps, frames and whole episodes skipped so far, by every
        worker (each worker also warns with the first report: dataset, file, episode,
        record, step and field)."""
        steps_, frames, episodes = self._skipped[:]
        return {"steps": steps_, "frames": frames, "episodes": episodes}

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s shuffle and worker assignment from now on (for every worker)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        self._epochs[0] = epoch

    def parts(self, workers: int) -> list[Selection]:
        """The selection in ``workers`` consecutive parts of about equal steps."""
        episodes = np.asarray(self._episodes(), np.int64)
        ends = np.cumsum(self._lengths)
        total = int(ends[-1]) if len(ends) else 0
        cuts = np.searchsorted(ends, [total * k / workers for k in range(1, workers)], "left")
        bounds = [0, *(int(c) + 1 for c in cuts), len(episodes)]
        bounds = [min(max(b, 0), len(episodes)) for b in bounds]
        bounds = [max(b, bounds[i - 1]) if i else b for i, b in enumerate(bounds)]
        return [
            Selection(self.selection.dataset, self.selection.split, tuple(episodes[lo:hi].tolist()))
            for lo, hi in itertools.pairwise(bounds)
        ]

    def _epoch(self, worker: int, workers: int) -> int:
        """The epoch this iteration of ``worker`` (of ``workers``) reads."""
        with self._epochs.get_lock():
            explicit = self._epochs[0]
            if workers > _MAX_WORKERS:
                return max(explicit, 0)
            slot = 1 + workers * (workers - 1) // 2 + worker
            iterations = self._epochs[slot]
            self._epochs[slot] = iterations + 1
        return explicit if explicit >= 0 else iterations

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        epoch = self._epoch(worker, workers)
        part_index = (worker + epoch) % workers
        part = self.parts(workers)[part_index]
        if not part.num_episodes:
            return
        seed = int(np.random.SeedSequence([self.seed, epoch, part_index]).generate_state(1)[0])
        loader = self._take_loader(part, (workers, part_index), seed)
        try:
            yield from self._batches(loader, in_worker=info is not None)
        finally:
            # kept for the next epoch: one loader a process (its frame buffers hold up to
            # $RLDS_HUB_FRAME_BUFFERS_MB of idle memory), the one of the last epoch
            self._loaders = {(workers, part_index): loader}

    def _take_loader(self, part: Selection, key: tuple[int, int], seed: int) -> Any:
        """The part's loader of the last epoch in this process, reseeded (it keeps its
        memory maps and frame buffers), or a new one; taken out while it is iterated, so an
        iteration under way elsewhere gets its own. (A DataLoader worker reads another part
        each epoch, so it makes a new one each time, as before.)"""
        if self._loaders_pid != os.getpid():  # a forked worker: not the parent's loaders
            self._loaders, self._loaders_pid = {}, os.getpid()
        loader = self._loaders.pop(key, None)
        if loader is not None:
            loader.reseed(seed)
            return loader
        return steps(
            part,
            keys=self.keys,
            history=self.history,
            action_chunk=self.action_chunk,
            batch_size=self.batch_size or 256,
            shuffle=self.shuffle,
            seed=seed,
            **self._options,
        )

    def _batches(self, loader: Any, in_worker: bool) -> Iterator[Any]:
        """One pass of ``loader`` as this dataset yields it, the skips counted."""
        counted = self._count(loader.skipped, None)
        if self.batch_size is not None and not in_worker:  # whole batches, this process
            tensors = loader.batches(split=tensor_split, wrap=tensor_value)
            if self._options["skip_corrupt"]:
                for batch in tensors:
                    counted = self._count(loader.skipped, counted)
                    yield batch
            else:
                yield from tensors  # nothing to count
        else:
            for batch in loader:
                counted = self._count(loader.skipped, counted)
                if self.batch_size is not None:
                    yield PackedBatch(batch)  # one shared-memory block to the training process
                else:
                    yield from _samples(to_torch(batch))
        self._count(loader.skipped, counted)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_loaders"] = {}  # open memory maps and threads stay in this process
        return state

    def loader(self, *, num_workers: int = 0, **options: Any) -> Any:
        """A ``torch.utils.data.DataLoader`` of this dataset's whole batches: the dataset's
        own ``batch_size``, :func:`passthrough` as ``collate_fn`` (nothing walks a batch
        again), ``persistent_workers`` with workers, and no profiler range around each batch
        unless a profiler is running (:class:`StepLoader`); ``options`` go to the
        ``DataLoader`` (``pin_memory``, ``prefetch_factor``, ``timeout``, ...).

        Raises:
          ValueError: the dataset yields single samples (give it ``batch_size=``), or an
            option that would batch or order the samples again.
        """
        if self.batch_size is None:
            raise ValueError(
                "loader() needs whole batches: make the dataset with StepDataset(..., "
                "batch_size=B); for single samples use DataLoader(dataset, batch_size=B, "
                "collate_fn=rlds_hub.data.torch.collate)"
            )
        clash = sorted(
            {"batch_size", "collate_fn", "sampler", "batch_sampler", "shuffle"} & set(options)
        )
        if clash:
            raise ValueError(
                f"loader() sets batching and order itself; leave out {clash} (the batch size "
                "is StepDataset's batch_size=, the order its shuffle= and seed=)"
            )
        if num_workers:
            options.setdefault("persistent_workers", True)
        return StepLoader(
            self, batch_size=None, collate_fn=passthrough, num_workers=num_workers, **options
        )

    def _count(self, skipped: Any, counted: tuple[int, ...] | None) -> tuple[int, ...]:
        """Adds what ``skipped`` counts beyond ``counted`` to the workers' shared counts
        (``None``: nothing added, the counts so far returned — a reused loader's skips of
        earlier epochs are counted already)."""
        now = (skipped.steps, skipped.frames, skipped.episodes)
        if counted is not None and now != counted:
            with self._skipped.get_lock():
                for i, (new, old) in enumerate(zip(now, counted, strict=True)):
                    self._skipped[i] += new - old
        return now


# ---- the map-style dataset -----------------------------------------------------------------


class StepMapDataset(Dataset):
    """Single steps as a map-style ``torch.utils.data.Dataset``: item ``i`` is step ``i``
    of the selection in split order (episode by episode), the same sample as
    :class:`StepDataset` gives. Use it with samplers (``DataLoader(shuffle=True)``,
    ``DistributedSampler``, LeRobot's episode-aware samplers).

    Each item decodes its episode (whole, cameras included), and the last ``cache_episodes``
    decoded episodes are kept per process: random access over a camera dataset decodes far
    more than :class:`StepDataset`, which decodes each episode once per epoch.

    ``skip_corrupt=True``: an item whose frames (or a frame of its history) do not decode,
    or whose episode does not decode at all, is ``None`` instead of an error; pass
    ``collate_fn=rlds_hub.data.torch.collate``, which leaves such items out of the batch.
    :attr:`skipped` counts the items skipped (``steps``, once per request, like
    :class:`StepDataset` once per epoch) and the bad ``frames`` and whole ``episodes``
    found (each once per process that decodes them: per worker), over every worker; each
    process warns once per bad episode with the report (dataset, file, episode, record,
    step and field). Default: an error naming them.
    """

    def __init__(
        self,
        path: Any,
        *,
        split: str = "train",
        history: int = 0,
        action_chunk: int = 1,
        keys: Sequence[str] | None = None,
        delta_timestamps: Mapping[str, Sequence[float]] | None = None,
        fps: float | None = None,
        cache_episodes: int = 8,
        skip_corrupt: bool = False,
        **filters: Any,
    ):
        episodes, where = filters.pop("episodes", None), filters.pop("where", None)
        self.selection = _selection(path, split, episodes, where, filters, "StepMapDataset()")
        if not isinstance(skip_corrupt, bool):
            raise ValueError(f"skip_corrupt must be True or False, got {skip_corrupt!r}")
        history, action_chunk = _history_and_chunk(
            self.selection, history, action_chunk, delta_timestamps, fps
        )
        self._spec, plan = step_plan(self.selection, keys, history, action_chunk)
        check_frame_shapes(self.selection, self._spec.outputs)  # frames of mixed sizes fail
        self._plan = plan
        self._skip_corrupt = skip_corrupt
        # items (steps), frames and whole episodes skipped, added up over the workers
        self._skipped = _SHARED.Array("q", 3)
        # per process: episodes found bad -> their [steps] bad-frame mask (None: whole)
        self._bad: dict[int, np.ndarray | None] = {}
        self._decoder: EpisodeDecoder | None = None
        indices = self.selection.indices
        self._episodes = np.asarray(
            range(self.selection.num_episodes) if indices is None else indices, np.int64
        )
        rows = episode_table(
            self.selection.dataset, self.selection.split, episodes=self._episodes.tolist()
        )
        self._lengths = np.array([row["num_steps"] for row in rows], np.int64)
        self._ends = np.cumsum(self._lengths)
        self._cache: collections.OrderedDict[int, dict[str, np.ndarray]] = collections.OrderedDict()
        self._cache_size = max(1, int(cache_episodes))

    @property
    def skipped(self) -> dict[str, int]:
        """With ``skip_corrupt``: items (steps) skipped so far, and bad frames and whole
        episodes found, by every worker."""
        steps_, frames, episodes = self._skipped[:]
        return {"steps": steps_, "frames": frames, "episodes": episodes}

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        size = len(self)
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise TypeError(f"index must be an integer, got {index!r}")
        if not -size <= index < size:
            raise IndexError(f"step {index} is out of range: the selection has {size} steps")
        index = int(index) % size
        position = int(np.searchsorted(self._ends, index, side="right"))
        step = index - int(self._ends[position] - self._lengths[position])
        episode = int(self._episodes[position])
        decoded = self._episode(episode)
        if self._skip_corrupt and not self._usable(episode, position, step):
            with self._skipped.get_lock():
                self._skipped[0] += 1
            return None
        items = decoded_step_items(
            decoded,
            self._lengths[position : position + 1],
            np.array([episode]),
            self._spec,
            np.array([step]),
        )
        return to_torch(unflatten({key: value[0] for key, value in items.items()}))

    def _usable(self, episode: int, position: int, step: int) -> bool:
        """Whether the step's frames (with its history) all decoded (``skip_corrupt``)."""
        if episode not in self._bad:
            return True
        bad = self._bad[episode]
        if bad is None:  # the whole episode did not decode
            return False
        lengths = self._lengths[position : position + 1]
        return bool(usable_steps(bad, lengths, np.array([step]), self._spec.history)[0])

    def _episode(self, episode: int) -> dict[str, np.ndarray]:
        cached = self._cache.get(episode)
        if cached is not None:
            self._cache.move_to_end(episode)
            return cached
        if self._decoder is None:
            self._decoder = EpisodeDecoder(self._plan)
        dataset = self.selection.dataset
        record = read_record(dataset, self.selection.split, episode)
        if self._skip_corrupt:
            decoded = self._decode_skipping(episode, record)
        else:
            try:
                decoded = decode_records(self._decoder, [record])
            except EpisodeDecodeError as e:
                raise EpisodeDecodeError(f"{dataset.path}: {e}") from None
        decoded.pop(NUM_STEPS)
        self._cache[episode] = decoded
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return decoded

    def _decode_skipping(self, episode: int, record: Any) -> dict[str, np.ndarray]:
        """``record`` decoded with bad frames as zeros; the first time this process finds
        ``episode`` bad, it is noted in ``_bad``, counted and warned about."""
        assert self._decoder is not None
        name = str(self.selection.dataset.path)
        decoded, bad, kept, reports, bad_frames = decode_skipping(self._decoder, [record], name)
        if not kept:  # the record does not decode at all: every item of it is skipped
            decoded = {leaf.key: np.empty((0, *leaf.shape), leaf.dtype) for leaf in self._plan}
            decoded[NUM_STEPS] = np.zeros(0, np.int64)
            new = episode not in self._bad
            self._bad[episode] = None
            counts = (0, 0, 1)
        else:
            new = bool(bad.any()) and episode not in self._bad
            if bad.any():
                self._bad[episode] = bad
            counts = (0, bad_frames, 0)
        if new:
            with self._skipped.get_lock():
                for i, count in enumerate(counts):
                    self._skipped[i] += count
            warnings.warn(f"skip_corrupt: {reports[0] if reports else name}", stacklevel=3)
        return decoded


__all__ = [
    "FPS_KEYS",
    "StepDataset",
    "StepLoader",
    "StepMapDataset",
    "collate",
    "dataset_fps",
    "from_delta_timestamps",
    "passthrough",
    "to_torch",
]
