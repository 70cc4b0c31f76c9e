"""POIR's design choices, ablated on validation seeds (docs/learners.md, "Where POIR here
differs from the paper and Acme's MBOP, and why").

The planner's choices need no retraining: each variant is a trained POIR run of a seed —
by default (``--stage online``) the one fine-tuned online in the very deployment it is
evaluated in (``<runs>/seed<s>/poir-online-<shift>``: the POIR whose gain over BC the
benchmark reports), or (``--stage offline``) the offline run (``<runs>/seed<s>/poir``) — its
BC, ensemble, reference states and thresholds, acting with a changed
:class:`~rlds_hub.learners.poir.config.POIRConfig`: no trust gate, planning at every step,
the k-NN cost, Acme-like planner settings, top-k aggregation, no push sequences, Acme's
proposal noise, or never planning (POIR's own BC, for scale). Every variant of a seed plays
the same episodes: run seed ``s`` on environment seed ``seeds.validation_seed(s)`` (the
protocol's validation range, checked disjoint from the run's demonstrations and
experience; never a test seed), under the noisy-actions and shifted-start deployments of
``benchmarks.learners.SHIFTS``. Normalised return uses the scripted expert and the random
policy measured on the same episodes.

The choices that change what is trained (the dynamics model's target and size, the k of the
distance to the expert's states, whose threshold is calibrated on the demonstrations when
the run is built) are ``--stage retrained``: each :data:`RETRAINED` variant is seed ``s``'s
offline run trained again from scratch with that one config value changed (same
demonstrations, seed and update count; ``<out>/retrained/<name>/seed<s>``), then played as
designed on the same validation episodes and paired with the offline run's ``chosen`` cells.

Each variant is reported as mean [95% bootstrap interval] over seeds x episodes
(``rlds_hub.learners.confidence``), with its paired difference to the chosen design on the
same episodes and the share of steps it planned. Every cell (stage, variant, shift, seed) is
kept in ``<out>/cells`` as it finishes, so an interrupted run resumes (cells can be played
by several processes at once, e.g. one per seed and shift); ``--report`` plays nothing and
summarises the cells on disk into ``<out>/ablations-<stage>.json``.

Run from the repository root (after ``python -m benchmarks.learners poir-cartpole``):

    nice -n 19 python -m benchmarks.poir_ablations --seeds 0 1 2 --episodes 2 \\
        --out out/learners/poir-ablations
    nice -n 19 python -m benchmarks.poir_ablations --stage offline --seeds 0 1 2 --episodes 2
    nice -n 19 python -m benchmarks.poir_ablations --stage retrained --seeds 0 1 2 --episodes 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from typing import Any

import numpy as np

from benchmarks import harness

# Variant -> POIRConfig overrides of the trained run's config. "chosen" is the design as
# trained and benchmarked; the others change one choice of the table (or, "acme_planner",
# the planner's settings together).
VARIANTS: dict[str, dict[str, Any]] = {
    "chosen": {},
    "own_bc": {"mode": "bc"},
    "no_trust_gate": {"trust": False},
    "knn_cost": {"cost": "knn"},
    # Acme's MPPI settings where affordable on CPU: 15 steps, noise 0.8, mixing 0.2, no
    # pushes; 200 sequences instead of 1,000 (3,000 model steps per plan, ours 3,600).
    "acme_planner": {
        "num_samples": 200,
        "horizon": 15,
        "proposal_noise": 0.8,
        "plan_mixing": 0.2,
        "push_fractions": (),
    },
    "top_k": {"aggregation": "top_k", "top_k": 10},
    "always_plan": {"mode": "plan"},
    "no_pushes": {"push_fractions": ()},
    "noise_0.8": {"proposal_noise": 0.8},
}
DESCRIPTIONS = {
    "chosen": "as benchmarked: switch + trust gate, tracking cost, 60x60, noise 0.2, pushes, "
    "softmax(-5 z)",
    "own_bc": 'never plan (mode="bc")',
    "always_plan": 'plan at every step (mode="plan")',
    "no_trust_gate": "switch without the trust gate (trust=False)",
    "knn_cost": 'cost="knn" (distance to the nearest expert states)',
    "no_pushes": "no push sequences",
    "noise_0.8": "proposal noise 0.8 (Acme's)",
    "top_k": "top-10 average instead of softmax weights",
    "acme_planner": "200 sequences x 15 steps, noise 0.8, mixing 0.2, no pushes",
}


# Retrained variant -> POIRConfig overrides of a seed's offline run's config: each is a POIR
# run trained offline again (same demonstrations, seed and update count) with one value
# changed, under ``<out>/retrained/<name>/seed<s>``, acting as designed; it is paired with
# the offline run's ``chosen`` cells (``--stage retrained``).
RETRAINED: dict[str, dict[str, Any]] = {
    "next_state_target": {"dynamics_target": "next"},
    "acme_model_size": {"dynamics_hidden_sizes": (64, 64)},
    "knn_1": {"knn": 1},
    "knn_20": {"knn": 20},
}
RETRAINED_DESCRIPTIONS = {
    "next_state_target": "the ensemble predicts the next normalised state (Acme's target), "
    "not the scaled change",
    "acme_model_size": "ensemble members of 2x64 (Acme's size) instead of 2x256",
    "knn_1": "distance to the nearest expert state (k=1; threshold recalibrated)",
    "knn_20": "mean distance to the 20 nearest expert states (threshold recalibrated)",
}


def run_directory(runs: str, seed: int, stage: str, shift: str) -> str:
    """The trained POIR run a variant acts with: ``offline`` (``seed<s>/poir``) or ``online``
    (``seed<s>/poir-online-<shift>``: fine-tuned online in that very deployment)."""
    if stage == "offline":
        return os.path.join(runs, f"seed{seed}", "poir")
    if stage == "online":
        return os.path.join(runs, f"seed{seed}", f"poir-online-{shift}")
    raise ValueError(f"stage must be 'offline' or 'online', got {stage!r}")


def retrain(offline_dir: str, out: str, name: str, seed: int) -> str:
    """Seed ``seed``'s POIR trained offline again with :data:`RETRAINED` ``name``'s change
    (the offline run's dataset, environment, seed, update count and every other config
    value); kept under ``<out>/retrained/<name>/seed<s>`` and resumed when interrupted."""
    import sys

    from benchmarks.learners import load_policy_step
    from rlds_hub.learners import train
    from rlds_hub.learners.policy import read_run

    original = read_run(offline_dir)
    config = {**original["config"], **RETRAINED[name]}
    if config["online_steps"] != 0:
        raise ValueError(
            f"{offline_dir} is not an offline run (online_steps {config['online_steps']})"
        )
    run_dir = os.path.join(out, "retrained", name, f"seed{seed}")
    if load_policy_step(run_dir) < config["num_steps"]:
        started = time.perf_counter()
        train(
            "poir",
            dataset=original["dataset"],
            env=original["env"],
            out=run_dir,
            seed=seed,
            config=config,
            resume=os.path.exists(os.path.join(run_dir, "run.json")),
            progress=sys.stderr.isatty(),
            echo=lambda line: None,
        )
        print(
            f"seed {seed} retrained {name}: {config['num_steps']} updates in "
            f"{time.perf_counter() - started:.0f} s (load {harness.load_average()})",
            flush=True,
        )
    return run_dir


def validation_seed(run_dir: str, seed: int) -> int:
    """Run seed ``seed``'s validation seed, refused if the run trained on it."""
    from rlds_hub.learners import seeds
    from rlds_hub.learners.policy import read_run
    from rlds_hub.learners.run import trained_seeds
    from rlds_hub.storage import open_dataset

    run = read_run(run_dir)
    chosen = seeds.validation_seed(seed)
    if seeds.range_name(chosen) != "validation":
        raise AssertionError(f"{chosen} is not a validation seed")
    seeds.check_disjoint(
        [chosen],
        trained=trained_seeds(open_dataset(run["dataset"]), run_dir),
        what=f"the ablations of {run_dir}",
    )
    return chosen


