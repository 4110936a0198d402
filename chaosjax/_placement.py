"""Where a grid's stacked arrays live: split along their leading (grid) axis across a device mesh."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import jax
import numpy as np

T = TypeVar("T")


class GridPlacement:
    """Puts stacked arrays on a one-axis ``Mesh`` of ``devices`` (default: every local device), split along their
    leading axis with a ``NamedSharding``; a jitted, vmapped computation then follows that placement.

    The leading axis must be a multiple of the device count: `pad` repeats a grid's last member to get there
    (computed, then dropped by the caller).
    """

    def __init__(self, devices: Sequence[Any] | None = None):
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        self.mesh = Mesh(np.array(list(devices) if devices is not None else jax.local_devices()), ("grid",))
        self.sharding = NamedSharding(self.mesh, PartitionSpec("grid"))

    @property
    def devices(self) -> int:
        return self.mesh.devices.size

    def __call__(self, tree: T) -> T:
        return jax.tree.map(lambda a: jax.device_put(a, self.sharding), tree)

    def pad(self, members: Sequence[T]) -> list[T]:
        """``members`` and copies of its last one, up to a multiple of the device count."""
        return list(members) + [members[-1]] * ((-len(members)) % self.devices)
