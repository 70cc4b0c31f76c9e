"""Trained policies as :class:`rlds_hub.envs.Policy` objects, and :func:`load_policy`.

A policy maps a ``dm_env.TimeStep`` to an action that matches the env's action spec exactly
(flattened and normalised observation -> jitted network -> action in the spec's dtype,
shape and bounds). ``load_policy(run_dir)`` rebuilds one from a training run's directory —
``run.json`` (algorithm, config, task, normaliser) and the latest checkpoint's ``policy``
item — with no TensorFlow and no dataset.
"""

from __future__ import annotations

import os
from typing import Any

import dm_env

from rlds_hub.learners.algorithm import get_algorithm
from rlds_hub.learners.learned_policy import LearnedPolicy
from rlds_hub.learners.run_dir import RUN_JSON, RunDirectory, read_run
from rlds_hub.learners.task import TaskSpec

__all__ = ["RUN_JSON", "LearnedPolicy", "load_policy", "read_run"]


def load_policy(
    run_dir: str | os.PathLike,
    *,
    env: dm_env.Environment | None = None,
    step: int | None = None,
    seed: int = 0,
) -> Any:
    """The trained policy of a run directory (the latest checkpoint, or ``step``).

    Args:
      run_dir: the ``--out`` directory of ``rlds-hub train``.
      env: when given, its specs are checked against the task the policy was trained on.
      seed: for policies with randomness (POIR's planner).

    Raises:
      CheckpointError: not a run directory, no checkpoint, or one that does not fit.
      SpecMismatchError: ``env`` differs from the training task.
    """
    from rlds_hub.learners import config as config_lib
    from rlds_hub.learners.checkpoints import Checkpointer
    from rlds_hub.learners.normalization import Normalizer

    run = RunDirectory(os.fspath(run_dir)).read_run()
    learner = get_algorithm(run["algorithm"])
    task = TaskSpec.from_json(run["task"])
    if env is not None:
        from rlds_hub.envs import env_label

        task.check_env(env, env_label(env), trained=True)
    config = config_lib.from_saved(learner.config, run["config"])
    normalizer = Normalizer.from_json(run["normalizer"])
    checkpointer = Checkpointer(run_dir, create=False)
    try:
        target = learner.policy_params_template(task, config, run)
        params, meta = checkpointer.restore_policy(target, step)
    finally:
        checkpointer.close()
    return learner.make_policy(task, config, normalizer, params, run=run, meta=meta, seed=seed)
