"""Attribution metrics of the symbolic track (``PROTOCOL.md`` section 1, "Metrics").

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
    attr = _check_2d(attr, "attr")
    width = attr.shape[1]
    m = _check_m(m, width)
    valid = _check_valid(valid, width)
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
      attr, truth: ``(n, W)``, same shape.
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
    attr = _check_2d(attr, "attr")
    width = attr.shape[1]
    m = _check_m(m, width)
    valid = _check_valid(valid, width)
    mag = jnp.abs(attr)
    w_row = _top_m_weights(mag, m, valid)
    w_glob = _top_m_weights(jnp.mean(mag, axis=0)[None, :], m, valid)
    per_row = jnp.sum(w_row * w_glob, axis=-1) / m.astype(w_row.dtype)
    per_row = jnp.where(_nan_rows(attr), jnp.nan, per_row)
    return jnp.mean(per_row)
