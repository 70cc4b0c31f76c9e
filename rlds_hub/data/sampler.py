"""A dataset held in accelerator memory and sampled there: no host round trip per batch.

For datasets that fit in device memory (200k transitions of the benchmark workload are
~34 MB), loading once and sampling batches with replacement on the device is what keeps an
accelerator busy: feeding a host batch per update runs an order of magnitude slower (measured
side by side in ``docs/benchmarks.md``). :meth:`InMemorySampler.sample_many` draws several
batches in one call, for learners that run several updates per call with ``lax.scan``.

This module imports JAX, never TensorFlow: ``from_dataset`` reads the dataset with
rlds_hub's NumPy loaders (``tests/data/test_no_tensorflow.py`` runs it with TensorFlow blocked).
64-bit fields stay 64-bit when JAX's x64 mode is on; otherwise a warning names the fields
JAX narrows to 32 bits.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from rlds_hub.extras import require


class InMemorySampler:
    """Items (transitions or windows) on one device, sampled uniformly with replacement."""

    def __init__(self, items: Mapping[str, Any], *, device: Any = None):
        jax = require("jax", "jax", "InMemorySampler")

        leaves = jax.tree_util.tree_leaves(items)
        if not leaves:
            raise ValueError("InMemorySampler needs at least one array")
        sizes = {int(np.shape(leaf)[0]) for leaf in leaves}
        if len(sizes) != 1:
            raise ValueError(f"all arrays need the same leading size, got {sorted(sizes)}")
        from rlds_hub.data.pipeline import _flat_items, warn_if_narrowed

        named = (
            _flat_items(items)
            if isinstance(items, Mapping)
            else [(f"array {i}", leaf) for i, leaf in enumerate(leaves)]
        )
        strings = [name for name, leaf in named if np.asarray(leaf).dtype.kind in "OSU"]
        if strings:
            raise ValueError(
                f"{strings} hold strings, which cannot live on a JAX device; leave them out "
                "(keys= of windows, or a copy of the dataset without them: rlds-hub map)"
            )
        (self.size,) = sizes
        if self.size == 0:
            raise ValueError("InMemorySampler needs at least one item")
        warn_if_narrowed(
            _flat_items(items) if isinstance(items, Mapping) else [], "InMemorySampler"
        )
        self.device = device if device is not None else jax.devices()[0]
        self.items = jax.device_put(items, self.device)
        self.nbytes = sum(int(np.asarray(leaf).nbytes) for leaf in leaves)

    @classmethod
    def from_arrays(cls, items: Mapping[str, Any], *, device: Any = None) -> InMemorySampler:
        """From (nested) arrays with a common leading axis."""
        return cls(items, device=device)

    @classmethod
    def from_dataset(
        cls,
        source: Any,
        split: str = "train",
        *,
        n_step: int = 1,
        gamma: float = 1.0,
        windows: int | None = None,
        device: Any = None,
        **selection: Any,
    ) -> InMemorySampler:
        """All transitions (or windows of ``windows`` steps) of a dataset selection.

        ``selection``: ``episodes``, ``where``, ``extra_keys`` / ``keys`` and the filters
        of :func:`rlds_hub.data.select`.
        """
        from rlds_hub.data import pipeline
        from rlds_hub.storage.names import as_dataset

        if not isinstance(source, pipeline.Selection):
            source = as_dataset(source, "InMemorySampler.from_dataset()")
        options = dict(shuffle=False, num_epochs=1, batch_size=1 << 16, **selection)
        if windows is not None:
            loader = pipeline.windows(source, split, size=windows, **options)
        else:
            loader = pipeline.transitions(source, split, n_step=n_step, gamma=gamma, **options)
        batches = list(loader)
        items = {key: _concat([b[key] for b in batches]) for key in batches[0]}
        return cls(items, device=device)

    def sample(self, key: Any, batch_size: int) -> Any:
        """``batch_size`` items drawn uniformly with replacement (a jitted gather)."""
        return _sample(self.items, key, batch_size=batch_size, size=self.size)

    def sample_many(self, key: Any, num_batches: int, batch_size: int) -> Any:
        """``num_batches`` batches in one call, leading axes ``[num_batches, batch_size]``."""
        return _sample_many(
            self.items, key, num_batches=num_batches, batch_size=batch_size, size=self.size
        )


def _concat(parts: list[Any]) -> Any:
    if isinstance(parts[0], Mapping):
        return {key: _concat([p[key] for p in parts]) for key in parts[0]}
    return np.concatenate(parts)


@functools.cache
def _jit():
    import jax

    # randint's indices are in [0, size): promise that, and skip the bounds handling.
    def sample(items, key, *, batch_size, size):
        index = jax.random.randint(key, (batch_size,), 0, size)
        return jax.tree_util.tree_map(lambda x: x.at[index].get(mode="promise_in_bounds"), items)

    def sample_many(items, key, *, num_batches, batch_size, size):
        index = jax.random.randint(key, (num_batches, batch_size), 0, size)
        return jax.tree_util.tree_map(lambda x: x.at[index].get(mode="promise_in_bounds"), items)

    return (
        jax.jit(sample, static_argnames=("batch_size", "size")),
        jax.jit(sample_many, static_argnames=("num_batches", "batch_size", "size")),
    )


def _sample(items: Any, key: Any, *, batch_size: int, size: int) -> Any:
    return _jit()[0](items, key, batch_size=batch_size, size=size)


def _sample_many(items: Any, key: Any, *, num_batches: int, batch_size: int, size: int) -> Any:
    return _jit()[1](items, key, num_batches=num_batches, batch_size=batch_size, size=size)
