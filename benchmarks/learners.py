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


def run_experiment(name: str, seeds: list[int], out: str) -> list[dict[str, Any]]:
    from rlds_hub.learners import load_policy, train
    from rlds_hub.learners.metrics import read_metrics

    spec = EXPERIMENTS[name]
    data = demonstrations(out, spec["env"], spec["demos"])
    results = []
    for seed in seeds:
        run_dir = os.path.join(out, name, f"seed{seed}")
        result_path = os.path.join(run_dir, "result.json")
        budget = spec["config"]["num_steps"]
        if os.path.exists(result_path):
            with open(result_path) as f:
                done = json.load(f)
            if done["steps"] >= budget and "test" in done:
                results.append(done)
                print(f"{name} seed {seed}: done before", flush=True)
                continue
            # A larger budget than before: the run is resumed and extended.
        resume = os.path.exists(os.path.join(run_dir, "run.json"))
        started = time.perf_counter()
        config = {"eval_episodes": EVAL_EPISODES, **spec["config"]}
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


# -- POIR under shift ------------------------------------------------------------------------


def run_poir(
    seeds: list[int],
    out: str,
    *,
    demos: int = 20,
    offline_steps: int = 20_000,
    online_steps: int = 10_000,
    episodes: int | None = None,
) -> list[dict[str, Any]]:
    """BC, POIR trained offline, and POIR after online fine-tuning, each deployed under
    every shift of :data:`SHIFTS` (``episodes`` test episodes per shift and seed: by default
    enough for 30 per reported point)."""
    from rlds_hub.learners import load_policy, train
    from rlds_hub.learners.evaluation import reference_returns

    episodes = episodes or test_episodes(len(seeds))
    data = demonstrations(out, CARTPOLE, demos)
    results = []
    references: dict[str, Any] = {}
    for seed in seeds:
        result_path = os.path.join(out, "poir-cartpole", f"seed{seed}", "result.json")
        if os.path.exists(result_path):
            with open(result_path) as f:
                done = json.load(f)
            if done.get("protocol") == "test-seeds":
                results.append(done)
                continue
        os.makedirs(os.path.dirname(result_path), exist_ok=True)
        record: dict[str, Any] = {
            "seed": seed,
            "demos": demos,
            "offline_steps": offline_steps,
            "online_steps": online_steps,
            "episodes": episodes,
            "protocol": "test-seeds",
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
                    env=CARTPOLE,
                    out=run_dir,
                    seed=seed,
                    config={
                        "num_steps": offline_steps,
                        "eval_episodes": 0,
                        **({"online_steps": 0} if algorithm == "poir" else {}),
                    },
                    resume=os.path.exists(os.path.join(run_dir, "run.json")),
                    **quiet,
                )
        eval_seed = checked_test_seed(poir_dir, seed)
        if checked_test_seed(bc_dir, seed) != eval_seed:
            raise AssertionError("BC and POIR must be tested on the same episodes")
        record["test_seed"] = eval_seed
        policies = {"bc": load_policy(bc_dir), "poir": load_policy(poir_dir, seed=seed)}
        for shift_name, shift in SHIFTS.items():
            key = (shift_name, eval_seed)
            if key not in references:
                references[key] = reference_returns(
                    CARTPOLE, seed=eval_seed, episodes=episodes, shift=shift
                )
            refs = references[key]
            row: dict[str, Any] = {"expert": refs["expert"], "random": refs["random"]}
            for label, policy in policies.items():
                test = test_record(policy, CARTPOLE, eval_seed, episodes, shift, refs)
                row[label] = float(np.mean(test["normalized"]))
                row[f"{label}_episodes"] = test["normalized"]
            record["shifts"][shift_name] = row
            print(
                f"poir seed {seed} {shift_name}: "
                + ", ".join(
                    f"{k} {v:.3f}" for k, v in row.items() if k not in ("expert", "random")
                ),
                flush=True,
            )
        if online_steps:
            for shift_name in ("noisy_actions", "shifted_start"):
                # The offline run, continued (--resume) into online fine-tuning in the
                # deployment environment.
                tuned_dir = os.path.join(base, f"poir-online-{shift_name}")
                if not os.path.exists(os.path.join(tuned_dir, "run.json")):
                    shutil.copytree(poir_dir, tuned_dir)
                config = {
                    "num_steps": offline_steps,
                    "eval_episodes": 0,
                    "online_steps": online_steps,
                    "online_shift": SHIFTS[shift_name],
                }
                if load_policy_step(tuned_dir) < offline_steps + online_steps:
                    train(
                        "poir",
                        dataset=data,
                        env=CARTPOLE,
                        out=tuned_dir,
                        seed=seed,
                        config=config,
                        resume=True,
                        **quiet,
                    )
                tuned = load_policy(tuned_dir, seed=seed)
                refs = references[(shift_name, checked_test_seed(tuned_dir, seed))]
                test = test_record(tuned, CARTPOLE, eval_seed, episodes, SHIFTS[shift_name], refs)
                record["shifts"][shift_name]["poir_online"] = float(np.mean(test["normalized"]))
                record["shifts"][shift_name]["poir_online_episodes"] = test["normalized"]
                print(
                    f"poir seed {seed} {shift_name}: fine-tuned "
                    f"{record['shifts'][shift_name]['poir_online']:.3f}",
                    flush=True,
                )
        record["seconds"] = round(time.perf_counter() - started, 1)
        with open(result_path, "w") as f:
            json.dump(record, f, indent=1)
        results.append(record)
    return results


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
        from rlds_hub.learners.confidence import paired_differences

        ceilings = _ceilings(out, [r["seed"] for r in poir])
        print(
            "\nPOIR on cartpole-swingup (normalised return on the test seeds, mean [95% "
            "bootstrap interval]; the ceiling: POIR's planner with the simulator as its "
            "model, benchmarks/poir_ceiling.py):\n"
        )
        print(
            "| deployment | BC | POIR (offline) | POIR (fine-tuned online) | fine-tuned − BC "
            "(paired) | simulator as the model: switch | planning at every step "
            "| expert return | random return |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for shift in SHIFTS:
            rows = [r["shifts"][shift] for r in poir if shift in r["shifts"]]
            tuned = [r for r in rows if r.get("poir_online_episodes")]
            gains = paired_differences(
                [r["poir_online_episodes"] for r in tuned], [r["bc_episodes"] for r in tuned]
            )
            print(
                f"| {shift} | {_interval([r['bc_episodes'] for r in rows])} | "
                f"{_interval([r['poir_episodes'] for r in rows])} | "
                f"{_interval([r.get('poir_online_episodes') for r in rows])} | "
                f"{_interval(gains)} | "
                f"{_ceiling(ceilings, 'switch', shift)} | {_ceiling(ceilings, 'plan', shift)}"
                f" | {np.mean([r['expert'] for r in rows]):.1f} | "
                f"{np.mean([r['random'] for r in rows]):.1f} |"
            )
    if images:
        plot_curves(out, images)
        plot_poir(out, images)


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
    labels = [("bc", "BC"), ("poir", "POIR (offline)"), ("poir_online", "POIR (fine-tuned)")]
    fig, (ax, curve) = plt.subplots(1, 2, figsize=(12, 3.8), width_ratios=[3, 2])
    width = 0.26
    for i, (key, label) in enumerate(labels):
        means, stds, xs = [], [], []
        for j, shift in enumerate(SHIFTS):
            values = [r["shifts"][shift].get(key) for r in records if shift in r["shifts"]]
            values = [v for v in values if v is not None]
            if values:
                xs.append(j + (i - 1) * width)
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
    args = parser.parse_args()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    if args.experiment == "report":
        report(args.out, args.images)
    elif args.experiment == "poir-cartpole":
        run_poir(seeds, args.out, online_steps=args.online_steps)
    else:
        run_experiment(args.experiment, seeds, args.out)


if __name__ == "__main__":
    main()
