"""``rlds-hub train bc|ail|poir``: train a learner on an RLDS dataset (loaded by rlds_hub.cli).

Cheap to import: JAX loads only when a training command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rlds_hub.learners.algorithm import ALGORITHMS

_DESCRIPTION = """\
Train an imitation learner on an RLDS dataset of demonstrations and evaluate it in the
environment, on seeds the data was not recorded with.

  bc    behavioural cloning (offline; --steps counts SGD updates)
  ail   adversarial imitation, DAC-style with SAC (online; --steps counts env steps)
  poir  BC + return-to-distribution planner (offline, then online fine-tuning;
        --steps counts offline SGD updates; online_steps in --config the env steps
        of fine-tuning, 10,000 by default)

The run directory (--out) gets run.json, metrics.jsonl (also printed as JSON lines),
checkpoints/ (orbax), evaluation/ (an RLDS dataset of the evaluation episodes),
experience/ for online learners, and learning_curve.png. `rlds-hub record --policy
checkpoint:DIR` plays the trained policy."""


def add_commands(subparsers: Any) -> None:
    from rlds_hub.command_line import subparser

    train = subparser(
        subparsers, "train", help="train BC, AIL or POIR on a dataset", description=_DESCRIPTION
    )
    train.add_argument("algorithm", choices=tuple(ALGORITHMS), help="the learner")
    train.add_argument("--dataset", required=True, help="dataset directory or name")
    train.add_argument(
        "--env",
        required=True,
        help="environment to evaluate (and, online, train) in, e.g. dm_control/point_mass-easy",
    )
    train.add_argument("--out", required=True, help="run directory")
    train.add_argument(
        "--seed", type=int, default=0, help="seed of the networks, the batches and the environments"
    )
    train.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="JSON object of config options (see docs/learners.md)",
    )
    train.add_argument(
        "--steps",
        type=int,
        default=argparse.SUPPRESS,
        metavar="N",
        help="the budget, in the learner's unit (unset: the config's num_steps)",
    )
    train.add_argument(
        "--split",
        default="train",
        help="split (or TFDS slice, e.g. 'train[:20]') of the demonstrations",
    )
    train.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its latest checkpoint"
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=_train)


def _train(args: argparse.Namespace) -> int:
    from rlds_hub.learners.run import train

    steps = getattr(args, "steps", None)
    if steps is not None and steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    result = train(
        args.algorithm,
        dataset=args.dataset,
        env=args.env,
        out=args.out,
        seed=args.seed,
        config=getattr(args, "config", None),
        steps=steps,
        split=args.split,
        resume=args.resume,
        progress=not args.quiet,
    )
    last = result.evaluations[-1] if result.evaluations else {}
    summary = f"trained {args.algorithm} for {result.steps:,} steps into {result.run_dir}"
    if last:
        summary += f"; final evaluation return {last['return']:.1f}"
        if last.get("normalized_return") is not None:
            summary += f" (normalised {last['normalized_return']:.2f})"
    print(summary, file=sys.stderr)
    return 0
