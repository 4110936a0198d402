"""Proxy metrics: how attribution methods are judged where there is no ground truth.

Practitioners pick attribution methods with metrics that need no ground truth: deletion / insertion curves (pixel
flipping), ROAD, infidelity, max-sensitivity, faithfulness correlation, sparseness, complexity, model-parameter
randomisation and random-logit. chaosjax has the ground truth beside them, so it can ask whether these proxies
agree with the truth (`kendall_agreement`).

Every metric is a pure function in the mould of `chaosjax.attribution`: it takes `f` (a batch `(B, *S)` to
per-sample scalars `(B,)`; for a classifier close over the target with `chaosjax.attribution.target`), the inputs
`x` `(B, *S)`, the `attributions` shaped like `x` and, where it re-attributes, the `method`; randomness comes from
an explicit PRNG `key`. It returns one score per sample `(B,)` (or a curve `(B, K)`). The heavy part is one compiled
program with `f` a static argument (the same `f` never retraces), vmapped over the perturbations and evaluated at
most `batch_size` perturbations at a time, each over the whole batch. Bad input is refused with a ValueError /
TypeError naming the argument before anything is evaluated.

Definitions follow the papers and Quantus 0.6 (where Quantus has the metric); docs/proxies.md lists each
definition, its closed forms and where chaosjax differs from Quantus.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from chaosjax.attribution._core import check_inputs

Array = jax.Array
BatchFn = Callable[[Array], Array]

__all__ = [
    "ORDERS",
    "SIMILARITIES",
    "complexity",
    "curve_auc",
    "deletion_auc",
    "deletion_curve",
    "faithfulness_correlation",
    "infidelity",
    "infidelity_perturbations",
    "insertion_auc",
    "insertion_curve",
    "kendall_agreement",
    "max_sensitivity",
    "max_sensitivity_perturbations",
    "model_parameter_randomisation",
    "random_logit",
    "random_subsets",
    "road_curve",
    "road_impute",
    "sparseness",
    "spearman",
]

#: Removal orders: most relevant first (MoRF: largest attribution first) or least relevant first (LeRF).
ORDERS = ("morf", "lerf")
#: Per-sample similarities of two attribution maps (randomisation checks).
SIMILARITIES = ("spearman", "pearson", "cosine")
#: Quantus's ROAD percentages: 1, 3, ..., 99 percent of the pixels removed.
ROAD_PERCENTAGES = tuple(range(1, 100, 2))


# --------------------------------------------------------------------------------------------------------------------
# checks (shapes only, before any evaluation)


def _check_fx(f: Any, x: Any, name: str) -> Array:
    """The attribution methods' checks of `f` and `x` (`check_inputs`: a callable giving one
    scalar per sample, a floating batch), and a feature axis: a proxy removes or perturbs features."""
    x = check_inputs(f, x, name)
    if x.ndim < 2:
        raise ValueError(f"{name}: `x` must be a batch (B, *S) with at least one feature axis, got shape {x.shape}")
    return x


def _check_attr(attributions: Any, x: Array, name: str) -> Array:
    a = jnp.asarray(attributions)
    if a.shape != x.shape:
        raise ValueError(f"{name}: `attributions` must be shaped like `x` {tuple(x.shape)}, got {tuple(a.shape)}")
    if not jnp.issubdtype(a.dtype, jnp.floating):
        a = a.astype(x.dtype)
    return a


def _check_int(value: Any, argname: str, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}: `{argname}` must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_batch_size(batch_size: Any, name: str) -> int | None:
    return None if batch_size is None else _check_int(batch_size, "batch_size", name)


def _check_choice(value: Any, argname: str, choices: Sequence[str], name: str) -> str:
    if value not in choices:
        raise ValueError(f"{name}: unknown {argname} {value!r}; expected one of {', '.join(map(repr, choices))}")
    return value


def _check_number(value: Any, argname: str, name: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name}: `{argname}` must be a finite number {bound}, got {value!r}")
    return float(value)


def _check_key(key: Any, name: str) -> Array:
    if key is None:
        raise TypeError(f"{name}: `key` is required (a jax.random.key): the metric draws random perturbations")
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if not (jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or (key.dtype == jnp.uint32 and key.shape == (2,))):
        raise TypeError(f"{name}: `key` must be a PRNG key (jax.random.key(seed)), got dtype {key.dtype} "
                        f"shape {key.shape}")
    return key


def _baseline(baseline: Any, x: Array, name: str) -> Array:
    """A scalar, one sample `S`, or one per sample `(B, *S)`, broadcast to `x.shape`."""
    b = np.asarray(baseline) if not isinstance(baseline, jax.core.Tracer) else baseline
    if isinstance(b, np.ndarray) and (b.dtype.kind not in "iuf" or not np.all(np.isfinite(b))):
        raise ValueError(f"{name}: `baseline` must be finite numbers, got {baseline!r}")
    b = jnp.asarray(b, x.dtype)
    if b.shape not in ((), x.shape[1:], x.shape):
        raise ValueError(f"{name}: `baseline` must be a scalar, shaped like one sample {tuple(x.shape[1:])} or like "
                         f"the batch {tuple(x.shape)}; got shape {tuple(b.shape)}")
    return jnp.broadcast_to(b, x.shape)


def _group_labels(groups: Any, sample_shape: tuple[int, ...], name: str) -> tuple[np.ndarray, int]:
    """`groups` (an int array shaped like one sample) relabelled 0..G-1; None: every feature its own group."""
    size = math.prod(sample_shape)
    if groups is None:
        return np.arange(size, dtype=np.int32).reshape(sample_shape), size
    if isinstance(groups, jax.core.Tracer):
        raise TypeError(f"{name}: `groups` must be concrete (numpy): it sets how many steps are evaluated")
    labels = np.asarray(groups)
    if labels.shape != sample_shape:
        raise ValueError(f"{name}: `groups` must be shaped like one sample {sample_shape}, got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name}: `groups` must hold integer labels, got dtype {labels.dtype}")
    unique, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(sample_shape).astype(np.int32), int(unique.size)


def _map(fn: Callable[[Array], Any], n: int, batch_size: int | None) -> Any:
    """`[fn(k) for k in range(n)]` stacked, at most `batch_size` at once (all at once without it)."""
    ks = jnp.arange(n)
    if batch_size is None or batch_size >= n:
        return jax.vmap(fn)(ks)
    return jax.lax.map(fn, ks, batch_size=batch_size)


def _map_chunks(fn: Callable[[Array], Any], n: int, batch_size: int | None) -> Any:
    """`_map` for an `fn` that takes a vector of indices: `fn(range(n))` in chunks of at most `batch_size`."""
    ks = jnp.arange(n)
    if batch_size is None or batch_size >= n:
        return fn(ks)
    full = n // batch_size * batch_size
    out = jax.tree.map(lambda o: o.reshape(full, *o.shape[2:]), jax.lax.map(fn, ks[:full].reshape(-1, batch_size)))
    if full < n:
        out = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), out, fn(ks[full:]))
    return out


def _flat(a: Array) -> Array:
    return a.reshape(a.shape[0], -1)


# --------------------------------------------------------------------------------------------------------------------
# deletion and insertion (pixel flipping)


def _removal_ranks(scores: Array, order: str) -> Array:
    """Each group's position in the removal order `(B, G)`: 0 is removed first. Ties keep index order (a stable
    sort), so the order is a function of the attributions alone."""
    key = -scores if order == "morf" else scores
    perm = jnp.argsort(key, axis=1, stable=True)
    return jnp.argsort(perm, axis=1, stable=True)


@functools.partial(jax.jit, static_argnames=("f", "order", "num_groups", "step", "insert", "batch_size"))
def _flip_curve(f, x, attributions, baseline, labels, *, order, num_groups, step, insert, batch_size):
    scores = jax.ops.segment_sum(_flat(attributions).T, labels.reshape(-1), num_segments=num_groups).T  # (B, G)
    ranks = _removal_ranks(scores, order)
    feature_rank = jnp.take(ranks, labels.reshape(-1), axis=1).reshape(x.shape)  # each feature's group rank
    num_points = math.ceil(num_groups / step) + 1

    def point(k):
        moved = feature_rank < k * step  # features removed (deletion) or inserted (insertion) after k steps
        z = jnp.where(moved, x, baseline) if insert else jnp.where(moved, baseline, x)
        return f(z)

    return _map(point, num_points, batch_size).T


def _flip(name, f, x, attributions, order, baseline, features_per_step, groups, batch_size, insert):
    x = _check_fx(f, x, name)
    a = _check_attr(attributions, x, name)
    _check_choice(order, "order", ORDERS, name)
    step = _check_int(features_per_step, "features_per_step", name)
    batch_size = _check_batch_size(batch_size, name)
    labels, num_groups = _group_labels(groups, tuple(x.shape[1:]), name)
    if step > num_groups:
        raise ValueError(f"{name}: `features_per_step` {step} exceeds the {num_groups} features (groups)")
    b = _baseline(baseline, x, name)
    return _flip_curve(f, x, a, b, jnp.asarray(labels), order=order, num_groups=num_groups, step=step, insert=insert, batch_size=batch_size)


def deletion_curve(f: BatchFn, x: Array, attributions: Array, *, order: str = "morf", baseline: Any = 0.0,
                   features_per_step: int = 1, groups: Any = None, batch_size: int | None = None) -> Array:
    """Deletion curve (pixel flipping): the output as features are replaced by the baseline in attribution order.

    With the features (or `groups`, scored by the sum of their attributions) sorted by signed attribution,
    largest first (`order="morf"`, most relevant first) or smallest first (`"lerf"`), point `k` of the curve is
    `f(x with its first min(k * s, G) features set to the baseline)`, `k = 0 .. ceil(G / s)`, `s =
    features_per_step`. Point 0 is `f(x)`; the last is `f(baseline)`. A faithful attribution makes the MoRF curve
    fall fast (low AUC) and the LeRF curve fall slowly (high AUC).

    Args:
      f: batch `(B, *S)` -> per-sample scalars `(B,)`.
      x: the inputs `(B, *S)`.
      attributions: shaped like `x`. Signed: pass `jnp.abs(a)` to rank by magnitude.
      order: `"morf"` or `"lerf"`.
      baseline: the replacement value: a scalar, one sample `S` or one per sample `(B, *S)`.
      features_per_step: features (groups) removed per step.
      groups: an int array shaped like one sample labelling feature groups removed together (a pixel's
        channels: `np.broadcast_to(np.arange(H * W).reshape(H, W, 1), (H, W, C))`); None: single features.
      batch_size: evaluate at most this many curve points (each over the whole batch) at once.

    Returns:
      `(B, ceil(G / s) + 1)`. Ties between attributions are broken by feature index (stable sort).

    Cost: `ceil(G / s) + 1` forward passes over the batch. Quantus: `PixelFlipping(features_in_step=s,
    perturb_baseline=baseline, abs=False)` returns this curve without its point 0.
    """
    return _flip("deletion_curve", f, x, attributions, order, baseline, features_per_step, groups, batch_size,
                 insert=False)


def insertion_curve(f: BatchFn, x: Array, attributions: Array, *, order: str = "morf", baseline: Any = 0.0,
                    features_per_step: int = 1, groups: Any = None, batch_size: int | None = None) -> Array:
    """Insertion curve: the output as features of `x` are put back into the baseline in attribution order.

    Point `k` is `f(baseline with the first min(k * s, G) features of x)`, in the order of `deletion_curve`
    (`order="morf"`: most relevant first). Point 0 is `f(baseline)`, the last `f(x)`. A faithful attribution
    makes the MoRF insertion curve rise fast (high AUC). Arguments and cost as `deletion_curve`.

    Returns:
      `(B, ceil(G / s) + 1)`.
    """
    return _flip("insertion_curve", f, x, attributions, order, baseline, features_per_step, groups, batch_size,
                 insert=True)


def curve_auc(curve: Array, num_features: int | None = None, features_per_step: int = 1) -> Array:
    """Area under a deletion / insertion curve `(B, K+1)` over the fraction of features moved, `[0, 1]`.

    The trapezoidal rule on the abscissae `t_k = min(k * s, G) / G` (the last step may be shorter); with
    `num_features=None`, `G = K * s` (evenly spaced points). The mean output over the curve, in `f`'s units.
    Quantus's `return_auc_per_sample=True` is `np.trapz(curve[:, 1:], dx=1)` instead: unnormalised and without
    point 0.
    """
    curve = jnp.asarray(curve)
    if curve.ndim != 2 or curve.shape[1] < 2:
        raise ValueError(f"curve_auc: `curve` must be (B, K+1) with K >= 1, got shape {curve.shape}")
    steps = curve.shape[1] - 1
    total = steps * features_per_step if num_features is None else num_features
    t = jnp.minimum(jnp.arange(steps + 1) * features_per_step, total) / total
    dt = jnp.diff(t).astype(curve.dtype)
    return jnp.sum((curve[:, 1:] + curve[:, :-1]) * 0.5 * dt[None, :], axis=1)


def _auc(curve_fn, f, x, attributions, features_per_step, groups, kwargs):
    curve = curve_fn(f, x, attributions, features_per_step=features_per_step, groups=groups, **kwargs)
    num = math.prod(jnp.shape(x)[1:]) if groups is None else int(np.unique(np.asarray(groups)).size)
    return curve_auc(curve, num, features_per_step)


def deletion_auc(f: BatchFn, x: Array, attributions: Array, *, features_per_step: int = 1, groups: Any = None,
                 **kwargs: Any) -> Array:
    """`curve_auc(deletion_curve(...))`: the mean output over the deletion curve, `(B,)`. Lower is better for
    MoRF. Takes `deletion_curve`'s arguments. Closed form: for an additive `f(x) = sum_j g_j(x_j)` with exact
    attributions `a_j = g_j(x_j) - g_j(b_j)`, the MoRF curve is `f(x) - cumsum(sorted a)` (docs/proxies.md)."""
    return _auc(deletion_curve, f, x, attributions, features_per_step, groups, kwargs)


def insertion_auc(f: BatchFn, x: Array, attributions: Array, *, features_per_step: int = 1, groups: Any = None,
                  **kwargs: Any) -> Array:
    """`curve_auc(insertion_curve(...))`: the mean output over the insertion curve, `(B,)`. Higher is better for
    MoRF. Takes `insertion_curve`'s arguments."""
    return _auc(insertion_curve, f, x, attributions, features_per_step, groups, kwargs)


