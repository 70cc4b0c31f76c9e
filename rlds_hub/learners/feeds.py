"""Feeds: where a learner's stacked batches ``[steps_per_call, batch, ...]`` come from.

One jitted call runs ``steps_per_call`` SGD steps with ``lax.scan`` (amortising dispatch,
which matters most on an accelerator: docs/benchmarks.md, "Learners"), so a feed hands over
that many batches at once, already placed on the devices with the batch axis split over them.

- :class:`ArrayFeed`: transitions held in device memory (replicated), sampled uniformly with
  replacement on the device — no host round trip per batch. The core
  :class:`rlds_hub.data.InMemorySampler` does the same on one device; this one draws the
  indices of a whole call at once and lays the batches out over the data-parallel mesh.
- :class:`IteratorFeed`: any iterable of batches (the disk loader, ``tf.data``, a user's
  generator), prepared and stacked on a background thread a few calls ahead, so host work
  overlaps the device's.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from rlds_hub.learners import inputs
from rlds_hub.learners.errors import DataError
from rlds_hub.learners.parallel import DataParallel
from rlds_hub.learners.task import TaskSpec


class ArrayFeed:
    """Batches drawn on the device from arrays with a common leading axis."""

    def __init__(
        self,
        items: Mapping[str, Any],
        *,
        batch_size: int,
        steps_per_call: int,
        parallel: DataParallel,
    ):
        sizes = {int(np.shape(v)[0]) for v in items.values()}
        if len(sizes) != 1:
            raise DataError(f"arrays of different lengths {sorted(sizes)}")
        (self.size,) = sizes
        if self.size == 0:
            raise DataError("no transition to sample from")
        parallel.check_batch_size(batch_size)
        self.batch_size = batch_size
        self.steps_per_call = steps_per_call
        self.items = parallel.replicate(dict(items))
        self._sample = jax.jit(
            functools.partial(
                _gather,
                shape=(steps_per_call, batch_size),
                size=self.size,
                constrain=parallel.constrain_stacked,
            )
        )

    @classmethod
    def from_sampler(
        cls, sampler: Any, task: TaskSpec, fields: Sequence[str], **kwargs: Any
    ) -> ArrayFeed:
        """From an :class:`rlds_hub.data.InMemorySampler` of transitions."""
        host = jax.tree_util.tree_map(np.asarray, sampler.items)
        return cls(inputs.prepare_batch(host, task, fields), **kwargs)

    def next(self, key: jax.Array) -> dict[str, jax.Array]:
        return self._sample(self.items, key)

    def close(self) -> None:
        """Nothing to release."""


def _gather(items, key, *, shape, size, constrain):
    index = jax.random.randint(key, shape, 0, size)
    batch = {k: v.at[index].get(mode="promise_in_bounds") for k, v in items.items()}
    return constrain(batch)


_END = object()


class IteratorFeed:
    """Stacked batches from an iterable, prepared ``prefetch`` calls ahead on a thread.

    ``raw=True``: the iterable already yields learner batches (flat float arrays); otherwise
    batches as the loaders yield them are converted with ``task``. The stream ending raises
    StopIteration from :meth:`next`; ``leftover`` then counts transitions that did not fill
    a last batch.
    """

    def __init__(
        self,
        source: Iterable[Any],
        task: TaskSpec,
        *,
        fields: Sequence[str],
        batch_size: int,
        steps_per_call: int,
        parallel: DataParallel,
        prefetch: int = 2,
        raw: bool = False,
    ):
        parallel.check_batch_size(batch_size)
        self.batch_size = batch_size
        self.steps_per_call = steps_per_call
        self._parallel = parallel
        self._task, self._fields, self._raw = task, tuple(fields), raw
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        self._stop = threading.Event()
        self._prepared = 0
        self._rebatcher: inputs.Rebatcher | None = None
        self._thread = threading.Thread(
            target=self._produce, args=(source,), daemon=True, name="rlds_hub-learner-feed"
        )
        self._thread.start()

    @property
    def leftover(self) -> int:
        return self._rebatcher.leftover if self._rebatcher is not None else 0

    def _prepared_batches(self, source: Iterable[Any]):
        for element in inputs.iterate(source):
            self._prepared += 1
            if self._raw:
                batch = {k: np.asarray(v) for k, v in element.items()}
            else:
                batch = inputs.prepare_batch(element, self._task, self._fields)
            inputs.check_batch_finite(batch, self._prepared)
            yield batch

    def _produce(self, source: Iterable[Any]) -> None:
        try:
            self._rebatcher = inputs.Rebatcher(self._prepared_batches(source), self.batch_size)
            while not self._stop.is_set():
                group = []
                for batch in self._rebatcher:
                    group.append(batch)
                    if len(group) == self.steps_per_call:
                        break
                if len(group) < self.steps_per_call:
                    if group:
                        self._rebatcher.leftover += len(group) * self.batch_size
                    self._put(_END)
                    return
                stacked = {k: np.stack([b[k] for b in group]) for k in group[0]}
                self._put(self._parallel.shard_stacked(stacked))
        except BaseException as error:  # handed to the consumer, raised there
            self._put(error)

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def next(self, key: jax.Array | None = None) -> dict[str, jax.Array]:
        del key  # the order is the iterable's
        item = self._queue.get()
        if item is _END:
            self._queue.put(_END)
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def make_feed(
    data: Any,
    task: TaskSpec,
    *,
    fields: Sequence[str],
    batch_size: int,
    steps_per_call: int,
    parallel: DataParallel,
) -> ArrayFeed | IteratorFeed:
    """A feed for ``data``: learner arrays (a dict), an InMemorySampler, or an iterable."""
    options = dict(batch_size=batch_size, steps_per_call=steps_per_call, parallel=parallel)
    if isinstance(data, ArrayFeed | IteratorFeed):
        return data
    if isinstance(data, Mapping):
        missing = [f for f in fields if f not in data]
        if missing:
            raise DataError(f"the arrays have no {missing} (need {list(fields)})")
        return ArrayFeed({f: data[f] for f in fields}, **options)
    if hasattr(data, "sample_many") and hasattr(data, "items"):
        return ArrayFeed.from_sampler(data, task, fields, **options)
    if isinstance(data, Iterable):
        return IteratorFeed(data, task, fields=fields, **options)
    raise DataError(
        f"cannot train from {type(data).__name__}: pass a dataset path, learner arrays, an "
        "InMemorySampler, or an iterable of transition batches"
    )
