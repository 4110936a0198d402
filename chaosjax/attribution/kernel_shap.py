"""Kernel SHAP: Shapley values as a weighted least-squares fit over coalitions (Lundberg and Lee, 2017)."""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import numpy as np
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from chaosjax.attribution._core import (
    Array,
    BatchFn,
    broadcast_baseline,
    check_batch_size,
    check_inputs,
    group_labels,
    solve_dtype,
    spread,
    sum_over_draws,
)
from chaosjax.attribution.shapley import coalition_values


def _check_samples(samples, method: str) -> int:
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 2:
        raise ValueError(f"{method}: `samples` must be an integer >= 2 (coalitions come in pairs), got {samples!r}")
    return int(samples)


def _proper_coalitions(num_groups: int) -> int:
    """Coalitions other than the empty and the full one: `2^G - 2`."""
    return 2**num_groups - 2


class _Plan(NamedTuple):
    """How `kernel_shap` spends its samples (static: a function of `G` and `samples` only)."""

    enumerated: np.ndarray  # (E, G) bool: every coalition of the complete sizes
    enumerated_weight: np.ndarray  # (E,) the Shapley kernel of each
    sizes: np.ndarray  # the incomplete sizes s <= G / 2 to sample pairs from
    size_logits: np.ndarray  # log of their share of the kernel's remaining mass
    sampled: int  # number of sampled coalitions (even: complementary pairs)
    sampled_weight: float  # each one's weight: the remaining kernel mass / sampled


