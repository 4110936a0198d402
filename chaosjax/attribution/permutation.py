"""Feature permutation: each group's values shuffled across the batch, as Captum's `FeaturePermutation`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from chaosjax.attribution._core import (
    Array,
    BatchFn,
    check_batch_size,
    check_inputs,
    group_labels,
    sum_over_draws,
)


def batch_permutations(key: Array, num_groups: int, batch: int) -> Array:
    """The row orders `feature_permutation` gives its groups: `(G, batch)`, one uniform permutation of the rows
    per group (the argsort of uniform numbers, drawn at once from `key`); an order that happens to be the
    identity is replaced by a shift by one (Captum redraws it)."""
    orders = jnp.argsort(jax.random.uniform(key, (num_groups, batch)), axis=1)
    rows = jnp.arange(batch)
    identity = jnp.all(orders == rows[None], axis=1, keepdims=True)
    return jnp.where(identity, jnp.roll(rows, 1)[None], orders)


def feature_permutation(
    f: BatchFn,
    x: Array,
    *,
    key: Array,
    groups: ArrayLike | None = None,
    batch_size: int | None = None,
) -> Array:
    """Permutation importance per row: `a_i = f(x_i) - f(x_i with group g taken from row pi_g(i))`.

    Each group's features are shuffled across the batch with their own random row order `pi_g`, breaking
    their link to the rest of the row while keeping their distribution; a row's drop in `f` is its
    attribution. The batch is the sample the values are drawn from, so it needs at least two rows, and
    more rows give a better one. In expectation over orders this is `f(x_i) - mean_k f(x_i with group g
    from row k)`.

    Args:
      f: batch `(B, *S)` -> per-sample scalars `(B,)`.
      x: the inputs `(B, *S)`, `B >= 2`.
      key: PRNG key for the orders (see `batch_permutations`); results do not depend on `batch_size`.
      groups: int array shaped `S` labelling groups permuted together; `None`: every feature alone. Concrete.
      batch_size: evaluate at most this many permuted copies (each over the whole batch) at once.

    Cost: `G + 1` forward passes over the batch.
    Captum: `FeaturePermutation(f).attribute(x, feature_mask=groups)`.
    """
    x = check_inputs(f, x, "feature_permutation")
    batch_size = check_batch_size(batch_size, "feature_permutation")
    if x.shape[0] < 2:
        raise ValueError(
            f"feature_permutation: `x` must hold at least 2 rows (features are permuted across the batch), "
            f"got a batch of {x.shape[0]}"
        )
    labels, num_groups = group_labels(groups, tuple(x.shape[1:]), "feature_permutation")
    if num_groups == 0:
        return jnp.zeros_like(x)
    labels = jnp.asarray(labels)
    full = f(x)
    expand = (x.shape[0],) + (1,) * (x.ndim - 1)
    orders = batch_permutations(key, num_groups, x.shape[0])

    def draw(g):
        member = (labels == g)[None]
        shuffled = jnp.where(member, x[orders[g]], x)
        return (full - f(shuffled)).reshape(expand) * member.astype(x.dtype)

    return sum_over_draws(draw, num_groups, batch_size)
