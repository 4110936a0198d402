"""Attribution metrics of the symbolic track (docs/protocol.md, "Symbolic").

All functions are pure, jittable and vmappable over arrays ``(n, W)``: ``n`` rows (test samples), ``W`` columns of
which the first ``m`` are predictive. ``m`` may be a traced integer, so a grid of formulas with different ``m``
(padded to one width) can be scored under one ``vmap``; a concrete ``m`` is checked to lie in ``[1, W]``, a traced
one cannot be (out of range it gives meaningless numbers). ``valid`` is an optional bool ``(W,)`` mask of real
columns; padding columns (False) are never selected and never enter a normalisation.

Top-``m`` selection and ties: the selection is the set of the ``m`` columns with the largest ``|attr|``. When the
``m``-th largest value is tied (e.g. an all-zero attribution, or several exactly-zero columns), the tied columns
share the remaining slots equally, i.e. each metric is its expected value under uniformly random tie-breaking.
Without ties at the boundary this is exactly the hard top-``m``; with ties it avoids crediting the predictive
columns merely for coming first (a constant attribution scores chance, ``m/W``, not 1).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "NORM_EPS",
    "SCORE_EPS",
    "consistency",
    "functional_precision",
    "mean_absolute_error",
    "pred_score",
    "test_mae",
    "uniform_score",
]

#: Added to the denominator of the symmetric relative error ``|a - g| / (|a| + |g| + SCORE_EPS)`` (the study's 1e-7).
SCORE_EPS = 1e-7
#: Added to per-row L1 norms before dividing, so an all-zero row normalises to zeros instead of NaN; negligible
#: against any real attribution norm (and representable in float32).
NORM_EPS = 1e-12

_PROTOCOLS = ("paper", "corrected")


def _check_2d(arr: Any, argname: str) -> jax.Array:
    arr = jnp.asarray(arr)
    if arr.ndim != 2:
        raise ValueError(f"{argname} must be 2-D (n, W), got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{argname} must have at least one row and one column, got shape {arr.shape}")
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    return arr


def _check_m(m: Any, width: int) -> jax.Array:
    """Checks ``m`` statically where it is concrete; a traced ``m`` can only be checked for type and rank."""
    if isinstance(m, bool):
        raise TypeError(f"m must be an integer, got {m!r}")
    if isinstance(m, (int, np.integer)):
        if not 1 <= int(m) <= width:
            raise ValueError(f"m must be in [1, W={width}], got {m}")
        return jnp.asarray(int(m), jnp.int32)
    m = jnp.asarray(m)
    if m.ndim != 0 or not jnp.issubdtype(m.dtype, jnp.integer):
        raise TypeError(f"m must be an integer scalar (possibly traced), got dtype {m.dtype} shape {m.shape}")
    if not isinstance(m, jax.core.Tracer) and not 1 <= int(m) <= width:
        raise ValueError(f"m must be in [1, W={width}], got {int(m)}")
    return m


def _check_valid(valid: Any, width: int) -> jax.Array:
    if valid is None:
        return jnp.ones((width,), bool)
    valid = jnp.asarray(valid)
    if valid.shape != (width,):
        raise ValueError(f"valid must have shape (W,) = ({width},), got {valid.shape}")
    if valid.dtype != jnp.bool_:
        raise TypeError(f"valid must be a bool mask, got dtype {valid.dtype}")
    return valid


def _check_selection(attr, m, valid) -> tuple[jax.Array, int, jax.Array, jax.Array]:
    """The checked inputs of a top-m score: ``(attr as (n, W), W, m, valid)``."""
    attr = _check_2d(attr, "attr")
    width = attr.shape[1]
    return attr, width, _check_m(m, width), _check_valid(valid, width)


def _check_protocol(protocol: str) -> None:
    if protocol not in _PROTOCOLS:
        raise ValueError(f"protocol must be one of {_PROTOCOLS}, got {protocol!r}")


def _top_m_weights(score: jax.Array, m: jax.Array, valid: jax.Array) -> jax.Array:
    """Inclusion probability of each column in the row's top-``m`` by ``score``, ties broken uniformly at random.

    With ``v`` the row's ``m``-th largest score: ``w_j = 1`` if ``s_j > v``; ``w_j = (m - #{s > v}) / #{s = v}`` if
    ``s_j = v``; else 0. Rows sum to ``m`` (when at least ``m`` columns are valid). Works with a traced ``m``
    (a dynamic index into the sorted row instead of ``lax.top_k``).
    """
    width = score.shape[-1]
    score = jnp.where(valid[None, :], score, -jnp.inf)  # padding sorts last and is masked below
    v = jnp.take(jnp.sort(score, axis=-1), width - m, axis=-1)[:, None]
    above = score > v
    tied = score == v
    n_above = jnp.sum(above, axis=-1, keepdims=True)
    n_tied = jnp.maximum(jnp.sum(tied, axis=-1, keepdims=True), 1)
    share = (m - n_above).astype(score.dtype) / n_tied.astype(score.dtype)
    w = jnp.where(above, 1.0, jnp.where(tied, share, 0.0)).astype(score.dtype)
    return jnp.where(valid[None, :], w, 0.0)


def _nan_rows(x: jax.Array) -> jax.Array:
    # NaN attributions would sort arbitrarily; make the row's score NaN instead of a silent number.
    return jnp.any(jnp.isnan(x), axis=-1)


def functional_precision(attr: jax.Array, m: int | jax.Array, *, valid: jax.Array | None = None) -> jax.Array:
    """Share of each row's top-``m`` columns by ``|attr|`` that are predictive, averaged over rows.

    ``FP = mean_i |top_m(|attr_i|) ∩ {0..m-1}| / m``. Chance level is ``m / #valid``. Ties at the ``m``-th value are
    shared (module docstring).

    Args:
      attr: ``(n, W)`` attributions.
      m: number of predictive columns (the first ``m``); Python int or traced integer scalar.
      valid: optional bool ``(W,)`` mask of real columns.

    Returns:
      Scalar in ``[0, 1]``.
    """
    attr, width, m, valid = _check_selection(attr, m, valid)
    w = _top_m_weights(jnp.abs(attr), m, valid)
    predictive = jnp.arange(width) < m
    per_row = jnp.sum(jnp.where(predictive[None, :], w, 0.0), axis=-1) / m.astype(w.dtype)
    per_row = jnp.where(_nan_rows(attr), jnp.nan, per_row)
    return jnp.mean(per_row)


def _l1_normalise(x: jax.Array, mask: jax.Array) -> jax.Array:
    norm = jnp.sum(jnp.where(mask[None, :], jnp.abs(x), 0.0), axis=-1, keepdims=True)
    return x / (norm + NORM_EPS)


def uniform_score(
    attr: jax.Array,
    truth: jax.Array,
    m: int | jax.Array,
    *,
    protocol: str = "paper",
    valid: jax.Array | None = None,
) -> jax.Array:
    """Agreement of normalised attributions with the normalised ground truth on the predictive columns.

    ``U = mean_{i, j<m} [1 - |a_ij - g_ij| / (|a_ij| + |g_ij| + 1e-7)]``, where ``g = truth / (sum_{j<m} |truth_j| +
    NORM_EPS)`` per row and

    - ``"paper"``: ``a = attr / (sum_{valid j} |attr_j| + NORM_EPS)`` -- normalised over **all** valid columns,
      so any mass on noise columns lowers ``a`` on the predictive ones (the study's asymmetric normalisation);
    - ``"corrected"``: ``a = attr / (sum_{j<m} |attr_j| + NORM_EPS)`` -- same support as ``g``, so ``attr == truth``
      scores exactly 1 (compare signed attributions with signed truth).

    Each term lies in ``[0, 1]`` for same-sign values and is 0 when signs differ.

    Args:
      attr: ``(n, W)`` attributions.
      truth: ``(n, W)`` ground truth, shaped like ``attr``.
      m: number of predictive columns; Python int or traced integer scalar.
      protocol: ``"paper"`` or ``"corrected"``.
      valid: optional bool ``(W,)`` mask of real columns (padding excluded from the paper norm).

    Returns:
      Scalar.
    """
    _check_protocol(protocol)
    attr = _check_2d(attr, "attr")
    truth = _check_2d(truth, "truth")
    if attr.shape != truth.shape:
        raise ValueError(f"attr and truth must have the same shape, got {attr.shape} and {truth.shape}")
    width = attr.shape[1]
    m = _check_m(m, width)
    valid = _check_valid(valid, width)
    predictive = (jnp.arange(width) < m) & valid
    a = _l1_normalise(attr, valid if protocol == "paper" else predictive)
    g = _l1_normalise(truth, predictive)
    term = 1.0 - jnp.abs(a - g) / (jnp.abs(a) + jnp.abs(g) + SCORE_EPS)
    total = jnp.sum(jnp.where(predictive[None, :], term, 0.0))
    count = attr.shape[0] * jnp.sum(predictive)
    return total / count.astype(term.dtype)


def _check_pair(pred: Any, target: Any) -> tuple[jax.Array, jax.Array]:
    pred, target = jnp.asarray(pred), jnp.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {pred.shape} and {target.shape}")
    if pred.size == 0:
        raise ValueError("pred and target must not be empty")
    return pred, target


def pred_score(pred: jax.Array, target: jax.Array) -> jax.Array:
    """The study's "Pred" score: ``mean [1 - |p - t| / (|p| + |t| + 1e-7)]`` over all elements.

    Compares model predictions ``p`` with noise-free targets ``t`` on the uniform score's scale (1 is perfect).
    """
    pred, target = _check_pair(pred, target)
    return jnp.mean(1.0 - jnp.abs(pred - target) / (jnp.abs(pred) + jnp.abs(target) + SCORE_EPS))


def mean_absolute_error(pred: jax.Array, target: jax.Array) -> jax.Array:
    """``mean |p - t|`` over all elements (the RFE study's test MAE)."""
    pred, target = _check_pair(pred, target)
    return jnp.mean(jnp.abs(pred - target))


#: Alias of :func:`mean_absolute_error`.
test_mae = mean_absolute_error


def consistency(attr: jax.Array, m: int | jax.Array, *, valid: jax.Array | None = None) -> jax.Array:
    """Overlap of each row's top-``m`` columns with the global top-``m``, averaged over rows.

    Global top-``m``: the ``m`` columns with the largest ``mean_i |attr_ij|``. ``C = mean_i |top_m(|attr_i|) ∩
    top_m(mean |attr|)| / m``; 1 when every row ranks the same ``m`` columns on top. Ties are shared as in the module
    docstring (the expected overlap is ``sum_j w_ij w_j / m`` with independent tie-breaks).

    Args:
      attr: ``(n, W)`` attributions.
      m: selection size; Python int or traced integer scalar.
      valid: optional bool ``(W,)`` mask of real columns.

    Returns:
      Scalar in ``[0, 1]``.
    """
    attr, width, m, valid = _check_selection(attr, m, valid)
    mag = jnp.abs(attr)
    w_row = _top_m_weights(mag, m, valid)
    w_glob = _top_m_weights(jnp.mean(mag, axis=0)[None, :], m, valid)
    per_row = jnp.sum(w_row * w_glob, axis=-1) / m.astype(w_row.dtype)
    per_row = jnp.where(_nan_rows(attr), jnp.nan, per_row)
    return jnp.mean(per_row)


# ================================================================================================================
# Vision localisation metrics (docs/protocol.md, "Vision": "Localisation score")
#
# Attribution maps are `(n, H, W, C)` (channels last, as the vision models read them); boxes are int `(n, 4)`
# `(top, left, bottom, right)` with exclusive ends (`chaosjax.data.vision.Sample.box`). Every function is pure,
# jittable and vmappable (over models or methods) and returns a scalar mean over the `n` maps; the `_per_sample`
# variants return the `(n,)` values.
# ================================================================================================================

__all__ += [
    "DEFAULT_SIGMA",
    "gaussian_smooth",
    "localization_iou",
    "localization_iou_per_sample",
    "mass_in_box",
    "mass_in_box_per_sample",
    "paper_iou_of_true_box",
    "pointing_game",
    "pointing_game_per_sample",
]

#: The study's smoothing width at a 224-px canvas; the vision track scales it with the canvas (`6 * H / 224`).
DEFAULT_SIGMA = 6.0


def _check_maps(attr: Any, boxes: Any) -> tuple[jax.Array, jax.Array]:
    attr = jnp.asarray(attr)
    if attr.ndim != 4:
        raise ValueError(f"attr must be 4-D (n, H, W, C) attribution maps, got shape {attr.shape}")
    if not jnp.issubdtype(attr.dtype, jnp.floating):
        attr = attr.astype(jnp.result_type(float))
    boxes = jnp.asarray(boxes)
    if boxes.shape != (attr.shape[0], 4):
        raise ValueError(f"boxes must have shape (n, 4) = ({attr.shape[0]}, 4), got {boxes.shape}")
    if not jnp.issubdtype(boxes.dtype, jnp.integer):
        raise TypeError(f"boxes must hold integer pixel coordinates, got dtype {boxes.dtype}")
    return attr, boxes


def _gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def gaussian_smooth(maps: jax.Array, sigma: float) -> jax.Array:
    """Gaussian smoothing over the two spatial axes of `(n, H, W, ...)` maps, separately per trailing channel.

    The same filter as `scipy.ndimage.gaussian_filter(map, (0, sigma, sigma, 0))` (kernel truncated at `4 sigma`,
    boundary mode `reflect`, `abc|cba`), equal to it within float32 rounding (~1e-7 relative), on device. It is
    not scipy bit for bit: the taps are summed one by one in the maps' dtype, where scipy sums mirror-image taps in
    pairs in float64, so pixels that tie exactly under scipy may differ here in the last bit. The `"corrected"`
    IoU uses this function; the `"paper"` IoU, which keeps whole tie groups, runs scipy itself
    (`localization_iou_per_sample`). `sigma = 0` returns the maps unchanged.
    Cost: `O(n H W C (8 sigma + 1))` (two 1-D passes).
    """
    sigma = float(sigma)
    if sigma < 0 or not np.isfinite(sigma):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    if sigma == 0.0:
        return maps
    kernel = jnp.asarray(_gaussian_kernel(sigma), maps.dtype)
    radius = (kernel.shape[0] - 1) // 2
    out = maps
    for axis in (1, 2):
        if radius >= out.shape[axis]:
            raise ValueError(f"sigma={sigma} is too wide for maps of size {out.shape[axis]} (reflect padding)")
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = jnp.pad(out, pad, mode="symmetric")
        size = out.shape[axis]
        acc = jnp.zeros_like(out)
        for j in range(kernel.shape[0]):  # a short static loop of shifted adds: cheap and exact
            acc = acc + kernel[j] * jax.lax.slice_in_dim(padded, j, j + size, axis=axis)
        out = acc
    return out


def _row_col_extent(mask: jax.Array) -> tuple[jax.Array, ...]:
    """min/max row and column of the True pixels of `(n, H, W)` masks (inclusive)."""
    h, w = mask.shape[1], mask.shape[2]
    rows, cols = jnp.any(mask, axis=2), jnp.any(mask, axis=1)
    r_idx, c_idx = jnp.arange(h), jnp.arange(w)
    r0 = jnp.min(jnp.where(rows, r_idx[None, :], h), axis=1)
    r1 = jnp.max(jnp.where(rows, r_idx[None, :], -1), axis=1)
    c0 = jnp.min(jnp.where(cols, c_idx[None, :], w), axis=1)
    c1 = jnp.max(jnp.where(cols, c_idx[None, :], -1), axis=1)
    return r0, r1, c0, c1


def localization_iou_per_sample(
    attr: jax.Array,
    boxes: jax.Array,
    *,
    foreground: int,
    sigma: float = DEFAULT_SIGMA,
    protocol: str = "paper",
) -> jax.Array:
    """Per-map localisation IoU `(n,)`: the bounding box of the strongest pixels against the true box.

    `"paper"` (the study's computation, quirks included; docs/protocol.md, "Vision"):
      1. smooth the *signed* map per channel with `scipy.ndimage.gaussian_filter(map, sigma, axes=(1, 2))`;
      2. `s = |smoothed|.mean(-1)` in numpy (float32 maps: float32, channels summed in order);
      3. threshold `t` = the `(k+1)`-th largest `s` with `k = foreground^2` (the study's
         `np.partition(-s, k)[k]`), keep every pixel with `s - t >= 0`: at least `k + 1` pixels, whole tie
         groups kept;
      4. predicted box `(r0, c0, r1 - r0, c1 - c0)` (max - min, no +1) against the true `(top, left, fg, fg)`,
         IoU of these continuous rectangles (`+1e-13` in the union).
      Steps 1-3 run on the host, through `jax.pure_callback`, on scipy and numpy themselves: the kept set
      depends on exact ties (scipy sums mirror-image taps in pairs in float64, so a mirror-symmetric map smooths
      to exactly tied mirror pixels), and thresholding is discontinuous, so a device re-implementation that is
      equal to within rounding still keeps other pixels (float32 shifted adds score the true-box map 0.690 at
      56 / 8 where the study's code gives 0.790). The callback works under `jit` and `vmap`; its cost is a
      device-to-host copy of the maps plus scipy's filter on one CPU core (docs/protocol.md, "Vision").
      The true box's own indicator away from the border scores `fg^2 / (fg+1)^2` (`paper_iou_of_true_box`:
      64/81 = 0.790 at 8 px, 0.940 at 32 px): its kept set is the box grown by one pixel on each side.

    `"corrected"` (on device, pure JAX):
      1. `s = mean_c |attr|`, then smooth (`|.|` first: opposite signs no longer cancel);
      2. keep exactly `k = foreground^2` pixels (`lax.top_k`; ties go to the lower flat index);
      3. inclusive pixel boxes on both sides: area `(r1 - r0 + 1)(c1 - c0 + 1)`, IoU of pixel sets.
      The true-box indicator scores exactly 1 when smoothing does not reorder pixels across the box edge
      (`sigma = 0`, or `sigma` small against the box; at `sigma = 0.19 fg`, the study's ratio, the blurred
      corners put it at `fg^2 / (fg+2)^2`).

    A map with all its mass outside the box scores 0 under both (its kept pixels lie outside the box) as long
    as the kept pixels' bounding box does not straddle the true box. A map holding a NaN scores NaN.

    Args:
      attr: `(n, H, W, C)` maps; boxes: int `(n, 4)` `(top, left, bottom, right)`, exclusive ends.
      foreground: the foreground side (the number of kept pixels is its square).
      sigma: smoothing width in pixels (the study: 6 at 224 px).
      protocol: `"paper"` or `"corrected"`.

    Cost: the smoothing plus a partition (paper, host) or top-k (corrected, device) of `H W` values per map.
    """
    _check_protocol(protocol)
    attr, boxes = _check_maps(attr, boxes)
    n, h, w, _ = attr.shape
    if isinstance(foreground, bool) or not isinstance(foreground, (int, np.integer)) or not 1 <= foreground <= min(h, w):
        raise ValueError(f"foreground must be an integer in [1, {min(h, w)}], got {foreground!r}")
    k = int(foreground) ** 2
    if k >= h * w:
        raise ValueError(f"foreground {foreground} leaves no pixel outside the box on a {h} x {w} map")
    sigma = float(sigma)
    if sigma < 0 or not np.isfinite(sigma):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    return _localization_iou_impl(attr, boxes.astype(jnp.int32), foreground=int(foreground), sigma=sigma,
                                  protocol=protocol)


def _paper_kept_extent(attr: np.ndarray, *, sigma: float, k: int) -> np.ndarray:
    """Host side of the paper IoU: `(..., H, W, C)` maps -> int32 `(..., 4)` extents `(r0, r1, c0, c1)` (inclusive)
    of the pixels the study keeps, computed by the study's own operations (scipy's filter, numpy's channel mean
    and partition; examples/eval_vision_localization.py l.163-164, chaosmining/vision/contribs.py l.28-52)."""
    from scipy.ndimage import gaussian_filter

    a = np.asarray(attr)
    if a.dtype not in (np.float32, np.float64):  # bfloat16 / float16 maps: the study's maps are float32
        a = a.astype(np.float32)
    lead, (h, w, c) = a.shape[:-3], a.shape[-3:]
    a = np.ascontiguousarray(a.reshape((-1, h, w, c)))
    if a.shape[0] == 0:
        return np.zeros(lead + (4,), np.int32)
    smoothed = gaussian_filter(a, sigma=sigma, axes=(1, 2))  # mode "reflect", truncate 4.0: the study's call
    s = np.abs(smoothed).mean(axis=-1)
    t = -np.partition(-s.reshape(s.shape[0], -1), k, axis=-1)[:, k]  # the (k+1)-th largest value
    keep = (s - t[:, None, None]) >= 0  # the study's test, literally (NaN maps keep nothing; masked by the caller)
    rows, cols = keep.any(axis=2), keep.any(axis=1)
    extent = np.stack([rows.argmax(axis=1), h - 1 - rows[:, ::-1].argmax(axis=1),
                       cols.argmax(axis=1), w - 1 - cols[:, ::-1].argmax(axis=1)], axis=1)
    return extent.astype(np.int32).reshape(lead + (4,))


@functools.partial(jax.jit, static_argnames=("foreground", "sigma", "protocol"))
def _localization_iou_impl(attr, boxes, *, foreground, sigma, protocol):
    # Jitted so that eager calls compile once instead of dispatching ~100 small ops; inlined under an outer jit.
    n, h, w, _ = attr.shape
    k = foreground**2
    top, left = boxes[:, 0], boxes[:, 1]
    if protocol == "paper":
        extent = jax.pure_callback(
            functools.partial(_paper_kept_extent, sigma=sigma, k=k),
            jax.ShapeDtypeStruct((n, 4), jnp.int32), attr, vmap_method="expand_dims")
        r0, r1, c0, c1 = (extent[:, i] for i in range(4))
        ph, pw = (r1 - r0).astype(attr.dtype), (c1 - c0).astype(attr.dtype)
        fg = jnp.asarray(foreground, attr.dtype)
        ih = jnp.maximum(0.0, jnp.minimum(r0 + ph, top + fg) - jnp.maximum(r0, top))
        iw = jnp.maximum(0.0, jnp.minimum(c0 + pw, left + fg) - jnp.maximum(c0, left))
        inter = ih * iw
        union = ph * pw + fg * fg - inter
        iou = inter / (union + 1e-13)
    else:
        s = gaussian_smooth(jnp.mean(jnp.abs(attr), axis=-1)[..., None], sigma)[..., 0]
        flat = s.reshape(n, h * w)
        idx = jax.lax.top_k(flat, k)[1]
        mask = jnp.zeros((n, h * w), bool).at[jnp.arange(n)[:, None], idx].set(True).reshape(n, h, w)
        r0, r1, c0, c1 = _row_col_extent(mask)
        bottom, right = boxes[:, 2] - 1, boxes[:, 3] - 1  # inclusive
        ih = jnp.maximum(0, jnp.minimum(r1, bottom) - jnp.maximum(r0, top) + 1)
        iw = jnp.maximum(0, jnp.minimum(c1, right) - jnp.maximum(c0, left) + 1)
        inter = (ih * iw).astype(attr.dtype)
        area_p = ((r1 - r0 + 1) * (c1 - c0 + 1)).astype(attr.dtype)
        area_t = ((bottom - top + 1) * (right - left + 1)).astype(attr.dtype)
        iou = inter / (area_p + area_t - inter)
    return jnp.where(jnp.any(jnp.isnan(attr), axis=(1, 2, 3)), jnp.nan, iou)


def localization_iou(attr, boxes, *, foreground: int, sigma: float = DEFAULT_SIGMA,
                     protocol: str = "paper") -> jax.Array:
    """Mean of `localization_iou_per_sample` over the maps (the study's score under `"paper"`)."""
    return jnp.mean(localization_iou_per_sample(attr, boxes, foreground=foreground, sigma=sigma, protocol=protocol))


def paper_iou_of_true_box(foreground: int) -> float:
    """`fg^2 / (fg + 1)^2`: the paper IoU of the true box's own indicator map, smoothed at the study's
    `sigma = 6 * canvas / 224`, for a box away from the canvas border (64/81 = 0.790 at 8 px, 0.940 at 32 px).

    The kept pixels (at least `fg^2 + 1`, whole tie groups) are the box grown by one pixel on every side: a
    rectangle `fg + 1` wide by the max - min rule, covering the true `fg`-wide one. This is what a perfect
    attribution scores, not an upper bound: a map one pixel wider than the box scores 1 at 8 px, and near the
    border (reflected smoothing) the indicator scores less (0.690 at 8 px with its corner at (3, 5)).
    """
    if isinstance(foreground, bool) or not isinstance(foreground, (int, np.integer)) or foreground < 1:
        raise ValueError(f"foreground must be an integer >= 1, got {foreground!r}")
    return foreground**2 / (foreground + 1) ** 2


def _box_mask(boxes: jax.Array, h: int, w: int) -> jax.Array:
    r, c = jnp.arange(h), jnp.arange(w)
    rows = (r[None, :] >= boxes[:, 0:1]) & (r[None, :] < boxes[:, 2:3])
    cols = (c[None, :] >= boxes[:, 1:2]) & (c[None, :] < boxes[:, 3:4])
    return rows[:, :, None] & cols[:, None, :]


def mass_in_box_per_sample(attr: jax.Array, boxes: jax.Array) -> jax.Array:
    """Share of each map's absolute attribution inside the true box: `sum_box |a| / sum |a|` `(n,)`.

    Summed over channels, no smoothing. Chance (a map that ignores the image) is the box's area share,
    `fg^2 / (H W)` (1/49 on the 7 x 7 presets). An all-zero map scores 0.
    """
    attr, boxes = _check_maps(attr, boxes)
    n, h, w, _ = attr.shape
    mag = jnp.sum(jnp.abs(attr), axis=-1)
    inside = jnp.sum(jnp.where(_box_mask(boxes.astype(jnp.int32), h, w), mag, 0.0), axis=(1, 2))
    total = jnp.sum(mag, axis=(1, 2))
    return inside / (total + NORM_EPS)


def mass_in_box(attr, boxes) -> jax.Array:
    """Mean of `mass_in_box_per_sample`."""
    return jnp.mean(mass_in_box_per_sample(attr, boxes))


def pointing_game_per_sample(attr: jax.Array, boxes: jax.Array) -> jax.Array:
    """1 where the pixel of largest `sum_c |a|` lies in the true box, else 0 `(n,)` (ties: first in row-major order).

    Chance is the box's area share, `fg^2 / (H W)`.
    """
    attr, boxes = _check_maps(attr, boxes)
    n, h, w, _ = attr.shape
    mag = jnp.sum(jnp.abs(attr), axis=-1).reshape(n, h * w)
    best = jnp.argmax(mag, axis=1)
    r, c = best // w, best % w
    boxes = boxes.astype(jnp.int32)
    hit = (r >= boxes[:, 0]) & (r < boxes[:, 2]) & (c >= boxes[:, 1]) & (c < boxes[:, 3])
    return hit.astype(attr.dtype)


def pointing_game(attr, boxes) -> jax.Array:
    """Hit rate of `pointing_game_per_sample`."""
    return jnp.mean(pointing_game_per_sample(attr, boxes))


# ================================================================================================================
# Audio channel metrics (docs/protocol.md, "Audio")
#
# Attributions are clips `(n, C, L)` (channels first, the Conv1d layout the audio models read); `channels` is the
# int `(n,)` index of the channel holding the word (`chaosjax.data.audio.Sample.channel`). Pure, jittable and
# vmappable; the plain names return the mean over the `n` clips, `_per_sample` the `(n,)` values.
# ================================================================================================================

__all__ += [
    "channel_hit",
    "channel_hit_per_sample",
    "channel_mass",
    "channel_mass_per_sample",
    "channel_scores",
]


def _check_clips(attr: Any, channels: Any) -> tuple[jax.Array, jax.Array]:
    attr = jnp.asarray(attr)
    channels = jnp.asarray(channels)
    if attr.ndim != 3:
        raise ValueError(f"attr: expected attributions (n, channels, length), got shape {attr.shape}")
    if channels.shape != (attr.shape[0],) or not jnp.issubdtype(channels.dtype, jnp.integer):
        raise ValueError(f"channels: expected integer channel indices ({attr.shape[0]},), got "
                         f"{channels.dtype}{tuple(channels.shape)}")
    return attr, channels.astype(jnp.int32)


def channel_scores(attr: jax.Array) -> jax.Array:
    """Per-channel score `s_c = mean_t |a_{c,t}|`: `(n, C, L) -> (n, C)`."""
    attr = jnp.asarray(attr)
    if attr.ndim != 3:
        raise ValueError(f"attr: expected attributions (n, channels, length), got shape {attr.shape}")
    return jnp.mean(jnp.abs(attr), axis=2)


def channel_mass_per_sample(attr: jax.Array, channels: jax.Array) -> jax.Array:
    """Share of the true channel in the L1 norm of the channel scores: `s_k / sum_c s_c` `(n,)` (the study's
    localisation score; chance `1 / C`). An all-zero attribution says nothing and scores chance, `1 / C`."""
    attr, channels = _check_clips(attr, channels)
    s = channel_scores(attr)
    total = jnp.sum(s, axis=1)
    true = jnp.take_along_axis(s, channels[:, None], axis=1)[:, 0]
    return jnp.where(total > 0, true / jnp.where(total > 0, total, 1.0), 1.0 / s.shape[1])


def channel_mass(attr, channels) -> jax.Array:
    """Mean of `channel_mass_per_sample`."""
    return jnp.mean(channel_mass_per_sample(attr, channels))


def channel_hit_per_sample(attr: jax.Array, channels: jax.Array) -> jax.Array:
    """1 where the true channel has the largest score `s_c`, else 0 `(n,)`; with `k` channels tied at the top the
    true one scores `1 / k` (the expected hit under random tie-breaking, as the top-`m` metrics above), so a
    constant attribution scores chance `1 / C` and is not credited for channel 0 coming first."""
    attr, channels = _check_clips(attr, channels)
    s = channel_scores(attr)
    top = jnp.max(s, axis=1, keepdims=True)
    tied = jnp.sum((s == top).astype(s.dtype), axis=1)
    true = jnp.take_along_axis(s, channels[:, None], axis=1)[:, 0]
    return jnp.where(true == top[:, 0], 1.0 / tied, 0.0).astype(s.dtype)


def channel_hit(attr, channels) -> jax.Array:
    """Top-1 hit rate of `channel_hit_per_sample` (chance `1 / C`)."""
    return jnp.mean(channel_hit_per_sample(attr, channels))
