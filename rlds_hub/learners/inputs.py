"""Input adapters: datasets, samplers and any iterable of batches -> learner batches.

Learner batches are flat dicts of arrays with a leading batch axis:
``observation`` / ``next_observation`` float32 ``[B, obs_size]`` (flattened, not yet
normalised: the normaliser runs inside the jitted update), ``action`` (normalised float32
``[B, A]`` or int32 class indices ``[B]``, see :class:`~rlds_hub.learners.task.TaskSpec`),
``reward`` and ``discount`` float32 ``[B]``.

Sources (the learners accept any of them):

- a dataset path / opened dataset: read once with :func:`rlds_hub.data.transitions` into
  memory (:func:`load_transitions`), after a pass that reports any NaN or infinite
  observation or action with its episode and step;
- an :class:`rlds_hub.data.InMemorySampler` (batches drawn on the device);
- any iterable of batches of transitions as :func:`rlds_hub.data.transitions` yields them
  (NumPy dicts, :meth:`BatchLoader.as_tf_dataset`, a user's own ``tf.data`` pipeline, JAX
  arrays): they are re-cut to the learner's batch size, so the source's batch size does not
  matter. Only the caller imports TensorFlow; here a ``tf.data.Dataset`` is only iterated.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from rlds_hub import rlds_types as rlds
from rlds_hub.data.chunks import NEXT_OBSERVATION
from rlds_hub.learners.errors import DataError
from rlds_hub.learners.task import TaskSpec

OBSERVATION, ACTION, REWARD, DISCOUNT = rlds.OBSERVATION, rlds.ACTION, rlds.REWARD, rlds.DISCOUNT
ALL_FIELDS = (OBSERVATION, ACTION, REWARD, DISCOUNT, NEXT_OBSERVATION)
_MAX_LOCATIONS = 5


# -- datasets -------------------------------------------------------------------------------


def check_finite(selection: Any) -> None:
    """Raises DataError naming the episodes and steps whose observation or action holds NaN
    or infinite values (the zero-filled last step's action is not an action)."""
    from rlds_hub.storage.reader import iter_batches

    plan = selection.dataset.plan
    keys = [
        leaf.key
        for leaf in plan
        if leaf.in_steps
        and leaf.field in (OBSERVATION, ACTION)
        and leaf.is_numeric
        and leaf.dtype.kind == "f"
    ]
    if not keys:
        return
    found: list[str] = []
    count = 0
    for batch in iter_batches(selection, keys=keys):
        for key in keys:
            values = batch.arrays[key]
            bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
            if key.startswith(f"{rlds.STEPS}/{ACTION}"):
                bad &= ~batch.last_step
            if not bad.any():
                continue
            rows = np.flatnonzero(bad)
            count += len(rows)
            for row in rows[: _MAX_LOCATIONS - len(found)]:
                owner = int(batch.owner[row])
                step = int(row - batch.starts[owner])
                value = values[row].ravel()
                what = "NaN" if np.isnan(value).any() else "infinite"
                found.append(
                    f"{key.removeprefix(rlds.STEPS + '/')} is {what} in episode "
                    f"{int(batch.episodes[owner])}, step {step}"
                )
    if found:
        more = f" ({count} steps in all)" if count > len(found) else ""
        raise DataError(
            f"the dataset {selection.dataset.path} ({selection.split}) has non-finite values: "
            + "; ".join(found)
            + more
            + ". Leave those episodes out (a split slice or an episode "
            "selection), or repair the data."
        )


def load_transitions(
    source: Any,
    task: TaskSpec,
    split: str = "train",
    *,
    fields: Sequence[str] = ALL_FIELDS,
    episodes: Any = None,
    check: bool = True,
) -> dict[str, np.ndarray]:
    """Every transition of a dataset selection as learner arrays (in dataset order).

    Raises:
      DataError: no episode selected, no transition in them, or non-finite values.
    """
    from rlds_hub.data import select, transitions
    from rlds_hub.storage.dataset_files import DatasetError

    try:
        selection = select(source, split, episodes=episodes)
    except DatasetError as e:
        raise DataError(str(e)) from None
    if selection.num_episodes == 0:
        raise DataError(f"no episode of {selection.dataset.path} ({split!r}) to learn from")
    if check:
        check_finite(selection)
    loader = transitions(selection, batch_size=1 << 16, shuffle=False, num_epochs=1)
    parts = [prepare_batch(batch, task, fields) for batch in loader]
    if not parts:
        raise DataError(f"the episodes of {selection.dataset.path} ({split!r}) hold no transition")
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def prepare_batch(
    batch: Mapping[str, Any], task: TaskSpec, fields: Sequence[str] = ALL_FIELDS
) -> dict[str, np.ndarray]:
    """A batch of transitions (nested, as the loaders yield them) as learner arrays."""
    missing = [f for f in fields if f not in batch]
    if missing:
        raise DataError(
            f"the batch has no {missing}; learner batches need {list(fields)} (the fields of "
            "rlds_hub.data.transitions)"
        )
    out: dict[str, np.ndarray] = {}
    for field in fields:
        value = _to_numpy(batch[field])
        if field in (OBSERVATION, NEXT_OBSERVATION):
            out[field] = task.flatten_observation(value, batched=True)
        elif field == ACTION:
            out[field] = task.normalize_actions(value)
        else:
            out[field] = np.asarray(value, np.float32).reshape(-1)
    return out


def _to_numpy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _to_numpy(v) for k, v in value.items()}
    return np.asarray(value)