# --------------------------------------------------------------------------------------------------------------------
# ROAD: remove and debias, with noisy linear imputation

# The 8-neighbourhood of ROAD's imputation (Rong et al. 2022; Quantus's noisy_linear_imputation): edge neighbours
# weigh 1/6, diagonal ones 1/12, so a pixel's full neighbourhood weighs 1.
_ROAD_OFFSETS = ((1, 1, 1 / 12), (0, 1, 1 / 6), (-1, 1, 1 / 12), (1, -1, 1 / 12), (0, -1, 1 / 6),
                 (-1, -1, 1 / 12), (1, 0, 1 / 6), (-1, 0, 1 / 6))


def _neighbour_sum(v: Array) -> Array:
    """`sum_o w_o v[i + o]` over the 8 neighbours of each pixel of `v` `(H, W, C)`, zero outside the image.

    Eight shifted slices of the zero-padded image: on XLA's CPU backend 25x faster than the same stencil as a
    depthwise convolution (`feature_group_count=C`), measured inside the imputation's solver."""
    h, w = v.shape[:2]
    padded = jnp.pad(v, ((1, 1), (1, 1), (0, 0)))
    total = jnp.zeros_like(v)
    for dy, dx, weight in _ROAD_OFFSETS:
        total = total + jnp.asarray(weight, v.dtype) * padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
    return total


