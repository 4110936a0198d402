"""Shared plumbing of the attribution methods: input checks, gradients, chunked sums over draws."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
BatchFn = Callable[[Array], Array]


def check_inputs(f: BatchFn, x: Array, method: str) -> Array:
    """Validates `x` (a floating batch) and that `f` maps it to per-sample scalars `(B,)`.

    Runs at trace time on shapes only (`jax.eval_shape`), so it costs nothing and fails before
    any expensive work.
    """
    if not callable(f):
        raise TypeError(f"{method}: `f` must be a callable mapping a batch (B, ...) to (B,), got {type(f)!r}")
    x = jnp.asarray(x)
    if x.ndim < 1:
        raise ValueError(f"{method}: `x` must be a batch with a leading sample axis, got a scalar")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{method}: `x` must have a floating dtype to be differentiated, got {x.dtype}")
    try:
        out = jax.eval_shape(f, x)
    except Exception as err:
        # Flax NNX refuses a module that updates its own state while traced (jax.grad, jit): BatchNorm in
        # training mode, updating its batch statistics. Name the fix; anything else is f's own error.
        if type(err).__name__ == "TraceContextError":
            raise ValueError(
                f"{method}: `f` updates a model's state while it is traced ({_one_line(err)}). A model in training "
                "mode (BatchNorm on batch statistics, dropout) is not a function of its input: call model.eval() "
                "(Flax NNX) or apply it in inference mode (linen: use_running_average=True) before attributing"
            ) from err
        raise
    if not hasattr(out, "shape") or tuple(out.shape) != (x.shape[0],):
        shape = getattr(out, "shape", type(out).__name__)
        if tuple(getattr(out, "shape", ())) == (x.shape[0], 1):  # a regression head: one output column
            hint = ("For a model with one output column, select it: f = lambda x: apply_fn(x)[:, 0]. "
                    "For a classifier, select a target: f = chaosjax.attribution.target(apply_fn, target).")
        else:
            hint = "For a classifier, select a target: f = chaosjax.attribution.target(apply_fn, target)."
        raise ValueError(
            f"{method}: `f` must return one scalar per sample, shape ({x.shape[0]},), but returned {shape}. {hint}"
        )
    return x


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:200]


def check_positive_int(value: Any, name: str, method: str) -> int:
    """`value` as an int >= 1, or a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{method}: `{name}` must be an integer >= 1, got {value!r}")
    return value


def check_stdev(stdev: Any, method: str) -> None:
    """`stdev` must be a number >= 0 (checked when known: a NaN would make every noisy copy NaN)."""
    if not is_concrete(stdev):
        return
    value = np.asarray(stdev)
    if isinstance(stdev, bool) or value.ndim or value.dtype.kind not in "iuf" or not np.isfinite(value) \
            or not value >= 0:
        raise ValueError(f"{method}: `stdev` must be a finite number >= 0, got {stdev!r}")


def check_batch_size(batch_size: Any, method: str) -> int | None:
    if batch_size is None:
        return None
    return check_positive_int(batch_size, "batch_size", method)


def check_choice(value: Any, name: str, choices: tuple[str, ...] | list[str], method: str) -> str:
    if value not in choices:
        raise ValueError(f"{method}: unknown {name} {value!r}; expected one of {', '.join(map(repr, choices))}")
    return value


