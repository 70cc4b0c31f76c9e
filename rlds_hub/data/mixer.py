"""Stage 2 of the loaders: batches mixed from a few open chunks of items."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

# Splits a ``[parts * batch, ...]`` array into ``parts`` batch values (default: NumPy views).
Split = Callable[[np.ndarray, int], Sequence[Any]]
# Makes a batch value of a batch joined from pieces of chunks (default: the array itself).
Wrap = Callable[[np.ndarray], Any]


def numpy_split(array: np.ndarray, parts: int) -> list[np.ndarray]:
    """``parts`` consecutive views of ``array``, each ``len(array) // parts`` long."""
    size = len(array) // parts
    return [array[start : start + size] for start in range(0, parts * size, size)]


class Mixer:
    """Builds batches from items of a few open chunks, stratified.

    Chunks arrive with their items already in random order, so the next items of a chunk
    are random items of it. Each batch takes an equal share from every open chunk (the
    remainder of the division goes to chunks picked at random), so a batch mixes the items
    of all of them.

    Batches are built a block at a time: for a block of ``B`` batches, chunk ``c`` gives
    ``B x share_c`` consecutive items, reshaped ``[B, share_c, ...]``, and one
    ``np.concatenate(axis=1)`` per field lays the chunks side by side into ``[B, batch, ...]``
    — one copy, a handful of NumPy calls per block instead of per batch (faster than slicing
    every batch: docs/benchmarks.md). The remainder's assignment is drawn anew per block.

    ``split`` cuts a block's field into its batches' values and ``wrap`` makes the value of a
    batch joined from the ends of chunks: NumPy views by default; :mod:`rlds_hub.data.torch`
    passes ones that make tensors, a call per block and field rather than per batch.
    """

    def __init__(
        self,
        batch_size: int,
        open_chunks: int,
        rng: np.random.Generator | None,
        block_items: int = 8192,
        split: Split = numpy_split,
        wrap: Wrap | None = None,
    ):
        self._split, self._wrap = split, wrap
        self._batch = batch_size
        self._open = open_chunks
        self._rng = rng
        self._block_batches = max(1, block_items // batch_size)

    def batches(
        self, chunks: Iterator[Mapping[str, np.ndarray]], drop_remainder: bool
    ) -> Iterator[dict[str, np.ndarray]]:
        active: list[list] = []  # [chunk, cursor, size]
        exhausted = False
        pieces: list[dict[str, np.ndarray]] = []  # of the batch being cut piece by piece
        filled = 0
        while True:
            while not exhausted and len(active) < self._open:
                chunk = next(chunks, None)
                if chunk is None:
                    exhausted = True
                    break
                size = len(next(iter(chunk.values())))
                if size:
                    active.append([chunk, 0, size])
            if not active:
                break
            if not filled:
                shares = self._shares(self._batch, len(active))
                blocks = min(
                    [self._block_batches]
                    + [
                        (size - cursor) // share
                        for (_, cursor, size), share in zip(active, shares, strict=True)
                        if share
                    ]
                )
                if blocks >= 1:
                    yield from self._block(active, shares, blocks)
                    active = [a for a in active if a[1] < a[2]]
                    continue
            # A chunk runs out within this batch: cut it piece by piece across refills.
            for slot, take in zip(
                active, self._shares(self._batch - filled, len(active)), strict=True
            ):
                chunk, cursor, size = slot
                take = min(take, size - cursor)
                if take:
                    pieces.append({k: v[cursor : cursor + take] for k, v in chunk.items()})
                    slot[1] = cursor + take
                    filled += take
            active = [a for a in active if a[1] < a[2]]
            if filled == self._batch:
                yield self._joined(pieces)
                pieces, filled = [], 0
        if filled and not drop_remainder:
            yield self._joined(pieces)

    def _block(
        self, active: list[list], shares: list[int], blocks: int
    ) -> Iterator[dict[str, np.ndarray]]:
        """``blocks`` full batches, each taking ``shares[c]`` items from chunk ``c``."""
        used = [(a, share) for a, share in zip(active, shares, strict=True) if share]
        block: dict[str, Sequence[Any]] = {}
        for key in used[0][0][0]:
            pieces = []
            for (chunk, cursor, _), share in used:
                values = chunk[key][cursor : cursor + blocks * share]
                pieces.append(values.reshape(blocks, share, *values.shape[1:]))
            joined = pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=1)
            block[key] = self._split(
                joined.reshape(blocks * self._batch, *joined.shape[2:]), blocks
            )
        for entry, share in used:
            entry[1] += blocks * share
        keys = tuple(block)
        for values in zip(*block.values(), strict=True):
            yield dict(zip(keys, values, strict=True))

    def _joined(self, pieces: list[dict[str, np.ndarray]]) -> dict[str, Any]:
        batch = _join(pieces)
        if self._wrap is None:
            return batch
        return {key: self._wrap(value) for key, value in batch.items()}

    def _shares(self, want: int, slots: int) -> list[int]:
        base, extra = divmod(want, slots)
        shares = [base] * slots
        if extra:
            lucky = self._rng.permutation(slots)[:extra] if self._rng is not None else range(extra)
            for slot in lucky:
                shares[slot] += 1
        return shares


def _join(pieces: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(pieces) == 1:
        return dict(pieces[0])
    return {key: np.concatenate([p[key] for p in pieces]) for key in pieces[0]}