def _impute_one(x: Array, mask: Array, tol: float, maxiter: int) -> Array:
    """Harmonic (linear) imputation of one image `(H, W, C)` at `mask` `(H, W)`: every masked pixel equals the
    weighted mean of its in-image neighbours, known or imputed. Solved matrix-free by conjugate gradients (the
    system is symmetric positive definite when one pixel is known), Jacobi-preconditioned."""
    m = mask[:, :, None].astype(x.dtype)
    weight_sum = _neighbour_sum(jnp.ones_like(x[:, :, :1]))  # the in-image neighbourhood's weight per pixel

    def operator(u):
        return m * (weight_sum * u - _neighbour_sum(m * u)) + (1 - m) * u

    rhs = m * _neighbour_sum((1 - m) * x)
    precond = m / weight_sum + (1 - m)
    u, _ = jax.scipy.sparse.linalg.cg(operator, rhs, x0=m * x, tol=tol, maxiter=maxiter,
                                      M=lambda r: precond * r)
    return jnp.where(m > 0, u, x)


def _as_hwc(x: Array, name: str) -> tuple[Array, bool]:
    if x.ndim == 3:
        return x[..., None], True
    if x.ndim == 4:
        return x, False
    raise ValueError(f"{name}: `x` must be images (B, H, W) or channels-last (B, H, W, C), got shape {x.shape}")


@functools.partial(jax.jit, static_argnames=("tol", "maxiter"))
def _impute(x, mask, *, tol, maxiter):
    return jax.vmap(lambda xi, mi: _impute_one(xi, mi, tol, maxiter))(x, mask)


def road_impute(x: Array, mask: Array, *, tol: float = 1e-6, maxiter: int | None = None) -> Array:
    """ROAD's linear imputation (without its noise): masked pixels replaced by the solution of
    `W_i x_i = sum_{o} w_o x_{i+o}` over in-image neighbours (edge `w = 1/6`, diagonal `1/12`, `W_i` their sum), the
    same system as Quantus's `noisy_linear_imputation` (which solves it with scipy's sparse LU).

    Args:
      x: images `(B, H, W)` or channels-last `(B, H, W, C)`; every channel of a masked pixel is imputed.
      mask: bool `(B, H, W)` or `(H, W)`, True where a pixel is removed. At least one pixel per image must be
        kept (a fully masked image has no solution).
      tol: conjugate gradients' relative residual.
      maxiter: iterations at most (None: `4 * (H + W)`, enough for a fully harmonic fill of the image).
    """
    x = jnp.asarray(x)
    xc, squeeze = _as_hwc(x, "road_impute")
    mask = jnp.asarray(mask)
    if mask.shape == xc.shape[1:3]:
        mask = jnp.broadcast_to(mask, xc.shape[:3])
    if mask.shape != xc.shape[:3]:
        raise ValueError(f"road_impute: `mask` must be shaped {tuple(xc.shape[:3])} or {tuple(xc.shape[1:3])}, "
                         f"got {tuple(mask.shape)}")
    maxiter = 4 * sum(xc.shape[1:3]) if maxiter is None else _check_int(maxiter, "maxiter", "road_impute")
    out = _impute(xc, mask.astype(bool), tol=float(tol), maxiter=maxiter)
    return out[..., 0] if squeeze else out


@functools.partial(jax.jit, static_argnames=("f", "order", "counts", "squeeze", "tol", "maxiter", "batch_size"))
def _road(f, x, scores, key, noise, *, order, counts, squeeze, tol, maxiter, batch_size):
    b, h, w, c = x.shape
    ranks = _removal_ranks(scores.reshape(b, h * w), order).reshape(b, h, w)

    def masked(p):
        return ranks < jnp.asarray(counts)[p]

    def imputed(p):
        return jax.vmap(lambda xi, mi: _impute_one(xi, mi, tol, maxiter))(x, masked(p))

    def point(p, filled):
        eps = jax.random.normal(jax.random.fold_in(key, p), x.shape, x.dtype)
        z = jnp.where(masked(p)[..., None], filled + noise * eps, x)
        return f(z[..., 0] if squeeze else z)

    def chunk(ps):
        # The solver runs until every system it holds converges: percentages side by side would all run as long
        # as the most masked one (~10x the iterations of the least, Quantus's percentages on 56 x 56 canvases).
        # One after another, each stops at its own; the forward passes stay side by side.
        return jax.vmap(point)(ps, jax.lax.map(imputed, ps))

    return _map_chunks(chunk, len(counts), batch_size).T


