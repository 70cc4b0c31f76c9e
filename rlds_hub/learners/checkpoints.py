"""Checkpoints with orbax: the training state, the policy's parameters, and JSON metadata.

A run directory keeps ``checkpoints/<step>/`` (orbax's layout, the last few kept) holding
three items: ``state`` (everything needed to resume), ``policy`` (only what acting needs, so
:func:`rlds_hub.learners.load_policy` restores a few arrays) and ``meta`` (JSON: progress
counters, references). The run's ``run.json`` (:mod:`rlds_hub.learners.run_dir`)
says which algorithm, config and task the checkpoints belong to; restoring checks it.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from rlds_hub.learners.errors import CheckpointError
from rlds_hub.learners.run_dir import RunDirectory


def _ocp():
    import orbax.checkpoint as ocp

    return ocp


def abstract(tree: Any) -> Any:
    """Shape/dtype structs of a pytree (a restore target)."""

    def struct(x: Any) -> jax.ShapeDtypeStruct:
        if isinstance(x, jax.ShapeDtypeStruct):
            return x
        dtype = getattr(x, "dtype", None) or np.asarray(x).dtype
        return jax.ShapeDtypeStruct(np.shape(x), dtype)

    return jax.tree_util.tree_map(struct, tree)


class Checkpointer:
    """Saves and restores numbered checkpoints of a run directory."""

    def __init__(self, run_dir: str | os.PathLike, *, max_to_keep: int = 3, create: bool = True):
        ocp = _ocp()
        self.directory = RunDirectory(os.fspath(run_dir)).checkpoints
        if not create and not os.path.isdir(self.directory):
            raise CheckpointError(f"{run_dir} holds no checkpoints ({self.directory} is missing)")
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create),
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, policy: Any, meta: dict[str, Any]) -> None:
        ocp = _ocp()
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                policy=ocp.args.StandardSave(policy),
                meta=ocp.args.JsonSave(meta),
            ),
            force=True,
        )

    def restore(self, target_state: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """The training state (shaped like ``target_state``) and meta of ``step`` (latest)."""
        ocp = _ocp()
        step = self._step(step)
        try:
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract(target_state)),
                    meta=ocp.args.JsonRestore(),
                ),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(
                f"checkpoint {step} in {self.directory} does not fit this learner's state "
                f"(another config or task?): {_first_line(e)}"
            ) from None
        return restored["state"], dict(restored["meta"])

    def restore_policy(
        self, target_policy: Any, step: int | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Only the policy parameters (shaped like ``target_policy``; None: as saved) and
        meta."""
        ocp = _ocp()
        step = self._step(step)
        target = None if target_policy is None else abstract(target_policy)
        try:
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(
                    policy=ocp.args.StandardRestore(target),
                    meta=ocp.args.JsonRestore(),
                ),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(
                f"the policy in checkpoint {step} of {self.directory} does not fit the "
                f"network its run.json describes: {_first_line(e)}"
            ) from None
        return restored["policy"], dict(restored["meta"])

    def _step(self, step: int | None) -> int:
        if step is None:
            step = self.latest_step()
        if step is None:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        return step

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
