"""SmoothGrad and its variants (Captum's NoiseTunnel) over any gradient-based method."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from chaosjax.attribution._core import (
    Array,
    BatchFn,
    check_batch_size,
    check_choice,
    check_inputs,
    check_positive_int,
    check_stdev,
    sum_over_draws,
)
from chaosjax.attribution.deeplift import deeplift
from chaosjax.attribution.gradients import input_x_gradient, saliency
from chaosjax.attribution.integrated_gradients import integrated_gradients

KINDS = ("smoothgrad", "smoothgrad_sq", "vargrad")
BASE_METHODS = {
    "saliency": saliency,
    "input_x_gradient": input_x_gradient,
    "integrated_gradients": integrated_gradients,
    "deeplift": deeplift,
}


def _noise_scale(x: Array, stdev: float) -> Array:
    """Per-sample noise std: `stdev` times the sample's value range (max - min), as in SmoothGrad's paper."""
    axes = tuple(range(1, x.ndim))
    spread = jnp.max(x, axis=axes, keepdims=True) - jnp.min(x, axis=axes, keepdims=True)
    return jnp.asarray(stdev, x.dtype) * spread


def _noisy_input(key: Array, k: Array, x: Array, scale: Array) -> Array:
    """The k-th noisy copy of the batch. A function of (key, k) alone, so chunking never changes it."""
    noise = jax.random.normal(jax.random.fold_in(key, k), x.shape, x.dtype)
    return x + scale * noise


def smoothgrad_inputs(key: Array, x: Array, *, samples: int = 50, stdev: float = 0.15) -> Array:
    """The noisy inputs `smoothgrad(..., key=key, samples=samples, stdev=stdev)` draws: `(samples, *x.shape)`.

    `stdev` is relative to each sample's value range, as in `smoothgrad`.

    `smoothgrad` with kind `smoothgrad` equals the mean of its base method over these inputs, which is
    how it is tested against its definition.
    """
    x = jnp.asarray(x)
    check_positive_int(samples, "samples", "smoothgrad_inputs")
    check_stdev(stdev, "smoothgrad_inputs")
    scale = _noise_scale(x, stdev)
    return jax.vmap(lambda k: _noisy_input(key, k, x, scale))(jnp.arange(samples))


def smoothgrad(
    f: BatchFn,
    x: Array,
    *,
    key: Array,
    samples: int = 50,
    stdev: float = 0.15,
    method: str = "saliency",
    kind: str = "smoothgrad",
    batch_size: int | None = None,
    method_kwargs: Mapping[str, Any] | None = None,
) -> Array:
    """SmoothGrad: the base method averaged over noisy copies of the input.

    With `x_k = x + eps_k`, `eps_k ~ N(0, sigma^2)` and `sigma = stdev * (max(x_i) - min(x_i))` per sample:
      - `smoothgrad`:    `mean_k a(x_k)`
      - `smoothgrad_sq`: `mean_k a(x_k)^2`
      - `vargrad`:       `mean_k a(x_k)^2 - (mean_k a(x_k))^2`

    Args:
      f: batch `(B, *S)` -> per-sample scalars `(B,)`.
      x: the inputs `(B, *S)`.
      key: PRNG key; draw k uses `fold_in(key, k)`, so results do not depend on `batch_size`.
      samples: number of noisy copies.
      stdev: the noise std RELATIVE to each sample's value range: sample `i` gets noise of std
        `stdev * (max(x_i) - min(x_i))` (the SmoothGrad paper's noise level; 0.15 is 15% of the range).
        Captum's `stdevs` is absolute: the same noise there is `stdevs=stdev * (x_i.max() - x_i.min())`.
      method: base method, one of `saliency`, `input_x_gradient`, `integrated_gradients`, `deeplift`.
      kind: `smoothgrad`, `smoothgrad_sq` or `vargrad`.
      batch_size: evaluate at most this many noisy copies (each over the whole batch) at once.
      method_kwargs: keyword options for the base method (e.g. `{"absolute": False}`).

    Cost: `samples` times the base method's cost (one forward and backward pass for saliency).
    Captum: `NoiseTunnel(Saliency(f)).attribute(x, nt_type=kind, nt_samples=samples, stdevs=sigma)` with the
    absolute `sigma` above.
    """
    x = check_inputs(f, x, "smoothgrad")
    samples = check_positive_int(samples, "samples", "smoothgrad")
    batch_size = check_batch_size(batch_size, "smoothgrad")
    check_choice(kind, "kind", KINDS, "smoothgrad")
    check_choice(method, "method", tuple(BASE_METHODS), "smoothgrad")
    check_stdev(stdev, "smoothgrad")
    base = BASE_METHODS[method]
    kwargs = dict(method_kwargs or {})
    scale = _noise_scale(x, stdev)

    def draw(k):
        a = base(f, _noisy_input(key, k, x, scale), **kwargs)
        return a, a * a

    total, total_sq = sum_over_draws(draw, samples, batch_size)
    mean, mean_sq = total / samples, total_sq / samples
    if kind == "smoothgrad":
        return mean
    if kind == "smoothgrad_sq":
        return mean_sq
    return mean_sq - mean * mean
