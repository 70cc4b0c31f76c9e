"""Evaluation: episodes of a policy on evaluation seeds, recorded as RLDS, and normalised return.

Normalised return = (R − R_random) / (R_expert − R_random), with R_expert and R_random the
mean returns of the scripted expert and the uniform random policy measured on the same
environment seed (so the same initial states) and under the same shift as the policy. For an
env without a scripted expert, R_expert and R_random are the dataset's published reference
scores when it has them (a Minari dataset's ``ref_max_score`` / ``ref_min_score``, kept by
``convert``: Minari's own normalised score), else R_expert is the mean episode return of the
training data (stated in the references).

Evaluation environments use seeds of the validation range (a run's own evaluations) or the
test range (reported numbers), never a training seed (:mod:`rlds_hub.learners.seeds`), so
the episodes are ones the learner never saw. Rollouts are
recorded with rlds_hub's :class:`~rlds_hub.recorders.Recorder` into a dataset directory,
each episode carrying the ``learner_step`` it was played at.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import dm_env
import numpy as np

from rlds_hub.envs import EXPERTS, RandomPolicy, canonical_env_name, make_env, make_policy
from rlds_hub.format.metadata import DatasetMetadata
from rlds_hub.learners import shifts


def dataset_seeds(dataset: Any) -> list[int]:
    """Seeds the dataset's recording sessions used (from its metadata)."""
    return dataset.dataset_metadata.seeds_used


def run_episodes(
    policy: Any,
    env_name: str,
    *,
    seed: int,
    episodes: int,
    shift: Mapping[str, Any] | None = None,
    record_to: str | os.PathLike | None = None,
    policy_name: str | None = None,
    learner_step: int | None = None,
) -> list[float]:
    """Returns of ``episodes`` episodes of ``policy`` on ``make_env(env_name, seed=seed)``.

    ``record_to``: a dataset directory the episodes are appended to (RLDS, browsable).
    """
    if episodes <= 0:
        return []
    env = make_env(env_name, seed=seed)
    recorder = None

    def record(inner: dm_env.Environment) -> dm_env.Environment:
        nonlocal recorder
        from rlds_hub.recorders import Recorder

        step = np.int64(-1 if learner_step is None else learner_step)
        recorder = Recorder(
            inner,
            record_to,
            env_name=canonical_env_name(env_name),
            policy_name=policy_name,
            seed=seed,
            episode_fn=lambda timestep, action, env: {"learner_step": step},
            save_unfinished_episodes=False,
            metadata={"shift": dict(shift or {})},
        )
        return recorder

    wrapped = shifts.apply_shift(env, shift, seed, record=record if record_to else None)
    returns = []
    try:
        for _ in range(episodes):
            timestep = wrapped.reset()
            policy.reset()
            total = 0.0
            while not timestep.last():
                timestep = wrapped.step(policy(timestep))
                total += float(timestep.reward)
            returns.append(total)
    finally:
        if recorder is not None:
            recorder.close()
    return returns


def reference_returns(
    env_name: str,
    *,
    seed: int,
    episodes: int,
    shift: Mapping[str, Any] | None = None,
    dataset_return: float | None = None,
    dataset_references: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Mean returns of the scripted expert and the random policy on the evaluation seed;
    without a scripted expert, ``dataset_references`` (:func:`source_references`) or else
    ``dataset_return`` give the reference."""
    env = make_env(env_name, seed=seed)
    random_returns = run_episodes(
        RandomPolicy(env.action_spec(), seed=seed),
        env_name,
        seed=seed,
        episodes=episodes,
        shift=shift,
    )
    refs: dict[str, Any] = {
        "seed": seed,
        "episodes": episodes,
        "shift": dict(shift or {}),
        "random": float(np.mean(random_returns)),
        "random_returns": random_returns,
    }
    if canonical_env_name(env_name) in EXPERTS:
        expert = make_policy("expert", env_name, env, seed=seed)
        expert_returns = run_episodes(expert, env_name, seed=seed, episodes=episodes, shift=shift)
        refs.update(
            expert=float(np.mean(expert_returns)),
            expert_returns=expert_returns,
            expert_source="scripted expert",
        )
    elif dataset_references:
        refs.update(dataset_references)
    elif dataset_return is not None:
        refs.update(expert=float(dataset_return), expert_source="mean return of the data")
    else:
        refs.update(expert=None, expert_source=None)
    return refs


def source_references(metadata: DatasetMetadata | Mapping[str, Any]) -> dict[str, Any] | None:
    """A converted dataset's published reference scores (Minari's ``ref_min_score`` and
    ``ref_max_score``, in ``metadata.json``'s ``source.metadata``) as references, or None."""
    if not isinstance(metadata, DatasetMetadata):
        metadata = DatasetMetadata.from_json(metadata)
    source = metadata.source
    kept = source.metadata if source is not None else None
    if not isinstance(kept, Mapping):
        return None
    low, high = kept.get("ref_min_score"), kept.get("ref_max_score")
    if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or low == high:
        return None
    what = source.format or "source"
    return {
        "expert": float(high),
        "random": float(low),
        "expert_source": f"{what} ref_max_score",
        "random_source": f"{what} ref_min_score",
    }


def normalized_return(
    returns: Sequence[float] | float, references: Mapping[str, Any]
) -> float | None:
    """(mean R − R_random) / (R_expert − R_random), or None without an expert reference."""
    expert, random = references.get("expert"), references.get("random")
    if expert is None or random is None or expert == random:
        return None
    mean = float(np.mean(returns))
    return (mean - random) / (expert - random)


def evaluate(
    policy: Any,
    env_name: str,
    *,
    seed: int,
    episodes: int,
    references: Mapping[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Runs :func:`run_episodes` and summarises: mean/std return and the normalised return."""
    returns = run_episodes(policy, env_name, seed=seed, episodes=episodes, **options)
    result: dict[str, Any] = {
        "return": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        "returns": [round(r, 3) for r in returns],
    }
    if references is not None:
        result["normalized_return"] = normalized_return(returns, references)
    return result
