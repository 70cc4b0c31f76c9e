"""AIL's defaults against Acme's DAC / "What Matters for AIL" settings, on validation seeds.

Each variant is a set of ``AILConfig`` overrides trained with the quality benchmark's own
entry point (same demonstrations, budget and training seeds as ``ail-point-mass``)::

    python -m benchmarks.learners ail-point-mass --seeds 5 --out out/learners   # the defaults
    python -m benchmarks.learners ail-point-mass --variant previous --seeds 5 --out out/learners
    python -m benchmarks.learners ail-point-mass --variant what-matters --seeds 3 --out out/learners
    python -m benchmarks.ail_settings --out out/learners --seeds 5 [--step 25000]

``--set key=value`` (repeatable) adds overrides to a named variant or defines a new one.
Each seed takes 10-25 minutes on a loaded 2-core machine; run seeds as separate processes
(``--first-seed s --seeds 1``) to use more cores. ``--step`` compares at an earlier
evaluation step (runs stopped early).

A variant's runs live under ``<out>/ail-settings/<variant>/seed<s>``; the defaults' are the
benchmark's own ``<out>/ail-point-mass/seed<s>``. Only validation episodes are compared: each
run's last in-run evaluation (environment seed ``seeds.validation_seed(s)``, the same
episodes for every variant of run seed ``s``), normalised with the expert and random returns
the run measured on those episodes. Test seeds are never played here. The report gives each
variant's mean [95% two-level bootstrap interval] and its difference from the defaults,
paired per seed and per episode, and writes the table as JSON next to the runs.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from benchmarks import harness

EXPERIMENT = "ail-point-mass"
# Named AILConfig overrides. Acme's DACBuilder (acme/agents/jax/ail/dac.py) regularises the
# discriminator with a gradient penalty of 10 (target 1) and a Bernoulli-entropy bonus of
# 1e-3, trained by Adam at 1e-5 (AILBuilder's default optimiser); Acme's GAIL/DAC example
# (examples/baselines/imitation/run_gail.py), whose discriminator follows Orsini et al.
# (2021), adds spectral normalisation (Lipschitz 1) and one hidden layer of 64 units.
# The defaults have been Acme DAC's discriminator settings since this comparison; "previous"
# is the defaults before it (its runs: the benchmark's ail-point-mass runs of that time).
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "previous": {"discriminator_learning_rate": 3e-4, "discriminator_entropy": 0.0},
    "what-matters": {
        "discriminator_learning_rate": 1e-5,
        "discriminator_entropy": 1e-3,
        "spectral_norm": True,
        "discriminator_hidden_sizes": [64],
    },
}


def variant_dir(out: str, variant: str) -> str:
    """Where a variant's seeds live (the defaults: the quality benchmark's own runs)."""
    if variant == "defaults":
        return os.path.join(out, EXPERIMENT)
    return os.path.join(out, "ail-settings", variant)


def parse_settings(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs (values JSON: ``1e-5``, ``true``, ``[64]``; else strings)."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {pair!r}: write key=value, e.g. --set spectral_norm=true")
        try:
            settings[key] = json.loads(raw)
        except json.JSONDecodeError:
            settings[key] = raw
    return settings


def variant_settings(variant: str, pairs: list[str]) -> dict[str, Any]:
    """A named variant's overrides plus ``--set`` pairs (a new name needs ``--set``)."""
    extra = parse_settings(pairs)
    if variant not in VARIANTS and not extra:
        raise SystemExit(
            f"unknown variant {variant!r}: choose one of {', '.join(VARIANTS)} or give its "
            "settings with --set key=value"
        )
    return {**VARIANTS.get(variant, {}), **extra}


