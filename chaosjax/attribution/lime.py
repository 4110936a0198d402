"""LIME with Captum's defaults: binary interpretable features, an exponential cosine kernel, a Lasso surrogate."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from chaosjax.attribution._core import (
    Array,
    BatchFn,
    broadcast_baseline,
    check_batch_size,
    check_inputs,
    group_labels,
    map_over_draws,
    solve_dtype,
    spread,
)
from chaosjax.attribution.kernel_shap import _check_samples
from chaosjax.attribution.shapley import coalition_values

# torch.nn.CosineSimilarity's eps: each norm is clamped to at least this.
_COSINE_EPS = 1e-8
# Coordinate descent stops when, over a sweep, no coefficient of a row moved by more than this many float
# epsilons times its largest one (a fixed relative tolerance would be below float32's rounding noise).
_TOL_EPS = 64
_MAX_SWEEPS = 1000
# Rows fitted at once: their Gram matrices (or, with more features than samples, residuals) hold about 4M numbers.
_GRAM_BUDGET = 2**22


def lime_coalitions(key: Array, num_groups: int, samples: int) -> Array:
    """The interpretable samples `lime(..., key=key, samples=samples)` evaluates: `(samples, G)` bool, each
    group kept (True) or set to the baseline with probability 1/2, independently (Captum's default
    `perturb_func`), drawn at once from `key`."""
    samples = _check_samples(samples, "lime_coalitions")
    return jax.random.bernoulli(key, 0.5, (samples, num_groups))


def _soft(rho: Array, alpha: Array, scale: Array) -> Array:
    """The coordinate minimiser `soft_threshold(rho, alpha) / scale` (0 where the coordinate never varies)."""
    safe = jnp.where(scale > 0, scale, 1.0)
    return jnp.where(scale > 0, jnp.sign(rho) * jnp.maximum(jnp.abs(rho) - alpha, 0.0) / safe, 0.0)


def _descend(coordinate, refresh, beta0: Array, tol: Array) -> Array:
    """Cyclic coordinate descent: sweeps of `coordinate(j, (beta, aux, moved))` over every `j`, `aux` recomputed
    by `refresh(beta)` before each sweep (running updates would accumulate rounding), until no coefficient of any
    row moved by more than `tol` times the row's largest, or `_MAX_SWEEPS`."""
    rows, g = beta0.shape

    def sweep(state):
        beta, _, sweeps = state
        zeros = jnp.zeros((rows,), beta.dtype)
        beta, _, moved = lax.fori_loop(0, g, coordinate, (beta, refresh(beta), zeros))
        return beta, moved, sweeps + 1

    def unconverged(state):
        beta, moved, sweeps = state
        return (sweeps < _MAX_SWEEPS) & jnp.any(moved > tol * jnp.max(jnp.abs(beta), axis=1))

    state = (beta0, jnp.full((rows,), jnp.inf, beta0.dtype), jnp.zeros((), jnp.int32))
    return lax.while_loop(unconverged, sweep, state)[0]


def _lasso_gram(gram: Array, moment: Array, alpha: float) -> Array:
    """`argmin_beta 1/2 beta^T Q beta - q^T beta + alpha |beta|_1` for a batch of rows, from the Gram matrices:
    `gram` `(R, G, G)`, `moment` `(R, G)` -> `(R, G)`. Each coordinate step costs `O(G)` per row."""
    diag = jnp.diagonal(gram, axis1=1, axis2=2)
    alpha = jnp.asarray(alpha, moment.dtype)

    def coordinate(j, carry):
        beta, qbeta, moved = carry
        old = beta[:, j]
        new = _soft(moment[:, j] - qbeta[:, j] + diag[:, j] * old, alpha, diag[:, j])
        step = new - old
        qbeta = qbeta + step[:, None] * gram[:, j, :]  # Q is symmetric: row j is column j
        return beta.at[:, j].set(new), qbeta, jnp.maximum(moved, jnp.abs(step))

    def refresh(beta):
        return jnp.einsum("rgh,rh->rg", gram, beta, precision=lax.Precision.HIGHEST)

    return _descend(coordinate, refresh, jnp.zeros_like(moment), _TOL_EPS * jnp.finfo(moment.dtype).eps)