def _plan(num_groups: int, samples: int) -> _Plan:
    """SHAP's allocation (`shap.KernelExplainer`): coalition sizes are taken in pairs `(s, G - s)` from the
    outside in; a size pair is enumerated whole while the share of the budget proportional to its kernel mass
    covers all of its coalitions, and the rest of the budget samples the remaining sizes in proportion to their
    mass, each draw with its complement. With `samples >= 2^G - 2` every coalition is enumerated."""
    g = num_groups

    def kernel(s):  # the Shapley kernel of one coalition of size s
        return (g - 1) / (math.comb(g, s) * s * (g - s))

    half = list(range(1, g // 2 + 1))
    remaining = {s: (g - 1) / (s * (g - s)) * (1 if 2 * s == g else 2) for s in half}  # mass of sizes s, G - s
    budget, complete = samples, []
    for s in half:
        count = math.comb(g, s) * (1 if 2 * s == g else 2)
        if samples < _proper_coalitions(g) and budget * remaining[s] / sum(remaining.values()) < count - 1e-8:
            break
        complete.append(s)
        budget -= count
        del remaining[s]
    rows, weights = [], []
    for s in complete:
        for members in itertools.combinations(range(g), s):
            row = np.zeros(g, bool)
            row[list(members)] = True
            rows.append(row)
            weights.append(kernel(s))
            if 2 * s != g:
                rows.append(~row)
                weights.append(kernel(g - s))
    sampled = budget - budget % 2 if remaining else 0
    return _Plan(
        enumerated=np.array(rows, bool).reshape(-1, g),
        enumerated_weight=np.array(weights, np.float64),
        sizes=np.array(sorted(remaining), np.int32),
        size_logits=np.log([remaining[s] for s in sorted(remaining)]) if remaining else np.zeros(0),
        sampled=sampled,
        sampled_weight=sum(remaining.values()) / sampled if sampled else 0.0,
    )


def _coalitions(key: Array, num_groups: int, plan: _Plan, dtype=jnp.float32) -> tuple[Array, Array]:
    """Every coalition of the plan `(N, G)` and its regression weight `(N,)`: the enumerated ones, then the
    sampled pairs. Drawn at once (one small random program), then indexed by the draws."""
    present = jnp.asarray(plan.enumerated)
    weights = jnp.asarray(plan.enumerated_weight, dtype)
    if plan.sampled:
        # Each pair: a size with probability proportional to its remaining kernel mass (inverse CDF of the first
        # uniform number), a uniform subset of that size (the smallest of the other numbers), its complement.
        u = jax.random.uniform(key, (plan.sampled // 2, num_groups + 1))
        cdf = np.cumsum(np.exp(plan.size_logits - plan.size_logits.max()))
        index = jnp.minimum(jnp.searchsorted(jnp.asarray(cdf / cdf[-1], u.dtype), u[:, 0]), len(cdf) - 1)
        drawn = jnp.argsort(jnp.argsort(u[:, 1:], axis=1), axis=1) < jnp.asarray(plan.sizes)[index][:, None]
        present = jnp.concatenate([present, jnp.stack([drawn, ~drawn], axis=1).reshape(plan.sampled, num_groups)])
        weights = jnp.concatenate([weights, jnp.full((plan.sampled,), plan.sampled_weight, dtype)])
    return present, weights


def kernel_shap_coalitions(key: Array, num_groups: int, samples: int) -> tuple[Array, Array]:
    """The coalitions `kernel_shap(..., key=key, samples=samples)` evaluates, `(N, G)` bool (True: the group
    keeps its input value), and their regression weights `(N,)`.

    SHAP's allocation (`shap.KernelExplainer`): the sizes whose proportional share of the budget covers all
    their coalitions (the smallest and largest first) are enumerated, each coalition weighted by the Shapley
    kernel `(G - 1) / (C(G, s) s (G - s))`; the rest of the budget (rounded down to an even number) samples the
    other sizes in complementary pairs, a size with probability proportional to its kernel mass, a uniform
    subset of that size and then its complement, each weighted by the remaining mass over the number of draws.
    With `samples >= 2^G - 2` every coalition is enumerated once (deterministic; `N = 2^G - 2`).
    """
    if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)) or num_groups < 2:
        raise ValueError(f"kernel_shap_coalitions: `num_groups` must be an integer >= 2, got {num_groups!r}")
    samples = _check_samples(samples, "kernel_shap_coalitions")
    plan = _plan(int(num_groups), min(samples, _proper_coalitions(int(num_groups))))
    return _coalitions(key, int(num_groups), plan)


def kernel_shap(
    f: BatchFn,
    x: Array,
    *,
    key: Array,
    samples: int = 25,
    groups: ArrayLike | None = None,
    baseline: ArrayLike = 0.0,
    batch_size: int | None = None,
) -> Array:
    """Kernel SHAP: the Shapley values as the solution of a weighted least-squares problem over coalitions.

    With `z` a coalition's indicator over the `G` groups and `v(z)` its value (`f` with the absent groups at
    the baseline), `phi` minimises `sum_z k(z) (v(z) - v(0) - z . phi)^2` subject to
    `sum_i phi_i = f(x) - f(baseline)` (efficiency), `k` being the Shapley kernel (Lundberg and Lee, 2017).
    Over every coalition its solution is exactly the Shapley values. The coalitions follow SHAP's
    `KernelExplainer`: the sizes the budget covers completely (the smallest and largest first) are enumerated,
    the others are sampled in complementary pairs `z`, `1 - z`, which cancels much of the sampling error
    (Covert and Lee, 2021); `samples >= 2^G - 2` enumerates every coalition, and the result is exact. The
    constraint is imposed exactly (a bordered linear system solved by pseudo-inverse, so few samples still give
    an answer), so attributions always sum to `f(x) - f(baseline)`. One set of coalitions serves the whole
    batch: the system is built and factorised once, and each row's estimate is as good as with its own draws
    (rows' errors are correlated).

    Args:
      f: batch `(B, *S)` -> per-sample scalars `(B,)`.
      x: the inputs `(B, *S)`.
      key: PRNG key for the sampled coalitions (see `kernel_shap_coalitions`); results do not depend on
        `batch_size`.
      samples: coalitions to evaluate (>= 2; Captum's `n_samples` default is 25). At most `2^G - 2` are used.
      groups: int array shaped `S` labelling the players; `None`: every feature is a player (the solve is
        `G x G`, so group large inputs). Concrete.
      baseline: the value of an absent feature: a scalar, one sample `S`, or one per sample `(B, *S)`.
      batch_size: evaluate at most this many coalitions (each over the whole batch) at once.

    Cost: at most `samples + 2` forward passes over the batch and one `(G + 1)`-square pseudo-inverse.
    Captum: `KernelShap(f).attribute(x, baselines=baseline, feature_mask=groups, n_samples=samples)`, which
    samples without enumeration or pairing, does not impose efficiency, and fits each row on its own.
    """
    x = check_inputs(f, x, "kernel_shap")
    samples = _check_samples(samples, "kernel_shap")
    batch_size = check_batch_size(batch_size, "kernel_shap")
    labels, g = group_labels(groups, tuple(x.shape[1:]), "kernel_shap")
    b = broadcast_baseline(baseline, x, "kernel_shap")
    if g == 0:
        return jnp.zeros_like(x)
    acc = solve_dtype(x.dtype)
    empty = f(b).astype(acc)
    delta = f(x).astype(acc) - empty  # (B,)
    if g == 1:
        return spread(delta[:, None], labels).astype(x.dtype)

    plan = _plan(g, min(samples, _proper_coalitions(g)))
    coalitions, weights = _coalitions(key, g, plan, acc)

    weights = weights / jnp.sum(weights)
    design = coalitions.astype(acc)
    hi = jax.lax.Precision.HIGHEST
    gram = jnp.matmul(design.T * weights[None, :], design, precision=hi)  # (G, G): the coalitions alone

    def draw(k):  # coalition k's weighted contribution to the moments z^T W (v(z) - v(0))
        value = coalition_values(f, x, b, labels, coalitions[k]).astype(acc) - empty
        return (weights[k] * design[k])[:, None] * value[None, :]

    moment = sum_over_draws(draw, coalitions.shape[0], batch_size)  # (G, B)
    # min sum_z w (y_z - z . phi)^2 s.t. 1 . phi = delta: the bordered (KKT) system [[A, 1], [1^T, 0]].
    ones = jnp.ones((g, 1), acc)
    kkt = jnp.block([[gram, ones], [ones.T, jnp.zeros((1, 1), acc)]])
    rhs = jnp.concatenate([moment, delta[None, :]], axis=0)
    phi = jnp.matmul(jnp.linalg.pinv(kkt), rhs, precision=hi)[:g]  # (G, B)
    return spread(phi.T, labels).astype(x.dtype)