def variant_policy(trained: Any, overrides: dict[str, Any], seed: int) -> Any:
    """The trained POIR policy acting with ``overrides`` of its config (the same networks,
    reference states and thresholds; expert segments cut to a shorter horizon)."""
    from rlds_hub.learners.poir.acting import POIRPolicy
    from rlds_hub.learners.poir.networks import make_networks

    config = trained.config.replace(**overrides)
    params = dict(trained.params)
    if config.horizon > params["continuations"].shape[1]:
        raise ValueError(
            f"horizon {config.horizon} exceeds the trained segments' "
            f"{params['continuations'].shape[1]} steps"
        )
    params["continuations"] = params["continuations"][:, : config.horizon]
    networks = make_networks(trained.task, config)
    return POIRPolicy(trained.task, networks, config, params, seed=seed)


def run_cell(
    path: str, policy: Any, env: str, env_seed: int, episodes: int, shift: dict[str, Any]
) -> dict[str, Any]:
    """Plays one (variant, shift, seed) cell, or reads it back when done before."""
    from rlds_hub.learners.evaluation import run_episodes
    from rlds_hub.learners.poir.acting import PlannedFractions

    if os.path.exists(path):
        with open(path) as f:
            done = json.load(f)
        if done["seed"] == env_seed and len(done["returns"]) == episodes:
            return done
    if policy is None:
        raise ValueError(f"{path} holds another seed or episode count; play it again")
    started = time.perf_counter()
    tracked = PlannedFractions(policy)
    returns = run_episodes(tracked, env, seed=env_seed, episodes=episodes, shift=shift)
    tracked.reset()
    cell = {
        "seed": env_seed,
        "returns": returns,
        "planned_fraction": tracked.fractions,
        "seconds": round(time.perf_counter() - started, 1),
        "load": harness.load_average(),
    }
    with open(path + ".partial", "w") as f:
        json.dump(cell, f)
    os.replace(path + ".partial", path)
    return cell


