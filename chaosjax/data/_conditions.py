"""The four noise conditions shared by the vision and audio tracks.

RB/SB: random or structured background; FP/RP: the signal at a fixed or a random position.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

CONDITIONS = ("RBFP", "RBRP", "SBFP", "SBRP")


def condition_code(condition: Any) -> Any:
    """`CONDITIONS.index(condition)` for a name; an int code (or a traced int) is checked and passed on."""
    if isinstance(condition, str):
        if condition not in CONDITIONS:
            raise ValueError(f"condition: unknown {condition!r}; expected one of {', '.join(CONDITIONS)}")
        return CONDITIONS.index(condition)
    if isinstance(condition, (bool, float)):
        raise TypeError(f"condition: expected a name or an int code 0-3, got {condition!r}")
    if isinstance(condition, (int, np.integer)):
        if not 0 <= condition < len(CONDITIONS):
            raise ValueError(f"condition: code {condition} out of range 0-{len(CONDITIONS) - 1}")
        return int(condition)
    c = jnp.asarray(condition)
    if c.ndim != 0 or not jnp.issubdtype(c.dtype, jnp.integer):
        raise TypeError(f"condition: expected a name or an integer scalar code, got dtype {c.dtype} shape {c.shape}")
    return c
