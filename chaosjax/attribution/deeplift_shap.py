"""DeepLIFT-SHAP: DeepLIFT averaged over a distribution of baselines, as Captum's `DeepLiftShap`."""

from __future__ import annotations

import jax.numpy as jnp

from chaosjax.attribution._core import Array, BatchFn, check_baselines, check_batch_size, check_inputs, sum_over_draws
from chaosjax.attribution.deeplift import deeplift


def deeplift_shap(
    f: BatchFn, x: Array, *, baselines: Array | None = None, batch_size: int | None = None, key: Array | None = None
) -> Array:
    """DeepLIFT-SHAP (Lundberg and Lee, 2017): `a = mean_k deeplift(f, x, baseline=b_k)` over `N` baselines.

    Each row is explained against every baseline `b_k` of `baselines` with DeepLIFT (Rescale rule) and the
    explanations are averaged; each one sums to `f(x) - f(b_k)` where DeepLIFT does, so the average sums to
    `f(x) - mean_k f(b_k)`. With the baselines drawn from the data it approximates the Shapley values of `f`
    with that background distribution (exactly for a linear `f`).

    Args:
      f: batch `(B, *S)` -> per-sample scalars `(B,)`.
      x: the inputs `(B, *S)`.
      baselines: `(N, *S)` reference inputs (or one baseline, `S` or `(1, *S)`), all used for every row.
        Default `None`: one all-zero baseline, the default baseline of every other method (then DeepLIFT-SHAP is `deeplift` from 0). For SHAP proper pass data rows, e.g. a few dozen
        training samples (the cost grows with `N`); Captum has no default.
      key: unused: the method is deterministic. Accepted so that every entry of `METHODS` takes
        `m(f, x, key=key)`.
      batch_size: run DeepLIFT against at most this many baselines (each over the whole batch) at once.

    Cost: `N` DeepLIFT passes (each one forward pass on the input and one on the baseline, one backward).
    Captum: `DeepLiftShap(model).attribute(x, baselines=baselines)`.
    """
    x = check_inputs(f, x, "deeplift_shap")
    batch_size = check_batch_size(batch_size, "deeplift_shap")
    del key
    refs = check_baselines(baselines, x, "deeplift_shap")
    num = refs.shape[0]
    return sum_over_draws(lambda k: deeplift(f, x, baseline=refs[k]), num, batch_size) / jnp.asarray(num, x.dtype)
