"""Training loops: optax optimizers, one ``lax.scan`` per run, a grid of runs as one ``jit`` of ``vmap``.

* ``make_optimizer(name, learning_rate, **options)``: the study's six optimizers with PyTorch's defaults.
* ``fit(apply_fn, params, x, y, key, ...) -> FitResult(params, losses)``: one pure, jitted training run.
* ``fit_grid(apply_fn, params, x, y, keys, ...)``: many runs (formulas x seeds x settings) in one compiled program;
  every array argument carries a leading grid axis (``x``/``y`` may instead be shared, ``data_axis=None``).
* ``predict`` / ``predict_grid``: ``apply`` in eval mode (no dropout), jitted.

Both ``fit`` and ``fit_grid`` are module-level ``jax.jit``s whose static arguments are ``apply_fn`` (hashed by
identity: pass a stable function such as ``chaosjax.models.mlp(...).apply``, which is cached, not a fresh lambda),
the optimizer name and options, ``epochs``, ``batch_size``, ``loss``, ``dropout`` and ``average``. A second call with
the same shapes and static arguments reuses the compiled program; the learning rate is a traced argument, so a
learning-rate sweep neither retraces nor recompiles.

Optimizers and PyTorch (the study trained with ``torch.optim``; where optax's defaults differ, chaosjax uses
PyTorch's, and each option can be overridden by its PyTorch name through ``make_optimizer``'s keywords):

=========  ==========================================================================================================
adam       ``betas=(0.9, 0.999), eps=1e-8``; optax's ``adam`` is the same update.
adagrad    ``eps=1e-10, initial_accumulator_value=0.0`` (optax: 0.1 and 1e-7 with eps inside the root); the update is
           PyTorch's ``g / (sqrt(sum g^2) + eps)`` exactly (``scale_by_torch_adagrad``). No ``lr_decay``.
adadelta   ``rho=0.9, eps=1e-6`` (same as optax). PyTorch's *default* lr is 1.0, but the caller passes the lr: the
           study's ablation ran every optimizer at the same lr, which leaves Adadelta barely moving.
rmsprop    ``alpha=0.99, eps=1e-8`` with eps outside the root, no momentum, not centered (optax: decay 0.9, eps in
           the root).
sgd        plain SGD, ``momentum=0.0, nesterov=False``.
asgd       ``lambd=1e-4, alpha=0.75, t0=1e6``: PyTorch's ``ASGD`` exactly (``asgd``), see below.
=========  ==========================================================================================================

All of them also take ``weight_decay`` (PyTorch's coupled L2: ``weight_decay * param`` added to the gradient).

ASGD. optax has none; ``asgd`` reproduces ``torch.optim.ASGD`` step for step: with step size ``eta_t`` (starting at
``lr``) each step does ``p <- p * (1 - lambd * eta_t) - eta_t * g``, then updates the average
``ax <- ax + mu_t * (p - ax)``, then ``eta_{t+1} = lr / (1 + lambd * lr * t) ** alpha`` and
``mu_{t+1} = 1 / max(1, t - t0)``. As in PyTorch the *parameters* are the plain (decayed-step, shrunk) SGD iterate;
the Polyak average ``ax`` is kept in the optimizer state and read with ``asgd_average(opt_state)``, or returned by
``fit(..., average=True)``. With PyTorch's default ``t0=1e6`` averaging never starts within the study's 1,000 epochs
(``ax`` equals the iterate), which is what the study measured; pass ``optimizer_options={"t0": 0}`` for a true
running average of all iterates.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import numbers
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "ASGDState",
    "FitResult",
    "ScaleByTorchAdagradState",
    "asgd",
    "asgd_average",
    "fit",
    "fit_grid",
    "fit_traced",
    "make_optimizer",
    "predict",
    "predict_grid",
    "progress_to",
    "scale_by_torch_adagrad",
]

Params = Any

#: The study's six optimizers, PyTorch's defaults for their options (``lr`` is always passed by the caller).
OPTIMIZERS: dict[str, dict[str, Any]] = {
    "adam": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
    "adagrad": {"eps": 1e-10, "initial_accumulator_value": 0.0, "weight_decay": 0.0},
    "adadelta": {"rho": 0.9, "eps": 1e-6, "weight_decay": 0.0},
    "rmsprop": {"alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": False, "weight_decay": 0.0},
    "sgd": {"momentum": 0.0, "nesterov": False, "weight_decay": 0.0},
    "asgd": {"lambd": 1e-4, "alpha": 0.75, "t0": 1e6, "weight_decay": 0.0},
}

#: Training losses: "mse" (mean squared error, regression) and "bce" (binary cross-entropy on logits).
LOSSES = ("mse", "bce")

# Number of times each jitted entry point has been traced (tests use it to prove that nothing retraces).
_TRACES: collections.Counter[str] = collections.Counter()


class FitResult(NamedTuple):
    """A finished run: the trained ``params`` and the per-epoch training loss ``losses`` of shape ``(epochs,)``
    (with a leading grid axis on both from ``fit_grid``). With ``snapshot_every=K``, ``snapshots`` holds the
    parameters after epochs ``K, 2K, ...`` (a leading snapshot axis on every leaf, after the grid axis)."""

    params: Params
    losses: jax.Array
    snapshots: Params | None = None


# --------------------------------------------------------------------------------------------------- optimizers


class ScaleByTorchAdagradState(NamedTuple):
    sum_of_squares: Params


def scale_by_torch_adagrad(eps: float = 1e-10, initial_accumulator_value: float = 0.0) -> optax.GradientTransformation:
    """PyTorch's Adagrad scaling: ``s <- s + g^2``, ``g / (sqrt(s) + eps)`` (eps outside the root)."""

    def init_fn(params):
        return ScaleByTorchAdagradState(optax.tree.full_like(params, initial_accumulator_value))

    def update_fn(updates, state, params=None):
        del params
        sums = jax.tree.map(lambda s, g: s + g * g, state.sum_of_squares, updates)
        updates = jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + eps), updates, sums)
        return updates, ScaleByTorchAdagradState(sums)

    return optax.GradientTransformation(init_fn, update_fn)


