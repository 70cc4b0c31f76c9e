"""A training run's directory (``rlds-hub train --out``): the one owner of what it holds.

Every path inside a run directory is built here, and only here:

- ``run.json``: algorithm, config, task, normaliser, seeds, references (:meth:`read_run`,
  :meth:`write_run`);
- ``metrics.jsonl`` and ``learning_curve.png``;
- ``checkpoints/<step>/``: orbax checkpoints;
- ``evaluation/``: the evaluation episodes, recorded (an RLDS dataset);
- ``experience/``: the online algorithms' own environment episodes, recorded.

It imports nothing heavy, so the run, the policy loader and the agents share it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

from rlds_hub.learners.errors import CheckpointError

RUN_JSON = "run.json"
METRICS = "metrics.jsonl"
CURVE = "learning_curve.png"
CHECKPOINTS = "checkpoints"
EVALUATION = "evaluation"
EXPERIENCE = "experience"


@dataclasses.dataclass(frozen=True)
class RunDirectory:
    """The files of one run directory (``path``, made absolute)."""

    path: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", os.path.abspath(os.fspath(self.path)))

    def _join(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def run_json(self) -> str:
        return self._join(RUN_JSON)

    @property
    def metrics(self) -> str:
        return self._join(METRICS)

    @property
    def curve(self) -> str:
        return self._join(CURVE)

    @property
    def checkpoints(self) -> str:
        return self._join(CHECKPOINTS)

    @property
    def evaluation(self) -> str:
        return self._join(EVALUATION)

    @property
    def experience(self) -> str:
        return self._join(EXPERIENCE)

    def holds_run(self) -> bool:
        """Whether a run was started here (``run.json`` exists)."""
        return os.path.exists(self.run_json)

    def holds_experience(self) -> bool:
        """Whether ``experience/`` holds a dataset (an online learner played episodes)."""
        return os.path.exists(os.path.join(self.experience, "dataset_info.json"))

    def read_run(self) -> dict[str, Any]:
        """``run.json``, or :class:`CheckpointError` saying why this is no run directory."""
        if not os.path.exists(self.path):
            raise CheckpointError(
                f"{self.path} does not exist; pass the --out directory of a `rlds-hub train` run"
            )
        if not os.path.isdir(self.path):
            raise CheckpointError(
                f"{self.path} is a file, not a training run directory; pass the --out "
                "directory of `rlds-hub train`"
            )
        if not self.holds_run():
            raise CheckpointError(
                f"{self.path} is not a training run directory (no {RUN_JSON}); pass the --out "
                "directory of `rlds-hub train`"
            )
        with open(self.run_json) as f:
            return json.load(f)

    def write_run(self, record: Mapping[str, Any]) -> None:
        """Writes ``run.json`` atomically (the directory is created if needed)."""
        os.makedirs(self.path, exist_ok=True)
        tmp = self.run_json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(dict(record), f, indent=1)
        os.replace(tmp, self.run_json)


def read_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``run.json`` of a run directory (see :meth:`RunDirectory.read_run`)."""
    return RunDirectory(os.fspath(run_dir)).read_run()