def check_batch_finite(batch: Mapping[str, np.ndarray], number: int) -> None:
    """Raises DataError when a prepared batch holds NaN or infinite values."""
    for key, value in batch.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            rows = np.flatnonzero(~np.isfinite(value.reshape(len(value), -1)).all(axis=1))
            raise DataError(
                f"batch {number} of the input has non-finite {key} (rows {rows[:5].tolist()}"
                f"{' ...' if len(rows) > 5 else ''}); clean the data or drop those transitions"
            )


# -- iterables of batches --------------------------------------------------------------------


def iterate(source: Iterable[Any]) -> Iterator[Any]:
    """Elements of ``source``; a ``tf.data.Dataset`` is iterated as NumPy (no TF import)."""
    if hasattr(source, "as_numpy_iterator"):
        return iter(source.as_numpy_iterator())
    return iter(source)


class Rebatcher:
    """Re-cuts a stream of prepared batches of any size into batches of ``batch_size``.

    When the stream ends, the transitions that do not fill a batch are counted in
    ``leftover`` (and reported by the learner), never silently dropped.
    """

    def __init__(self, batches: Iterator[dict[str, np.ndarray]], batch_size: int):
        self._batches = batches
        self._batch_size = batch_size
        self._pending: collections.deque[dict[str, np.ndarray]] = collections.deque()
        self._pending_rows = 0
        self.leftover = 0

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        while self._pending_rows < self._batch_size:
            try:
                batch = next(self._batches)
            except StopIteration:
                self.leftover = self._pending_rows
                raise
            rows = len(next(iter(batch.values())))
            if rows:
                self._pending.append(batch)
                self._pending_rows += rows
        first = self._pending[0]
        rows = len(next(iter(first.values())))
        if rows == self._batch_size:  # the common case: batches already the right size
            self._pending.popleft()
            self._pending_rows -= rows
            return first
        parts, need = [], self._batch_size
        while need:
            batch = self._pending.popleft()
            rows = len(next(iter(batch.values())))
            take = min(rows, need)
            parts.append({k: v[:take] for k, v in batch.items()})
            if take < rows:
                self._pending.appendleft({k: v[take:] for k, v in batch.items()})
            need -= take
            self._pending_rows -= take
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
