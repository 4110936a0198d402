"""Shapley values of feature groups: exact (every coalition) and by permutation sampling.

The players are the `G` groups of `groups` (each feature its own group by default); a coalition `S` is
evaluated as `v(S) = f(x with the groups outside S set to the baseline)`, so `v(all) = f(x)` and
`v(none) = f(baseline)`. The Shapley value of group `i` is

    phi_i = sum_{S not containing i} |S|! (G - |S| - 1)! / G! * (v(S + i) - v(S)),

the only attribution that is efficient (`sum_i phi_i = f(x) - f(baseline)`), symmetric, gives null players
zero and is linear in `f`. Every feature of a group gets the group's value (Captum's `feature_mask`
convention). One coalition is evaluated for the whole batch at once; rows never interact.
"""

from __future__ import annotations

import math

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
    check_positive_int,
    group_labels,
    solve_dtype,
    spread,
    sum_over_draws,
)

#: Most groups `shapley_exact` enumerates: 2^16 = 65,536 coalitions, each a forward pass over the batch.
MAX_EXACT_GROUPS = 16


def coalition_values(f: BatchFn, x: Array, b: Array, labels: np.ndarray, present: Array) -> Array:
    """`f` on `x` with the groups where `present` (`(G,)` bool) is False set to the baseline `b`: `(B,)`."""
    keep = jnp.take(present, jnp.asarray(labels))
    return f(jnp.where(keep[None], x, b))


