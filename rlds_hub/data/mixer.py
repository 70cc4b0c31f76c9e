"""Stage 2 of the loaders: batches mixed from a few open chunks of items."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np


class Mixer:
    """Builds batches from items of a few open chunks, stratified.

    Chunks arrive with their items already in random order, so the next items of a chunk
    are random items of it. Each batch takes an equal share from every open chunk (the
    remainder of the division goes to chunks picked at random), so a batch mixes the items of
    all of them. Batches are cut out as slices and copied once, a block of them per
    ``np.concatenate`` call.
    """

    def __init__(self, batch_size: int, open_chunks: int, rng: np.random.Generator | None):
        self._batch = batch_size
        self._open = open_chunks
        self._rng = rng
        self._block_batches = max(1, 4096 // batch_size)

    def batches(self, chunks: Iterator[Mapping[str, np.ndarray]], drop_remainder: bool
                ) -> Iterator[dict[str, np.ndarray]]:
        active: list[list] = []  # [chunk, cursor, size]
        exhausted = False
        pieces: list[dict[str, np.ndarray]] = []  # slices of the block being built
        sizes: list[int] = []  # items of each batch of the block
        filled = 0  # items of the batch being built
        batch_start = 0  # index in pieces where the batch being built starts
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
            for slot, take in enumerate(self._shares(self._batch - filled, len(active))):
                chunk, cursor, size = active[slot]
                take = min(take, size - cursor)
                if take:
                    pieces.append({k: v[cursor : cursor + take] for k, v in chunk.items()})
                    active[slot][1] = cursor + take
                    filled += take
            active = [a for a in active if a[1] < a[2]]
            if filled == self._batch:
                sizes.append(filled)
                filled = 0
                batch_start = len(pieces)
                if len(sizes) == self._block_batches:
                    yield from _cut(pieces, sizes)
                    pieces, sizes, batch_start = [], [], 0
        if filled and not drop_remainder:
            sizes.append(filled)
        else:
            del pieces[batch_start:]  # a partial last batch, dropped
        if sizes:
            yield from _cut(pieces, sizes)

    def _shares(self, want: int, slots: int) -> list[int]:
        base, extra = divmod(want, slots)
        shares = [base] * slots
        if extra:
            lucky = (
                self._rng.choice(slots, extra, replace=False) if self._rng is not None
                else range(extra)
            )
            for slot in lucky:
                shares[slot] += 1
        return shares


def _cut(pieces: list[dict[str, np.ndarray]], sizes: list[int]) -> Iterator[dict[str, np.ndarray]]:
    """Concatenates the block's slices once and hands out its batches as views."""
    block = _concatenate(pieces)
    start = 0
    for size in sizes:
        yield {key: value[start : start + size] for key, value in block.items()}
        start += size


def _concatenate(pieces: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(pieces) == 1:
        return pieces[0]
    return {key: np.concatenate([p[key] for p in pieces]) for key in pieces[0]}
