"""Fast, shuffled batches of transitions or windows for learners, read from disk.

Two stages, overlapping on two cores:

1. :mod:`rlds_hub.data.chunks` — a background thread reads the selected shards (shard order
   shuffled per epoch), decodes chunks of whole episodes with NumPy
   (:mod:`rlds_hub.format.decode`: views of the file's bytes, no per-step work) — or slices
   them from the shards' cached decoded columns (:mod:`rlds_hub.data.columns`) — and turns
   each chunk into items — (n-step) transitions or fixed-length windows — in a random order
   seeded by ``(seed, chunk number)``.
   Each chunk holds at least ``shuffle_buffer`` episodes (whole groups of
   ``episodes_per_chunk``), so a batch mixes the items of up to ``shuffle_buffer``
   episodes; the items are gathered a block of about 8192 at a time, a few blocks ahead of
   the consumer, on two threads (NumPy releases the GIL).
2. :mod:`rlds_hub.data.mixer` — the consumer cuts consecutive batches out of each chunk as
   views (no copy), joining the end of one chunk with the start of the next. Every item
   appears exactly once per epoch.

Everything is deterministic given ``seed``, and iterating a loader again repeats the same
batches. Batches come as nested dicts of NumPy arrays (iterate the loader), as a
``tf.data.Dataset`` (:meth:`BatchLoader.as_tf_dataset`) or as JAX arrays already on device
(:meth:`BatchLoader.as_jax_iterator`).

TensorFlow's own ``tf.io.parse_example`` pipeline was measured side by side before this
design was chosen, and was slower (docs/benchmarks.md, "Before and after the format core");
it also cannot run without TensorFlow.
"""

from __future__ import annotations

import collections
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.random import default_rng

from rlds_hub import rlds_types as rlds
from rlds_hub.checks import check_gamma, check_positive
from rlds_hub.data.chunks import BLOCK_ITEMS, MASK, NEXT_OBSERVATION, ChunkSource, ItemSpec
from rlds_hub.data.frame_shapes import check_frame_shapes
from rlds_hub.data.indices import check_history
from rlds_hub.data.lenient import Skipped
from rlds_hub.data.mixer import Mixer, Split, Wrap, numpy_split
from rlds_hub.data.step_items import EPISODE_INDEX, MADE, STEP_INDEX
from rlds_hub.extras import require
from rlds_hub.format.plan import LeafKind, Plan, unflatten
from rlds_hub.storage.dataset_files import DatasetError
from rlds_hub.storage.episodes import dataset_layout
from rlds_hub.storage.query import Where, check_filters, select
from rlds_hub.storage.selection import EpisodeSpec, Selection

_TRANSITION_FIELDS = (rlds.OBSERVATION, rlds.ACTION, rlds.REWARD, rlds.DISCOUNT)
_WINDOW_FIELDS = (*rlds.CORE_STEP_FIELDS,)
# Fields a dataset may lack: made by the loaders (most of Open X-Embodiment has no discount).
_DERIVED = (rlds.DISCOUNT,)
_INDICES = (EPISODE_INDEX, STEP_INDEX)
# Chunks of camera frames made ahead of the consumer (two worker threads make them).
FRAME_CHUNKS_AHEAD = 2


