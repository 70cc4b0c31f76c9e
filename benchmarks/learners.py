"""Quality benchmarks of the learners: normalised return over seeds, with curves.

The protocol (docs/learners.md, "Protocol"; ``rlds_hub.learners.seeds``): demonstrations are
recorded on training seeds (seed 0), the runs' own evaluations while they train (the learning
curves) use validation seeds, and every reported number comes from the test seeds only —
run seed ``s`` is tested on environment seed ``seeds.test_seed(s)``, checked disjoint from
everything the run trained or was tuned on. Each reported point has at least 30 test
episodes over its seeds; it is the mean with a 95% bootstrap interval (seeds and episodes
resampled, ``rlds_hub.learners.confidence``) and the per-seed values.

Normalised return = (R − R_random) / (R_expert − R_random): R_expert and R_random are the
scripted expert's and the uniform random policy's mean returns measured on the same test
episodes (same environment seed), under the same shift. Every experiment records its own
demonstrations with rlds_hub's recorder, trains one run per seed with
``rlds_hub.learners.train`` (the code behind ``rlds-hub train``), and keeps each finished
seed's result on disk, so an interrupted benchmark resumes where it stopped and partial
results are never lost. Results from before the protocol (no ``test`` record) are not
reported.

Run from the repository root:

    python -m benchmarks.learners bc-point-mass  --seeds 5 --out out/learners
    python -m benchmarks.learners ail-point-mass --seeds 5 --out out/learners
    python -m benchmarks.learners ail-cartpole   --seeds 3 --out out/learners
    python -m benchmarks.learners bc-cartpole    --seeds 3 --out out/learners
    python -m benchmarks.learners poir-cartpole  --seeds 5 --out out/learners
    python -m benchmarks.learners report --out out/learners [--images docs/images]

POIR's planner with the simulator as its model (a reference for the planner design):
``python -m benchmarks.poir_ceiling --run out/learners/poir-cartpole/seed0/poir --seed 0``.

Targets (issue 10): BC >= 0.9 on point_mass-easy from <= 20 episodes; AIL >= 0.8 on
point_mass-easy from <= 10 episodes within a stated budget of environment steps; POIR >=
BC + 0.1 on cartpole-swingup under shift (noisy actions; initial states outside the
demonstrations'), from <= 20 clean episodes, and better again after online fine-tuning.

POIR's table (issue 17) has five columns on the same test episodes: BC; POIR's own BC (the
POIR run with ``mode="bc"``); POIR offline; POIR fine-tuned online; and BC + the same online
steps (:func:`bc_online`: BC plays POIR's online budget in the deployment on online training
seeds, then is trained again on the demonstrations and its successful rollouts). It adds the
paired differences "fine-tuned POIR − BC" and "fine-tuned POIR − BC with the same online
steps" with 95% intervals, and marks each of issue 17's targets met, not met or not measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from typing import Any

import numpy as np

from benchmarks import harness

POINT_MASS = "dm_control/point_mass-easy"
CARTPOLE = "dm_control/cartpole-swingup"
EVAL_EPISODES = 10  # per in-run (validation) evaluation: the learning curves
# What a finished POIR seed's result.json holds: 2 = BC, POIR's own BC, POIR offline, POIR
# fine-tuned online and BC with the same online steps (older records are completed on rerun).
POIR_ARMS = 2

# Deployment shifts for POIR (see rlds_hub.learners.shifts): Gaussian action noise of 0.3
# times the action half-range; and episodes starting with the cart 0.5-1.0 m off centre and
# the pole 0.5-1.0 rad away from hanging straight down (the demonstrations start within
# 0.01 of both), with the pole's angular velocity 0.5-1.5 rad/s.
SHIFTS = {
    "clean": {},
    "noisy_actions": {"action_noise": 0.3},
    "shifted_start": {"qpos_offset": [[0.5, 1.0], [0.5, 1.0]], "qvel_offset": [None, [0.5, 1.5]]},
}

EXPERIMENTS: dict[str, dict[str, Any]] = {
    "bc-point-mass": {
        "algorithm": "bc",
        "env": POINT_MASS,
        "demos": 20,
        "config": {"num_steps": 20_000, "eval_every": 2_000},
    },
    "ail-point-mass": {
        "algorithm": "ail",
        "env": POINT_MASS,
        "demos": 10,
        "config": {"num_steps": 50_000, "eval_every": 5_000},
    },
    "bc-cartpole": {
        "algorithm": "bc",
        "env": CARTPOLE,
        "demos": 10,
        "config": {"num_steps": 20_000, "eval_every": 2_000},
    },
    "ail-cartpole": {
        "algorithm": "ail",
        "env": CARTPOLE,
        "demos": 10,
        "config": {"num_steps": 100_000, "eval_every": 10_000},
    },
}


def demonstrations(out: str, env: str, episodes: int) -> str:
    """The expert demonstrations of an experiment (recorded once, seed 0)."""
    from rlds_hub.learners.testing import record_episodes

    name = env.split("/")[-1]
    path = os.path.join(out, "data", f"{name}-expert-{episodes}")
    if not os.path.exists(os.path.join(path, "dataset_info.json")):
        record_episodes(path, env, episodes=episodes, seed=0)
    return path


def test_episodes(seed_count: int) -> int:
    """Test episodes per run seed so that a reported point has at least 30 in all."""
    from rlds_hub.learners.confidence import MIN_TEST_EPISODES

    return math.ceil(MIN_TEST_EPISODES / max(seed_count, 1))


def checked_test_seed(run_dir: str, seed: int) -> int:
    """Run seed ``seed``'s test seed, refused if the run trained or was tuned on it."""
    from rlds_hub.learners import seeds
    from rlds_hub.learners.policy import read_run
    from rlds_hub.learners.run import trained_seeds
    from rlds_hub.storage import open_dataset

    run = read_run(run_dir)
    test = seeds.test_seed(seed)
    seeds.check_disjoint(
        [test],
        trained=trained_seeds(open_dataset(run["dataset"]), run_dir),
        tuned=[run.get("eval_seed")],
        what=f"the test of {run_dir}",
    )
    return test


