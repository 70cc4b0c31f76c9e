"""Environment seeds for training, validation and test: three disjoint ranges.

The evaluation protocol (docs/learners.md, "Protocol"): every environment seed belongs to
exactly one range, so the episodes a result is reported on can never be ones a learner
trained on or a design choice was tuned on.

- :data:`TRAINING`: demonstrations (recorded with small seeds, from 0) and the episodes an
  online learner plays while it trains (:func:`online_seed`, in the upper half).
- :data:`VALIDATION`: every design and hyperparameter choice, every probe, and the
  evaluations a run makes while it trains (:func:`validation_seed`).
- :data:`TEST`: the reported numbers only (:func:`test_seed`).

A run seed ``s`` (``--seed``) maps to one seed of each range. :func:`check_disjoint` is what
makes a run fail loudly when its evaluation seeds overlap anything it trained or was tuned on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rlds_hub.learners.errors import LearnerError

TRAINING = range(0, 1_000_000_000)
VALIDATION = range(1_000_000_000, 1_500_000_000)
TEST = range(1_500_000_000, 2_000_000_000)
# Online training episodes: the upper half of TRAINING, away from demonstration seeds.
ONLINE = range(500_000_000, TRAINING.stop)
RUN_SEEDS = range(0, len(VALIDATION))


class SeedOverlapError(LearnerError):
    """Evaluation seeds that overlap seeds trained or tuned on."""


def _run_seed(seed: int) -> int:
    if not isinstance(seed, int) or seed not in RUN_SEEDS:
        raise LearnerError(
            f"a run seed must be an integer in [0, {RUN_SEEDS.stop:,}), got {seed!r}"
        )
    return seed


def validation_seed(seed: int) -> int:
    """The environment seed of run seed ``seed``'s in-run evaluations (validation range)."""
    return VALIDATION.start + _run_seed(seed)


def test_seed(seed: int) -> int:
    """The environment seed of run seed ``seed``'s reported evaluation (test range)."""
    return TEST.start + _run_seed(seed)


test_seed.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported


def online_seed(seed: int, position: int, avoid: Iterable[Any] = ()) -> int:
    """The environment seed of an online learner's training loop started at ``position``
    (its progress: 0 for a fresh run, the checkpoint's for a resumed one).

    Always in :data:`ONLINE`, so never a validation or test seed; ``avoid`` (the
    demonstrations' seeds) is skipped, so training does not replay the demonstrations'
    start states unless asked for explicitly.
    """
    taken = {s for s in avoid if isinstance(s, int)}
    offset = (_run_seed(seed) * 1_000_003 + int(position)) % len(ONLINE)
    candidate = ONLINE.start + offset
    while candidate in taken:
        candidate = ONLINE.start + (candidate - ONLINE.start + 1) % len(ONLINE)
    return candidate


def range_name(seed: int) -> str:
    """``"training"``, ``"validation"``, ``"test"`` or ``"outside"`` for an env seed."""
    for name, seeds in (("training", TRAINING), ("validation", VALIDATION), ("test", TEST)):
        if seed in seeds:
            return name
    return "outside"


def check_disjoint(
    evaluation: Iterable[Any],
    *,
    trained: Iterable[Any] = (),
    tuned: Iterable[Any] = (),
    what: str = "this run",
) -> None:
    """Raises :class:`SeedOverlapError` when an evaluation seed is also a seed trained on
    (demonstrations, online experience) or tuned on (validation), naming each.

    Seeds that are not integers (unknown, e.g. a dataset recorded without one) are ignored.
    """
    evaluated = {s for s in evaluation if isinstance(s, int)}
    problems = []
    for label, seeds in (("trained on", trained), ("tuned on", tuned)):
        shared = sorted(evaluated & {s for s in seeds if isinstance(s, int)})
        if shared:
            problems.append(f"{label}: {shared}")
    if problems:
        raise SeedOverlapError(
            f"{what} would evaluate on environment seeds it has also "
            + "; ".join(problems)
            + f". Evaluation seeds come from the validation range [{VALIDATION.start:,}, "
            f"{VALIDATION.stop:,}) or the test range [{TEST.start:,}, {TEST.stop:,}); record "
            "demonstrations with seeds below "
            f"{TRAINING.stop:,} (docs/learners.md, Protocol)."
        )
