"""Single-gradient methods: saliency and input x gradient."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from chaosjax.attribution._core import Array, BatchFn, check_inputs, gradient


def saliency(f: BatchFn, x: Array, *, absolute: bool = True, key: Array | None = None) -> Array:
    """Saliency: the gradient of each sample's output with respect to its input.

    `a = |df/dx|` (or the signed `df/dx` with `absolute=False`).

    Args:
      f: batch `(B, *S)` -> per-sample scalars `(B,)`.
      x: the inputs `(B, *S)`.
      absolute: the gradient's absolute value (Captum's default) or, with False, the signed gradient.
      key: unused: the method is deterministic. Accepted so that every entry of `METHODS` takes
        `m(f, x, key=key)`.

    Cost: one forward and one backward pass over the batch.
    Captum: `Saliency(f).attribute(x, abs=absolute)`.
    """
    if not isinstance(absolute, (bool, np.bool_)):
        raise TypeError(f"saliency: `absolute` must be True or False, got {absolute!r}")
    del key
    x = check_inputs(f, x, "saliency")
    g = gradient(f, x)
    return jnp.abs(g) if absolute else g


def input_x_gradient(f: BatchFn, x: Array, *, key: Array | None = None) -> Array:
    """Input x gradient: `a = x * df/dx`, a first-order Taylor attribution against a zero baseline.

    Args:
      f: batch `(B, *S)` -> per-sample scalars `(B,)`.
      x: the inputs `(B, *S)`.
      key: unused: the method is deterministic. Accepted so that every entry of `METHODS` takes
        `m(f, x, key=key)`.

    Cost: one forward and one backward pass over the batch.
    Captum: `InputXGradient(f).attribute(x)`.
    """
    del key
    x = check_inputs(f, x, "input_x_gradient")
    return x * gradient(f, x)