def road_curve(f: BatchFn, x: Array, attributions: Array, *, key: Array, order: str = "morf",
               percentages: Sequence[float] = ROAD_PERCENTAGES, noise: float = 0.01, tol: float = 1e-6,
               maxiter: int | None = None, batch_size: int | None = None) -> Array:
    """ROAD (Rong et al. 2022, "remove and debias"): the output as the top pixels are removed and imputed.

    Pixels are ranked by attribution (summed over channels), largest first (`"morf"`) or smallest first
    (`"lerf"`). For each percentage `p`, the first `floor(H * W * p / 100)` pixels are replaced by their noisy
    linear imputation (`road_impute` plus `noise * N(0, 1)` on every imputed value), which leaves no mask shape
    for the model to read, and the curve's point is `f` of that image. MoRF curves of faithful attributions fall
    fast; the ROAD paper plots accuracy, `f` thresholded (for a classifier's logit margin, `curve > 0`).

    Args:
      f: batch -> per-sample scalars `(B,)`.
      x: images `(B, H, W)` or channels-last `(B, H, W, C)` (the vision track's layout).
      attributions: shaped like `x`, or `(B, H, W)` per pixel.
      key: PRNG key of the imputation noise (percentage `p`'s noise uses `fold_in(key, index of p)`).
      order: `"morf"` or `"lerf"`.
      percentages: shares of the pixels removed, each in `[0, 100)` (Quantus's default 1, 3, ..., 99).
      noise: the std of the imputation noise (Quantus's 0.01; 0 for the plain linear imputation).
      tol: the imputation solver's relative residual (`road_impute`).
      maxiter: the imputation solver's iterations at most (`road_impute`).
      batch_size: run the forward passes of at most this many percentages (each over the whole batch) at once.
        Their imputations run one after another, so that each stops when its own systems converge.

    Returns:
      `(B, len(percentages))`.

    Cost: per percentage, one imputation (conjugate gradients, `O(H W C)` per iteration) and one forward pass.
    Quantus: `ROAD(percentages=..., noise=...)` scores `argmax(model(x_p)) == y` per percentage from the same
    images, for single-channel images only (its imputation indexes pixels of a flattened `C x H x W` array).
    """
    name = "road_curve"
    x = _check_fx(f, x, name)
    xc, squeeze = _as_hwc(x, name)
    a = jnp.asarray(attributions)
    if a.shape == x.shape:
        scores = jnp.sum(a.reshape(xc.shape), axis=-1)
    elif a.shape == xc.shape[:3]:
        scores = a
    else:
        raise ValueError(f"{name}: `attributions` must be shaped like `x` {tuple(x.shape)} or per pixel "
                         f"{tuple(xc.shape[:3])}, got {tuple(a.shape)}")
    key = _check_key(key, name)
    _check_choice(order, "order", ORDERS, name)
    noise = _check_number(noise, "noise", name)
    pct = tuple(percentages) if isinstance(percentages, Sequence) else None
    if not pct or any(isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 100 for p in pct):
        raise ValueError(f"{name}: `percentages` must be a non-empty sequence of numbers in [0, 100), "
                         f"got {percentages!r}")
    pixels = xc.shape[1] * xc.shape[2]
    counts = tuple(int(pixels * p / 100) for p in pct)  # Quantus's int(a_size * p / 100)
    maxiter = 4 * sum(xc.shape[1:3]) if maxiter is None else _check_int(maxiter, "maxiter", name)
    return _road(f, xc, scores.astype(x.dtype), key, jnp.asarray(noise, x.dtype), order=order, counts=counts,
                 squeeze=squeeze, tol=float(tol), maxiter=maxiter, batch_size=_check_batch_size(batch_size, name))


# --------------------------------------------------------------------------------------------------------------------
# infidelity (Yeh et al. 2019; Captum's definition)


def infidelity_perturbations(key: Array, x: Array, *, samples: int = 10, stdev: float = 0.1) -> Array:
    """The perturbations `infidelity` draws: `I_k ~ N(0, stdev^2)` per feature, `(samples, *x.shape)`; draw `k` is
    a function of `fold_in(key, k)` alone."""
    x = jnp.asarray(x)
    return jax.vmap(lambda k: _gaussian(key, k, x, stdev))(jnp.arange(samples))


def _gaussian(key, k, x, stdev):
    return jnp.asarray(stdev, x.dtype) * jax.random.normal(jax.random.fold_in(key, k), x.shape, x.dtype)


@functools.partial(jax.jit, static_argnames=("f", "samples", "normalize", "batch_size"))
def _infidelity(f, x, a, key, stdev, *, samples, normalize, batch_size):
    fx = f(x)

    def draw(k):
        pert = _gaussian(key, k, x, stdev)
        return jnp.sum(_flat(pert * a), axis=1), fx - f(x - pert)

    dot, diff = _map(draw, samples, batch_size)  # (samples, B) each
    if normalize:  # the scale beta minimising the error, as Captum's normalize=True
        beta = jnp.mean(dot * diff, axis=0) / jnp.mean(dot * dot, axis=0)
        beta = jnp.where(jnp.isfinite(beta), beta, 0.0)
        dot = dot * beta[None, :]
    return jnp.mean((dot - diff) ** 2, axis=0)