class BatchLoader:
    """Shuffled batches of transitions or windows of a dataset selection (an iterable).

    Create it with :func:`transitions` or :func:`windows`. Iterating yields nested dicts of
    NumPy arrays with a leading batch axis (``[batch, ...]`` for transitions,
    ``[batch, size, ...]`` plus ``mask`` for windows). Iterating again starts over with the
    same order (deterministic given ``seed``).
    """

    def __init__(
        self,
        selection: Selection,
        items: ItemSpec,
        *,
        fields: Sequence[str],
        batch_size: int,
        shuffle: bool,
        seed: int,
        num_epochs: int | None,
        shuffle_buffer: int,
        drop_remainder: bool,
        episodes_per_chunk: int,
        plan: Plan | None = None,
    ):
        check_positive("batch_size", batch_size)
        check_positive("episodes_per_chunk", episodes_per_chunk)
        check_positive("shuffle_buffer", shuffle_buffer)
        if num_epochs is not None:
            check_positive("num_epochs", num_epochs)
        if selection.num_episodes == 0:
            raise DatasetError(f"no episode of {selection.split!r} was selected")
        self.selection = selection
        self.items = items
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.num_epochs = num_epochs
        self.drop_remainder = drop_remainder
        self.layout = items.layout
        # One chunk mixes at least shuffle_buffer episodes: whole groups of episodes_per_chunk.
        groups = max(1, -(-shuffle_buffer // episodes_per_chunk)) if shuffle else 1
        plan = plan if plan is not None else selection.dataset.plan.step_fields_plan(fields)
        # Camera frames make large chunks: only as many ahead as the workers make at once
        # (not AHEAD_EPISODES' worth of encoded records, gigabytes of frames).
        frames = any(leaf.kind == LeafKind.IMAGE for leaf in plan.leaves)
        self._chunks = ChunkSource(
            selection,
            plan,
            items,
            ahead=FRAME_CHUNKS_AHEAD if frames else None,
            episodes_per_chunk=episodes_per_chunk * groups,
            # whole batches; camera frames two batches at a time (a block stays small)
            block_items=(2 if frames else max(1, BLOCK_ITEMS // batch_size)) * batch_size,
            # and a chunk's first blocks smaller, doubling: its first batches come sooner
            first_block_items=(2 if frames else max(1, BLOCK_ITEMS // batch_size // 8))
            * batch_size,
            shuffle=shuffle,
            seed=seed,
            num_epochs=num_epochs,
        )

    def reseed(self, seed: int) -> None:
        """Later passes in the order of ``seed``, keeping what the loader opened (its memory
        maps of the cached columns): cheaper than a new loader for every epoch. Call it
        between passes, not during one."""
        self.seed = seed
        self._chunks.reseed(seed)

    def chunks(self) -> ChunkSource:
        """Stage 1: an iterable of item chunks (flat keys), all epochs."""
        return self._chunks

    @property
    def skipped(self) -> Skipped:
        """What ``skip_corrupt`` skipped so far (steps, frames, episodes, reports)."""
        return self._chunks.skipped

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.batches()

    def batches(self, split: Split = numpy_split, wrap: Wrap | None = None) -> Iterator[Any]:
        """The batches, each field's values made by ``split`` a block of batches at a time
        (and ``wrap`` where a batch joins the ends of two chunks): :class:`Mixer`'s options;
        the default, NumPy views, is iterating the loader."""
        rng = default_rng(self.seed) if self.shuffle else None
        mixer = Mixer(self.batch_size, 1, rng, split=split, wrap=wrap)
        nested = None  # whether keys nest ("observation/x"): the same in every batch
        for batch in mixer.batches(iter(self._chunks), self.drop_remainder):
            if nested is None:
                nested = any("/" in key for key in batch)
            yield unflatten(batch) if nested else batch  # the mixer's dict is new per batch
        skipped = self._chunks.skipped
        if skipped.reports:
            warnings.warn(
                f"skip_corrupt: {skipped.steps} steps ({skipped.frames} frames) and "
                f"{skipped.episodes} whole episodes did not decode and were skipped so far; "
                f"the first: {skipped.reports[0]}",
                stacklevel=2,
            )

    def as_tf_dataset(self) -> Any:
        """The batches as a ``tf.data.Dataset`` (prefetched)."""
        tf = require("tensorflow", "tf", "as_tf_dataset()")

        first = next(iter(self))
        signature = tf.nest.map_structure(
            lambda x: tf.TensorSpec((None, *x.shape[1:]), tf.as_dtype(x.dtype)), first
        )
        return tf.data.Dataset.from_generator(
            lambda: iter(self), output_signature=signature
        ).prefetch(2)

    def as_jax_iterator(self, *, prefetch: int = 2, sharding: Any = None) -> Iterator[Any]:
        """The batches as JAX arrays, ``prefetch`` batches ahead on the device.

        ``sharding`` (e.g. a ``jax.sharding.NamedSharding`` over a data axis) places each
        batch across devices for data-parallel learners; default: the first device.
        64-bit fields stay 64-bit when JAX's x64 mode is on (``jax_enable_x64``); otherwise
        JAX stores them as 32-bit, and a warning says which fields were narrowed.
        """
        jax = require("jax", "jax", "as_jax_iterator()")

        target = sharding if sharding is not None else jax.devices()[0]
        pending: collections.deque = collections.deque()
        checked = False
        for batch in self:
            if not checked:
                flat = _flat_items(batch)
                strings = [k for k, v in flat if v.dtype.kind in "OSU"]
                if strings:
                    raise ValueError(
                        f"fields {strings} hold strings, which JAX arrays cannot; leave them "
                        "out (keys= / extra_keys=) or use the NumPy batches"
                    )
                # step loaders' indices are far below 2**31: narrowing them loses nothing
                warn_if_narrowed([(k, v) for k, v in flat if k not in _INDICES], "as_jax_iterator")
                checked = True
            pending.append(jax.device_put(batch, target))
            if len(pending) > prefetch:
                yield pending.popleft()
        while pending:
            yield pending.popleft()


def warn_if_narrowed(flat: Sequence[tuple[str, Any]], where: str) -> None:
    """Warns (once per call site) that JAX without x64 narrows these 64-bit fields."""
    import jax

    if jax.config.jax_enable_x64:
        return
    wide = [
        f"{k} ({np.asarray(v).dtype})"
        for k, v in flat
        if np.asarray(v).dtype in (np.float64, np.int64, np.uint64, np.complex128)
    ]
    if wide:
        warnings.warn(
            f"{where}: JAX's x64 mode is off, so the 64-bit fields {', '.join(wide)} become "
            "32-bit on the device (float64 values lose precision). Enable it with "
            "jax.config.update('jax_enable_x64', True) before creating arrays to keep them "
            "exact, or cast them yourself to silence this.",
            stacklevel=3,
        )


def _flat_items(tree: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else key
        out += _flat_items(value, path) if isinstance(value, Mapping) else [(path, value)]
    return out


def _fields(selection: Selection, wanted: Sequence[str]) -> list[str]:
    """``wanted`` without duplicates; a missing field is an error unless it is derived (a
    missing ``discount`` reads as 1, see :func:`rlds_hub.data.indices.missing_discounts`)."""
    step_fields = set(selection.dataset.step_fields)
    missing = [f for f in wanted if f not in step_fields and f not in _DERIVED]
    if missing:
        raise ValueError(
            f"the dataset's steps have no field(s) {sorted(set(missing))}; they have "
            f"{sorted(step_fields)}"
        )
    return list(dict.fromkeys(wanted))


def _stored(selection: Selection, fields: Sequence[str]) -> list[str]:
    """The fields to read: ``fields`` less the derived ones the dataset does not store, plus
    what deriving them needs."""
    step_fields = set(selection.dataset.step_fields)
    derived = [f for f in fields if f not in step_fields]
    needed = [rlds.IS_TERMINAL] if derived else []
    if derived and rlds.IS_TERMINAL not in step_fields:
        raise ValueError(
            f"the dataset's steps have no field(s) {derived}, and no {rlds.IS_TERMINAL!r} to "
            f"derive them from; they have {sorted(step_fields)}"
        )
    return [f for f in dict.fromkeys([*fields, *needed]) if f in step_fields]


def transitions(
    source: Any,
    split: str = "train",
    *,
    episodes: EpisodeSpec = None,
    where: Where = None,
    n_step: int = 1,
    gamma: float = 1.0,
    batch_size: int = 256,
    shuffle: bool = True,
    seed: int = 0,
    num_epochs: int | None = 1,
    shuffle_buffer: int = 256,
    extra_keys: Sequence[str] = (),
    drop_remainder: bool = False,
    episodes_per_chunk: int = 32,
    **filters: Any,
) -> BatchLoader:
    """Shuffled batches of (n-step) transitions, read from disk.

    Each batch holds ``observation``, ``action``, ``reward``, ``discount``,
    ``next_observation`` (and ``extra_keys`` step fields) with the semantics of
    :func:`rlds_hub.transforms.episode_transitions`: no transition crosses an episode, the
    zero-filled last step is never an action, discount is 0 after a terminal step, n-step
    returns and bootstrap discounts are exact and truncated at episode ends.

    Args:
      source: a dataset path or name, an opened dataset, or a :class:`Selection`.
      split / episodes / where / filters: which episodes (see :func:`rlds_hub.data.select`).
      n_step, gamma: n-step returns (``gamma`` in [0, 1]).
      batch_size: items per batch; the last batch is smaller unless ``drop_remainder``.
      shuffle, seed: shuffled (deterministically given ``seed``) or in dataset order.
      num_epochs: passes over the data (None: forever, reshuffling shard order each epoch).
      shuffle_buffer: how many episodes' items a batch mixes: items are shuffled within
        consecutive groups of at least this many episodes (in whole ``episodes_per_chunk``).
      episodes_per_chunk: the unit of that grouping (and of decoding without shuffling).
    """
    check_positive("n_step", n_step)
    check_gamma(gamma)
    if isinstance(extra_keys, str):
        raise ValueError(f"extra_keys must be a sequence of field names, got {extra_keys!r}")
    selection = _selection(source, split, episodes, where, filters, "transitions()")
    outputs = _fields(selection, [*_TRANSITION_FIELDS, *extra_keys])
    if NEXT_OBSERVATION in outputs:
        raise ValueError(f"the field {NEXT_OBSERVATION!r} is made by transitions()")
    fields = _stored(selection, _fields(selection, [*outputs, rlds.IS_TERMINAL, rlds.IS_FIRST]))
    check_frame_shapes(selection, fields)
    layout = dataset_layout(selection.dataset)
    return BatchLoader(
        selection,
        ItemSpec("transitions", tuple(outputs), n_step=n_step, gamma=gamma, layout=layout),
        fields=fields,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        num_epochs=num_epochs,
        shuffle_buffer=shuffle_buffer,
        drop_remainder=drop_remainder,
        episodes_per_chunk=episodes_per_chunk,
    )


def windows(
    source: Any,
    split: str = "train",
    *,
    size: int,
    shift: int = 1,
    pad: bool = True,
    episodes: EpisodeSpec = None,
    where: Where = None,
    keys: Sequence[str] | None = None,
    batch_size: int = 64,
    shuffle: bool = True,
    seed: int = 0,
    num_epochs: int | None = 1,
    shuffle_buffer: int = 256,
    drop_remainder: bool = False,
    episodes_per_chunk: int = 32,
    **filters: Any,
) -> BatchLoader:
    """Shuffled batches of fixed-length windows of consecutive steps, with padding masks.

    Each batch holds the step fields ``keys`` (default: the RLDS step fields) shaped
    ``[batch, size, ...]`` and ``mask`` ``[batch, size]`` (True on real steps), laid out as
    :func:`rlds_hub.transforms.episode_windows` does: windows start every ``shift`` steps,
    include the ``is_last`` step, never span episodes, and with ``pad`` the ones running
    past an episode's end are zero-padded. Other arguments as in :func:`transitions`.
    """
    check_positive("size", size)
    check_positive("shift", shift)
    selection = _selection(source, split, episodes, where, filters, "windows()")
    outputs = _fields(selection, keys if keys is not None else _WINDOW_FIELDS)
    if MASK in outputs:
        raise ValueError(f"the field {MASK!r} is made by windows()")
    fields = _stored(selection, [*outputs, rlds.IS_FIRST])
    check_frame_shapes(selection, fields)
    # the layout places a derived discount's 0 (read only then: detecting it decodes data)
    derived = not set(outputs) <= set(selection.dataset.step_fields)
    layout = dataset_layout(selection.dataset) if derived else "rlds"
    return BatchLoader(
        selection,
        ItemSpec("windows", tuple(outputs), size=size, shift=shift, pad=pad, layout=layout),
        fields=fields,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        num_epochs=num_epochs,
        shuffle_buffer=shuffle_buffer,
        drop_remainder=drop_remainder,
        episodes_per_chunk=episodes_per_chunk,
    )


def steps(
    source: Any,
    split: str = "train",
    *,
    history: int = 0,
    action_chunk: int = 1,
    episodes: EpisodeSpec = None,
    where: Where = None,
    keys: Sequence[str] | None = None,
    batch_size: int = 256,
    shuffle: bool = True,
    seed: int = 0,
    num_epochs: int | None = 1,
    shuffle_buffer: int = 256,
    drop_remainder: bool = False,
    episodes_per_chunk: int = 32,
    skip_corrupt: bool = False,
    **filters: Any,
) -> BatchLoader:
    """Shuffled batches of single steps, with frame history and action chunks.

    Each batch holds every step field (``observation`` nested as stored, ``action``,
    ``reward``, ``discount``, ``is_first``, ``is_last``, ``is_terminal``,
    ``language_instruction`` and step metadata where present), the episode's fields
    (``episode_metadata``, ...), ``episode_index`` (in the split), ``step_index`` (in the
    episode) and ``action_mask``; every step of the selection is one item, once per epoch.

    - ``history=H``: every observation leaf is ``[batch, H + 1, ...]``, steps ``t - H .. t``
      (the current step last); before the episode's first step the first step is repeated
      and ``observation_mask`` ``[batch, H + 1]`` is False there.
    - ``action_chunk=C``: every action leaf is ``[batch, C, ...]``, this step's action and the
      next ``C - 1``; ``action_mask`` ``[batch, C]`` is False past the episode's last real
      action, where the action is zero (in the ``rlds`` layout the zero-filled last step is
      never a real action; in the ``oxe`` layout every step's action is). With ``C=1``
      ``action`` has no chunk axis and ``action_mask`` is ``[batch]``.

    Args:
      keys: the step and episode fields to return (top-level names; default all of them).
      history: earlier frames per observation (>= 0). action_chunk: actions per step (>= 1).
      skip_corrupt: skip the steps whose camera frame (or a frame of their history) does not
        decode, and episodes that do not decode at all, instead of raising; counted in
        ``loader.skipped`` and reported in a warning after each pass.
      Others as in :func:`transitions` (strings come as object arrays of ``bytes``).
    """
    selection = _selection(source, split, episodes, where, filters, "steps()")
    spec, plan = step_plan(selection, keys, history, action_chunk, skip_corrupt=skip_corrupt)
    check_frame_shapes(selection, spec.outputs)
    return BatchLoader(
        selection,
        spec,
        fields=(),
        plan=plan,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        num_epochs=num_epochs,
        shuffle_buffer=shuffle_buffer,
        drop_remainder=drop_remainder,
        episodes_per_chunk=episodes_per_chunk,
    )


def step_plan(
    selection: Selection,
    keys: Sequence[str] | None,
    history: int,
    action_chunk: int,
    *,
    skip_corrupt: bool = False,
) -> tuple[ItemSpec, Plan]:
    """What :func:`steps` makes of ``selection``, and the leaves it decodes.

    Raises:
      ValueError: a bad ``history``, ``action_chunk`` or key (naming the fields there are).
    """
    check_history(history)
    check_positive("action_chunk", action_chunk)
    plan = selection.dataset.plan
    step_fields = list(plan.step_fields)
    episode_fields = list(dict.fromkeys(leaf.field for leaf in plan.episode_leaves))
    if keys is None:
        wanted = [*step_fields, *(f for f in _DERIVED if f not in step_fields), *episode_fields]
    else:
        if isinstance(keys, str):
            raise ValueError(f"keys must be a sequence of field names, got {keys!r}")
        wanted = list(dict.fromkeys(keys))
        unknown = [k for k in wanted if k not in {*step_fields, *_DERIVED, *episode_fields}]
        if unknown:
            raise ValueError(
                f"the dataset has no field(s) {unknown}; its step fields are {step_fields} "
                f"and its episode fields {episode_fields}"
            )
    clash = [k for k in wanted if k in MADE]
    if clash:
        raise ValueError(
            f"the dataset's field(s) {clash} have the names of fields steps() makes; leave "
            f"them out with keys=[...]"
        )
    outputs = [k for k in wanted if k in step_fields or k in _DERIVED]
    chosen = set(wanted) - set(outputs)
    fields = _stored(selection, [*outputs, rlds.IS_FIRST])
    layout = dataset_layout(selection.dataset)  # which actions are real: the action mask
    spec = ItemSpec(
        "steps",
        tuple(wanted),
        layout=layout,
        history=history,
        action_chunk=action_chunk,
        skip_corrupt=bool(skip_corrupt),
    )
    episode_leaves = [leaf for leaf in plan.episode_leaves if leaf.field in chosen]
    return spec, Plan([*plan.step_fields_plan(fields).leaves, *episode_leaves])


def _selection(
    source: Any,
    split: str,
    episodes: EpisodeSpec,
    where: Where,
    filters: Mapping[str, Any],
    function: str,
) -> Selection:
    check_filters(filters, function.rstrip("()"))
    if isinstance(source, Selection):
        if episodes is not None or where is not None or filters:
            raise ValueError("pass either a Selection or episode filters, not both")
        return source
    from rlds_hub.storage.names import as_dataset

    dataset = as_dataset(source, function)
    return select(dataset, split, episodes=episodes, where=where, **filters)


__all__ = ["MASK", "NEXT_OBSERVATION", "BatchLoader", "steps", "transitions", "windows"]