def is_concrete(value: Any) -> bool:
    """Whether `value` holds known numbers (not a tracer inside `jit`/`vmap`/`grad`), so checks on values can run."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(value))


def check_finite(value: Any, name: str, method: str) -> None:
    """A ValueError if concrete `value` holds NaN or inf (a traced one cannot be checked, and is not)."""
    if is_concrete(value) and not np.all(np.isfinite(np.asarray(value, dtype=np.float64))):
        raise ValueError(f"{method}: `{name}` must be finite, got NaN or inf")


def broadcast_baseline(baseline: Any, x: Array, method: str, name: str = "baseline") -> Array:
    """A scalar, a per-sample `x.shape[1:]` array, one sample with a batch axis `(1, *x.shape[1:])` (as Captum
    takes it) or a full `x.shape` array, broadcast to `x.shape`; finite when its values are known (a NaN baseline
    would turn every attribution into NaN)."""
    check_finite(baseline, name, method)  # before jnp.asarray, which inside jit would make it a tracer
    b = jnp.asarray(baseline, dtype=x.dtype)
    if b.shape not in ((), x.shape[1:], (1, *x.shape[1:]), x.shape):
        raise ValueError(
            f"{method}: `{name}` must be a scalar, shaped like one sample {tuple(x.shape[1:])} or "
            f"{(1, *x.shape[1:])}, or like the batch {tuple(x.shape)}; got shape {tuple(b.shape)}"
        )
    return jnp.broadcast_to(b, x.shape)


def check_baselines(baselines: Any, x: Array, method: str) -> Array:
    """A distribution of baselines `(N, *S)` (or one baseline, `S` or `(1, *S)`) as an array of `x`'s dtype;
    `None` is one all-zero baseline, the default baseline of every method. Finite when its values are known."""
    if baselines is None:
        return jnp.zeros((1, *x.shape[1:]), x.dtype)
    check_finite(baselines, "baselines", method)
    refs = jnp.asarray(baselines, x.dtype)
    if refs.shape == x.shape[1:]:
        refs = refs[None]
    if refs.ndim != x.ndim or refs.shape[1:] != x.shape[1:] or refs.shape[0] < 1:
        raise ValueError(
            f"{method}: `baselines` must be shaped (N, {', '.join(map(str, x.shape[1:]))}) "
            f"with N >= 1, got {tuple(refs.shape)}"
        )
    return refs


def group_labels(groups: Any, sample_shape: tuple[int, ...], method: str) -> tuple[np.ndarray, int]:
    """`groups` checked and relabelled to `0..G-1` (in sorted order of the labels): a concrete int32 array shaped like
    one sample, and the number of groups `G`.

    `None` makes every feature its own group. Labels need not be contiguous: only labels that occur are
    groups, so an unused label costs no model evaluation. A leading axis of 1, `(1, *S)`, is accepted as Captum's
    `feature_mask` takes it (broadcast over the batch). `groups` must be concrete (numpy, or a jnp array built
    outside `jit`): it fixes how many perturbations are evaluated.
    """
    size = int(np.prod(sample_shape))
    if groups is None:
        return np.arange(size, dtype=np.int32).reshape(sample_shape), size
    if isinstance(groups, jax.core.Tracer):
        raise TypeError(
            f"{method}: `groups` must be a concrete array (numpy or a jnp array built outside jit): "
            "the number of groups sets the number of model evaluations"
        )
    labels = np.asarray(groups)
    if labels.shape == (1, *sample_shape):  # Captum's feature_mask with a batch axis of 1
        labels = labels[0]
    if labels.shape != tuple(sample_shape):
        raise ValueError(
            f"{method}: `groups` must be shaped like one sample {tuple(sample_shape)} (x.shape[1:]) "
            f"or {(1, *sample_shape)}, got {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{method}: `groups` must hold integer group labels, got dtype {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{method}: `groups` labels must be >= 0")
    unique, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(sample_shape).astype(np.int32), int(unique.size)


def spread(values: Array, labels: np.ndarray) -> Array:
    """Per-group values `(B, G)` spread onto the features `(B, *S)`: each feature gets its group's value."""
    return jnp.take(values, jnp.asarray(labels), axis=1)


def solve_dtype(dtype: Any) -> Any:
    """The dtype of a method's linear algebra: at least float32 (bfloat16 and float16 have no solvers, and
    coalition statistics need the precision), float64 when the input is."""
    return jnp.promote_types(dtype, jnp.float32)


def gradient(f: BatchFn, x: Array) -> Array:
    """Per-sample gradients of `f` at `x`: samples do not interact, so the gradient of the sum is
    each sample's own gradient. One forward and one backward pass."""
    return jax.grad(lambda z: jnp.sum(f(z)))(x)


def sum_over_draws(draw: Callable[[Array], Any], num_draws: int, batch_size: int | None) -> Any:
    """`sum_k draw(k)` for k in [0, num_draws), evaluating at most `batch_size` draws at once.

    `draw(k)` returns a pytree of arrays (for example the gradient of `f` at the k-th point of an
    integration path, over the whole batch). Without `batch_size` all draws are vmapped in one go;
    with it, a `lax.scan` over chunks keeps only `batch_size` draws and a running sum alive, so
    memory is bounded whatever `num_draws` is. Draws past the end of the last chunk are masked out.
    """
    if batch_size is None or batch_size >= num_draws:
        out = jax.vmap(draw)(jnp.arange(num_draws))
        return jax.tree.map(lambda a: jnp.sum(a, axis=0), out)

    num_chunks = math.ceil(num_draws / batch_size)
    chunks = jnp.arange(num_chunks * batch_size).reshape(num_chunks, batch_size)

    def body(total, ks):
        valid = ks < num_draws
        out = jax.vmap(draw)(jnp.minimum(ks, num_draws - 1))

        def masked_sum(a):
            mask = valid.reshape(valid.shape + (1,) * (a.ndim - 1))
            return jnp.sum(jnp.where(mask, a, jnp.zeros((), a.dtype)), axis=0)

        return jax.tree.map(lambda t, a: t + masked_sum(a), total, out), None

    template = jax.eval_shape(draw, jnp.zeros((), jnp.int32))
    total0 = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), template)
    total, _ = jax.lax.scan(body, total0, chunks)
    return total


