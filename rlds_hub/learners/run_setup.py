"""What a learner's agent is made from: the :class:`Setup` of a run.

:func:`rlds_hub.learners.run.prepare` checks a run's inputs and builds one; each algorithm's
``make_agent(setup)`` (:class:`rlds_hub.learners.algorithm.Algorithm`) makes its agent from
it. The agents import this module, never the run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from rlds_hub.learners.config import RunConfig
from rlds_hub.learners.normalization import Normalizer
from rlds_hub.learners.run_dir import RunDirectory
from rlds_hub.learners.task import TaskSpec

if TYPE_CHECKING:
    from rlds_hub.learners.parallel import DataParallel
    from rlds_hub.storage.dataset import RLDSDataset

ConfigT = TypeVar("ConfigT", bound=RunConfig)


@dataclasses.dataclass
class Setup(Generic[ConfigT]):
    """Everything an agent needs: the checked inputs of one run.

    Attributes:
      algorithm: the registered name (``rlds-hub train ALGORITHM``).
      config: the algorithm's config (its ``Algorithm.config`` class).
      task: the specs the learner sees (flattened observations, actions).
      normalizer: the observation normaliser (from the demonstrations' statistics).
      dataset / split: the demonstrations (an opened dataset and a split or TFDS slice).
      statistics: the demonstrations' statistics (``rlds_hub.inspection.statistics``).
      env_name: the canonical environment name evaluations (and online learners) use.
      seed: the run seed (``--seed``); ``eval_seed``: its validation-range environment seed.
      run_dir: the run directory (absolute); :attr:`files` names what it holds.
      parallel: the devices the learner's batches are split over.
      references: the expert / random returns normalised returns are measured against.
      echo: where the run's lines go (metrics, notes).
    """

    algorithm: str
    config: ConfigT
    task: TaskSpec
    normalizer: Normalizer
    dataset: RLDSDataset
    split: str
    statistics: dict[str, Any]
    env_name: str
    seed: int
    run_dir: str
    eval_seed: int
    parallel: DataParallel
    references: dict[str, Any] | None = None
    echo: Callable[[str], None] = print

    @property
    def files(self) -> RunDirectory:
        """The run directory's files (``run.json``, ``experience/``, ...)."""
        return RunDirectory(self.run_dir)