def infidelity(f: BatchFn, x: Array, attributions: Array, *, key: Array, samples: int = 10, stdev: float = 0.1,
               normalize: bool = False, batch_size: int | None = None) -> Array:
    """Infidelity (Yeh et al. 2019), Captum's definition with Gaussian perturbations, `(B,)`:

    `INFD = mean_k (I_k . a - (f(x) - f(x - I_k)))^2`, `I_k ~ N(0, stdev^2)` per feature (absolute, in `x`'s
    units). With `normalize=True` the attributions are first scaled by `beta = mean_k(I_k.a * d_k) /
    mean_k((I_k.a)^2)` (Captum's `normalize`). Lower is better; the signed gradient of a linear `f` scores
    exactly 0, and so does any attribution `a` with `f(x) - f(x - I) = I . a` for every `I`.

    Args:
      f: batch `(B, *S)` -> per-sample scalars `(B,)`.
      x: the inputs `(B, *S)`.
      attributions: shaped like `x`.
      key: PRNG key of the perturbations (`infidelity_perturbations` gives them).
      samples: perturbations `K` (Captum's `n_perturb_samples`).
      stdev: the perturbations' std.
      normalize: Captum's `normalize`.
      batch_size: evaluate at most this many perturbations (each over the batch) at once.

    Cost: `samples + 1` forward passes. Captum: `infidelity(f, perturb_func, x, a, n_perturb_samples=samples,
    normalize=normalize)` with a perturb_func returning `(I, x - I)`. Quantus's `Infidelity` is another
    quantity (cumulative patch replacement, docs/proxies.md).
    """
    name = "infidelity"
    x = _check_fx(f, x, name)
    a = _check_attr(attributions, x, name)
    key = _check_key(key, name)
    samples = _check_int(samples, "samples", name)
    stdev = _check_number(stdev, "stdev", name, positive=True)
    if not isinstance(normalize, (bool, np.bool_)):
        raise TypeError(f"{name}: `normalize` must be True or False, got {normalize!r}")
    return _infidelity(f, x, a, key, jnp.asarray(stdev, x.dtype), samples=samples, normalize=bool(normalize),
                       batch_size=_check_batch_size(batch_size, name))


# --------------------------------------------------------------------------------------------------------------------
# max-sensitivity (Yeh et al. 2019, Monte-Carlo in an L_inf ball as Quantus)


def max_sensitivity_perturbations(key: Array, x: Array, *, samples: int = 200, radius: float = 0.2) -> Array:
    """The perturbations `max_sensitivity` draws: `d_k ~ U(-radius, radius)` per feature, `(samples, *x.shape)`."""
    x = jnp.asarray(x)
    return jax.vmap(lambda k: _uniform(key, k, x, radius))(jnp.arange(samples))


def _uniform(key, k, x, radius):
    r = jnp.asarray(radius, x.dtype)
    return jax.random.uniform(jax.random.fold_in(key, k), x.shape, x.dtype, minval=-r, maxval=r)


def _resolve_method(method: Any, name: str) -> tuple[Callable, bool]:
    """`method` as a callable `(f, x, key) -> attributions`: a `chaosjax.attribution.METHODS` name (called with its
    defaults; a key for the sampling methods) or a callable `(f, x) -> attributions`."""
    from chaosjax import attribution

    if isinstance(method, str):
        if method not in attribution.METHODS:
            raise ValueError(f"{name}: unknown method {method!r}; expected a callable (f, x) -> attributions or "
                             f"one of {', '.join(attribution.METHODS)}")
        fn = attribution.METHODS[method]
        return (lambda f, x, key: fn(f, x, key=key)), method in attribution.NEEDS_KEY
    if not callable(method):
        raise TypeError(f"{name}: `method` must be a callable (f, x) -> attributions or a method name, "
                        f"got {type(method)!r}")
    return (lambda f, x, key: method(f, x)), False


@functools.partial(jax.jit, static_argnames=("f", "method", "samples", "batch_size"))
def _max_sensitivity(f, x, a, key, radius, *, method, samples, batch_size):
    norm_a = jnp.linalg.norm(_flat(a), axis=1)
    method_key = jax.random.fold_in(key, 2**32 - 1)  # apart from the perturbations, which fold in 0, 1, ...

    def draw(k):
        z = x + _uniform(key, k, x, radius)
        moved = method(f, z, jax.random.fold_in(method_key, k))
        return jnp.linalg.norm(_flat(moved - a), axis=1) / norm_a

    return jnp.max(_map(draw, samples, batch_size), axis=0)


def max_sensitivity(f: BatchFn, x: Array, attributions: Array, method: Any, *, key: Array, samples: int = 200,
                    radius: float = 0.2, batch_size: int | None = None) -> Array:
    """Max-sensitivity (Yeh et al. 2019): the largest relative change of the attributions in a ball, `(B,)`.

    `SENS = max_k ||method(f, x + d_k) - a||_2 / ||a||_2`, `d_k ~ U(-radius, radius)` per feature (Monte Carlo
    over the L_inf ball, Quantus's `MaxSensitivity` with `lower_bound=radius`, Frobenius norms). Lower is more
    robust; an attribution constant in `x` (the saliency of a linear `f`) scores exactly 0.

    Args:
      f: batch `(B, *S)` -> per-sample scalars `(B,)`.
      x: the inputs `(B, *S)`.
      attributions: `method`'s attributions at `x`, shaped like `x`.
      method: a callable `(f, x) -> attributions` (close over options with `functools.partial`) or a name of
        `chaosjax.attribution.METHODS` (its defaults; sampling methods get a key folded from `key`).
      key: PRNG key of the perturbations (`max_sensitivity_perturbations` gives them).
      samples: Monte-Carlo draws (Quantus's `nr_samples`, 200).
      radius: the ball's half-width in `x`'s units (Quantus's `lower_bound`, 0.2).
      batch_size: re-attribute at most this many perturbed copies (each over the batch) at once.

    Cost: `samples` calls of `method`. Quantus's draws come from numpy's global generator; here from `key`.
    """
    name = "max_sensitivity"
    x = _check_fx(f, x, name)
    a = _check_attr(attributions, x, name)
    fn, _ = _resolve_method(method, name)
    key = _check_key(key, name)
    samples = _check_int(samples, "samples", name)
    radius = _check_number(radius, "radius", name, positive=True)
    return _max_sensitivity(f, x, a, key, jnp.asarray(radius, x.dtype), method=_Hashable(fn, method),
                            samples=samples, batch_size=_check_batch_size(batch_size, name))


class _Hashable:
    """A wrapped callable hashed by what it wraps, so the same method never retraces the jitted metric."""

    def __init__(self, fn, ident):
        self.fn, self.ident = fn, ident

    def __call__(self, *args):
        return self.fn(*args)

    def __hash__(self):
        return hash(self.ident)

    def __eq__(self, other):
        return isinstance(other, _Hashable) and self.ident == other.ident


# --------------------------------------------------------------------------------------------------------------------
# faithfulness correlation (Bhatt et al. 2020)


def _kth_largest(u: Array, k: int) -> Array:
    """The `k`-th largest of the uint32 `u` along its last axis: a bitwise binary search, 32 passes of
    compare-and-count. Linear in the features, where a sort (what `jax.random.permutation` runs, twice over) is
    not: ~18x faster on 80,000 features on a CPU."""

    def step(prefix, bit):
        candidate = prefix | (jnp.uint32(1) << bit)
        keep = jnp.sum(u >= candidate[..., None], axis=-1, dtype=jnp.int32) >= k
        return jnp.where(keep, candidate, prefix), None

    start = jnp.zeros(u.shape[:-1], jnp.uint32)
    return jax.lax.scan(step, start, jnp.arange(31, -1, -1, dtype=jnp.uint32))[0]


