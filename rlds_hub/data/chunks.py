"""Stage 1 of the loaders: shards read, episodes decoded and turned into items, in chunks.

A chunk is ``episodes_per_chunk`` consecutive episodes of the (per-epoch shuffled) shard
order, decoded with :mod:`rlds_hub.npdecode` and turned into items — (n-step) transitions
or windows, by the index kernels of :mod:`rlds_hub.data.indices` — gathered in a random
order seeded by ``(seed, chunk number)``. A background thread produces the chunks ahead of
the consumer (file reads and NumPy's copies release the GIL).
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from rlds_hub.data import indices
from rlds_hub.data.loading import Selection, ShardRead
from rlds_hub.npdecode import NUM_STEPS, Field, NumpyEpisodeDecoder
from rlds_hub.storage import shards

MASK = "mask"
NEXT_OBSERVATION = "next_observation"
_STEPS = "steps/"


@dataclasses.dataclass(frozen=True)
class ItemSpec:
    """What items to make: transitions (``n_step``, ``gamma``) or windows (``size``,
    ``shift``, ``pad``), with which step fields in the output."""

    kind: str  # "transitions" or "windows"
    outputs: tuple[str, ...]
    n_step: int = 1
    gamma: float = 1.0
    size: int = 1
    shift: int = 1
    pad: bool = True


class ChunkSource:
    """Produces chunks of items (flat keys without ``steps/``) from a selection."""

    def __init__(self, selection: Selection, fields: Sequence[Field], items: ItemSpec, *,
                 episodes_per_chunk: int, shuffle: bool, seed: int, num_epochs: int | None,
                 ahead: int = 4):
        self.selection = selection
        self.items = items
        self._decoder = NumpyEpisodeDecoder(fields)
        self._fields = [f for f in fields if f.in_steps]
        self._per_chunk = episodes_per_chunk
        self._shuffle = shuffle
        self._seed = seed
        self._num_epochs = num_epochs
        self._ahead = ahead

    # ---- records ---------------------------------------------------------------------------

    def _episode_groups(self) -> Iterator[list[Any]]:
        """Lists of ``episodes_per_chunk`` serialized episodes, epoch after epoch."""
        reads = self.selection.shard_reads()
        file_format = self.selection.dataset.file_format
        epoch = 0
        group: list[Any] = []
        while self._num_epochs is None or epoch < self._num_epochs:
            order = range(len(reads))
            if self._shuffle:
                order = np.random.default_rng([self._seed, epoch]).permutation(len(reads))
            for i in order:
                for record in _read(reads[i], file_format):
                    group.append(record)
                    if len(group) == self._per_chunk:
                        yield group
                        group = []
            epoch += 1
        if group:
            yield group

    # ---- items -----------------------------------------------------------------------------

    def make_items(self, records: Sequence[Any], chunk: int) -> dict[str, np.ndarray]:
        """One chunk's items, in random order if shuffling."""
        decoded = self._decoder.decode(records)
        lengths = decoded[NUM_STEPS]
        steps = {f.key[len(_STEPS):]: decoded[f.key] for f in self._fields}
        rng = np.random.default_rng([self._seed, chunk]) if self._shuffle else None
        spec = self.items
        if spec.kind == "windows":
            count = int(indices.window_counts(lengths, spec.size, spec.shift, spec.pad).sum())
            order = rng.permutation(count) if rng is not None else None
            found = indices.window_indices(lengths, spec.size, spec.shift, spec.pad, order)
            mask = found[MASK]
            out = {}
            for key, value in steps.items():
                if _requested(key, spec.outputs):
                    gathered = np.take(value, found["index"], axis=0)
                    gathered[~mask] = 0 if gathered.dtype != object else b""
                    out[key] = gathered
            out[MASK] = mask
            return out
        count = int(np.sum(np.maximum(lengths - 1, 0)))
        order = rng.permutation(count) if rng is not None else None
        found = indices.transition_indices(
            lengths, steps["reward"], steps["discount"], steps["is_terminal"],
            spec.n_step, spec.gamma, order,
        )
        out = {"reward": found["reward"], "discount": found["discount"]}
        for key, value in steps.items():
            field = key.split("/")[0]
            if field in ("reward", "discount") or not _requested(key, spec.outputs):
                continue
            out[key] = np.take(value, found["source"], axis=0)
            if field == "observation":
                out[NEXT_OBSERVATION + key[len("observation"):]] = np.take(
                    value, found["next"], axis=0
                )
        return out

    # ---- the producer ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        """Chunks of items, produced ``ahead`` chunks in advance on a background thread."""
        buffer: queue.Queue = queue.Queue(maxsize=self._ahead)
        stop = threading.Event()

        def produce() -> None:
            try:
                for chunk, group in enumerate(self._episode_groups()):
                    items = self.make_items(group, chunk)
                    while not stop.is_set():
                        try:
                            buffer.put(("items", items), timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                buffer.put(("done", None))
            except BaseException as e:  # handed to the consumer
                buffer.put(("error", e))

        thread = threading.Thread(target=produce, name="rlds-loader", daemon=True)
        thread.start()
        try:
            while True:
                kind, value = buffer.get()
                if kind == "items":
                    yield value
                elif kind == "done":
                    return
                else:
                    raise value
        finally:
            stop.set()
            while thread.is_alive():
                try:
                    buffer.get_nowait()
                except queue.Empty:
                    thread.join(timeout=0.05)


def _read(read: ShardRead, file_format: str) -> list[Any]:
    """The records ``read`` asks for: views of a TFRecord file read whole, or ArrayRecords."""
    if file_format == "array_record":
        from array_record.python import array_record_module

        reader = array_record_module.ArrayRecordReader(read.path)
        try:
            return list(reader.read(list(range(read.skip, read.skip + read.take))))
        finally:
            reader.close()
    records = [record for _, record in shards.iter_tfrecord(read.path)]
    if len(records) < read.skip + read.take:
        from rlds_hub.storage.layout import DatasetError

        raise DatasetError(
            f"{read.path} holds {len(records)} episodes, fewer than dataset_info.json lists "
            f"({read.shard_episodes}); run rlds-hub validate on the dataset"
        )
    return records[read.skip : read.skip + read.take]


def _requested(key: str, fields: Sequence[str]) -> bool:
    return key.split("/")[0] in fields