def _lasso_samples(z: Array, weights: Array, targets: Array, mean_z: Array, alpha: float) -> Array:
    """The same Lasso from the samples, for more features than samples: binary design `z` `(K, G)` shared by the
    rows, `weights` `(R, K)` summing to 1, centred `targets` `(R, K)`, weighted means `mean_z` `(R, G)`. Each
    coordinate step costs `O(K)` per row and no `G x G` matrix is built."""
    diag = mean_z - mean_z**2  # the weighted variance of a binary column
    alpha = jnp.asarray(alpha, targets.dtype)
    hi = lax.Precision.HIGHEST

    def coordinate(j, carry):
        beta, resid, moved = carry  # resid = targets - (z - mean_z) beta
        old = beta[:, j]
        # sum_k w (z_kj - mu_j) r_k = sum_k w z_kj r_k: the weighted residual sums to zero.
        new = _soft(jnp.matmul(weights * resid, z[:, j], precision=hi) + diag[:, j] * old, alpha, diag[:, j])
        step = new - old
        resid = resid - step[:, None] * (z[None, :, j] - mean_z[:, j, None])
        return beta.at[:, j].set(new), resid, jnp.maximum(moved, jnp.abs(step))

    def refresh(beta):
        fitted = jnp.matmul(beta, z.T, precision=hi) - jnp.sum(mean_z * beta, axis=1, keepdims=True)
        return targets - fitted

    return _descend(coordinate, refresh, jnp.zeros_like(mean_z), _TOL_EPS * jnp.finfo(targets.dtype).eps)


