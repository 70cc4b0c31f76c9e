"""Data parallelism over all local devices with ``jax.sharding``.

Parameters and optimiser state are replicated; every batch is split along its batch axis
over a one-axis mesh (``"data"``). The jitted updates are written for one device and XLA's
SPMD partitioner turns the batch means into per-device partial sums plus an all-reduce, so a
run on N devices computes the same updates as on one (up to the order of floating-point
sums; ``tests/learners/test_learners_parallel.py`` checks it with several CPU host devices).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from rlds_hub.learners.errors import LearnerError

AXIS = "data"


class DataParallel:
    """A one-axis device mesh and the shardings of replicated state and split batches."""

    def __init__(self, devices: Sequence[Any] | None = None):
        self.devices = list(devices) if devices is not None else jax.local_devices()
        self.mesh = Mesh(self.devices, (AXIS,))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        # Stacked batches are [steps_per_call, batch, ...]: split the batch axis.
        self.stacked = NamedSharding(self.mesh, PartitionSpec(None, AXIS))
        self.batch = NamedSharding(self.mesh, PartitionSpec(AXIS))

    @property
    def num_devices(self) -> int:
        return len(self.devices)

    def check_batch_size(self, batch_size: int) -> None:
        if batch_size % self.num_devices:
            raise LearnerError(
                f"batch_size {batch_size} does not split evenly over {self.num_devices} "
                f"devices; use a multiple of {self.num_devices}"
            )

    def replicate(self, tree: Any) -> Any:
        return jax.device_put(tree, self.replicated)

    def shard_stacked(self, tree: Any) -> Any:
        """Places ``[steps, batch, ...]`` arrays with the batch axis split over devices."""
        return jax.device_put(tree, self.stacked)

    def constrain_stacked(self, tree: Any) -> Any:
        """Inside jit: ask for the batch axis of ``[steps, batch, ...]`` arrays split."""
        return jax.lax.with_sharding_constraint(tree, self.stacked)

    def describe(self) -> str:
        kinds = sorted({d.platform for d in self.devices})
        return f"{self.num_devices} {'/'.join(kinds)} device(s)"