class ASGDState(NamedTuple):
    """State of ``asgd``: PyTorch ``ASGD``'s ``step``, ``eta``, ``mu`` and the averaged parameters ``ax``."""

    count: jax.Array
    eta: jax.Array
    mu: jax.Array
    ax: Params


def asgd(
    learning_rate: float | jax.Array,
    *,
    lambd: float = 1e-4,
    alpha: float = 0.75,
    t0: float = 1e6,
    weight_decay: float = 0.0,
) -> optax.GradientTransformation:
    """Averaged SGD, step for step ``torch.optim.ASGD`` (see the module docstring).

    ``update`` needs ``params``. The returned updates move the parameters to the plain iterate; the running
    average lives in the state (``asgd_average``). ``learning_rate`` may be a traced scalar.
    """

    def init_fn(params):
        lr = jnp.asarray(learning_rate, dtype=jnp.result_type(float))
        return ASGDState(
            count=jnp.zeros([], jnp.int32),
            eta=lr,
            mu=jnp.ones([], lr.dtype),
            ax=jax.tree.map(jnp.copy, params),
        )

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("asgd: `params` must be passed to update()")
        eta, mu = state.eta, state.mu
        step = state.count + 1

        def delta(g, p):
            if weight_decay:
                g = g + weight_decay * p
            e = eta.astype(p.dtype)
            return -(lambd * e) * p - e * g

        updates = jax.tree.map(delta, updates, params)
        new_params = optax.apply_updates(params, updates)
        ax = jax.tree.map(lambda a, p: jnp.where(mu == 1, p, a + (p - a) * mu.astype(p.dtype)), state.ax, new_params)
        lr = jnp.asarray(learning_rate, dtype=eta.dtype)
        t = step.astype(eta.dtype)
        new_eta = lr / (1 + lambd * lr * t) ** alpha
        new_mu = 1 / jnp.maximum(jnp.ones([], eta.dtype), t - t0)
        return updates, ASGDState(count=step, eta=new_eta, mu=new_mu, ax=ax)

    return optax.GradientTransformation(init_fn, update_fn)