def references(path: str, env: str, env_seed: int, episodes: int, shift: dict[str, Any]) -> Any:
    """The expert's and random policy's mean returns on the same episodes (kept on disk)."""
    from rlds_hub.learners.evaluation import reference_returns

    if os.path.exists(path):
        with open(path) as f:
            done = json.load(f)
        if done["seed"] == env_seed and done["episodes"] == episodes:
            return done
    refs = reference_returns(env, seed=env_seed, episodes=episodes, shift=shift)
    done = {"seed": env_seed, "episodes": episodes, **{k: refs[k] for k in ("expert", "random")}}
    with open(path, "w") as f:
        json.dump(done, f)
    return done


def run(
    runs: str,
    seeds: list[int],
    episodes: int,
    out: str,
    variants: list[str],
    shifts: list[str],
    *,
    stage: str = "online",
    play: bool = True,
) -> dict[str, Any]:
    """Plays every missing cell (``play``; else only reads the cells on disk) and summarises
    the variants measured on every seed."""
    from benchmarks.learners import SHIFTS
    from rlds_hub.learners import load_policy
    from rlds_hub.learners.policy import read_run

    cells_dir = os.path.join(out, "cells")
    os.makedirs(cells_dir, exist_ok=True)
    started_load = harness.load_average()
    results: dict[str, Any] = {name: {s: {} for s in shifts} for name in variants}
    for seed in seeds:
        run_dirs = {shift: run_directory(runs, seed, stage, shift) for shift in shifts}
        env_seeds = {shift: validation_seed(d, seed) for shift, d in run_dirs.items()}
        trained = {
            shift: load_policy(d, seed=seed) if play else None for shift, d in run_dirs.items()
        }
        env = read_run(run_dirs[shifts[0]])["env"]
        refs = {
            shift: references(
                os.path.join(cells_dir, f"references-{shift}-seed{seed}.json"),
                env,
                env_seeds[shift],
                episodes,
                SHIFTS[shift],
            )
            for shift in shifts
            if play
            or os.path.exists(os.path.join(cells_dir, f"references-{shift}-seed{seed}.json"))
        }
        # Variant by variant (each under every shift): an interrupted run leaves whole rows.
        for name in variants:
            for shift in shifts:
                path = os.path.join(cells_dir, f"{stage}-{name}-{shift}-seed{seed}.json")
                if not play and (shift not in refs or not os.path.exists(path)):
                    continue
                policy = variant_policy(trained[shift], VARIANTS[name], seed) if play else None
                cell = run_cell(path, policy, env, env_seeds[shift], episodes, SHIFTS[shift])
                results[name][shift][seed] = normalised_cell(
                    cell, refs[shift], f"seed {seed} {shift} {stage} {name}"
                )
    return {
        "machine": harness.machine(("numpy", "rlds_hub", "jax")),
        "load_at_start": started_load,
        "load_at_end": harness.load_average(),
        "runs": runs,
        "stage": stage,
        "seeds": seeds,
        "episodes": episodes,
        "range": "validation",
        "variants": {
            name: {"config": VARIANTS[name], "about": DESCRIPTIONS[name]} for name in variants
        },
        "cells": results,
        "summary": summarise(results, seeds),
    }


