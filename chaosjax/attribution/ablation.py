"""Feature ablation (occlusion of single features, patches or channels)."""

from __future__ import annotations

import jax.numpy as jnp
from jax.typing import ArrayLike

from chaosjax.attribution._core import (
    Array,
    BatchFn,
    broadcast_baseline,
    check_batch_size,
    check_inputs,
    group_labels,
    sum_over_draws,
)


def feature_ablation(
    f: BatchFn,
    x: Array,
    *,
    baseline: ArrayLike = 0.0,
    groups: ArrayLike | None = None,
    batch_size: int | None = None,
    key: Array | None = None,
) -> Array:
    """Feature ablation: `a_j = f(x) - f(x with group(j) replaced by the baseline)`.

    Every feature of a group gets the group's score (Captum's convention). Without `groups` each
    feature is its own group.

    Args:
      f: batch `(B, *S)` -> per-sample scalars `(B,)`.
      x: the inputs `(B, *S)`.
      baseline: the replacement value: a scalar, one sample `S`, or one per sample `(B, *S)`.
      groups: int array shaped `S` labelling groups `0..G-1` (patches of an image, channels of a clip).
        Must be concrete (it fixes the number of evaluations); only labels that occur are evaluated.
      batch_size: evaluate at most this many ablated copies (each over the whole batch) at once.
      key: unused: the method is deterministic. Accepted so that every entry of `METHODS` takes
        `m(f, x, key=key)`.

    Cost: `G + 1` forward passes over the batch, no backward pass.
    Captum: `FeatureAblation(f).attribute(x, baselines=baseline, feature_mask=groups)`.
    """
    del key
    x = check_inputs(f, x, "feature_ablation")
    batch_size = check_batch_size(batch_size, "feature_ablation")
    sample_shape = tuple(x.shape[1:])
    labels, num_groups = group_labels(groups, sample_shape, "feature_ablation")
    b = broadcast_baseline(baseline, x, "feature_ablation")
    if num_groups == 0:
        return jnp.zeros_like(x)
    labels = jnp.asarray(labels, jnp.int32)
    full = f(x)
    expand = (x.shape[0],) + (1,) * len(sample_shape)

    def draw(g):
        member = (labels == g)[None]
        drop = full - f(jnp.where(member, b, x))
        return drop.reshape(expand) * member.astype(x.dtype)

    return sum_over_draws(draw, num_groups, batch_size)
