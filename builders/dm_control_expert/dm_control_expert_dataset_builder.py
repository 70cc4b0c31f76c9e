"""dm_control_expert: episodes of dm_control tasks recorded with rlds_hub's scripted experts
(the demonstration data the learners train on).

``tfds build builders/dm_control_expert --config point_mass_easy`` records the config's
episodes with Beam (workers record episode ranges in parallel; episode i uses seed
``seed + i``, so the data do not depend on the runner), through rlds_hub's recorder:
lossless float64 observations, RLDS alignment, terminal vs truncated kept.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow_datasets as tfds

from rlds_hub.beam.tfds_builder import ConvertedBuilder


@dataclasses.dataclass
class ExpertConfig(tfds.core.BuilderConfig):
    """A task, its scripted expert, how many episodes and the first seed."""

    env: str = "dm_control/point_mass-easy"
    policy: str = "expert"
    episodes: int = 50
    seed: int = 0


class Builder(ConvertedBuilder):
    """Episodes of dm_control tasks recorded with rlds_hub's scripted experts."""

    BUILDER_CONFIGS = [  # noqa: RUF012  (TFDS reads a list)
        ExpertConfig(
            name="point_mass_easy",
            env="dm_control/point_mass-easy",
            description="point_mass-easy, PD expert, 50 episodes of 1000 steps",
        ),
        ExpertConfig(
            name="cartpole_balance",
            env="dm_control/cartpole-balance",
            description="cartpole-balance, LQR expert, 50 episodes of 1000 steps",
        ),
        ExpertConfig(
            name="cartpole_swingup",
            env="dm_control/cartpole-swingup",
            description="cartpole-swingup, energy-shaping expert, 50 episodes",
        ),
    ]

    def features_json(self) -> dict[str, Any]:
        from rlds_hub.beam.recording import env_features

        return env_features(self.builder_config.env)

    def write_dataset(self, output: str, beam_args: list[str] | None) -> dict[str, Any]:
        from rlds_hub.beam.job_values import Output, Run
        from rlds_hub.beam.recording import record_dataset

        config = self.builder_config
        return record_dataset(
            config.env,
            Output(output, name=self.name),
            policy=config.policy,
            episodes=config.episodes,
            seed=config.seed,
            run=Run(beam_args=beam_args),
        )