def lime(
    f: BatchFn,
    x: Array,
    *,
    key: Array,
    samples: int = 25,
    groups: ArrayLike | None = None,
    kernel_width: float = 1.0,
    alpha: float = 0.01,
    baseline: ArrayLike = 0.0,
    batch_size: int | None = None,
) -> Array:
    """LIME (Ribeiro et al., 2016) exactly as Captum's `Lime` with its defaults.

    Each sample switches every group on (input) or off (baseline) with probability 1/2. A sample is weighted
    by `exp(-d^2 / (2 kernel_width^2))`, `d` the cosine distance between the row and its perturbed copy (in
    input space, as Captum), and a Lasso with intercept (`alpha`; scikit-learn's objective with the weights
    normalised to sum 1) is fitted per row from the binary samples to `f`. Its coefficients are the
    attributions: the surrogate's slope, not Shapley values (they do not sum to `f(x) - f(baseline)`).
    One set of samples serves the whole batch (Captum draws fresh ones per row; each row's fit has the
    same distribution either way); the weights, and so the fits, differ per row.

    Args:
      f: batch `(B, *S)` -> per-sample scalars `(B,)`.
      x: the inputs `(B, *S)`.
      key: PRNG key for the samples (see `lime_coalitions`); results do not depend on `batch_size`.
      samples: perturbed samples (>= 2; Captum's `n_samples` default is 25).
      groups: int array shaped `S` labelling the interpretable features; `None`: every feature is one. Concrete.
      kernel_width: width of the exponential kernel on the cosine distance (Captum's default 1.0).
      alpha: the Lasso penalty (Captum's default surrogate, `SkLearnLasso(alpha=0.01)`); 0 gives weighted least
        squares.
      baseline: the value of a feature switched off: a scalar, one sample `S`, or one per sample `(B, *S)`.
      batch_size: evaluate at most this many perturbed copies (each over the whole batch) at once.

    Cost: `samples` forward passes over the batch, then per row a `G x G` Gram matrix from the samples
    (`B * samples * G^2` multiply-adds) and coordinate descent to convergence; with more groups than samples,
    coordinate descent on the samples instead (`O(samples * G)` per sweep, no `G x G` matrix).
    Captum: `Lime(f).attribute(x, baselines=baseline, feature_mask=groups, n_samples=samples)`.
    """
    x = check_inputs(f, x, "lime")
    samples = _check_samples(samples, "lime")
    batch_size = check_batch_size(batch_size, "lime")
    if not (isinstance(kernel_width, (int, float)) and kernel_width > 0):
        raise ValueError(f"lime: `kernel_width` must be a number > 0, got {kernel_width!r}")
    if not (isinstance(alpha, (int, float)) and alpha >= 0):
        raise ValueError(f"lime: `alpha` must be a number >= 0, got {alpha!r}")
    labels, g = group_labels(groups, tuple(x.shape[1:]), "lime")
    b = broadcast_baseline(baseline, x, "lime")
    if g == 0:
        return jnp.zeros_like(x)
    acc = solve_dtype(x.dtype)
    present = lime_coalitions(key, g, samples)  # (K, G)
    values = map_over_draws(lambda k: coalition_values(f, x, b, labels, present[k]), samples, batch_size)
    values = values.T.astype(acc)  # (B, K)
    z = present.astype(acc)

    # Cosine similarity of each row with each perturbed copy, from per-group sums (no copy is rebuilt):
    # x . x' = sum_g z_g sum_{j in g} x_j (x_j - b_j) + x . b and |x'|^2 = sum_g z_g sum_{j in g} (x_j^2 - b_j^2) + |b|^2.
    flat_x = x.reshape(x.shape[0], -1).astype(acc)
    flat_b = b.reshape(x.shape[0], -1).astype(acc)
    segment = jnp.asarray(labels.reshape(-1))

    def per_group(values):
        return jax.ops.segment_sum(values.T, segment, num_segments=g).T  # (B, G)

    hi = lax.Precision.HIGHEST  # these small products must not drop to bfloat16 passes on accelerators
    dot = jnp.matmul(per_group(flat_x * (flat_x - flat_b)), z.T, precision=hi) + jnp.sum(
        flat_x * flat_b, axis=1, keepdims=True
    )
    norm2 = jnp.matmul(per_group(flat_x**2 - flat_b**2), z.T, precision=hi) + jnp.sum(
        flat_b**2, axis=1, keepdims=True
    )
    norm_x = jnp.maximum(jnp.linalg.norm(flat_x, axis=1, keepdims=True), _COSINE_EPS)
    norm_p = jnp.maximum(jnp.sqrt(jnp.maximum(norm2, 0.0)), _COSINE_EPS)
    distance = 1.0 - dot / (norm_x * norm_p)
    weights = jnp.exp(-(distance**2) / (2.0 * kernel_width**2))
    weights = weights / jnp.sum(weights, axis=1, keepdims=True)  # (B, K), rows sum to 1

    # The weighted, centred moments of the Lasso, per row: Q = Z^T W Z - mu mu^T, q = Z^T W y - mu ybar.
    mean_z = jnp.matmul(weights, z, precision=hi)  # (B, G)
    mean_y = jnp.sum(weights * values, axis=1)
    moment = jnp.matmul(weights * values, z, precision=hi) - mean_z * mean_y[:, None]
    if g > samples:  # more features than samples: descend on the samples, never building G x G matrices
        def fit(row):
            w, mu, y, ybar = row
            return _lasso_samples(z, w[None], (y - ybar)[None], mu[None], alpha)[0]

        rows = (weights, mean_z, values, mean_y)
        chunk = max(1, _GRAM_BUDGET // (samples * g))
    else:
        outer = (z[:, :, None] * z[:, None, :]).reshape(samples, g * g)

        def fit(row):  # one row; lax.map vmaps it over `chunk` rows at a time, so `chunk` Gram matrices are alive
            w, mu, q = row
            gram = jnp.matmul(w, outer, precision=hi).reshape(g, g) - mu[:, None] * mu[None, :]
            return _lasso_gram(gram[None], q[None], alpha)[0]

        rows = (weights, mean_z, moment)
        chunk = max(1, _GRAM_BUDGET // (g * g))
    coef = lax.map(fit, rows, batch_size=min(chunk, x.shape[0]))
    return spread(coef, labels).astype(x.dtype)