def _subset_mask(key: Array, batch: int, features: int, subset_size: int) -> Array:
    """`(batch, features)` bool, each row exactly `subset_size` features chosen uniformly: those holding the
    largest of iid uint32 draws (a tie at the cut, probability about `2 * features / 2**32` a row, is broken by
    index)."""
    u = jax.vmap(lambda k: jax.random.bits(k, (features,), jnp.uint32))(jax.random.split(key, batch))
    cut = _kth_largest(u, subset_size)[:, None]
    above, tied = u > cut, u == cut
    room = subset_size - jnp.sum(above, axis=1, keepdims=True, dtype=jnp.int32)
    return above | (tied & (jnp.cumsum(tied, axis=1, dtype=jnp.int32) <= room))


def random_subsets(key: Array, batch: int, features: int, *, runs: int = 100, subset_size: int = 224) -> Array:
    """The feature subsets `faithfulness_correlation` draws: `(runs, batch, subset_size)` int indices (ascending),
    each row `subset_size` distinct features of `range(features)` chosen uniformly, one subset per run and
    sample."""
    def one(k):
        chosen = _subset_mask(jax.random.fold_in(key, k), batch, features, subset_size)
        return jax.vmap(lambda row: jnp.nonzero(row, size=subset_size)[0])(chosen)

    return jax.vmap(one)(jnp.arange(runs))


@functools.partial(jax.jit, static_argnames=("f", "runs", "subset_size", "batch_size"))
def _faithfulness(f, x, a, baseline, key, *, runs, subset_size, batch_size):
    b = x.shape[0]
    flat_x, flat_b, flat_a = _flat(x), _flat(baseline), _flat(a)
    features = flat_x.shape[1]
    fx = f(x)

    def draw(k):  # run k's subsets are random_subsets(fold_in(key, k), b, features, runs=1)[0], as a mask
        chosen = _subset_mask(jax.random.fold_in(jax.random.fold_in(key, k), 0), b, features, subset_size)
        z = jnp.where(chosen, flat_b, flat_x).reshape(x.shape)
        return jnp.sum(jnp.where(chosen, flat_a, 0.0), axis=1), fx - f(z)

    sums, drops = _map(draw, runs, batch_size)  # (runs, B)
    return _pearson(sums.T, drops.T)


def faithfulness_correlation(f: BatchFn, x: Array, attributions: Array, *, key: Array, runs: int = 100,
                             subset_size: int = 224, baseline: Any = 0.0,
                             batch_size: int | None = None) -> Array:
    """Faithfulness correlation (Bhatt et al. 2020): does removing features cost what their attributions say? `(B,)`

    Over `runs` random subsets `S` of `subset_size` features, the Pearson correlation between `sum_{j in S} a_j`
    and `f(x) - f(x with S set to the baseline)`. Higher is better; for a linear `f(x) = w.x` with baseline 0,
    the exact attribution `a = w * x` gives correlation 1.

    Args:
      f: batch `(B, *S)` -> per-sample scalars `(B,)`.
      x: the inputs `(B, *S)`.
      attributions: shaped like `x`.
      key: PRNG key of the subsets: run `k` draws `random_subsets(fold_in(key, k), B, F, runs=1)[0]`.
      runs: subsets (Quantus's `nr_runs`, 100).
      subset_size: features per subset (Quantus's 224), at most the number of features.
      baseline: the replacement value (scalar, `S` or `(B, *S)`).
      batch_size: evaluate at most this many subsets (each over the batch) at once.

    Cost: `runs + 1` forward passes. Quantus: `FaithfulnessCorrelation(nr_runs, subset_size,
    perturb_baseline=baseline, normalise=False)` with subsets from numpy's global generator.
    """
    name = "faithfulness_correlation"
    x = _check_fx(f, x, name)
    a = _check_attr(attributions, x, name)
    key = _check_key(key, name)
    runs = _check_int(runs, "runs", name, low=2)
    subset_size = _check_int(subset_size, "subset_size", name)
    features = math.prod(x.shape[1:])
    if subset_size > features:
        raise ValueError(f"{name}: `subset_size` {subset_size} exceeds the {features} features of a sample")
    return _faithfulness(f, x, a, _baseline(baseline, x, name), key, runs=runs, subset_size=subset_size,
                         batch_size=_check_batch_size(batch_size, name))


# --------------------------------------------------------------------------------------------------------------------
# sparseness and complexity (of the attributions alone)


def _check_batch_attr(attributions: Any, name: str) -> Array:
    a = jnp.asarray(attributions)
    if a.ndim < 2 or a.shape[1:] == () or math.prod(a.shape[1:]) < 1:
        raise ValueError(f"{name}: `attributions` must be a batch (B, *S) with at least one feature, "
                         f"got shape {a.shape}")
    if not jnp.issubdtype(a.dtype, jnp.floating):
        a = a.astype(jnp.result_type(float))
    return a


@jax.jit
def _sparseness(a):
    v = jnp.sort(jnp.abs(_flat(a)) + jnp.asarray(1e-7, a.dtype), axis=1)
    n = v.shape[1]
    k = jnp.arange(1, n + 1, dtype=a.dtype)
    return jnp.sum((2 * k - n - 1)[None, :] * v, axis=1) / (n * jnp.sum(v, axis=1))


def sparseness(attributions: Array) -> Array:
    """Sparseness (Chalasani et al. 2020): the Gini index of `|a|` per sample, `(B,)`, in `[0, 1)`.

    `G = sum_k (2k - n - 1) v_k / (n sum_k v_k)` with `v` the sorted `|a| + 1e-7` (Quantus's guard against an
    all-zero row). Higher is sparser: a one-hot attribution scores `(n - 1) / n` (up to the 1e-7), a constant one 0.
    Quantus: `Sparseness(normalise=False)` (its default first divides by the max, which moves the 1e-7 guard).
    """
    return _sparseness(_check_batch_attr(attributions, "sparseness"))


@jax.jit
def _complexity(a):
    v = jnp.abs(_flat(a))
    p = v / jnp.sum(v, axis=1, keepdims=True)
    return -jnp.sum(p * jnp.log(p + jnp.asarray(1e-12, a.dtype)), axis=1)


