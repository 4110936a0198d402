"""Multi-process sweeps: `jax.distributed` set up from the environment (see `chaosjax.sweep`)."""

from __future__ import annotations

import os

import jax


def _distributed() -> tuple[int, int]:
    """(process index, count), initialising jax.distributed when its environment is present."""
    if os.environ.get("JAX_COORDINATOR_ADDRESS") or os.environ.get("CHAOSJAX_DISTRIBUTED") == "1":
        if not jax.distributed.is_initialized():
            # The coordinator's address is read by JAX itself; the process count and index are passed on from
            # JAX_NUM_PROCESSES / JAX_PROCESS_ID when set (a cluster such as SLURM or a TPU pod supplies them).
            counts = {arg: int(os.environ[env]) for arg, env in (("num_processes", "JAX_NUM_PROCESSES"),
                                                                  ("process_id", "JAX_PROCESS_ID"))
                      if os.environ.get(env)}
            # Processes sync at the end through a collective; on CPU-only hosts that needs gloo (accelerator
            # clients are unaffected).
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
            jax.distributed.initialize(**counts)
    return jax.process_index(), jax.process_count()
