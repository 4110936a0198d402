"""Controls: attributions that know nothing about the model."""

from __future__ import annotations

import jax

from chaosjax.attribution._core import Array, BatchFn, check_inputs


def random_baseline(f: BatchFn, x: Array, *, key: Array) -> Array:
    """Random attributions `a ~ N(0, 1)`, i.i.d. per feature: the chance level every method must beat.

    `f` is checked but never evaluated. Cost: nothing but the random draw.
    """
    x = check_inputs(f, x, "random_baseline")
    return jax.random.normal(key, x.shape, x.dtype)
