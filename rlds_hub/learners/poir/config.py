"""POIR hyperparameters: BC, an ensemble dynamics model, the distance to the expert's states,
and an MPPI planner with the BC policy as its proposal (after Acme's MBOP where one exists)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from rlds_hub.learners.config import RunConfig
from rlds_hub.learners.errors import LearnerError


@dataclasses.dataclass(frozen=True)
class POIRConfig(RunConfig):
    """Return-to-distribution planning around a BC policy.

    Offline (``num_steps`` SGD steps): the BC policy and every dynamics-model member train
    together on the demonstrations. Online (``online_steps`` environment steps, after the
    offline phase): the agent acts in the environment (under ``online_shift``), its episodes
    are recorded, and the dynamics model is fine-tuned on demonstrations and experience.

    Acting: at each step the distance of the state to the expert's states (mean distance to
    the ``knn`` nearest of ``reference_states`` expert states, in normalised observation
    space) is compared with a threshold calibrated on the demonstrations (the
    ``threshold_quantile`` of each demonstration's distances to the other
    demonstrations' states, times ``threshold_scale``). In distribution, the BC action; out
    of it (``mode="switch"``), the planner's: ``num_samples`` action sequences of
    ``horizon`` steps sampled around the BC policy (noise ``proposal_noise``, mixed with
    the previous plan by ``plan_mixing`` as in MBOP; ``2 * len(push_fractions)`` of them
    instead hold the action at -1 or +1 for ``fraction * horizon`` steps, then follow BC),
    rolled out through the ensemble (one member per sequence), scored, and averaged with weights
    ``softmax(-temperature * standardised cost)`` (``aggregation="top_k"``: the plain mean
    of the ``top_k`` cheapest sequences, the top-k average Acme's MPPI offers). The cost of
    a predicted trajectory is (``cost="tracking"``) its discounted distance, step by step, to the best-matching of the
    ``segments`` expert segments that start nearest to the current state — return to the
    expert's states *and* follow the expert on from there — or (``cost="knn"``) the
    discounted k-NN distance of each predicted state to the expert's states.
    ``mode="plan"`` plans at every step; ``mode="bc"`` never does (the ablation). With
    ``trust``, the switch plans only where the ensemble's disagreement on the next state is
    within ``trust_scale`` times its ``trust_quantile`` on the demonstrations.

    The ensemble predicts (``dynamics_target="change"``) the scaled change of the normalised
    observation, ``(z' - z) / σ_Δ``, or (``"next"``, as Acme's MBOP) the next normalised
    observation ``z'`` itself.
    """

    # BC (as the BC learner's defaults)
    bc_hidden_sizes: tuple[int, ...] = (256, 256, 256)
    bc_learning_rate: float = 1e-4
    # dynamics ensemble
    ensemble_size: int = 5
    dynamics_hidden_sizes: tuple[int, ...] = (256, 256)
    dynamics_learning_rate: float = 1e-3
    dynamics_target: Literal["change", "next"] = "change"
    # distance to the expert's states
    knn: int = 5
    reference_states: int = 4096
    threshold_quantile: float = 0.99
    threshold_scale: float = 1.0
    # when to plan
    mode: Literal["switch", "plan", "bc"] = "switch"
    trust: bool = True
    trust_quantile: float = 0.99
    trust_scale: float = 3.0
    # planner
    horizon: int = 60
    num_samples: int = 60
    proposal_noise: float = 0.2
    wide_fraction: float = 0.0
    wide_noise: float = 1.0
    plan_mixing: float = 0.5
    push_fractions: tuple[float, ...] = (0.05, 0.13, 0.25, 0.5)
    temperature: float = 5.0
    aggregation: Literal["softmax", "top_k"] = "softmax"
    top_k: int = 10
    iterations: int = 1
    cost: Literal["tracking", "knn"] = "tracking"
    segments: int = 16
    cost_discount: float = 1.0
    # optimisation
    batch_size: int = 256
    steps_per_call: int = 100
    num_steps: int = 20_000
    # online fine-tuning
    online_steps: int = 10_000
    online_shift: dict[str, Any] | None = None
    finetune_updates_per_episode: int = 500
    eval_every: int = 10_000
    checkpoint_every: int = 10_000

    @classmethod
    def resumable_fields(cls) -> frozenset[str]:
        """An offline run can be resumed into its online phase (or a longer one)."""
        return RunConfig.resumable_fields() | {
            "online_steps",
            "online_shift",
            "finetune_updates_per_episode",
        }

    def validate(self) -> None:
        super().validate()
        if self.ensemble_size < 1 or self.num_samples % self.ensemble_size:
            raise LearnerError(
                f"num_samples ({self.num_samples}) must be a multiple of ensemble_size "
                f"({self.ensemble_size}): each sampled sequence uses one member"
            )
        if (
            self.horizon < 1
            or self.knn < 1
            or self.segments < 1
            or self.reference_states < max(self.knn, self.segments)
        ):
            raise LearnerError("horizon, knn, segments >= 1 and reference_states >= both")
        if not 0 < self.threshold_quantile <= 1 or self.threshold_scale <= 0:
            raise LearnerError("threshold_quantile must be in (0, 1] and threshold_scale > 0")
        if not 0 <= self.plan_mixing < 1 or self.proposal_noise < 0 or self.temperature <= 0:
            raise LearnerError("plan_mixing in [0, 1), proposal_noise >= 0, temperature > 0")
        if 2 * len(self.push_fractions) > self.num_samples - 1 or not all(
            0 < f <= 1 for f in self.push_fractions
        ):
            raise LearnerError(
                f"push_fractions ({list(self.push_fractions)}) gives {2 * len(self.push_fractions)} "
                f"push sequences: at most num_samples - 1 ({self.num_samples - 1}), each "
                "fraction in (0, 1] (sequence 0 is always BC's own rollout)"
            )
        if self.dynamics_target not in ("change", "next"):
            raise LearnerError(
                f"dynamics_target must be 'change' (the scaled change of the normalised "
                f"observation) or 'next' (the next normalised observation), got "
                f"{self.dynamics_target!r}"
            )
        if self.aggregation not in ("softmax", "top_k"):
            raise LearnerError(
                f"aggregation must be 'softmax' or 'top_k', got {self.aggregation!r}"
            )
        if self.aggregation == "top_k" and not 1 <= self.top_k <= self.num_samples:
            raise LearnerError(
                f"top_k ({self.top_k}) must be in [1, num_samples] ([1, {self.num_samples}])"
            )
        if self.online_steps < 0 or self.finetune_updates_per_episode < 0:
            raise LearnerError("online_steps and finetune_updates_per_episode must be >= 0")