def normalised_cell(cell: dict[str, Any], refs: dict[str, Any], label: str) -> dict[str, Any]:
    """``cell`` with its returns normalised by the expert's and random policy's (printed)."""
    scale = refs["expert"] - refs["random"]
    normalised = [(r - refs["random"]) / scale for r in cell["returns"]]
    print(
        f"{label}: normalised {np.mean(normalised):.3f}, "
        f"planned {np.mean(cell['planned_fraction']):.2f} of steps "
        f"({cell['seconds']:.0f} s, load {cell['load']})",
        flush=True,
    )
    return {**cell, "normalized": normalised}


def run_retrained(
    runs: str,
    seeds: list[int],
    episodes: int,
    out: str,
    names: list[str],
    shifts: list[str],
    *,
    play: bool = True,
) -> dict[str, Any]:
    """The :data:`RETRAINED` variants (each trained offline when missing, then played as
    designed), paired with the offline runs' ``chosen`` cells on the same episodes."""
    from benchmarks.learners import SHIFTS
    from rlds_hub.learners import load_policy
    from rlds_hub.learners.policy import read_run

    cells_dir = os.path.join(out, "cells")
    os.makedirs(cells_dir, exist_ok=True)
    started_load = harness.load_average()
    results: dict[str, Any] = {name: {s: {} for s in shifts} for name in ["chosen", *names]}
    for seed in seeds:
        offline_dir = run_directory(runs, seed, "offline", "")
        env_seed = validation_seed(offline_dir, seed)
        env = read_run(offline_dir)["env"]
        dirs = {}
        for name in names:
            run_dir = os.path.join(out, "retrained", name, f"seed{seed}")
            dirs[name] = retrain(offline_dir, out, name, seed) if play else run_dir
        dirs["chosen"] = offline_dir  # last: usually played already by --stage offline
        for name, run_dir in dirs.items():
            if play and validation_seed(run_dir, seed) != env_seed:
                raise AssertionError("every variant must play the same episodes")
            trained = load_policy(run_dir, seed=seed) if play else None
            stage = "offline" if name == "chosen" else "retrained"
            for shift in shifts:
                refs_path = os.path.join(cells_dir, f"references-{shift}-seed{seed}.json")
                path = os.path.join(cells_dir, f"{stage}-{name}-{shift}-seed{seed}.json")
                if not play and not (os.path.exists(refs_path) and os.path.exists(path)):
                    continue
                refs = references(refs_path, env, env_seed, episodes, SHIFTS[shift])
                policy = variant_policy(trained, {}, seed) if play else None
                cell = run_cell(path, policy, env, env_seed, episodes, SHIFTS[shift])
                results[name][shift][seed] = normalised_cell(
                    cell, refs, f"seed {seed} {shift} {stage} {name}"
                )
    about = {"chosen": "the offline run as trained (dynamics 2x256 on the scaled change, k=5)"}
    return {
        "machine": harness.machine(("numpy", "rlds_hub", "jax")),
        "load_at_start": started_load,
        "load_at_end": harness.load_average(),
        "runs": runs,
        "stage": "retrained",
        "seeds": seeds,
        "episodes": episodes,
        "range": "validation",
        "variants": {
            name: {
                "config": RETRAINED.get(name, {}),
                "about": about.get(name) or RETRAINED_DESCRIPTIONS[name],
            }
            for name in ["chosen", *names]
        },
        "cells": results,
        "summary": summarise(results, seeds),
    }