def test_record(
    policy: Any,
    env: str,
    test_seed: int,
    episodes: int,
    shift: dict[str, Any] | None = None,
    references: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``episodes`` test episodes of ``policy``: returns and per-episode normalised returns
    against the expert and random policy measured on the same test episodes."""
    from rlds_hub.learners.evaluation import reference_returns, run_episodes

    refs = references or reference_returns(env, seed=test_seed, episodes=episodes, shift=shift)
    returns = run_episodes(policy, env, seed=test_seed, episodes=episodes, shift=shift)
    scale = refs["expert"] - refs["random"]
    return {
        "seed": test_seed,
        "returns": returns,
        "expert": refs["expert"],
        "random": refs["random"],
        "normalized": [(r - refs["random"]) / scale for r in returns],
    }


def run_experiment(
    name: str,
    seeds: list[int],
    out: str,
    variant: str | None = None,
    settings: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Train (or resume) and test each seed of ``name``. With ``variant`` (AIL settings
    compared on validation seeds, :mod:`benchmarks.ail_settings`), the runs apply
    ``settings`` on top of the experiment's config under ``<out>/ail-settings/<variant>``
    and are never tested: their record holds the in-run validation evaluations only."""
    from rlds_hub.learners import load_policy, train
    from rlds_hub.learners.metrics import read_metrics

    spec = EXPERIMENTS[name]
    data = demonstrations(out, spec["env"], spec["demos"])
    results = []
    for seed in seeds:
        run_dir = os.path.join(out, name, f"seed{seed}")
        if variant is not None:
            from benchmarks import ail_settings

            run_dir = os.path.join(ail_settings.variant_dir(out, variant), f"seed{seed}")
        result_path = os.path.join(run_dir, "result.json")
        budget = spec["config"]["num_steps"]
        if os.path.exists(result_path):
            with open(result_path) as f:
                done = json.load(f)
            if done["steps"] >= budget and ("test" in done or variant is not None):
                results.append(done)
                print(f"{name} seed {seed}: done before", flush=True)
                continue
            # A larger budget than before: the run is resumed and extended.
        resume = os.path.exists(os.path.join(run_dir, "run.json"))
        started = time.perf_counter()
        config = {"eval_episodes": EVAL_EPISODES, **spec["config"], **(settings or {})}
        result = train(
            spec["algorithm"],
            dataset=data,
            env=spec["env"],
            out=run_dir,
            seed=seed,
            config=config,
            resume=resume,
            progress=sys.stderr.isatty(),
            echo=lambda line: None,
        )
        if variant is not None:
            results.append(_validation_record(name, variant, seed, run_dir, started))
            continue
        test = test_record(
            load_policy(run_dir, seed=seed),
            spec["env"],
            checked_test_seed(run_dir, seed),
            test_episodes(len(seeds)),
        )
        record = {
            "experiment": name,
            "seed": seed,
            "algorithm": spec["algorithm"],
            "env": spec["env"],
            "demos": spec["demos"],
            "steps": result.steps,
            "normalized_return": float(np.mean(test["normalized"])),
            "test": test,
            "return": float(np.mean(test["returns"])),
            "expert": test["expert"],
            "random": test["random"],
            "curve": [
                (r["step"], r["normalized_return"])
                for r in read_metrics(run_dir)
                if r.get("kind") == "eval"
            ],  # validation seeds
            "seconds": round(time.perf_counter() - started, 1),
        }
        with open(result_path, "w") as f:
            json.dump(record, f, indent=1)
        results.append(record)
        print(
            f"{name} seed {seed}: normalised {record['normalized_return']:.3f} "
            f"(return {record['return']:.1f}; expert {record['expert']:.1f}, random "
            f"{record['random']:.1f}) in {record['seconds']:.0f} s",
            flush=True,
        )
    return results


def _validation_record(
    name: str, variant: str, seed: int, run_dir: str, started: float
) -> dict[str, Any]:
    """A settings variant's finished seed: its last validation evaluation (no test)."""
    from benchmarks import ail_settings

    validation = ail_settings.final_validation(run_dir)
    if validation is None:
        raise RuntimeError(f"{run_dir} finished without its final validation evaluation")
    mean = float(np.mean(validation["normalized"]))
    record = {
        "experiment": name,
        "variant": variant,
        "seed": seed,
        "steps": validation["step"],
        "validation": validation,
        "seconds": round(time.perf_counter() - started, 1),
    }
    with open(os.path.join(run_dir, "result.json"), "w") as f:
        json.dump(record, f, indent=1)
    print(
        f"{name} [{variant}] seed {seed}: validation normalised {mean:.3f} "
        f"in {record['seconds']:.0f} s",
        flush=True,
    )
    return record


# -- POIR under shift ------------------------------------------------------------------------


def run_poir(
    seeds: list[int],
    out: str,
    *,
    demos: int = 20,
    offline_steps: int = 20_000,
    online_steps: int = 10_000,
    episodes: int | None = None,
    env: str = CARTPOLE,
    shifts: dict[str, dict[str, Any]] | None = None,
    bc_config: dict[str, Any] | None = None,
    poir_config: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """BC, POIR's own BC (``mode="bc"``), POIR trained offline, POIR after online
    fine-tuning and BC fine-tuned with the same online steps (:func:`bc_online`), each
    deployed under every shift of ``shifts`` (default :data:`SHIFTS`; ``episodes`` test
    episodes per shift and seed: by default enough for 30 per reported point).

    ``env``, ``bc_config`` and ``poir_config`` (overrides of each run's config) are for
    small smoke runs; the benchmark uses the defaults.
    """
    from rlds_hub.learners import load_policy, train
    from rlds_hub.learners.evaluation import reference_returns

    shifts = SHIFTS if shifts is None else shifts
    episodes = episodes or test_episodes(len(seeds))
    data = demonstrations(out, env, demos)
    results = []
    references: dict[str, Any] = {}
    for seed in seeds:
        result_path = os.path.join(out, "poir-cartpole", f"seed{seed}", "result.json")
        if os.path.exists(result_path):
            with open(result_path) as f:
                done = json.load(f)
            if done.get("protocol") == "test-seeds" and done.get("arms") == POIR_ARMS:
                results.append(done)
                continue
            # An earlier record without today's arms: the finished runs on disk are kept
            # (skipped below), the missing arms are run and everything is tested again.
        os.makedirs(os.path.dirname(result_path), exist_ok=True)
        record: dict[str, Any] = {
            "seed": seed,
            "demos": demos,
            "offline_steps": offline_steps,
            "online_steps": online_steps,
            "episodes": episodes,
            "env": env,
            "protocol": "test-seeds",
            "arms": POIR_ARMS,
            "shifts": {},
        }
        started = time.perf_counter()
        quiet = {"progress": sys.stderr.isatty(), "echo": lambda line: None}
        base = os.path.join(out, "poir-cartpole", f"seed{seed}")
        bc_dir, poir_dir = os.path.join(base, "bc"), os.path.join(base, "poir")
        for algorithm, run_dir in (("bc", bc_dir), ("poir", poir_dir)):
            if load_policy_step(run_dir) < offline_steps:  # not run, or interrupted
                train(
                    algorithm,
                    dataset=data,
                    env=env,
                    out=run_dir,
                    seed=seed,
                    config={
                        "num_steps": offline_steps,
                        "eval_episodes": 0,
                        **(
                            {**(poir_config or {}), "online_steps": 0}
                            if algorithm == "poir"
                            else bc_config or {}
                        ),
                    },
                    resume=os.path.exists(os.path.join(run_dir, "run.json")),
                    **quiet,
                )
        eval_seed = checked_test_seed(poir_dir, seed)
        if checked_test_seed(bc_dir, seed) != eval_seed:
            raise AssertionError("BC and POIR must be tested on the same episodes")
        record["test_seed"] = eval_seed
        policies = {
            "bc": load_policy(bc_dir),
            "poir": load_policy(poir_dir, seed=seed),
            "poir_bc": poir_own_bc(poir_dir, seed),  # the same run, never planning
        }
        for shift_name, shift in shifts.items():
            key = (shift_name, eval_seed)
            if key not in references:
                references[key] = reference_returns(
                    env, seed=eval_seed, episodes=episodes, shift=shift
                )
            refs = references[key]
            row: dict[str, Any] = {"expert": refs["expert"], "random": refs["random"]}
            for label, policy in policies.items():
                test = test_record(policy, env, eval_seed, episodes, shift, refs)
                row[label] = float(np.mean(test["normalized"]))
                row[f"{label}_episodes"] = test["normalized"]
            record["shifts"][shift_name] = row
            print(
                f"poir seed {seed} {shift_name}: "
                + ", ".join(f"{k} {row[k]:.3f}" for k in policies),
                flush=True,
            )
        if online_steps:
            for shift_name in [s for s in ("noisy_actions", "shifted_start") if s in shifts]:
                # The offline run, continued (--resume) into online fine-tuning in the
                # deployment environment.
                tuned_dir = os.path.join(base, f"poir-online-{shift_name}")
                if not os.path.exists(os.path.join(tuned_dir, "run.json")):
                    shutil.copytree(poir_dir, tuned_dir)
                config = {
                    "num_steps": offline_steps,
                    "eval_episodes": 0,
                    **(poir_config or {}),
                    "online_steps": online_steps,
                    "online_shift": shifts[shift_name],
                }
                if load_policy_step(tuned_dir) < offline_steps + online_steps:
                    train(
                        "poir",
                        dataset=data,
                        env=env,
                        out=tuned_dir,
                        seed=seed,
                        config=config,
                        resume=True,
                        **quiet,
                    )
                tuned = load_policy(tuned_dir, seed=seed)
                refs = references[(shift_name, checked_test_seed(tuned_dir, seed))]
                test = test_record(tuned, env, eval_seed, episodes, shifts[shift_name], refs)
                row = record["shifts"][shift_name]
                row["poir_online"] = float(np.mean(test["normalized"]))
                row["poir_online_episodes"] = test["normalized"]
                # BC given the same number of deployment steps (its own rollouts).
                bc_tuned_dir, rollouts = bc_online(
                    os.path.join(base, f"bc-online-{shift_name}"),
                    data,
                    bc_dir,
                    seed=seed,
                    env=env,
                    shift=shifts[shift_name],
                    online_steps=online_steps,
                    offline_steps=offline_steps,
                    bc_config=bc_config,
                    quiet=quiet,
                )
                bc_test_seed = checked_test_seed(bc_tuned_dir, seed)
                if bc_test_seed != eval_seed:
                    raise AssertionError("every arm must be tested on the same episodes")
                test = test_record(
                    load_policy(bc_tuned_dir), env, bc_test_seed, episodes, shifts[shift_name], refs
                )
                row["bc_online"] = float(np.mean(test["normalized"]))
                row["bc_online_episodes"] = test["normalized"]
                row["bc_online_test_seed"] = test["seed"]
                row["bc_online_rollouts"] = rollouts
                print(
                    f"poir seed {seed} {shift_name}: fine-tuned POIR {row['poir_online']:.3f}, "
                    f"BC + {rollouts['env_steps']:,} online steps ({rollouts['kept']} of "
                    f"{rollouts['episodes']} rollouts kept) {row['bc_online']:.3f}",
                    flush=True,
                )
        record["seconds"] = round(time.perf_counter() - started, 1)
        with open(result_path, "w") as f:
            json.dump(record, f, indent=1)
        results.append(record)
    return results


def poir_own_bc(run_dir: str, seed: int) -> Any:
    """POIR's internal BC policy of a trained POIR run (``mode="bc"``: never plans)."""
    from rlds_hub.learners import load_policy
    from rlds_hub.learners.poir.acting import POIRPolicy
    from rlds_hub.learners.poir.networks import make_networks

    trained = load_policy(run_dir, seed=seed)
    networks = make_networks(trained.task, trained.config)
    return POIRPolicy(trained.task, networks, trained.config, trained.params, seed=seed, mode="bc")


def _transitions(row: dict[str, Any]) -> int:
    """Environment steps of an episode-table row (its last step holds no action)."""
    return max(int(row["num_steps"]) - 1, 0)


def success_threshold(demo_returns: list[float], own_returns: list[float]) -> float:
    """The return a rollout needs to count as "successful": at least the worst
    demonstration's, or — when the shift keeps every rollout below that — at least the
    median of BC's own rollouts (the better half, so the interaction is never wasted)."""
    if not demo_returns or not own_returns:
        raise ValueError("a success threshold needs demonstrations and rollouts")
    return float(min(min(demo_returns), np.median(own_returns)))


def _replay(policy: Any, env: str, env_seed: int, shift: dict[str, Any], path: str) -> float:
    """Plays one episode of ``policy`` (seed, shift) and appends it to the dataset at
    ``path`` with the demonstrations' features (no per-episode metadata); its return."""
    from rlds_hub.envs import make_env
    from rlds_hub.learners import shifts
    from rlds_hub.learners.evaluation import canonical_env_name
    from rlds_hub.recorders import Recorder

    recorders: list[Recorder] = []

    def record(inner: Any) -> Any:
        recorders.append(
            Recorder(
                inner,
                path,
                env_name=canonical_env_name(env),
                policy_name="bc (successful rollout)",
                seed=env_seed,
                save_unfinished_episodes=False,
            )
        )
        return recorders[-1]

    wrapped = shifts.apply_shift(make_env(env, seed=env_seed), shift, env_seed, record=record)
    total = 0.0
    try:
        timestep = wrapped.reset()
        policy.reset()
        while not timestep.last():
            timestep = wrapped.step(policy(timestep))
            total += float(timestep.reward)
    finally:
        for recorder in recorders:
            recorder.close()
    return total


def bc_online(
    folder: str,
    data: str,
    bc_dir: str,
    *,
    seed: int,
    env: str,
    shift: dict[str, Any],
    online_steps: int,
    offline_steps: int,
    bc_config: dict[str, Any] | None = None,
    quiet: dict[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """BC fine-tuned with the same deployment steps POIR's fine-tuning gets.

    The trained BC run (``bc_dir``) plays ``online_steps`` environment steps in the
    deployment (under ``shift``), on online training seeds
    (:func:`rlds_hub.learners.seeds.online_seed`, checked disjoint from the run seed's
    validation and test seeds), recorded with rlds_hub's recorder into
    ``folder/rollouts``. Its successful rollouts (:func:`success_threshold`) are replayed
    (same policy, seed and shift: the same episode, checked) into a copy of the
    demonstrations, ``folder/data``, and BC is trained again from scratch on it with the
    same budget (``folder/run``). This is the simplest use of the same interaction that
    needs no expert labels and no reward model: filtered behaviour cloning of its own
    good episodes. Each piece is kept on disk and skipped when done.

    Returns the run directory and a summary of the rollouts (their seeds, returns, the
    threshold, how many were kept).
    """
    from rlds_hub.learners import load_policy, seeds, train
    from rlds_hub.learners.evaluation import dataset_seeds, run_episodes
    from rlds_hub.storage import open_dataset
    from rlds_hub.storage.episodes import episode_table

    if online_steps <= 0:
        raise ValueError(f"bc_online needs online_steps > 0, got {online_steps}")
    os.makedirs(folder, exist_ok=True)
    rollouts, combined, run_dir = (os.path.join(folder, n) for n in ("rollouts", "data", "run"))
    policy = load_policy(bc_dir)
    demo_seeds = dataset_seeds(open_dataset(data))
    held_out = [seeds.validation_seed(seed), seeds.test_seed(seed)]

    def played() -> list[dict[str, Any]]:
        if not os.path.exists(os.path.join(rollouts, "dataset_info.json")):
            return []
        return episode_table(rollouts, "train")

    def episode_seeds(rows: list[dict[str, Any]]) -> list[int]:
        found, position = [], 0
        for row in rows:
            found.append(seeds.online_seed(seed, position, avoid=demo_seeds))
            position += _transitions(row)
        return found

    rows = played()
    while sum(_transitions(r) for r in rows) < online_steps:
        env_seed = seeds.online_seed(seed, sum(_transitions(r) for r in rows), avoid=demo_seeds)
        seeds.check_disjoint(held_out, trained=[env_seed], what=f"BC's rollouts in {folder}")
        run_episodes(
            policy,
            env,
            seed=env_seed,
            episodes=1,
            shift=shift,
            record_to=rollouts,
            policy_name="bc",
        )
        rows = played()
    returns = [float(r["return"]) for r in rows]
    played_seeds = episode_seeds(rows)
    threshold = success_threshold(
        [float(r["return"]) for r in episode_table(data, "train")], returns
    )
    kept = [i for i, value in enumerate(returns) if value >= threshold]
    if not os.path.exists(os.path.join(combined, "dataset_info.json")):
        partial = combined + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(data, partial)
        for name in ("statistics.json",):  # recomputed for the new episodes
            if os.path.exists(os.path.join(partial, name)):
                os.remove(os.path.join(partial, name))
        for i in kept:
            again = _replay(policy, env, played_seeds[i], shift, partial)
            if not math.isclose(again, returns[i], rel_tol=1e-5, abs_tol=1e-5):
                raise RuntimeError(
                    f"replaying BC's rollout {i} (seed {played_seeds[i]}) returned {again}, "
                    f"not {returns[i]}: the policy or environment is not deterministic"
                )
        os.rename(partial, combined)
    if load_policy_step(run_dir) < offline_steps:
        train(
            "bc",
            dataset=combined,
            env=env,
            out=run_dir,
            seed=seed,
            config={"num_steps": offline_steps, "eval_episodes": 0, **(bc_config or {})},
            resume=os.path.exists(os.path.join(run_dir, "run.json")),
            **(quiet or {"progress": False, "echo": lambda line: None}),
        )
    summary = {
        "episodes": len(rows),
        "env_steps": sum(_transitions(r) for r in rows),
        "seeds": played_seeds,
        "returns": returns,
        "threshold": threshold,
        "kept": len(kept),
    }
    return run_dir, summary


def load_policy_step(run_dir: str) -> int:
    """The step of a run directory's latest checkpoint (0 without one)."""
    folder = os.path.join(run_dir, "checkpoints")
    steps = [int(e) for e in os.listdir(folder) if e.isdigit()] if os.path.isdir(folder) else []
    return max(steps, default=0)


# -- report ----------------------------------------------------------------------------------


def _load(out: str, name: str) -> list[dict[str, Any]]:
    folder = os.path.join(out, name)
    if not os.path.isdir(folder):
        return []
    records = []
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry, "result.json")
        if os.path.exists(path):
            with open(path) as f:
                records.append(json.load(f))
    return records


def _interval(per_seed: list[list[float] | None]) -> str:
    """Mean [95% bootstrap interval] (per-seed means; episodes) of per-seed episode values."""
    from rlds_hub.learners.confidence import bootstrap_interval

    per_seed = [values for values in per_seed if values]
    if not per_seed:
        return "-"
    return bootstrap_interval(per_seed).format()


def report(out: str, images: str | None) -> None:
    print(f"# learners quality benchmark ({harness.machine_line(('numpy', 'rlds_hub', 'jax'))})\n")
    print(
        "Normalised return on the test seeds: mean [95% bootstrap interval] (per-seed means; "
        "test episodes).\n"
    )
    print("| experiment | demos | budget | normalised return | target |")
    print("| --- | --- | --- | --- | --- |")
    targets = {"bc-point-mass": ">= 0.9", "ail-point-mass": ">= 0.8"}
    for name in EXPERIMENTS:
        records = [r for r in _load(out, name) if "test" in r]  # earlier records: not reported
        if not records:
            continue
        unit = "updates" if records[0]["algorithm"] == "bc" else "env steps"
        print(
            f"| {name} | {records[0]['demos']} | {records[0]['steps']:,} {unit} | "
            f"{_interval([r['test']['normalized'] for r in records])} | "
            f"{targets.get(name, '-')} |"
        )
    poir = [r for r in _load(out, "poir-cartpole") if r.get("protocol") == "test-seeds"]
    if poir:
        report_poir(out, poir)
    if images:
        plot_curves(out, images)
        plot_poir(out, images)


POIR_COLUMNS = (
    ("bc", "BC"),
    ("poir_bc", "POIR's own BC"),
    ("poir", "POIR (offline)"),
    ("poir_online", "POIR (fine-tuned online)"),
    ("bc_online", "BC + the same online steps"),
)
# Paired differences on the same test episodes: (label, minuend, subtrahend).
POIR_DIFFERENCES = (
    ("fine-tuned POIR − BC", "poir_online", "bc"),
    ("fine-tuned POIR − BC with the same online steps", "poir_online", "bc_online"),
    ("offline POIR − BC", "poir", "bc"),
)
# Issue 17's targets under each shift: (difference, the bar its mean must reach, whether
# the 95% interval's lower bound must be > 0).
POIR_TARGETS = (
    ("fine-tuned POIR − BC", 0.1, True),
    ("fine-tuned POIR − BC with the same online steps", 0.0, True),
    ("offline POIR − BC", 0.0, False),
)


def _paired(rows: list[dict[str, Any]], a: str, b: str) -> Any:
    """The interval of ``a − b`` over the seeds that measured both (None without any)."""
    from rlds_hub.learners.confidence import bootstrap_interval, paired_differences

    both = [r for r in rows if r.get(f"{a}_episodes") and r.get(f"{b}_episodes")]
    if not both:
        return None
    return bootstrap_interval(
        paired_differences([r[f"{a}_episodes"] for r in both], [r[f"{b}_episodes"] for r in both])
    )


def target_verdict(interval: Any, bar: float, lower_above_zero: bool) -> str:
    """``met`` / ``not met`` / ``not measured``: the difference's mean reaches ``bar`` and,
    when asked, its 95% interval's lower bound is above 0."""
    if interval is None:
        return "not measured"
    met = interval.mean >= bar and (interval.low > 0 or not lower_above_zero)
    return "met" if met else "not met"


def report_poir(out: str, poir: list[dict[str, Any]]) -> None:
    """The POIR table: every arm, the paired differences and issue 17's targets."""
    ceilings = _ceilings(out, [r["seed"] for r in poir])
    print(
        "\nPOIR on cartpole-swingup (normalised return on the test seeds, mean [95% "
        'bootstrap interval]; POIR\'s own BC: the POIR run with mode="bc"; BC + the same '
        "online steps: BC retrained on the demonstrations and its own successful rollouts "
        "of POIR's online budget; the ceiling: POIR's planner with the simulator as its "
        "model, benchmarks/poir_ceiling.py):\n"
    )
    header = [label for _, label in POIR_COLUMNS] + [label for label, _, _ in POIR_DIFFERENCES]
    header += ["simulator as the model: switch", "planning at every step"]
    header += ["expert return", "random return"]
    print("| deployment | " + " | ".join(header) + " |")
    print("|" + " --- |" * (len(header) + 1))
    verdicts = []
    for shift in SHIFTS:
        rows = [r["shifts"][shift] for r in poir if shift in r["shifts"]]
        if not rows:
            continue
        cells = [_interval([r.get(f"{key}_episodes") for r in rows]) for key, _ in POIR_COLUMNS]
        differences = {label: _paired(rows, a, b) for label, a, b in POIR_DIFFERENCES}
        cells += [d.format() if d else "-" for d in differences.values()]
        cells += [_ceiling(ceilings, "switch", shift), _ceiling(ceilings, "plan", shift)]
        cells += [
            f"{np.mean([r['expert'] for r in rows]):.1f}",
            f"{np.mean([r['random'] for r in rows]):.1f}",
        ]
        print(f"| {shift} | " + " | ".join(cells) + " |")
        if shift != "clean":
            for label, bar, strict in POIR_TARGETS:
                interval = differences[label]
                wanted = f"≥ {bar:g}" + (", 95% interval's lower bound > 0" if strict else "")
                verdicts.append(
                    f"- {shift}: {label} {wanted}: **{target_verdict(interval, bar, strict)}**"
                    + (f" ({interval.format()})" if interval else "")
                )
    for shift in ("noisy_actions", "shifted_start"):
        if not any(shift in r["shifts"] for r in poir):
            for label, _, _ in POIR_TARGETS:
                verdicts.append(f"- {shift}: {label}: **not measured**")
    if verdicts:
        print("\nTargets (issue 17), from the data present:\n")
        print("\n".join(verdicts))


def _ceilings(out: str, seeds: list[int]) -> list[dict[str, Any]]:
    """The ``ceiling.json`` files benchmarks/poir_ceiling.py wrote next to POIR runs."""
    found = []
    for seed in seeds:
        path = os.path.join(out, "poir-cartpole", f"seed{seed}", "ceiling.json")
        if os.path.exists(path):
            with open(path) as f:
                found.append(json.load(f))
    return found


def _ceiling(ceilings: list[dict[str, Any]], mode: str, shift: str) -> str:
    """The simulator-as-model rows measured on test seeds, per episode normalised."""
    from rlds_hub.learners import seeds

    rows = [c[mode][shift] for c in ceilings if shift in c.get(mode, {})]
    rows = [r for r in rows if seeds.range_name(r.get("eval_seed", -1)) == "test"]
    return _interval(
        [[(x - r["random"]) / (r["expert"] - r["random"]) for x in r["returns"]] for r in rows]
    )


def _online_curve(out: str, record: dict[str, Any], shift: str) -> tuple[list, list]:
    """(environment steps, normalised return) of every episode POIR played while it was
    fine-tuned online under ``shift`` (read back from the run's ``experience`` dataset)."""
    from rlds_hub.storage.episodes import episode_table

    path = os.path.join(
        out, "poir-cartpole", f"seed{record['seed']}", f"poir-online-{shift}", "experience"
    )
    if not os.path.exists(os.path.join(path, "dataset_info.json")):
        return [], []
    refs = record["shifts"][shift]
    rows = episode_table(path, "train")
    steps = np.cumsum([r["num_steps"] for r in rows]).tolist()
    scale = refs["expert"] - refs["random"]
    return steps, [(r["return"] - refs["random"]) / scale for r in rows]


def plot_poir(out: str, images: str) -> None:
    """Grouped bars: BC, POIR offline and POIR fine-tuned under each deployment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlds_hub.learners.confidence import sample_sd

    records = [r for r in _load(out, "poir-cartpole") if r.get("protocol") == "test-seeds"]
    if not records:
        return
    labels = list(POIR_COLUMNS)
    fig, (ax, curve) = plt.subplots(1, 2, figsize=(12, 3.8), width_ratios=[3, 2])
    width = 0.16
    for i, (key, label) in enumerate(labels):
        means, stds, xs = [], [], []
        for j, shift in enumerate(SHIFTS):
            values = [r["shifts"][shift].get(key) for r in records if shift in r["shifts"]]
            values = [v for v in values if v is not None]
            if values:
                xs.append(j + (i - (len(labels) - 1) / 2) * width)
                means.append(np.mean(values))
                stds.append(sample_sd(values))  # error bars: the sample SD over seeds
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=label)
    ax.set_xticks(range(len(SHIFTS)), [s.replace("_", " ") for s in SHIFTS])
    ax.set_ylabel("normalised return")
    ax.set_title(f"cartpole-swingup, 20 clean demonstrations ({len(records)} seeds)", fontsize=10)
    ax.axhline(0, color="black", lw=0.5)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    colours = {"noisy_actions": "tab:green", "shifted_start": "tab:purple"}
    for shift, colour in colours.items():
        curves = [_online_curve(out, r, shift) for r in records if shift in r["shifts"]]
        curves = [c for c in curves if c[0]]
        for steps, values in curves:
            curve.plot(steps, values, color=colour, alpha=0.25, lw=0.8)
        if curves:
            length = min(len(c[0]) for c in curves)
            curve.plot(
                curves[0][0][:length],
                np.mean([c[1][:length] for c in curves], axis=0),
                color=colour,
                lw=2.2,
                marker="o",
                ms=3,
                label=f"POIR, {shift.replace('_', ' ')} (mean of {len(curves)} seeds)",
            )
        bc = [r["shifts"][shift]["bc"] for r in records if shift in r["shifts"]]
        curve.axhline(
            np.mean(bc), color=colour, ls="--", lw=1, label=f"BC, {shift.replace('_', ' ')} (mean)"
        )
    curve.set_xlabel("online environment steps")
    curve.set_ylabel("normalised return of each episode")
    curve.set_title("POIR's episodes while it fine-tunes (thin: one seed each)", fontsize=10)
    curve.grid(alpha=0.3)
    curve.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(images, "learners_poir.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def plot_curves(out: str, images: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(images, exist_ok=True)
    pairs = {
        "point_mass": ("bc-point-mass", "ail-point-mass"),
        "cartpole": ("bc-cartpole", "ail-cartpole"),
    }
    for task, names in pairs.items():
        series = {n: [r for r in _load(out, n) if "test" in r] for n in names}
        if not any(series.values()):
            continue
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        for ax, name in zip(axes, names, strict=True):
            for record in series[name]:
                steps, values = zip(*record["curve"], strict=True)
                ax.plot(steps, values, alpha=0.35, color="tab:blue")
            if series[name]:
                grid = sorted({s for r in series[name] for s, _ in r["curve"]})
                mean = [
                    np.mean([v for r in series[name] for s, v in r["curve"] if s == g])
                    for g in grid
                ]
                ax.plot(grid, mean, color="tab:blue", lw=2, label="mean over seeds")
            ax.axhline(1.0, color="tab:green", ls="--", label="expert")
            ax.axhline(0.0, color="tab:red", ls=":", label="random")
            algorithm = name.split("-")[0].upper()
            unit = "SGD updates" if algorithm == "BC" else "environment steps"
            ax.set_title(
                f"{algorithm} on {task} (in-run evaluations: validation seeds)", fontsize=10
            )
            ax.set_xlabel(unit)
            ax.set_ylabel("normalised return")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(images, f"learners_{task}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        print(f"\nwrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("experiment", choices=[*EXPERIMENTS, "poir-cartpole", "report"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--out", default="out/learners")
    parser.add_argument("--images", default=None, help="write curve PNGs here (report)")
    parser.add_argument("--online-steps", type=int, default=10_000)
    parser.add_argument(
        "--variant",
        default=None,
        help="AIL settings compared on validation seeds (benchmarks.ail_settings.VARIANTS): "
        "runs under <out>/ail-settings/<variant>, never tested",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override of the variant (JSON value), repeatable; needs --variant",
    )
    args = parser.parse_args()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    if args.experiment == "report":
        report(args.out, args.images)
    elif args.experiment == "poir-cartpole":
        run_poir(seeds, args.out, online_steps=args.online_steps)
    elif args.variant is not None or args.set:
        from benchmarks import ail_settings

        if args.variant is None or args.experiment != ail_settings.EXPERIMENT:
            parser.error(f"--variant/--set: give --variant NAME, for {ail_settings.EXPERIMENT}")
        if args.variant == "defaults":
            parser.error(f"the defaults are the benchmark's own {ail_settings.EXPERIMENT} runs")
        settings = ail_settings.variant_settings(args.variant, args.set)
        run_experiment(args.experiment, seeds, args.out, args.variant, settings)
    else:
        run_experiment(args.experiment, seeds, args.out)


if __name__ == "__main__":
    main()