def asgd_average(opt_state: Any) -> Params:
    """The averaged parameters ``ax`` held by the ``ASGDState`` inside ``opt_state``."""
    found = [s for s in jax.tree.leaves(opt_state, is_leaf=lambda s: isinstance(s, ASGDState))
             if isinstance(s, ASGDState)]
    if len(found) != 1:
        raise ValueError(f"asgd_average: `opt_state` must hold exactly one ASGDState, found {len(found)}")
    return found[0].ax


def _check_name(kind: str, name: Any, valid) -> None:
    if not isinstance(name, str) or name not in valid:
        raise ValueError(f"{kind}: unknown name {name!r}; expected one of {sorted(valid)}")


def make_optimizer(name: str, learning_rate: float | jax.Array, **options: Any) -> optax.GradientTransformation:
    """The optimizer ``name`` (one of ``OPTIMIZERS``) at ``learning_rate``, with PyTorch's defaults.

    ``learning_rate`` may be a traced scalar (a learning-rate sweep is a ``vmap``). ``options`` override defaults by
    their PyTorch names (``OPTIMIZERS[name]`` lists them), e.g. ``make_optimizer("asgd", 0.01, t0=0)``.
    """
    _check_name("optimizer", name, OPTIMIZERS)
    unknown = set(options) - set(OPTIMIZERS[name])
    if unknown:
        raise ValueError(
            f"optimizer {name!r}: unknown options {sorted(unknown)}; expected some of {sorted(OPTIMIZERS[name])}"
        )
    o = {**OPTIMIZERS[name], **options}
    wd = o.pop("weight_decay")
    if name == "asgd":
        return asgd(learning_rate, weight_decay=wd, **o)
    if name == "adam":
        b1, b2 = o["betas"]
        tx = optax.adam(learning_rate, b1=b1, b2=b2, eps=o["eps"])
    elif name == "adagrad":
        tx = optax.chain(scale_by_torch_adagrad(o["eps"], o["initial_accumulator_value"]),
                         optax.scale_by_learning_rate(learning_rate))
    elif name == "adadelta":
        tx = optax.adadelta(learning_rate, rho=o["rho"], eps=o["eps"])
    elif name == "rmsprop":
        tx = optax.rmsprop(learning_rate, decay=o["alpha"], eps=o["eps"], eps_in_sqrt=False,
                           momentum=o["momentum"] or None, centered=o["centered"])
    else:  # sgd
        tx = optax.sgd(learning_rate, momentum=o["momentum"] or None, nesterov=o["nesterov"])
    if wd:
        tx = optax.chain(optax.add_decayed_weights(wd), tx)
    return tx


# --------------------------------------------------------------------------------------------------------- losses


def _loss_value(name: str, pred: jax.Array, y: jax.Array) -> jax.Array:
    if pred.ndim == y.ndim + 1 and pred.shape[-1] == 1:
        pred = pred[..., 0]  # (n, 1) model output against (n,) targets
    if pred.shape != y.shape:
        raise ValueError(
            f"fit: model output of shape {pred.shape} does not fit targets `y` of shape {y.shape} "
            f"(expected (n, 1) or the shape of y)"
        )
    y = y.astype(pred.dtype)
    if name == "mse":
        return jnp.mean(jnp.square(pred - y))
    return jnp.mean(optax.sigmoid_binary_cross_entropy(pred, y))  # "bce": logits, like BCEWithLogitsLoss


# ------------------------------------------------------------------------------------------------------ progress

_PROGRESS_TICKS = 50
_PROGRESS_SINKS: list[Callable[[int, int], None]] = []


def _report_progress(epoch, epochs) -> None:
    if _PROGRESS_SINKS:
        _PROGRESS_SINKS[-1](int(epoch), int(epochs))


@contextlib.contextmanager
def progress_to(sink: Callable[[int, int], None]):
    """Within the block, training programs call `sink(epoch, epochs)` about 50 times per run (from the
    device, through a host callback), e.g. to move a progress line. Programs traced within the block compile the
    ticks in (the same numbers; JAX's persistent cache does not store them); those traced outside do not."""
    _PROGRESS_SINKS.append(sink)
    try:
        yield
    finally:
        _PROGRESS_SINKS.pop()