def map_over_draws(draw: Callable[[Array], Any], num_draws: int, batch_size: int | None) -> Any:
    """`[draw(k) for k in range(num_draws)]` stacked on a leading axis, at most `batch_size` draws at once.

    For methods that need every draw's value (a regression over perturbations), not just their sum: the
    stacked outputs must be small (one scalar per row per draw), while each draw's inputs (a perturbed copy
    of the batch) are only alive `batch_size` at a time.
    """
    ks = jnp.arange(num_draws)
    if batch_size is None or batch_size >= num_draws:
        return jax.vmap(draw)(ks)
    return jax.lax.map(draw, ks, batch_size=batch_size)


def target(apply_fn: Callable[[Array], Array], target: Any) -> BatchFn:
    """Turns a classifier `apply_fn: (B, ...) -> (B, C)` into `f: (B, ...) -> (B,)` selecting `target`.

    `target` is a class index shared by all samples, or an int array `(B,)` with one class per
    sample. The returned function is what every attribution method takes.

        f = target(lambda x: model_apply(params, x), labels)
        attr = integrated_gradients(f, x)

    An index outside `[0, C)` is refused with a ValueError when `target` holds known numbers (the check runs
    when `f` is first traced and sees `C`). A traced `target` (computed inside `jit` or `vmap`, e.g. the
    predicted class) cannot be checked: there, an index outside `[0, C)`, negative ones included, selects NaN,
    so the attributions come out NaN rather than silently of another class.
    """
    if isinstance(target, bool) or (isinstance(target, (list, tuple)) and any(isinstance(v, bool) for v in target)):
        raise TypeError(f"target: class indices must be integers, got {target!r}")
    t = jnp.asarray(target)
    if not jnp.issubdtype(t.dtype, jnp.integer):
        raise TypeError(f"target: class indices must be integers, got dtype {t.dtype}")
    if t.ndim > 1:
        raise ValueError(f"target: expected a scalar or a (B,) array of class indices, got shape {t.shape}")
    known = np.asarray(t) if is_concrete(t) else None  # the values, to check against C once f sees the logits

    def f(x: Array) -> Array:
        logits = apply_fn(x)
        if logits.ndim != 2:
            raise ValueError(f"target: apply_fn must return (B, C) scores, got shape {logits.shape}")
        if t.ndim == 1 and t.shape[0] != logits.shape[0]:
            raise ValueError(
                f"target: {t.shape[0]} targets for a batch of {logits.shape[0]}; pass one target per sample"
            )
        classes = logits.shape[1]
        if known is not None and known.size and (known.min() < 0 or known.max() >= classes):
            bad = int(known.min()) if known.min() < 0 else int(known.max())
            raise ValueError(f"target: class index {bad} is outside the {classes} classes of apply_fn's output "
                             f"(expected 0 to {classes - 1})")
        idx = jnp.broadcast_to(t, (logits.shape[0],))
        idx = jnp.where(idx < 0, classes, idx)  # out of range either way: the gather fills NaN (negatives would wrap)
        return jnp.take_along_axis(logits, idx[:, None], axis=1)[:, 0]

    return f


def completeness_delta(f: BatchFn, x: Array, attributions: Array, baseline: Any = 0.0, *,
                       baselines: Any = None) -> Array:
    """How far each sample's attributions are from summing to `f(x) - f(baseline)`: `(B,)`.

    `delta_i = sum_j a_ij - (f(x_i) - f(b_i))`, Captum's convergence delta (`return_convergence_delta=True`) as a
    function of its own. Methods with completeness (integrated gradients up to its quadrature error, DeepLIFT on
    networks of elementwise activations, exact Shapley values, kernel SHAP, feature ablation of one group) give a
    delta near 0 against the baseline they were given.

        attr = integrated_gradients(f, x, steps=20)
        delta = completeness_delta(f, x, attr)          # against the default baseline 0

    Args:
      f: batch `(B, *S)` -> per-sample scalars `(B,)`.
      x: the inputs `(B, *S)`.
      attributions: `(B, *S)`, the attributions of `x`.
      baseline: the baseline the method was given: a scalar, `S`, `(1, *S)` or `(B, *S)`.
      baselines: instead of `baseline`, the distribution `(N, *S)` that `deeplift_shap` or `gradient_shap`
        averaged over: the reference is then the mean `mean_k f(b_k)`.

    Cost: one forward pass on `x` and one on the baseline (or on the `N` baselines).
    """
    x = check_inputs(f, x, "completeness_delta")
    attributions = jnp.asarray(attributions)
    if attributions.shape != x.shape:
        raise ValueError(f"completeness_delta: `attributions` must be shaped like `x` {tuple(x.shape)}, "
                         f"got {tuple(attributions.shape)}")
    if baselines is not None:
        refs = check_baselines(baselines, x, "completeness_delta")
        reference = jnp.mean(jax.vmap(lambda b: f(b[None])[0])(refs))  # one baseline at a time, as the methods
    else:
        reference = f(broadcast_baseline(baseline, x, "completeness_delta"))
    total = jnp.sum(attributions.reshape(x.shape[0], -1), axis=1)
    return total - (f(x) - reference)