def complexity(attributions: Array) -> Array:
    """Complexity (Bhatt et al. 2020): the entropy of the attribution mass `p_j = |a_j| / sum |a|`, `(B,)`.

    `C = -sum_j p_j log(p_j + 1e-12)` (Quantus's guard). Lower is simpler: one-hot scores 0, a constant
    attribution over `n` features `log n`. An all-zero row gives NaN. Quantus: `Complexity(normalise=False)`.
    """
    return _complexity(_check_batch_attr(attributions, "complexity"))


# --------------------------------------------------------------------------------------------------------------------
# similarities for the randomisation checks


def _ranks(v: Array) -> Array:
    """Average ranks (1-based) of a 1-D array, ties sharing their mean rank (scipy's rankdata)."""
    s = jnp.sort(v)
    lo = jnp.searchsorted(s, v, side="left")
    hi = jnp.searchsorted(s, v, side="right")
    return (lo + hi + 1).astype(v.dtype) / 2


def _pearson(a: Array, b: Array) -> Array:
    a = a - jnp.mean(a, axis=1, keepdims=True)
    b = b - jnp.mean(b, axis=1, keepdims=True)
    return jnp.sum(a * b, axis=1) / jnp.sqrt(jnp.sum(a * a, axis=1) * jnp.sum(b * b, axis=1))


def spearman(a: Array, b: Array) -> Array:
    """Spearman's rank correlation between the rows of `a` and `b` `(B, ...)`, `(B,)` (average ranks for ties,
    as scipy.stats.spearmanr)."""
    a, b = _flat(jnp.asarray(a)), _flat(jnp.asarray(b))
    return _pearson(jax.vmap(_ranks)(a), jax.vmap(_ranks)(b))


def _similarity(kind: str) -> Callable[[Array, Array], Array]:
    if kind == "spearman":
        return spearman
    if kind == "pearson":
        return lambda a, b: _pearson(_flat(a), _flat(b))

    def cosine(a, b):
        a, b = _flat(a), _flat(b)
        return jnp.sum(a * b, axis=1) / (jnp.linalg.norm(a, axis=1) * jnp.linalg.norm(b, axis=1))

    return cosine


# --------------------------------------------------------------------------------------------------------------------
# model-parameter randomisation (Adebayo et al. 2018) and random logit (Sixt et al. 2020)


def _layers(params: Any, layers: Any, name: str) -> list[list[int]]:
    """Leaf indices per layer: `layers` is a sequence of path prefixes (tuples of keys / indices, as
    `jax.tree_util.keystr` shows them); None groups leaves by their path without its last key (a top-level leaf is
    a layer of its own), in tree order."""
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    if not flat:
        raise ValueError(f"{name}: `params` has no array leaves to randomise")

    def plain(path):
        return tuple(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path)

    paths = [plain(p) for p, _ in flat]
    if layers is None:
        groups: dict[tuple, list[int]] = {}
        for i, p in enumerate(paths):
            groups.setdefault(p[:-1] if len(p) > 1 else p, []).append(i)
        return list(groups.values())
    out = []
    for prefix in layers:
        prefix = tuple(prefix) if isinstance(prefix, (tuple, list)) else (prefix,)
        members = [i for i, p in enumerate(paths) if p[:len(prefix)] == prefix]
        if not members:
            raise ValueError(f"{name}: layer {prefix!r} of `layers` matches no leaf of `params`; leaf paths are "
                             f"{paths[:8]}{' ...' if len(paths) > 8 else ''}")
        out.append(members)
    return out


def _gaussian_like(key: Array, leaf: Array) -> Array:
    """A fresh draw with the leaf's own scale: `N(0, std(leaf)^2)` (1/sqrt(fan-in) where the leaf is constant)."""
    std = jnp.std(leaf)
    fallback = 1.0 / math.sqrt(leaf.shape[0]) if leaf.ndim else 1.0
    std = jnp.where(std > 0, std, jnp.asarray(fallback, leaf.dtype))
    return std * jax.random.normal(key, leaf.shape, leaf.dtype)


def model_parameter_randomisation(f_of_params: Callable[[Any, Array], Array], params: Any, x: Array,
                                  attributions: Array, method: Any, *, key: Array, layers: Any = None,
                                  order: str = "top_down", similarity: str = "spearman",
                                  randomise: Callable[[Array, Array], Array] | None = None) -> Array:
    """Model-parameter randomisation (Adebayo et al. 2018, "sanity checks"), cascading: `(L, B)` similarities.

    The layers are randomised one after another from the output down (`order="top_down"`, cumulative; or each
    alone, `"independent"`); after each, the method re-attributes `f_of_params(randomised, .)` and row `l` is
    the per-sample similarity (Spearman by default, as Quantus's MPRT) between the original attributions and the
    new ones. A method that passes the check loses similarity as layers are randomised; one whose maps do not
    move (an edge detector) keeps it near 1.

    Args:
      f_of_params: `(params, x) -> (B,)`, the model with its target selected.
      params: the model's parameters (any pytree).
      x: the inputs `(B, *S)`.
      attributions: `method`'s attributions of the trained model, shaped like `x`.
      method: a callable `(f, x) -> attributions` or a name of `chaosjax.attribution.METHODS`.
      key: PRNG key of the new parameters (layer `l` uses `fold_in(key, l)`).
      layers: path prefixes naming the layers in input-to-output order (e.g. `[("convs", 0), ("convs", 1),
        ("head",)]`); None: leaves grouped by their parent path (`[(W, b), ...]`: one layer per pair; a flat dict:
        one per entry), in tree order.
      order: `"top_down"` (cascading from the last layer) or `"independent"`.
      similarity: one of `SIMILARITIES`.
      randomise: `(key, leaf) -> new leaf`; default a Gaussian with the leaf's own std (Quantus re-runs each torch
        layer's `reset_parameters`, which a params pytree does not know).

    Returns:
      `(L, B)`, row `l` after randomising the `l`-th layer of the order (the last layer first for top_down).
    """
    name = "model_parameter_randomisation"
    if not callable(f_of_params):
        raise TypeError(f"{name}: `f_of_params` must be a callable (params, x) -> (B,), got {type(f_of_params)!r}")
    x = _check_fx(lambda z: f_of_params(params, z), x, name)
    a = _check_attr(attributions, x, name)
    fn, _ = _resolve_method(method, name)
    key = _check_key(key, name)
    _check_choice(order, "order", ("top_down", "independent"), name)
    _check_choice(similarity, "similarity", SIMILARITIES, name)
    groups = _layers(params, layers, name)
    randomise = _gaussian_like if randomise is None else randomise
    leaves, treedef = jax.tree.flatten(params)
    sim = _similarity(similarity)

    @jax.jit
    def score(new_leaves, k):
        p = jax.tree.unflatten(treedef, new_leaves)
        moved = fn(lambda z: f_of_params(p, z), x, jax.random.fold_in(key, 10_000 + k))
        return sim(a, moved)

    rows = []
    current = list(leaves)
    for step, layer in enumerate(reversed(groups)):
        if order == "independent":
            current = list(leaves)
        layer_key = jax.random.fold_in(key, step)
        for j, i in enumerate(layer):
            current[i] = randomise(jax.random.fold_in(layer_key, j), leaves[i])
        rows.append(score(current, step))
    return jnp.stack(rows)