def final_validation(run_dir: str, step: int | None = None) -> dict[str, Any] | None:
    """A run's in-run (validation) evaluation at ``step`` (None: the budget, the last one):
    step, seed and per-episode normalised returns against the expert and random returns on
    the same episodes; None if the run has not reached it."""
    from rlds_hub.learners.metrics import read_metrics
    from rlds_hub.learners.policy import read_run

    if not os.path.exists(os.path.join(run_dir, "run.json")):
        return None
    run = read_run(run_dir)
    evals = [r for r in read_metrics(run_dir) if r.get("kind") == "eval"]
    wanted = run["config"]["num_steps"] if step is None else step
    at = [r for r in evals if r["step"] == wanted]
    if not at:
        return None
    refs = run["references"]
    if refs["seed"] != run["eval_seed"]:
        raise ValueError(f"{run_dir}: references measured on {refs['seed']}, not its eval seed")
    scale = refs["expert"] - refs["random"]
    last = at[-1]
    return {
        "step": last["step"],
        "seed": run["eval_seed"],
        "returns": last["returns"],
        "normalized": [(r - refs["random"]) / scale for r in last["returns"]],
        "curve": [(r["step"], r["normalized_return"]) for r in evals if r["step"] <= wanted],
        "config": run["config"],
    }


def first_step_at(curve: list[tuple[int, float]], bar: float = 0.8) -> int | None:
    """The first evaluation step whose mean normalised validation return reaches ``bar``."""
    return next((step for step, value in curve if value >= bar), None)


def compare(out: str, seeds: list[int], step: int | None = None) -> list[dict[str, Any]]:
    """Each variant's validation at ``step`` (None: the budget) on ``seeds`` and its paired
    difference from the defaults (over the seeds both reached it)."""
    from rlds_hub.learners.confidence import bootstrap_interval, paired_differences

    base = {
        s: final_validation(os.path.join(variant_dir(out, "defaults"), f"seed{s}"), step)
        for s in seeds
    }
    rows = []
    for variant in VARIANTS:
        found = {
            s: final_validation(os.path.join(variant_dir(out, variant), f"seed{s}"), step)
            for s in seeds
        }
        done = [s for s in seeds if found[s]]
        if not done:
            continue
        row: dict[str, Any] = {
            "variant": variant,
            "settings": VARIANTS[variant],
            "seeds": done,
            "per_seed": {
                s: sum(found[s]["normalized"]) / len(found[s]["normalized"]) for s in done
            },
            "first_step_at_0.8": {s: first_step_at(found[s]["curve"]) for s in done},
            "curves": {s: found[s]["curve"] for s in done},
            "interval": bootstrap_interval([found[s]["normalized"] for s in done]).format(),
        }
        paired = [s for s in done if base[s]]
        if variant != "defaults" and paired:
            row["paired_seeds"] = paired
            row["difference"] = bootstrap_interval(
                paired_differences(
                    [found[s]["normalized"] for s in paired],
                    [base[s]["normalized"] for s in paired],
                )
            ).format()
        rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]], seeds: list[int]) -> None:
    print(
        "| variant | "
        + " | ".join(f"seed {s}" for s in seeds)
        + " | mean [95% interval] | − defaults, paired [95% interval] |"
    )
    print("| --- | " + " | ".join("---" for _ in seeds) + " | --- | --- |")
    for row in rows:
        cells = [f"{row['per_seed'][s]:.3f}" if s in row["per_seed"] else "-" for s in seeds]
        print(
            f"| {row['variant']} | " + " | ".join(cells) + f" | {row['interval']} | "
            f"{row.get('difference', '-')} |"
        )
    print("\nfirst evaluation step with mean normalised validation return >= 0.8:")
    for row in rows:
        print(f"  {row['variant']}: {row['first_step_at_0.8']}")
    print("\nvalidation curves (step: mean normalised return of the evaluation's episodes):")
    for row in rows:
        for seed, curve in row["curves"].items():
            points = " ".join(f"{step // 1000}k {value:.2f}" for step, value in curve)
            print(f"  {row['variant']} seed {seed}: {points}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="out/learners")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument(
        "--step",
        type=int,
        default=None,
        help="compare at this evaluation step (default: the budget)",
    )
    args = parser.parse_args()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    print(
        f"# AIL settings on validation seeds ({harness.machine_line(('numpy', 'rlds_hub', 'jax'))})"
    )
    print(f"# load average: {harness.load_average()}\n")
    print(f"validation evaluation at step {args.step or 'the budget'}\n")
    rows = compare(args.out, seeds, args.step)
    print_table(rows, seeds)
    path = os.path.join(args.out, "ail-settings", "comparison.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(
            {
                "seeds": seeds,
                "step": args.step,
                "rows": rows,
                "load_average": harness.load_average(),
            },
            f,
            indent=1,
        )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
