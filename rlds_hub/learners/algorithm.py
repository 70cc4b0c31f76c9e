"""The contract between the run and the learners: :class:`Agent`, :class:`Algorithm`, the
registry.

The run (:mod:`rlds_hub.learners.run`: ``rlds-hub train``, ``--resume``) and
:func:`rlds_hub.learners.load_policy` know a learner only through its :class:`Algorithm`
record, found by name in :data:`ALGORITHMS`; the run drives the learner's :class:`Agent`
(the members below, nothing else). The agents import :mod:`rlds_hub.learners.run_setup`
(their :class:`~rlds_hub.learners.run_setup.Setup`), never the run.

A new learner is one folder (``learners/<name>/``: its config, its agent class,
``make_policy`` and ``policy_params_template``) and one entry in :data:`ALGORITHMS`. Each
entry loads its learner on first use, so this module, the CLI's ``train --help`` and
``import rlds_hub.learners`` stay free of JAX.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from rlds_hub.learners.config import RunConfig
from rlds_hub.learners.errors import LearnerError
from rlds_hub.learners.normalization import Normalizer
from rlds_hub.learners.run_setup import Setup
from rlds_hub.learners.task import TaskSpec


@runtime_checkable
class Agent(Protocol):
    """A learner as the run loop drives it.

    ``advance`` moves it on by one call (a chunk of SGD updates or of environment steps);
    the loop evaluates, logs and checkpoints when ``progress`` crosses the config's
    intervals, until it reaches ``total``.
    """

    @property
    def unit(self) -> str:
        """What the next ``advance`` counts: ``"update"`` or ``"env step"``."""
        ...

    @property
    def axis_label(self) -> str:
        """The learning curve's x-axis label."""
        ...

    @property
    def progress(self) -> int:
        """The run's position (metrics' ``step``, checkpoint numbers)."""
        ...

    @property
    def total(self) -> int:
        """The position at which the run ends."""
        ...

    def counters(self) -> dict[str, int]:
        """What it has done, each count under its own name (``updates``, ``env_steps``)."""
        ...

    def advance(self, limit: int) -> Mapping[str, Any] | None:
        """One call's work, never past ``limit``; the training metrics, if any (raises
        ``StopIteration`` when its data ran out)."""
        ...

    def evaluate(self, setup: Setup, record_to: str | None = None) -> dict[str, Any]:
        """Evaluation episodes on ``setup.eval_seed``, recorded into ``record_to``."""
        ...

    def can_checkpoint(self) -> bool:
        """Whether now is a point a checkpoint can resume from (an episode boundary)."""
        ...

    def checkpoint_state(self) -> Any:
        """The restore target: a pytree shaped like the saved training state."""
        ...

    def checkpoint(self) -> tuple[Any, Any, dict[str, Any]]:
        """(training state, policy parameters, JSON metadata) to save."""
        ...

    def restore(self, state: Any, meta: Mapping[str, Any]) -> None:
        """Continues from a saved state and its metadata (``meta["progress"]`` included)."""
        ...

    def finish(self) -> None:
        """Called once the budget is reached, before the last evaluation."""
        ...

    def data_exhausted_message(self) -> str:
        """The note logged when ``advance`` raised ``StopIteration``."""
        ...

    def close(self) -> None:
        """Releases environments, recorders and data sources."""
        ...


class MakePolicy(Protocol):
    """An algorithm's acting policy (:class:`rlds_hub.envs.Policy`) from a checkpoint."""

    def __call__(
        self,
        task: TaskSpec,
        config: Any,
        normalizer: Normalizer,
        params: Any,
        *,
        run: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> Any: ...


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """A learner as the run and :func:`~rlds_hub.learners.load_policy` use it.

    Attributes:
      name: what ``rlds-hub train NAME`` and ``run.json``'s ``algorithm`` say.
      config: its config class (a :class:`~rlds_hub.learners.config.RunConfig`).
      make_agent: ``Setup -> Agent`` (usually the agent class itself).
      make_policy: the acting policy from a checkpoint's ``policy`` item.
      policy_params_template: ``(task, config, run.json) ->`` the shapes of the ``policy``
        item to restore (None: restored as saved).
    """

    name: str
    config: type[RunConfig]
    make_agent: Callable[[Setup], Agent]
    make_policy: MakePolicy
    policy_params_template: Callable[[TaskSpec, Any, Mapping[str, Any]], Any]


def _bc() -> Algorithm:
    from rlds_hub.learners import bc

    return Algorithm("bc", bc.BCConfig, bc.BCAgent, bc.make_policy, bc.policy_params_template)


def _ail() -> Algorithm:
    from rlds_hub.learners import ail

    return Algorithm(
        "ail", ail.AILConfig, ail.AILAgent, ail.make_policy, ail.policy_params_template
    )


def _poir() -> Algorithm:
    from rlds_hub.learners import poir

    return Algorithm(
        "poir", poir.POIRConfig, poir.POIRAgent, poir.make_policy, poir.policy_params_template
    )


# The registry: every learner's name, and what loads its record (its JAX code) on first use.
ALGORITHMS: dict[str, Callable[[], Algorithm]] = {"bc": _bc, "ail": _ail, "poir": _poir}


def get_algorithm(name: str) -> Algorithm:
    """The registered :class:`Algorithm` called ``name``.

    Raises:
      LearnerError: no algorithm has that name (the message lists those that do).
    """
    if name not in ALGORITHMS:
        raise LearnerError(f"unknown algorithm {name!r}; choose from {sorted(ALGORITHMS)}")
    record = ALGORITHMS[name]()
    if record.name != name:
        raise LearnerError(f"the registry's {name!r} entry loads {record.name!r}")
    return record