def random_logit(apply_fn: Callable[[Array], Array], x: Array, targets: Array, method: Any, *, key: Array,
                 attributions: Array | None = None, similarity: str = "spearman") -> Array:
    """Random logit (Sixt et al. 2020): similarity between the attributions of the target class and of a random
    other class, `(B,)`. Lower is better: a method that explains the class, not the input, changes its map.

    For each sample, a class `c != target` is drawn uniformly from `key`; the method attributes
    `target(apply_fn, c)` and the score is the per-sample similarity with `attributions` (the target class's;
    computed when None).

    Args:
      apply_fn: a classifier `(B, *S) -> (B, C)`.
      x: the inputs `(B, *S)`.
      targets: int `(B,)` (or one int) target classes.
      method: a callable `(f, x) -> attributions` or a name of `chaosjax.attribution.METHODS`.
      key: PRNG key of the other classes.
      attributions: the target class's attributions; None: `method` computes them.
      similarity: one of `SIMILARITIES` (Quantus's default is SSIM; its `similarity_func=correlation_spearman`
        is this one).
    """
    from chaosjax.attribution import target as select

    name = "random_logit"
    if not callable(apply_fn):
        raise TypeError(f"{name}: `apply_fn` must be a classifier (B, ...) -> (B, C), got {type(apply_fn)!r}")
    x = jnp.asarray(x)
    logits = jax.eval_shape(apply_fn, x)
    if len(logits.shape) != 2 or logits.shape[0] != x.shape[0] or logits.shape[1] < 2:
        raise ValueError(f"{name}: `apply_fn` must return (B, C) scores with C >= 2, got {logits.shape}")
    classes = logits.shape[1]
    t = jnp.broadcast_to(jnp.asarray(targets), (x.shape[0],))
    if not jnp.issubdtype(t.dtype, jnp.integer):
        raise TypeError(f"{name}: `targets` must be integer class indices, got dtype {t.dtype}")
    fn, _ = _resolve_method(method, name)
    key = _check_key(key, name)
    _check_choice(similarity, "similarity", SIMILARITIES, name)
    if attributions is None:
        attributions = fn(select(apply_fn, t), x, jax.random.fold_in(key, 1))
    a = _check_attr(attributions, x, name)
    shift = jax.random.randint(jax.random.fold_in(key, 0), (x.shape[0],), 1, classes)
    other = (t + shift) % classes  # uniform over the C - 1 other classes
    moved = fn(select(apply_fn, other), x, jax.random.fold_in(key, 2))
    return _similarity(similarity)(a, moved)


# --------------------------------------------------------------------------------------------------------------------
# the meta-benchmark: does a proxy rank methods as the ground truth does?


def _kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b of two score vectors (ties allowed)."""
    da = np.sign(a[:, None] - a[None, :])
    db = np.sign(b[:, None] - b[None, :])
    iu = np.triu_indices(len(a), 1)
    da, db = da[iu], db[iu]
    denom = math.sqrt(np.sum(da != 0) * np.sum(db != 0))
    return float(np.sum(da * db) / denom) if denom else float("nan")


def kendall_agreement(proxy: Any, truth: Any, *, higher_is_better: bool = True, resamples: int = 1000,
                      seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """Does a proxy rank the methods as the ground truth does? Kendall's tau with a bootstrap CI.

    `proxy` and `truth` are `(R, M)` scores: `R` replicates (formulas, seeds, models) by `M` methods (NaN where a
    method has no score; such entries are left out of that replicate). The statistic is Kendall's tau-b between
    the methods' mean proxy score and mean truth score (over replicates); the CI resamples replicates with
    replacement (`resamples` times, percentile interval at `level`). `higher_is_better=False` for proxies where
    lower is better (deletion AUC with MoRF, infidelity, max-sensitivity, complexity): their sign is flipped first.
    Also the share of method pairs the proxy orders as the truth does (`pairs`, ties count as half).

    Returns:
      `{"tau", "low", "high", "pairs", "methods", "replicates"}`.
    """
    p = np.asarray(proxy, np.float64)
    g = np.asarray(truth, np.float64)
    if p.ndim != 2 or p.shape != g.shape:
        raise ValueError(f"kendall_agreement: `proxy` and `truth` must be (replicates, methods) arrays of one shape, "
                         f"got {p.shape} and {g.shape}")
    if p.shape[1] < 2:
        raise ValueError("kendall_agreement: need at least 2 methods to rank")
    _check_int(resamples, "resamples", "kendall_agreement")
    if not 0 < level < 1:
        raise ValueError(f"kendall_agreement: `level` must be in (0, 1), got {level!r}")
    if not higher_is_better:
        p = -p

    def stat(rows):
        mp, mg = np.nanmean(p[rows], axis=0), np.nanmean(g[rows], axis=0)
        keep = np.isfinite(mp) & np.isfinite(mg)
        return _kendall_tau(mp[keep], mg[keep])

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column in a resample
        rows = np.arange(p.shape[0])
        tau = stat(rows)
        rng = np.random.default_rng(seed)
        boots = np.array([stat(rng.integers(0, p.shape[0], p.shape[0])) for _ in range(resamples)])
        mp, mg = np.nanmean(p, axis=0), np.nanmean(g, axis=0)
    keep = np.isfinite(mp) & np.isfinite(mg)
    dp = np.sign(mp[keep][:, None] - mp[keep][None, :])
    dg = np.sign(mg[keep][:, None] - mg[keep][None, :])
    iu = np.triu_indices(int(keep.sum()), 1)
    pairs = float(np.mean(np.where(dp[iu] == dg[iu], 1.0, np.where((dp[iu] == 0) | (dg[iu] == 0), 0.5, 0.0)))) \
        if iu[0].size else float("nan")
    boots = boots[np.isfinite(boots)]
    alpha = (1 - level) / 2
    low, high = (np.quantile(boots, [alpha, 1 - alpha]) if boots.size else (np.nan, np.nan))
    return {"tau": tau, "low": float(low), "high": float(high), "pairs": pairs, "methods": int(keep.sum()),
            "replicates": int(p.shape[0])}