def _exact_weights(num_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients of `v(S)` in `phi_i` by coalition size `s = |S|` (index 0..G):
    `+w(s - 1)` when `i` is in `S`, `-w(s)` when not, with `w(s) = s! (G - s - 1)! / G!`."""
    g = num_groups
    w = np.array([math.factorial(s) * math.factorial(g - s - 1) / math.factorial(g) for s in range(g)])
    inside = np.concatenate([[0.0], w])  # inside[s] = w(s - 1)
    outside = np.concatenate([w, [0.0]])  # outside[s] = w(s)
    return inside, outside


def shapley_exact(
    f: BatchFn,
    x: Array,
    *,
    groups: ArrayLike | None = None,
    baseline: ArrayLike = 0.0,
    batch_size: int | None = None,
    key: Array | None = None,
) -> Array:
    """Exact Shapley values of feature groups by enumerating all `2^G` coalitions.

    `phi_i = sum_S c_i(S) v(S)` with `c_i(S) = (|S|-1)! (G-|S|)! / G!` for `i` in `S` and
    `-|S|! (G-|S|-1)! / G!` otherwise (module docstring). The sum runs in chunks of `batch_size`
    coalitions with a running total, so memory does not grow with `2^G`. Attributions sum to
    `f(x) - f(baseline)` exactly (up to rounding).

    Args:
      f: batch `(B, *S)` -> per-sample scalars `(B,)`.
      x: the inputs `(B, *S)`.
      groups: int array shaped `S` labelling the players (patches, channels, column blocks); `None`: every
        feature is a player. Concrete; at most `MAX_EXACT_GROUPS` (16) distinct labels.
      baseline: the value of an absent feature: a scalar, one sample `S`, or one per sample `(B, *S)`.
      batch_size: evaluate at most this many coalitions (each over the whole batch) at once. Without it all
        `2^G` copies of the batch are built at once.
      key: unused: the method is deterministic. Accepted so that every entry of `METHODS` takes
        `m(f, x, key=key)`.

    Cost: `2^G` forward passes over the batch.
    Captum: `ShapleyValues(f).attribute(x, baselines=baseline, feature_mask=groups)` (which walks all `G!`
    permutations, `G * G!` passes).
    """
    del key
    x = check_inputs(f, x, "shapley_exact")
    batch_size = check_batch_size(batch_size, "shapley_exact")
    labels, num_groups = group_labels(groups, tuple(x.shape[1:]), "shapley_exact")
    if num_groups > MAX_EXACT_GROUPS:
        raise ValueError(
            f"shapley_exact: `groups` has {num_groups} groups (every feature is one when groups=None); exact "
            f"enumeration of 2^{num_groups} coalitions is limited to {MAX_EXACT_GROUPS} groups. Group the "
            "features (patches, channels, column blocks) or use shapley_sampling or kernel_shap"
        )
    b = broadcast_baseline(baseline, x, "shapley_exact")
    if num_groups == 0:
        return jnp.zeros_like(x)
    acc = solve_dtype(x.dtype)
    inside, outside = (jnp.asarray(c, acc) for c in _exact_weights(num_groups))
    bit = jnp.arange(num_groups, dtype=jnp.int32)

    def draw(coalition):
        present = ((coalition >> bit) & 1).astype(bool)
        size = jnp.sum(present.astype(jnp.int32))
        coef = jnp.where(present, inside[size], -outside[size])
        value = coalition_values(f, x, b, labels, present).astype(acc)
        return coef[:, None] * value[None, :]

    phi = sum_over_draws(draw, 2**num_groups, batch_size)  # (G, B)
    return spread(phi.T, labels).astype(x.dtype)


def shapley_permutations(key: Array, num_groups: int, permutations: int, *, antithetic: bool = False) -> Array:
    """The group orders `shapley_sampling(..., key=key, permutations=permutations)` walks: `(permutations, G)`.

    Uniform random permutations, drawn at once from `key` (the argsort of uniform numbers); with `antithetic`,
    orders come in pairs, the second the first reversed.
    """
    num_groups = check_positive_int(num_groups, "num_groups", "shapley_permutations")
    permutations = check_positive_int(permutations, "permutations", "shapley_permutations")
    if not antithetic:
        return jnp.argsort(jax.random.uniform(key, (permutations, num_groups)), axis=1)
    orders = jnp.argsort(jax.random.uniform(key, (-(-permutations // 2), num_groups)), axis=1)
    return jnp.stack([orders, orders[:, ::-1]], axis=1).reshape(-1, num_groups)[:permutations]


def shapley_sampling(
    f: BatchFn,
    x: Array,
    *,
    key: Array,
    permutations: int = 25,
    groups: ArrayLike | None = None,
    baseline: ArrayLike = 0.0,
    antithetic: bool = False,
    batch_size: int | None = None,
) -> Array:
    """Shapley values estimated by permutation sampling (Castro et al., 2009), as Captum's `ShapleyValueSampling`.

    For each of `permutations` random orders of the groups, the groups are switched from the baseline to the
    input one at a time; each group is credited with the change in `f` when it joins. The estimate is the mean
    over orders: unbiased, and efficient for every order (each sums to `f(x) - f(baseline)` exactly), so the
    average is too. One order is shared by the whole batch, as in Captum.

    Args:
      f: batch `(B, *S)` -> per-sample scalars `(B,)`.
      x: the inputs `(B, *S)`.
      key: PRNG key for the orders (see `shapley_permutations`); results do not depend on `batch_size`.
      permutations: number of orders (Captum's `n_samples`, default 25).
      groups: int array shaped `S` labelling the players; `None`: every feature is a player. Concrete.
      baseline: the value of an absent feature: a scalar, one sample `S`, or one per sample `(B, *S)`.
      antithetic: draw orders in pairs, an order and its reverse, which lowers the variance for the same
        number of evaluations.
      batch_size: evaluate at most this many coalitions (each over the whole batch) at once.

    Cost: `permutations * (G - 1) + 2` forward passes over the batch (the empty and full coalitions are shared
    by every order; Captum evaluates `permutations * G + 1`).
    Captum: `ShapleyValueSampling(f).attribute(x, baselines=baseline, feature_mask=groups, n_samples=permutations)`.
    """
    x = check_inputs(f, x, "shapley_sampling")
    permutations = check_positive_int(permutations, "permutations", "shapley_sampling")
    batch_size = check_batch_size(batch_size, "shapley_sampling")
    labels, num_groups = group_labels(groups, tuple(x.shape[1:]), "shapley_sampling")
    b = broadcast_baseline(baseline, x, "shapley_sampling")
    if num_groups == 0:
        return jnp.zeros_like(x)
    acc = solve_dtype(x.dtype)
    g = num_groups
    full = f(x).astype(acc)
    empty = f(b).astype(acc)
    orders = shapley_permutations(key, g, permutations, antithetic=antithetic)  # (P, G)
    # Every order credits its last group with v(all) and debits its first with v(none).
    first = jnp.sum(jax.nn.one_hot(orders[:, 0], g, dtype=acc), axis=0)
    last = jnp.sum(jax.nn.one_hot(orders[:, -1], g, dtype=acc), axis=0)
    phi = last[:, None] * full[None, :] - first[:, None] * empty[None, :]

    if g > 1:
        ranks = jnp.argsort(orders, axis=1)  # ranks[k, i]: the position of group i in order k

        def draw(d):
            # Draw d: order k = d // (G - 1), the coalition of its first j = d % (G - 1) + 1 groups. Its value is
            # the "after" of group order[j - 1] and the "before" of group order[j].
            k, j = d // (g - 1), d % (g - 1) + 1
            value = coalition_values(f, x, b, labels, ranks[k] < j).astype(acc)
            coef = jax.nn.one_hot(orders[k, j - 1], g, dtype=acc) - jax.nn.one_hot(orders[k, j], g, dtype=acc)
            return coef[:, None] * value[None, :]

        phi = phi + sum_over_draws(draw, permutations * (g - 1), batch_size)
    return spread(phi.T / permutations, labels).astype(x.dtype)
