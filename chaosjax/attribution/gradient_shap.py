"""GradientSHAP: expected gradients over random baselines and random points on the path."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from chaosjax.attribution._core import (
    Array,
    BatchFn,
    check_batch_size,
    check_baselines,
    check_inputs,
    check_positive_int,
    check_stdev,
    gradient,
    sum_over_draws,
)


def gradient_shap(
    f: BatchFn,
    x: Array,
    *,
    key: Array,
    baselines: Array | None = None,
    samples: int = 20,
    stdev: float = 0.0,
    batch_size: int | None = None,
) -> Array:
    """GradientSHAP: `a = mean_k (x_k - b_k) * df/dx(b_k + t_k (x_k - b_k))`.

    For every sample and draw k: a baseline `b_k` drawn uniformly from `baselines`, `t_k ~ U(0, 1)`,
    and `x_k = x + N(0, stdev^2)` (`stdev` is absolute, as in Captum). With one baseline and no noise
    it is a Monte-Carlo estimate of integrated gradients from that baseline.

    Args:
      f: batch `(B, *S)` -> per-sample scalars `(B,)`.
      x: the inputs `(B, *S)`.
      key: PRNG key; draw k uses `fold_in(key, k)`, so results do not depend on `batch_size`.
      baselines: `(N, *S)` reference inputs to draw from (or one baseline, `S` or `(1, *S)`). Default `None`: one all-zero baseline, the default baseline of every other method (then
        GradientSHAP is a Monte-Carlo estimate of integrated gradients from 0). For SHAP proper pass data rows,
        e.g. a few hundred training samples; Captum has no default.
      samples: draws per sample.
      stdev: std of the Gaussian noise added to the input.
      batch_size: evaluate at most this many draws (each over the whole batch) at once.

    Cost: `samples` forward and backward passes over the batch.
    Captum: `GradientShap(f).attribute(x, baselines=baselines, n_samples=samples, stdevs=stdev)`.
    """
    x = check_inputs(f, x, "gradient_shap")
    samples = check_positive_int(samples, "samples", "gradient_shap")
    batch_size = check_batch_size(batch_size, "gradient_shap")
    check_stdev(stdev, "gradient_shap")
    refs = check_baselines(baselines, x, "gradient_shap")
    batch = x.shape[0]
    expand = (batch,) + (1,) * (x.ndim - 1)

    def draw(k):
        k_base, k_alpha, k_noise = jax.random.split(jax.random.fold_in(key, k), 3)
        b = refs[jax.random.randint(k_base, (batch,), 0, refs.shape[0])]
        t = jax.random.uniform(k_alpha, expand, x.dtype)
        xk = x + jnp.asarray(stdev, x.dtype) * jax.random.normal(k_noise, x.shape, x.dtype)
        return (xk - b) * gradient(f, b + t * (xk - b))

    return sum_over_draws(draw, samples, batch_size) / samples
