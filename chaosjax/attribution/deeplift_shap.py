"""DeepLIFT-SHAP: DeepLIFT averaged over a distribution of baselines, as Captum's `DeepLiftShap`."""

from __future__ import annotations

import jax.numpy as jnp

from chaosjax.attribution._core import Array, BatchFn, check_batch_size, check_inputs, sum_over_draws
from chaosjax.attribution.deeplift import deeplift


def deeplift_shap(f: BatchFn, x: Array, *, baselines: Array, batch_size: int | None = None) -> Array:
    """DeepLIFT-SHAP (Lundberg and Lee, 2017): `a = mean_k deeplift(f, x, baseline=b_k)` over `N` baselines.

    Each row is explained against every baseline `b_k` of `baselines` with DeepLIFT (Rescale rule) and the
    explanations are averaged; each one sums to `f(x) - f(b_k)` where DeepLIFT does, so the average sums to
    `f(x) - mean_k f(b_k)`. With the baselines drawn from the data it approximates the Shapley values of `f`
    with that background distribution (exactly for a linear `f`).

    Args:
      f: batch `(B, *S)` -> per-sample scalars `(B,)`.
      x: the inputs `(B, *S)`.
      baselines: `(N, *S)` reference inputs (or one `S`-shaped baseline), all used for every row.
      batch_size: run DeepLIFT against at most this many baselines (each over the whole batch) at once.

    Cost: `N` DeepLIFT passes (each one forward pass on the input and one on the baseline, one backward).
    Captum: `DeepLiftShap(model).attribute(x, baselines=baselines)`.
    """
    x = check_inputs(f, x, "deeplift_shap")
    batch_size = check_batch_size(batch_size, "deeplift_shap")
    refs = jnp.asarray(baselines, x.dtype)
    if refs.shape == x.shape[1:]:
        refs = refs[None]
    if refs.ndim != x.ndim or refs.shape[1:] != x.shape[1:] or refs.shape[0] < 1:
        raise ValueError(
            f"deeplift_shap: `baselines` must be shaped (N, {', '.join(map(str, x.shape[1:]))}) "
            f"with N >= 1, got {tuple(refs.shape)}"
        )
    num = refs.shape[0]
    return sum_over_draws(lambda k: deeplift(f, x, baseline=refs[k]), num, batch_size) / jnp.asarray(num, x.dtype)
