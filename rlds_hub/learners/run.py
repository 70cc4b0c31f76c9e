"""A training run: ``rlds-hub train`` and :func:`train` — budget, evaluation, checkpoints.

A run directory (``--out``, :mod:`rlds_hub.learners.run_dir`) holds:

- ``run.json``: algorithm, config, task (specs), observation normaliser, dataset, env,
  seed, evaluation references — what :func:`rlds_hub.learners.load_policy` and
  ``--resume`` read;
- ``metrics.jsonl``: one JSON line per log / evaluation (also printed);
- ``checkpoints/<step>/``: orbax checkpoints (the last three);
- ``evaluation/``: an RLDS dataset of every evaluation episode (``learner_step`` in each
  episode's metadata), and for online learners ``experience/``: every episode the agent
  played while training;
- ``learning_curve.png``.

The loop is the same for every learner: the learner's agent (the
:class:`~rlds_hub.learners.algorithm.Agent` its registered
:class:`~rlds_hub.learners.algorithm.Algorithm` makes) advances by one call
(``steps_per_call`` updates, or a chunk of environment steps), and the loop evaluates,
logs and checkpoints when the step count crosses the configured intervals. Every metrics
line names what was counted (``updates``: SGD updates; ``env_steps``: environment steps;
POIR also ``finetune_updates``) and the rate of the unit just advanced (``updates_per_s``,
``env_steps_per_s``); the run's end logs the last interval's metrics even when it is
shorter than ``log_every``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rlds_hub.learners import config as config_lib
from rlds_hub.learners import evaluation, metrics, seeds
from rlds_hub.learners.algorithm import Agent, get_algorithm
from rlds_hub.learners.errors import CheckpointError, DataError, LearnerError
from rlds_hub.learners.normalization import Normalizer
from rlds_hub.learners.run_dir import RUN_JSON, RunDirectory
from rlds_hub.learners.run_setup import Setup
from rlds_hub.learners.task import TaskSpec

__all__ = ["RunResult", "Setup", "prepare", "train", "trained_seeds"]


@dataclasses.dataclass
class RunResult:
    run_dir: str
    steps: int
    evaluations: list[dict[str, Any]]
    references: dict[str, Any] | None
    curve: str | None


def prepare(
    algorithm: str,
    *,
    dataset: Any,
    env: str,
    out: str | os.PathLike,
    seed: int = 0,
    config: Any = None,
    steps: int | None = None,
    split: str = "train",
    resume: bool = False,
    parallel: Any = None,
    echo: Callable[[str], None] = print,
) -> Setup:
    """Checks the inputs and builds the :class:`Setup` of a run (nothing is trained yet).

    Raises:
      LearnerError: an unknown algorithm, a bad config, an env that does not match the
        data, a dataset with no episodes or with NaNs, a run directory that already holds
        a run (without ``resume``) or a run of another config / task (with it).
    """
    from rlds_hub.envs import canonical_env_name, make_env
    from rlds_hub.storage.dataset_files import DatasetError

    run_config = _config(get_algorithm(algorithm).config, config, steps)
    env_name = canonical_env_name(env)
    try:
        from rlds_hub.storage.names import as_dataset
        from rlds_hub.storage.query import select

        opened = as_dataset(dataset, f"train {algorithm}")
        if opened.num_episodes == 0:
            raise DataError(
                f"{opened.path} holds no episode to learn from (record some, or "
                "point --dataset at another directory)"
            )
        selection = select(opened, split)
    except DatasetError as e:
        raise DataError(str(e)) from None
    if selection.num_episodes == 0:
        raise DataError(f"{opened.path} has no episode in {split!r} to learn from")
    statistics = _statistics(opened, selection, echo)
    task = TaskSpec.from_dataset(opened, statistics, env_name=env_name)
    task.check_env(
        make_env(env_name, seed=seed),
        env_name,
        recorded_in=opened.dataset_metadata.env_name or opened.path,
    )
    normalizer = Normalizer.from_statistics(task, statistics)
    run_dir = os.path.abspath(os.fspath(out))
    eval_seed = seeds.validation_seed(seed)
    if parallel is None:
        from rlds_hub.learners.parallel import DataParallel

        parallel = DataParallel()
    setup = Setup(
        algorithm,
        run_config,
        task,
        normalizer,
        opened,
        split,
        statistics,
        env_name,
        seed,
        run_dir,
        eval_seed,
        parallel,
        echo=echo,
    )
    _check_run_dir(setup, resume)
    seeds.check_disjoint(
        [setup.eval_seed], trained=trained_seeds(opened, run_dir), what=f"the run in {run_dir}"
    )
    return setup


def trained_seeds(dataset: Any, run_dir: str) -> list[int]:
    """The environment seeds a run has learned from: its demonstrations' recording seeds
    and, for an online learner resumed, the seeds of its ``experience`` episodes."""
    from rlds_hub.storage import open_dataset

    found = evaluation.dataset_seeds(dataset)
    files = RunDirectory(os.fspath(run_dir))
    if files.holds_experience():
        found += evaluation.dataset_seeds(open_dataset(files.experience))
    return found


def _config(cls: type, config: Any, steps: int | None) -> Any:
    if isinstance(config, config_lib.RunConfig):
        if not isinstance(config, cls):
            raise LearnerError(f"expected a {cls.__name__}, got {type(config).__name__}")
        return config.replace(num_steps=steps) if steps is not None else config
    if isinstance(config, Mapping):
        return config_lib.from_json(cls, {**config, **({"num_steps": steps} if steps else {})})
    return config_lib.load(cls, config, num_steps=steps)


def _statistics(dataset: Any, selection: Any, echo: Callable[[str], None]) -> dict[str, Any]:
    from rlds_hub.inspection import statistics
    from rlds_hub.learners.stored_statistics import split_statistics

    if selection.indices is None:
        return split_statistics(
            dataset, selection.split, note=lambda message: echo(json.dumps({"note": message}))
        )
    return statistics(dataset, selection.split, episodes=list(selection.indices))


def run_record(setup: Setup) -> dict[str, Any]:
    from rlds_hub._version import __version__

    return {
        "algorithm": setup.algorithm,
        "config": config_lib.to_json(setup.config),
        "task": setup.task.to_json(),
        "normalizer": setup.normalizer.to_json(),
        "dataset": setup.dataset.path,
        "split": setup.split,
        "env": setup.env_name,
        "seed": setup.seed,
        "eval_seed": setup.eval_seed,
        "references": setup.references,
        "rlds_hub_version": __version__,
    }


def _check_run_dir(setup: Setup, resume: bool) -> None:
    if not setup.files.holds_run():
        if resume:
            raise CheckpointError(f"nothing to resume: {setup.run_dir} holds no run ({RUN_JSON})")
        return
    if not resume:
        raise LearnerError(
            f"{setup.run_dir} already holds a training run; pass --resume to continue it, or "
            "choose another --out"
        )
    saved = setup.files.read_run()
    current = run_record(setup)
    differences = []
    for key in ("algorithm", "env", "seed", "split"):
        if saved.get(key) != current[key]:
            differences.append(f"{key}: {saved.get(key)!r} in the run, {current[key]!r} now")
    allowed = type(setup.config).resumable_fields()
    # An option added after the run was written is compared at what the run trained with:
    # its default, or its value from before a later change of the default.
    defaults = config_lib.saved_defaults(type(setup.config))
    for key in sorted(set(saved["config"]) | set(current["config"])):
        if key in allowed:
            continue
        was = saved["config"].get(key, defaults.get(key))
        if was != current["config"].get(key):
            differences.append(
                f"config {key}: {was!r} in the run, {current['config'].get(key)!r} now"
            )
    differences += TaskSpec.from_json(saved["task"]).differences(setup.task)
    if differences:
        raise CheckpointError(
            f"cannot resume {setup.run_dir}: it was trained with another setup:\n  "
            + "\n  ".join(differences)
            + f"\nResume with the same options (only {', '.join(sorted(allowed))} may "
            "change), or start a new run in another directory."
        )
    setup.references = saved.get("references")
    setup.eval_seed = saved.get("eval_seed", setup.eval_seed)


def train(
    algorithm: str,
    *,
    dataset: Any,
    env: str,
    out: str | os.PathLike,
    seed: int = 0,
    config: Any = None,
    steps: int | None = None,
    split: str = "train",
    resume: bool = False,
    progress: bool = True,
    parallel: Any = None,
    echo: Callable[[str], None] | None = None,
) -> RunResult:
    """Trains ``algorithm`` ("bc", "ail", "poir") on ``dataset`` for ``env`` into ``out``.

    ``config``: a config object, a dict of overrides, or a JSON file of overrides;
    ``steps`` overrides its ``num_steps``. Metrics lines go to ``echo`` (default: stdout).
    """
    from rlds_hub.learners.checkpoints import Checkpointer

    echo = echo or (lambda line: print(line, flush=True))
    setup = prepare(
        algorithm,
        dataset=dataset,
        env=env,
        out=out,
        seed=seed,
        config=config,
        steps=steps,
        split=split,
        resume=resume,
        parallel=parallel,
        echo=echo,
    )
    learner = get_algorithm(algorithm)
    cfg = setup.config
    stale = (setup.references or {}).get("episodes") != cfg.eval_episodes
    if cfg.eval_episodes > 0 and (setup.references is None or stale):
        setup.references = evaluation.reference_returns(
            setup.env_name,
            seed=setup.eval_seed,
            episodes=cfg.eval_episodes,
            dataset_return=_dataset_return(setup.statistics),
            dataset_references=evaluation.source_references(setup.dataset.dataset_metadata),
        )
    setup.files.write_run(run_record(setup))
    agent = learner.make_agent(setup)
    checkpointer = Checkpointer(setup.run_dir)
    log = None
    try:
        if resume and checkpointer.latest_step() is None:
            # stopped before its first checkpoint: nothing to continue, so it starts over
            metrics.truncate_after(setup.run_dir, 0)
            echo(
                json.dumps(
                    {
                        "resumed": setup.run_dir,
                        "step": 0,
                        "note": "no checkpoint yet: training from the start",
                    }
                )
            )
        elif resume:
            state, meta = checkpointer.restore(agent.checkpoint_state())
            agent.restore(state, meta)
            metrics.truncate_after(setup.run_dir, agent.progress)
            echo(json.dumps({"resumed": setup.run_dir, "step": agent.progress}))
        log = metrics.MetricsLog(setup.run_dir)
        evaluations = _loop(agent, setup, checkpointer, log, progress)
    finally:
        agent.close()
        checkpointer.close()
        if log is not None:
            log.close()
    curve = metrics.plot_learning_curve(
        metrics.read_metrics(setup.run_dir),
        setup.files.curve,
        title=f"{algorithm.upper()} on {setup.env_name}",
        unit=agent.axis_label,
        references=setup.references,
    )
    return RunResult(setup.run_dir, agent.progress, evaluations, setup.references, curve)


def _dataset_return(statistics: Mapping[str, Any]) -> float | None:
    returns = statistics.get("returns") or {}
    return returns.get("mean")


def _loop(
    agent: Agent, setup: Setup, checkpointer: Any, log: metrics.MetricsLog, progress: bool
) -> list[dict[str, Any]]:
    from tqdm import tqdm

    cfg = setup.config
    started = time.perf_counter()
    evaluations: list[dict[str, Any]] = []
    last = {"log": agent.progress, "eval": agent.progress, "checkpoint": agent.progress}
    window = (counters(agent), time.perf_counter())
    pending_metrics: Any = None
    total = agent.total
    bar = tqdm(
        total=total,
        initial=agent.progress,
        unit=agent.unit,
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )

    def emit(record: dict[str, Any]) -> None:
        line = log.write(
            {
                "step": agent.progress,
                "time": round(time.perf_counter() - started, 2),
                "kind": record["kind"],
                **counters(agent),
                **record,
            }
        )
        bar.clear()
        setup.echo(line)
        bar.refresh()

    def run_eval() -> None:
        result = agent.evaluate(setup, record_to=setup.files.evaluation)
        evaluations.append({"step": agent.progress, **result})
        emit({"kind": "eval", **result})
        if result.get("normalized_return") is not None:
            bar.set_postfix(norm_return=f"{result['normalized_return']:.2f}")

    unit = agent.unit

    def log_train() -> None:
        nonlocal window
        now, counted = time.perf_counter(), counters(agent)
        name = counter_name(unit)
        rate = (counted.get(name, 0) - window[0].get(name, 0)) / max(now - window[1], 1e-9)
        window = (counted, now)
        emit({"kind": "train", **_host(pending_metrics), f"{name}_per_s": round(rate, 1)})
        last["log"] = agent.progress

    try:
        while agent.progress < total:
            before, unit = agent.progress, agent.unit
            bar.unit = unit
            try:
                pending_metrics = agent.advance(total)
            except StopIteration:
                emit({"kind": "note", "message": agent.data_exhausted_message()})
                break
            bar.update(agent.progress - before)
            if agent.progress - last["log"] >= cfg.log_every:
                log_train()
            if cfg.eval_episodes and agent.progress - last["eval"] >= cfg.eval_every:
                run_eval()
                last["eval"] = agent.progress
            if (
                agent.progress - last["checkpoint"] >= cfg.checkpoint_every
                and agent.can_checkpoint()
            ):
                _save(agent, checkpointer)
                last["checkpoint"] = agent.progress
        if pending_metrics is not None and last["log"] != agent.progress:
            log_train()  # the last interval's loss (all of a run shorter than log_every)
        agent.finish()
        if cfg.eval_episodes and last["eval"] != agent.progress:
            run_eval()
        if last["checkpoint"] != agent.progress or checkpointer.latest_step() is None:
            _save(agent, checkpointer)
    finally:
        bar.close()
    return evaluations


def counter_name(unit: str) -> str:
    """The metrics key counting a unit: "update" -> "updates", "env step" -> "env_steps"."""
    return unit.replace(" ", "_") + "s"


def counters(agent: Agent) -> dict[str, int]:
    """What an agent has done, each count under its own name (``updates``, ``env_steps``)."""
    return {k: int(v) for k, v in agent.counters().items()}


def _save(agent: Agent, checkpointer: Any) -> None:
    state, policy, meta = agent.checkpoint()
    checkpointer.save(agent.progress, state, policy, {"progress": agent.progress, **meta})


def _host(values: Any) -> dict[str, Any]:
    if values is None:
        return {}
    out = {}
    for key, value in dict(values).items():
        array = np.asarray(value)
        out[key] = float(array) if array.ndim == 0 else array.tolist()
    return out