def _with_progress(train: Callable[[], FitResult], name: str, *, runs: int, epochs: int) -> FitResult:
    """`fit(progress=True)`: ``train()`` under one progress phase (compiling, then ``runs x epochs`` epochs),
    which ends when the result is ready, not when the program is dispatched."""
    from chaosjax._progress import Progress

    label = f"{name} ({runs} runs)" if runs > 1 else name
    with Progress().phase(label, total=runs * epochs, unit="epochs", compiling=True) as phase, \
            progress_to(lambda epoch, of: phase.set(epoch * runs * epochs // of)):
        result = jax.block_until_ready(train())
        jax.effects_barrier()  # the last ticks' host callbacks
        phase.set(runs * epochs)
    return result


# ------------------------------------------------------------------------------------------------------ training


def _fit_run(apply_fn, params, x, y, key, learning_rate, *, optimizer, options, epochs, batch_size, loss, dropout,
             average, ticks=False, progress_base=0, progress_total=None, snapshot_every=0):
    """One training run; pure, traced by the jitted entry points. Progress ticks report
    ``(progress_base + epoch, progress_total or epochs)`` (a grid run in groups counts across groups)."""
    opt = make_optimizer(optimizer, learning_rate, **dict(options))
    opt_state = opt.init(params)
    n = x.shape[0]

    def objective(p, xb, yb, dkey):
        pred = apply_fn(p, xb, dropout_key=dkey) if dropout else apply_fn(p, xb)
        return _loss_value(loss, pred, yb)

    grad_fn = jax.value_and_grad(objective)

    def step(params, opt_state, xb, yb, dkey):
        value, grads = grad_fn(params, xb, yb, dkey)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    every = max(1, (progress_total or epochs) // _PROGRESS_TICKS)  # ~50 ticks per program, however grouped

    def epoch(carry, i):
        params, opt_state = carry
        ekey = jax.random.fold_in(key, i)
        # A host callback a few dozen times per run feeds progress lines (`progress_to`); under vmap it runs
        # once per tick, not once per grid member, and costs nothing measurable against the epochs. Compiled in
        # only when someone listens (`ticks`): JAX's persistent cache refuses programs with host callbacks.
        if ticks:
            jax.lax.cond((i + 1) % every == 0,
                         lambda: jax.debug.callback(_report_progress, progress_base + i + 1,
                                                    progress_total or epochs),
                         lambda: None)
        if batch_size is None:
            params, opt_state, value = step(params, opt_state, x, y, jax.random.fold_in(ekey, 1))
            return (params, opt_state), value
        n_batches = n // batch_size
        order = jax.random.permutation(jax.random.fold_in(ekey, 0), n)[: n_batches * batch_size]
        order = order.reshape(n_batches, batch_size)

        def minibatch(carry, b):
            params, opt_state = carry
            idx = order[b]
            xb, yb = jnp.take(x, idx, axis=0), jnp.take(y, idx, axis=0)
            dkey = jax.random.fold_in(jax.random.fold_in(ekey, 1), b)
            params, opt_state, value = step(params, opt_state, xb, yb, dkey)
            return (params, opt_state), value

        (params, opt_state), values = jax.lax.scan(minibatch, (params, opt_state), jnp.arange(n_batches))
        return (params, opt_state), jnp.mean(values)

    if not snapshot_every:
        (params, opt_state), losses = jax.lax.scan(epoch, (params, opt_state), jnp.arange(epochs))
        if average:
            params = asgd_average(opt_state)
        return FitResult(params, losses)
    # The same epochs in segments of `snapshot_every` (the same step on the same epoch indices, so the same
    # numbers), keeping the parameters after each segment; the epochs after the last full segment follow.
    def segment(carry, s):
        carry, values = jax.lax.scan(epoch, carry, s * snapshot_every + jnp.arange(snapshot_every))
        return carry, (values, asgd_average(carry[1]) if average else carry[0])

    segments = epochs // snapshot_every
    carry, (losses, snapshots) = jax.lax.scan(segment, (params, opt_state), jnp.arange(segments))
    losses = losses.reshape(-1)
    if segments * snapshot_every < epochs:
        carry, tail = jax.lax.scan(epoch, carry, jnp.arange(segments * snapshot_every, epochs))
        losses = jnp.concatenate([losses, tail])
    params, opt_state = carry
    return FitResult(asgd_average(opt_state) if average else params, losses, snapshots)


_STATIC = ("apply_fn", "optimizer", "options", "epochs", "batch_size", "loss", "dropout", "average", "ticks")
_GRID_STATIC = _STATIC + ("data_axis", "lr_axis", "group", "snapshot_every")


def _fit_single(apply_fn, params, x, y, key, learning_rate, *, optimizer, options, epochs, batch_size, loss, dropout,
                average, ticks):
    _TRACES["fit"] += 1
    return _fit_run(apply_fn, params, x, y, key, learning_rate, optimizer=optimizer, options=options, epochs=epochs,
                    batch_size=batch_size, loss=loss, dropout=dropout, average=average, ticks=ticks)


def _fit_grid(apply_fn, params, x, y, keys, learning_rate, *, data_axis, lr_axis, group, optimizer, options, epochs,
              batch_size, loss, dropout, average, ticks, snapshot_every=0):
    _TRACES["fit_grid"] += 1
    g = keys.shape[0]
    group = min(group or g, g)
    groups = -(-g // group)

    def run_group(p, xs, ys, k, lr, base=0):
        def run(p, xs, ys, k, lr):
            return _fit_run(apply_fn, p, xs, ys, k, lr, optimizer=optimizer, options=options, epochs=epochs,
                            batch_size=batch_size, loss=loss, dropout=dropout, average=average, ticks=ticks,
                            progress_base=base, progress_total=groups * epochs, snapshot_every=snapshot_every)

        return jax.vmap(run, in_axes=(0, data_axis, data_axis, 0, lr_axis))(p, xs, ys, k, lr)

    if groups == 1:
        return run_group(params, x, y, keys, learning_rate)
    # Groups of `group` runs one after another (a scan), each group vmapped: on a CPU a group's activations
    # stay in cache, which the whole grid's do not. The last group is padded with copies of the last run.
    per_run = {"p": params, "k": keys}
    if data_axis == 0:
        per_run.update(x=x, y=y)
    if lr_axis == 0:
        per_run["lr"] = learning_rate
    pad = groups * group - g

    def split(a):
        a = jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]) if pad else a
        return a.reshape((groups, group) + a.shape[1:])

    def body(_, args):
        index, r = args
        return None, run_group(r["p"], r.get("x", x), r.get("y", y), r["k"], r.get("lr", learning_rate),
                               base=index * epochs)

    _, out = jax.lax.scan(body, None, (jnp.arange(groups), jax.tree.map(split, per_run)))
    return jax.tree.map(lambda a: a.reshape((groups * group,) + a.shape[2:])[:g], out)


_fit_single_jit = jax.jit(_fit_single, static_argnames=_STATIC)
_fit_grid_jit = jax.jit(_fit_grid, static_argnames=_GRID_STATIC)

#: Bytes of one group's training inputs when `fit_grid` groups runs on a CPU (``group="auto"``): about a
#: core's share of cache. On a 2-core CPU the study's 15 formulas (8,000 x 115 rows each) train at ~170 GFLOP/s
#: one at a time against ~128 GFLOP/s all 15 vmapped at once (`benchmarks/symbolic.py` reports the rate).
_CPU_GROUP_BYTES = 4 << 20


def _auto_group(x, data_axis) -> int | None:
    sharding = getattr(x, "sharding", None)
    if jax.default_backend() != "cpu" or (sharding is not None and len(sharding.device_set) > 1):
        return None  # accelerators, or a grid sharded across devices: the whole grid side by side
    per_run = x[0] if data_axis == 0 else x
    return max(1, _CPU_GROUP_BYTES // max(1, per_run.size * per_run.dtype.itemsize))


# ---------------------------------------------------------------------------------------------------- validation


def _is_concrete(a) -> bool:
    return not isinstance(a, jax.core.Tracer)


def _check_finite(name: str, a) -> None:
    if _is_concrete(a) and jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating) and not bool(jnp.all(jnp.isfinite(a))):
        raise ValueError(f"fit: `{name}` contains NaN or infinite values")


def _check_statics(optimizer, options, epochs, batch_size, loss, dropout, average, n) -> tuple:
    _check_name("optimizer", optimizer, OPTIMIZERS)
    _check_name("loss", loss, LOSSES)
    options = dict(options or {})
    make_optimizer(optimizer, 1.0, **options)  # validates option names
    try:
        options = tuple(sorted(options.items()))
        hash(options)
    except TypeError:
        raise TypeError("fit: `optimizer_options` values must be hashable (numbers, bools, tuples)") from None
    if not isinstance(epochs, numbers.Integral) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"fit: `epochs` must be an int >= 1, got {epochs!r}")
    if batch_size is not None:
        if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or not 1 <= batch_size <= n:
            raise ValueError(f"fit: `batch_size` must be None (full batch) or an int in [1, n={n}], got {batch_size!r}")
        batch_size = int(batch_size)
    if average and optimizer != "asgd":
        raise ValueError(f"fit: `average=True` needs optimizer='asgd', got {optimizer!r}")
    # `ticks`: progress ticks compiled in when a progress sink listens now (`progress_to`, `progress=True`).
    return dict(optimizer=optimizer, options=options, epochs=int(epochs), batch_size=batch_size, loss=loss,
                dropout=bool(dropout), average=bool(average), ticks=bool(_PROGRESS_SINKS))


def _float_array(value) -> jax.Array:
    return jnp.asarray(value, dtype=jnp.result_type(float))


def _is_typed_key(key) -> bool:
    return jnp.issubdtype(key.dtype, jax.dtypes.prng_key)


def fit(
    apply_fn: Callable[..., jax.Array],
    params: Params,
    x: jax.Array,
    y: jax.Array,
    key: jax.Array,
    *,
    optimizer: str = "adam",
    learning_rate: float | jax.Array = 1e-3,
    epochs: int = 1000,
    batch_size: int | None = None,
    loss: str = "mse",
    dropout: bool = False,
    average: bool = False,
    optimizer_options: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> FitResult:
    """Trains ``params`` of ``apply_fn`` on ``(x, y)``; one pure, jitted program (``lax.scan`` over epochs).

    Args:
      apply_fn: ``apply_fn(params, x) -> (n, 1)`` (or ``(n,)``/the shape of ``y``); with ``dropout=True`` it is
        called as ``apply_fn(params, x, dropout_key=k)`` with a fresh key every step. Static (hashed by identity).
      params: initial parameters (e.g. ``mlp(...).init(key)``).
      x: ``(n, ...)`` inputs. y: ``(n,)`` targets; for ``loss="bce"`` labels in {0, 1}, the model gives logits.
      key: the run's randomness (minibatch order, dropout); typed or raw key. Epoch ``i`` uses ``fold_in(key, i)``.
      optimizer: one of ``OPTIMIZERS``, with PyTorch's defaults; ``optimizer_options`` overrides them by PyTorch
        name (e.g. ``{"t0": 0}`` for ASGD).
      learning_rate: scalar; traced, so changing it does not recompile.
      epochs: number of passes over the training set (the study: 1,000 full-batch epochs, Adam, lr 1e-3, MSE).
      batch_size: ``None`` is full batch (one step per epoch). Otherwise each epoch draws a fresh permutation and
        takes ``n // batch_size`` steps; the last partial batch is dropped (``DataLoader(drop_last=True)``), so
        which rows are left out changes from epoch to epoch.
      loss: ``"mse"`` (mean squared error) or ``"bce"`` (mean binary cross-entropy on logits).
      dropout: pass a fresh ``dropout_key`` to ``apply_fn`` every step.
      average: with ``optimizer="asgd"``, return the averaged parameters instead of the last iterate.
      progress: a progress line on stderr (compiling, then epochs with an ETA) and wait for the result; the
        compiled program is the same either way.

    Returns:
      ``FitResult(params, losses)``; ``losses[i]`` is epoch ``i``'s training loss: with full batch, the loss of the
      parameters before that epoch's step (as a PyTorch loop logs ``loss.item()``), with minibatches the mean of
      the epoch's minibatch losses.
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim < 1 or y.ndim < 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"fit: `x` and `y` must have the same number of rows, got shapes {x.shape} and {y.shape}")
    statics = _check_statics(optimizer, optimizer_options, epochs, batch_size, loss, dropout, average, x.shape[0])
    key = jnp.asarray(key)
    if not (_is_typed_key(key) and key.shape == ()) and not (key.dtype == jnp.uint32 and key.shape == (2,)):
        raise ValueError(f"fit: `key` must be one PRNG key, got dtype {key.dtype} and shape {key.shape}")
    lr = _float_array(learning_rate)
    if lr.ndim != 0:
        raise ValueError(f"fit: `learning_rate` must be a scalar, got shape {lr.shape} (use fit_grid for a sweep)")
    _check_finite("x", x)
    _check_finite("y", y)
    if progress:
        statics["ticks"] = True
        return _with_progress(lambda: _fit_single_jit(apply_fn, params, x, y, key, lr, **statics), "fit", runs=1,
                              epochs=statics["epochs"])
    return _fit_single_jit(apply_fn, params, x, y, key, lr, **statics)


def fit_grid(
    apply_fn: Callable[..., jax.Array],
    params: Params,
    x: jax.Array,
    y: jax.Array,
    keys: jax.Array,
    *,
    optimizer: str = "adam",
    learning_rate: float | jax.Array = 1e-3,
    epochs: int = 1000,
    batch_size: int | None = None,
    loss: str = "mse",
    dropout: bool = False,
    average: bool = False,
    optimizer_options: Mapping[str, Any] | None = None,
    data_axis: int | None = 0,
    group: int | str | None = "auto",
    snapshot_every: int | None = None,
    progress: bool = False,
) -> FitResult:
    """A grid of ``G`` independent ``fit`` runs as one ``jit(vmap(fit))``.

    Every leaf of ``params`` and ``keys`` carries a leading axis of size ``G``; so do ``x`` and ``y`` unless
    ``data_axis=None``, in which case all runs share one dataset (cheaper: one input for every model). Runs whose
    datasets have different widths (formulas with different numbers of predictive columns) are the caller's to pad
    to a common shape (zero columns). ``learning_rate`` is a scalar or a ``(G,)`` array (a learning-rate sweep).
    Static options are shared by the whole grid and are those of ``fit``. ``group`` runs are vmapped side by side
    and the groups run one after another in the same program (``None``: the whole grid at once; ``"auto"``: the
    whole grid on accelerators, cache-sized groups of about 4 MiB of inputs on a CPU). Row ``g`` of the result
    equals ``fit`` on row ``g`` of the inputs up to float rounding, for any ``group``. The compiled program is
    cached: a second call with the same shapes, dtypes and static options does not retrace.

    ``snapshot_every=K`` also keeps every run's parameters after epochs ``K, 2K, ...`` in ``FitResult.snapshots``
    (leaves ``(G, epochs // K, ...)``; memory: that many copies of the parameters), for measurements during
    training; the training itself is unchanged, number for number.

    ``progress=True`` writes a progress line to stderr (compiling, then the epochs of all runs with an ETA) and
    waits for the result, as ``fit``'s.

    Returns ``FitResult(params, losses)`` with ``losses`` of shape ``(G, epochs)``.
    """
    x, y, keys = jnp.asarray(x), jnp.asarray(y), jnp.asarray(keys)
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError("fit_grid: `params` has no arrays")
    if any(jnp.ndim(leaf) < 1 for leaf in leaves):
        raise ValueError("fit_grid: every leaf of `params` needs a leading grid axis")
    sizes = {int(jnp.shape(leaf)[0]) for leaf in leaves}
    if len(sizes) != 1:
        raise ValueError(f"fit_grid: the leaves of `params` disagree on the grid size: {sorted(sizes)}")
    (g,) = sizes
    if data_axis not in (0, None):
        raise ValueError(f"fit_grid: `data_axis` must be 0 (one dataset per run) or None (shared), got {data_axis!r}")
    if data_axis == 0:
        if x.ndim < 2 or y.ndim < 2 or x.shape[0] != g or y.shape[0] != g:
            raise ValueError(
                f"fit_grid: `x` and `y` need a leading grid axis of size {g} (params), got shapes {x.shape} and "
                f"{y.shape}; pass data_axis=None to share one dataset"
            )
        n_x, n_y = x.shape[1], y.shape[1]
    else:
        if x.ndim < 1 or y.ndim < 1:
            raise ValueError(f"fit_grid: `x` and `y` must have rows, got shapes {x.shape} and {y.shape}")
        n_x, n_y = x.shape[0], y.shape[0]
    if n_x != n_y:
        raise ValueError(f"fit_grid: `x` and `y` must have the same number of rows, got {n_x} and {n_y}")
    statics = _check_statics(optimizer, optimizer_options, epochs, batch_size, loss, dropout, average, n_x)
    key_shape = (g,) if _is_typed_key(keys) else (g, 2)
    if keys.shape != key_shape or not (_is_typed_key(keys) or keys.dtype == jnp.uint32):
        raise ValueError(f"fit_grid: `keys` must be {g} PRNG keys (leading axis {g}), got dtype {keys.dtype} and "
                         f"shape {keys.shape}")
    lr = _float_array(learning_rate)
    if lr.shape not in ((), (g,)):
        raise ValueError(f"fit_grid: `learning_rate` must be a scalar or of shape ({g},), got shape {lr.shape}")
    if group == "auto":
        group = _auto_group(x, data_axis)
    elif group is not None and (isinstance(group, bool) or not isinstance(group, numbers.Integral) or group < 1):
        raise ValueError(f"fit_grid: `group` must be 'auto', None or an integer >= 1, got {group!r}")
    if snapshot_every is not None and (isinstance(snapshot_every, bool) or not isinstance(snapshot_every, numbers.Integral)
                                       or not 1 <= snapshot_every <= statics["epochs"]):
        raise ValueError(f"fit_grid: `snapshot_every` must be None or an int in [1, epochs={statics['epochs']}], "
                         f"got {snapshot_every!r}")
    _check_finite("x", x)
    _check_finite("y", y)
    def train() -> FitResult:
        return _fit_grid_jit(apply_fn, params, x, y, keys, lr, data_axis=data_axis, lr_axis=0 if lr.ndim else None,
                             group=None if group is None or group >= g else int(group),
                             snapshot_every=int(snapshot_every or 0), **statics)

    if progress:
        statics["ticks"] = True
        return _with_progress(train, "fit_grid", runs=g, epochs=statics["epochs"])
    return train()


def fit_traced(
    apply_fn: Callable[..., jax.Array],
    params: Params,
    x: jax.Array,
    y: jax.Array,
    key: jax.Array,
    learning_rate: float | jax.Array = 1e-3,
    *,
    optimizer: str = "adam",
    epochs: int = 1000,
    batch_size: int | None = None,
    loss: str = "mse",
    dropout: bool = False,
    average: bool = False,
    optimizer_options: Mapping[str, Any] | None = None,
) -> FitResult:
    """``fit`` without its own ``jit`` or value checks, for use inside another traced program.

    Recursive feature elimination retrains a model in every round of a ``lax.scan``; it calls this. Static
    options are validated here (at trace time); array values are not inspected (they may be tracers).
    """
    statics = _check_statics(optimizer, optimizer_options, epochs, batch_size, loss, dropout, average, x.shape[0])
    return _fit_run(apply_fn, params, x, y, key, jnp.asarray(learning_rate, jnp.result_type(float)), **statics)


# ---------------------------------------------------------------------------------------------------- prediction


@functools.partial(jax.jit, static_argnames=("apply_fn",))
def _predict(apply_fn, params, x):
    return apply_fn(params, x)


@functools.partial(jax.jit, static_argnames=("apply_fn", "data_axis"))
def _predict_grid(apply_fn, params, x, data_axis):
    return jax.vmap(apply_fn, in_axes=(0, data_axis))(params, x)


def predict(apply_fn: Callable[..., jax.Array], params: Params, x: jax.Array) -> jax.Array:
    """``apply_fn(params, x)`` in eval mode (no dropout key), jitted."""
    return _predict(apply_fn, params, x)


def predict_grid(apply_fn: Callable[..., jax.Array], params: Params, x: jax.Array, *,
                 data_axis: int | None = 0) -> jax.Array:
    """``apply_fn`` over a grid of params (leading axis), eval mode; ``x`` per run (``data_axis=0``) or shared."""
    if data_axis not in (0, None):
        raise ValueError(f"predict_grid: `data_axis` must be 0 or None, got {data_axis!r}")
    return _predict_grid(apply_fn, params, x, data_axis)