def summarise(results: dict[str, Any], seeds: list[int]) -> dict[str, Any]:
    """Each variant's interval and its paired difference to ``chosen``, per shift."""
    from rlds_hub.learners.confidence import bootstrap_interval, paired_differences

    summary: dict[str, Any] = {}
    for name, by_shift in results.items():
        for shift, cells in by_shift.items():
            missing = [s for s in seeds if s not in cells]
            if missing or any(s not in results.get("chosen", {}).get(shift, {}) for s in seeds):
                summary.setdefault(name, {})[shift] = {"not_measured_on_seeds": missing}
                continue
            values = [cells[s]["normalized"] for s in seeds]
            entry: dict[str, Any] = {
                "interval": dataclasses.asdict(bootstrap_interval(values)),
                "planned_fraction": float(
                    np.mean([np.mean(cells[s]["planned_fraction"]) for s in seeds])
                ),
            }
            if name != "chosen" and "chosen" in results:
                base = [results["chosen"][shift][s]["normalized"] for s in seeds]
                entry["minus_chosen"] = dataclasses.asdict(
                    bootstrap_interval(paired_differences(values, base))
                )
            summary.setdefault(name, {})[shift] = entry
    return summary


def _format(interval: dict[str, Any]) -> str:
    return f"{interval['mean']:.2f} [{interval['low']:.2f}, {interval['high']:.2f}]"


def print_table(result: dict[str, Any]) -> None:
    shifts = sorted({s for v in result["summary"].values() for s in v})
    print(
        f"\nPOIR ablations on VALIDATION seeds ({len(result['seeds'])} seeds x "
        f"{result['episodes']} episodes per shift; normalised return, mean [95% bootstrap "
        "interval]; − chosen: paired difference on the same episodes)\n"
    )
    header = ["variant"]
    for shift in shifts:
        header += [shift, "− chosen", "planned"]
    rows = []
    for name, by_shift in result["summary"].items():
        row = [f"{name}: {result['variants'][name]['about']}"]
        for shift in shifts:
            entry = by_shift[shift]
            if "interval" not in entry:
                row += ["not measured", "-", "-"]
                continue
            row += [
                _format(entry["interval"]),
                _format(entry["minus_chosen"]) if "minus_chosen" in entry else "-",
                f"{entry['planned_fraction']:.2f}",
            ]
        rows.append(row)
    print(harness.table(header, rows))
    print(
        f"\nload average {result['load_at_start']} at the start, {result['load_at_end']} at the end"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="out/learners/poir-cartpole")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="run seeds (seed<s>/poir)"
    )
    parser.add_argument("--episodes", type=int, default=2, help="per seed and shift")
    parser.add_argument("--out", default="out/learners/poir-ablations")
    parser.add_argument(
        "--stage",
        choices=["online", "offline", "retrained"],
        default="online",
        help="the POIR run fine-tuned online in each deployment, the offline one, or "
        "offline runs trained again with one config value changed (--retrained)",
    )
    parser.add_argument(
        "--retrained",
        nargs="+",
        default=list(RETRAINED),
        choices=list(RETRAINED),
        help="with --stage retrained: the variants to train and play",
    )
    parser.add_argument(
        "--report", action="store_true", help="play nothing: summarise the cells on disk"
    )
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument(
        "--shifts",
        nargs="+",
        default=["noisy_actions", "shifted_start"],
        choices=["clean", "noisy_actions", "shifted_start"],
    )
    args = parser.parse_args()
    variants = ["chosen"] + [v for v in args.variants if v != "chosen"]
    print(harness.machine_line(("numpy", "rlds_hub", "jax")), flush=True)
    if args.stage == "retrained":
        result = run_retrained(
            args.runs,
            args.seeds,
            args.episodes,
            args.out,
            args.retrained,
            args.shifts,
            play=not args.report,
        )
    else:
        result = run(
            args.runs,
            args.seeds,
            args.episodes,
            args.out,
            variants,
            args.shifts,
            stage=args.stage,
            play=not args.report,
        )
    path = os.path.join(args.out, f"ablations-{args.stage}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print_table(result)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
