"""POIR's planner with the simulator itself as its model: the ceiling of the planner design.

POIR's return-to-distribution planner (MPPI around the BC policy, the tracking cost, the
push sequences; ``rlds_hub.learners.poir.planner``) normally predicts with its learned
ensemble. Here every sampled sequence is rolled out through MuJoCo (``mujoco.rollout``,
from the true physics state), with the same BC proposals, cost, weighting and settings as a
trained POIR run. What it scores under each deployment shift is what the planner could reach
with a perfect model — so the gap between it and POIR is the model's, and the gap between it
and the expert is the planner's.

Run from the repository root:

    python -m benchmarks.poir_ceiling --run out/learners/poir-cartpole/seed1/poir --seed 1

``--mode switch`` (default) uses POIR's own rule — BC in distribution, the planner out of
it (no trust test: the model is exact) — and ``--mode plan`` plans at every step. Prints
normalised returns (the scripted expert and random policy on the same test episodes, as
``benchmarks.learners``; ``--seeds validation`` for a probe) and adds them to
``ceiling.json`` next to the run (a probe: ``ceiling-validation.json``; the report shows
test-seed rows only).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

from benchmarks.learners import CARTPOLE, SHIFTS


class SimulatorPlanner:
    """An ``rlds_hub.envs.Policy`` that plans with POIR's planner through the true physics."""

    def __init__(self, run_dir: str, env: Any, seed: int, mode: str = "switch"):
        import jax
        import mujoco
        import mujoco.rollout

        from rlds_hub.learners import load_policy
        from rlds_hub.learners.poir import distance, planner
        from rlds_hub.learners.poir.networks import make_networks

        policy = load_policy(run_dir, seed=seed)
        self.task, self.config, self.params = policy.task, policy.config, policy.params
        networks = make_networks(self.task, self.config)
        physics = _physics(env)
        self.model, self.data = physics.model.ptr, physics.data.ptr
        self.spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        self.state_size = mujoco.mj_stateSize(self.model, self.spec)
        self.mujoco, self.rollout = mujoco, mujoco.rollout.rollout
        self.rng = np.random.default_rng(seed)
        cfg, params = self.config, self.params
        self.pushes = [np.asarray(x) for x in planner.push_schedule(cfg, cfg.num_samples)]
        self.bc = jax.jit(lambda z: planner.bc_actions(networks, params, z))
        if cfg.wide_fraction or cfg.iterations > 1:
            raise SystemExit(
                "poir_ceiling.py plans with wide_fraction 0 and 1 iteration only; "
                f"the run has {cfg.wide_fraction} and {cfg.iterations}"
            )
        self.plan = jax.jit(
            lambda actions, states, z0: planner.weighted_average(
                cfg, actions, planner.score_trajectories(cfg, params, z0, states)
            )[0]
        )
        self.offset = np.asarray(self.task.action_offset)
        self.scale = np.asarray(self.task.action_scale)
        self.mode = mode
        self.distance = jax.jit(
            lambda z: distance.knn_distance(z[None], params["references"], cfg.knn)[0]
        )
        self.threshold = float(params["threshold"])
        self.mean = np.asarray(params["norm"]["mean"])
        self.std = np.asarray(params["norm"]["std"])
        self.reset()

    def reset(self) -> None:
        self.previous: np.ndarray | None = None
        self.steps = self.planned = 0

    def _observations(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """dm_control cartpole's flattened observation (position: x, cos, sin; velocity)."""
        return np.concatenate(
            [qpos[:, :1], np.cos(qpos[:, 1:2]), np.sin(qpos[:, 1:2]), qvel], axis=1
        )

    def __call__(self, timestep: Any) -> np.ndarray:
        import jax.numpy as jnp

        cfg, n, horizon = self.config, self.config.num_samples, self.config.horizon
        observation = self.task.flatten_observation(timestep.observation, batched=False)
        z0 = ((observation - self.mean) / self.std).astype(np.float32)
        self.steps += 1
        if self.mode == "switch" and float(self.distance(jnp.asarray(z0))) <= self.threshold:
            self.previous = None  # in distribution: BC acts, and the next plan starts afresh
            return self.task.env_action(np.asarray(self.bc(jnp.asarray(z0[None])))[0])
        self.planned += 1
        state = np.empty(self.state_size)
        self.mujoco.mj_getState(self.model, self.data, state, self.spec)
        nq = self.model.nq
        check = self._observations(state[None, 1 : 1 + nq], state[None, 1 + nq : 1 + 2 * nq])[0]
        if not np.allclose(check, observation, atol=1e-6):
            raise RuntimeError("simulator state and observation disagree")
        states = np.repeat(state[None], n, axis=0)
        z = np.repeat(z0[None], n, axis=0)
        mixing = cfg.plan_mixing if self.previous is not None else 0.0
        noise = cfg.proposal_noise * (np.arange(n) > 0)[:, None]
        sign, length = self.pushes
        actions = np.zeros((horizon, n, self.task.action_size), np.float32)
        predicted = np.zeros((horizon, n, z0.shape[0]), np.float32)
        for t in range(horizon):
            proposal = np.asarray(self.bc(jnp.asarray(z)))
            proposal = proposal + noise * self.rng.standard_normal(proposal.shape)
            if self.previous is not None:
                previous = self.previous[min(t + 1, horizon - 1)]
                mixed = (1 - mixing) * proposal + mixing * previous[None]
                proposal = np.where(np.arange(n)[:, None] == 0, proposal, mixed)
            a = np.clip(proposal, -1.0, 1.0)
            a = np.where((t < length)[:, None], sign[:, None], a)
            control = self.offset + self.scale * a  # the env's units, as env_action
            out, _ = self.rollout(self.model, self.data, states, control[:, None, :])
            states = out[:, 0]
            z = (
                (
                    self._observations(states[:, 1 : 1 + nq], states[:, 1 + nq : 1 + 2 * nq])
                    - self.mean
                )
                / self.std
            ).astype(np.float32)
            actions[t], predicted[t] = a, z
        self.mujoco.mj_setState(self.model, self.data, state, self.spec)
        self.mujoco.mj_forward(self.model, self.data)
        plan = np.asarray(self.plan(jnp.asarray(actions), jnp.asarray(predicted), jnp.asarray(z0)))
        self.previous = plan
        return self.task.env_action(plan[0])


def _physics(env: Any) -> Any:
    inner = env
    while not hasattr(inner, "physics"):
        inner = inner._env
    return inner.physics


def main() -> None:
    from rlds_hub.envs import make_env
    from rlds_hub.learners import seeds, shifts
    from rlds_hub.learners.evaluation import normalized_return, reference_returns

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="a trained POIR run directory")
    parser.add_argument("--seed", type=int, required=True, help="the run's seed")
    parser.add_argument(
        "--episodes",
        type=int,
        default=6,
        help="per run seed (>= 30 per reported point over the seeds)",
    )
    parser.add_argument("--shifts", nargs="*", default=list(SHIFTS))
    parser.add_argument(
        "--mode",
        choices=["switch", "plan"],
        default="switch",
        help="switch: POIR's rule (BC in distribution, the planner out of it; "
        "no trust test, the model being exact); plan: the planner at every step",
    )
    parser.add_argument(
        "--seeds",
        choices=["test", "validation"],
        default="test",
        help="test: the reported figure; validation: a design probe (docs/learners.md, Protocol)",
    )
    args = parser.parse_args()
    eval_seed = (seeds.test_seed if args.seeds == "test" else seeds.validation_seed)(args.seed)
    name = "ceiling.json" if args.seeds == "test" else "ceiling-validation.json"
    path = os.path.join(os.path.dirname(args.run.rstrip("/")), name)
    results: dict[str, Any] = {}
    if os.path.exists(path):
        with open(path) as f:
            results = json.load(f)
    results.setdefault(args.mode, {})
    for name in args.shifts:
        refs = reference_returns(
            CARTPOLE, seed=eval_seed, episodes=args.episodes, shift=SHIFTS[name]
        )
        env = shifts.apply_shift(make_env(CARTPOLE, seed=eval_seed), SHIFTS[name], eval_seed)
        policy = SimulatorPlanner(args.run, env, args.seed, args.mode)
        returns, planned = [], []
        started = time.perf_counter()
        for _ in range(args.episodes):
            timestep, total = env.reset(), 0.0
            policy.reset()
            while not timestep.last():
                timestep = env.step(policy(timestep))
                total += timestep.reward
            returns.append(total)
            planned.append(policy.planned / policy.steps)
            print(f"{name}: return {total:.1f} ({time.perf_counter() - started:.0f} s)", flush=True)
        row = {
            "normalized_return": normalized_return(returns, refs),
            "returns": returns,
            "planned_fraction": float(np.mean(planned)),
            "expert": refs["expert"],
            "random": refs["random"],
            "episodes": args.episodes,
            "run": args.run,
            "eval_seed": eval_seed,
            "seconds": round(time.perf_counter() - started, 1),
        }
        results[args.mode][name] = row
        print(
            f"{name} ({args.mode}): the planner with the simulator as its model "
            f"{row['normalized_return']:.3f} normalised (planning on "
            f"{row['planned_fraction']:.0%} of the steps)",
            flush=True,
        )
        with open(path, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
