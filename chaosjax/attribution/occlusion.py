"""Occlusion: overlapping sliding windows replaced by a baseline, as Captum's `Occlusion`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from chaosjax.attribution._core import (
    Array,
    BatchFn,
    broadcast_baseline,
    check_batch_size,
    check_inputs,
    sum_over_draws,
)


def _per_dim(value: Any, name: str, sample_shape: tuple[int, ...]) -> tuple[int, ...]:
    """An int (every sample dimension) or one int per sample dimension, each >= 1."""
    dims = len(sample_shape)
    values = (value,) * dims if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    try:
        values = tuple(values)
    except TypeError:
        values = None
    if (
        values is None
        or len(values) != dims
        or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in values)
    ):
        raise ValueError(
            f"occlusion: `{name}` must be an integer >= 1 or one such integer per sample dimension "
            f"({dims} for samples shaped {sample_shape}), got {value!r}"
        )
    return tuple(int(v) for v in values)


def occlusion_positions(sample_shape: tuple[int, ...], window, strides=1) -> tuple[tuple[int, ...], np.ndarray]:
    """Window positions per dimension and how many windows cover each feature, for samples shaped `sample_shape`.

    Dimension `d` has `ceil((S_d - w_d) / s_d) + 1` positions starting at `k * s_d`; the last one may run past
    the edge, where it is cut (as in Captum). Returns the per-dimension counts and the coverage `(S)`.
    """
    sample_shape = tuple(int(s) for s in sample_shape)
    window = _per_dim(window, "window", sample_shape)
    strides = _per_dim(strides, "strides", sample_shape)
    for d, (size, w, s) in enumerate(zip(sample_shape, window, strides)):
        if w > size:
            raise ValueError(
                f"occlusion: `window` {window} is larger than the sample {sample_shape} in dimension {d}"
            )
        if s > w and size > w:
            raise ValueError(
                f"occlusion: `strides` {strides} exceed `window` {window} in dimension {d}, which would leave "
                "features that no window covers"
            )
    counts = tuple(math.ceil((size - w) / s) + 1 for size, w, s in zip(sample_shape, window, strides))
    coverage = np.ones((), np.float64)
    for size, w, s, n in zip(sample_shape, window, strides, counts):
        starts = np.arange(n) * s
        index = np.arange(size)
        covered = (index[None, :] >= starts[:, None]) & (index[None, :] < starts[:, None] + w)
        coverage = np.multiply.outer(coverage, covered.sum(axis=0))
    return counts, coverage


def occlusion(
    f: BatchFn,
    x: Array,
    *,
    window: int | Sequence[int] = 1,
    strides: int | Sequence[int] = 1,
    baseline: ArrayLike = 0.0,
    batch_size: int | None = None,
    key: Array | None = None,
) -> Array:
    """Occlusion: every window position replaced by the baseline; a feature gets the mean output drop of the
    windows that cover it.

    A window of shape `window` slides over each sample with step `strides` (per sample dimension); at each
    position `p`, `d_p = f(x) - f(x with the window at p set to the baseline)` is added to every feature the
    window covers, and each feature's total is divided by the number of windows covering it. With
    `window=1, strides=1` it is feature ablation of single features.

    Args:
      f: batch `(B, *S)` -> per-sample scalars `(B,)`.
      x: the inputs `(B, *S)`.
      window: the window shape: an int for every sample dimension, or one per dimension (channels included:
        `(3, 8, 8)` for 8-px patches of an NCHW image). Each must fit in the sample. Default 1: single
        features, which is feature ablation (Captum has no default; pass a patch for images).
      strides: the step between positions, an int or one per dimension, each in `[1, window]` (a larger step
        would leave features uncovered; Captum's rule).
      baseline: the replacement value: a scalar, one sample `S`, or one per sample `(B, *S)`.
      batch_size: evaluate at most this many occluded copies (each over the whole batch) at once.
      key: unused: the method is deterministic. Accepted so that every entry of `METHODS` takes
        `m(f, x, key=key)`.

    Cost: `prod_d (ceil((S_d - w_d) / s_d) + 1) + 1` forward passes over the batch, no backward pass.
    Captum: `Occlusion(f).attribute(x, sliding_window_shapes=window, strides=strides, baselines=baseline)`.
    """
    del key
    x = check_inputs(f, x, "occlusion")
    batch_size = check_batch_size(batch_size, "occlusion")
    sample_shape = tuple(x.shape[1:])
    counts, coverage = occlusion_positions(sample_shape, window, strides)
    window = _per_dim(window, "window", sample_shape)
    strides = _per_dim(strides, "strides", sample_shape)
    b = broadcast_baseline(baseline, x, "occlusion")
    full = f(x)
    expand = (x.shape[0],) + (1,) * len(sample_shape)
    num_positions = math.prod(counts)

    def draw(p):
        mask = jnp.ones(sample_shape, bool)
        for d, (n, w, s) in enumerate(zip(counts, window, strides)):
            start = (p % n) * s
            p = p // n
            index = lax.broadcasted_iota(jnp.int32, sample_shape, d)
            mask = mask & (index >= start) & (index < start + w)
        drop = full - f(jnp.where(mask[None], b, x))
        return drop.reshape(expand) * mask[None].astype(x.dtype)

    total = sum_over_draws(draw, num_positions, batch_size)
    return total / jnp.asarray(coverage, x.dtype)[None]
