"""Classifier training on batches generated on device: one ``lax.scan`` in one ``jit``, seeds under ``vmap``.

Shared by the vision and audio tracks. Nothing here knows about images or sounds: a model is a
``Functional(init, apply)`` and the data is a pure function that makes each minibatch on device.

API
---
``fit(model, variables, batch_fn, key, *, steps, learning_rate=1e-3, weight_decay=1e-4, warmup_steps=0,
data=None) -> TrainResult(variables, losses)``
    One run of ``steps`` AdamW steps on the mean cross-entropy of integer labels, with a cosine learning-rate
    schedule (linear warm-up over ``warmup_steps`` from 0 to ``learning_rate``, then cosine decay to 0 at
    ``steps``; ``optax.warmup_cosine_decay_schedule``). ``losses`` has shape ``(steps,)``.
``fit_seeds(model, variables, batch_fn, keys, **same)``
    ``S`` independent runs in one ``jit(vmap(fit))``: every leaf of ``variables`` and ``keys`` has a leading
    axis ``S`` (``variables = jax.vmap(model.init)(init_keys)``); ``data`` is shared by all runs.
``predict(model, variables, x, *, batch_size=256, together=False) -> logits`` and ``evaluate(model, variables,
x, labels, *, batch_size=256, together=False) -> Accuracy(top1, top5)``
    Inference mode (BatchNorm on running statistics), over ``x`` in chunks of ``batch_size`` samples
    (``lax.map``), so memory is bounded. Each sample goes through the model alone unless ``together=True``: then
    consecutive batches of ``batch_size`` samples (the last one shorter) go through it together, as a PyTorch
    ``DataLoader(shuffle=False)`` feeds them; only models whose samples interact care (the study's
    batch-attending Transformer). ``top5`` is the share of samples whose label is among the five largest logits
    (with fewer than 5 classes, every label is: top-5 is 1).
``logits_fn(model, variables, *, train=False) -> (x -> logits)``
    The model as a batch function for attribution. ``train=True`` is the study's audio protocol
    (``model.train()`` during attribution): BatchNorm normalises with the statistics of whatever batch ``x`` the
    function is called on (samples interact; the running averages are left as they are).

The model contract
------------------
``apply`` is called in two ways, so two kinds of models plug in:

* **Stateful** (BatchNorm): ``variables = {"params": ..., "batch_stats": ...}`` (flax linen's convention; what
  ``chaosjax.models.vision`` builds). Training calls ``apply(variables, x, train=True) -> (logits,
  new_batch_stats)``; gradients and weight decay touch ``"params"`` only, and ``"batch_stats"`` is replaced by
  what the model returns (running averages). Inference calls ``apply(variables, x) -> logits``.
* **Stateless**: any other params pytree; training and inference call ``apply(params, x) -> logits``.

``batch_fn`` makes a minibatch on device, purely:

* ``batch_fn(key, step) -> (x, labels)`` when ``data`` is None, or ``batch_fn(key, step, data)`` otherwise,
  with ``data`` any pytree passed to the jitted loop as an argument (not baked into the program as a
  constant: pass large banks this way). ``key`` is the run's data key, the same at every step, and ``step`` is
  the traced step index: derive per-step randomness from both (e.g. ``fold_in(key, step // steps_per_epoch)``
  for an epoch's permutation, then slice it at ``step % steps_per_epoch``), so an epoch can be a fixed set.
* ``x`` is a float batch ``(B, ...)`` and ``labels`` integers ``(B,)``; the shapes must not depend on ``step``.

Loop: on accelerators the whole run is one ``lax.scan`` in one ``jit``. On CPU, where XLA runs convolutions
inside a while loop about ten times slower (``default_loop``), ``fit`` calls one compiled step ``steps`` times
from Python instead (``loop="python"``; same numbers, and it lets a progress bar tick per step). Either can be
forced with ``loop=``.

Compilation: ``fit`` / ``fit_seeds`` are module-level ``jax.jit``\\ s with static ``model``, ``batch_fn`` (both
hashed by identity: pass cached, module-level objects, never fresh lambdas), ``steps`` and ``warmup_steps``;
``learning_rate``, ``weight_decay``, ``data`` and the keys are traced, so a second call with the same shapes never
retraces (``_TRACES`` counts traces; tests use it).

Cost: ``steps`` forward and backward passes on ``B`` samples, plus ``batch_fn``'s generation, all in one program;
memory is one minibatch's activations (times ``S`` under ``fit_seeds``).

Example::

    model = chaosjax.models.vision.small_cnn(56)
    variables = jax.vmap(model.init)(jax.random.split(jax.random.key(0), 3))      # 3 seeds
    def batch_fn(key, step, data):                                                 # module-level
        s = data.batch(jax.random.fold_in(key, step), jnp.arange(64), "RBFP")
        return s.image, s.label
    result = fit_seeds(model, variables, batch_fn, jax.random.split(jax.random.key(1), 3), steps=500, data=gen)
    acc = evaluate(model, jax.tree.map(lambda a: a[0], result.variables), x_val, y_val)
"""

from __future__ import annotations

import collections
import functools
import math
import numbers
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = ["Accuracy", "TrainResult", "accuracy", "default_loop", "evaluate", "fit", "fit_seeds", "is_stateful",
           "logits_fn", "predict"]

_TRACES: collections.Counter[str] = collections.Counter()


class TrainResult(NamedTuple):
    """Trained ``variables`` and the per-step training loss ``losses`` ``(steps,)`` (leading seed axis from
    ``fit_seeds``)."""

    variables: Any
    losses: jax.Array


class Accuracy(NamedTuple):
    top1: jax.Array
    top5: jax.Array


def is_stateful(variables: Any) -> bool:
    """True for the ``{"params", "batch_stats"}`` convention (models with BatchNorm)."""
    return isinstance(variables, dict) and set(variables) == {"params", "batch_stats"}


def _call_batch(batch_fn, key, step, data, has_data):
    return batch_fn(key, step, data) if has_data else batch_fn(key, step)


def _optimizer(learning_rate, weight_decay, steps, warmup_steps):
    schedule = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps, steps, end_value=0.0) \
        if warmup_steps else optax.cosine_decay_schedule(1.0, steps)
    lr = jnp.asarray(learning_rate, jnp.float32)
    # The schedule multiplies a traced peak rate, so a learning-rate sweep does not recompile.
    return optax.adamw(lambda count: lr * schedule(count), weight_decay=weight_decay)


def _init_carry(variables):
    stateful = is_stateful(variables)
    params = variables["params"] if stateful else variables
    stats = variables["batch_stats"] if stateful else None
    # AdamW's state does not depend on the rates: build it with placeholders.
    return params, stats, optax.adamw(lambda count: 1.0).init(params)


def _finish(carry, stateful):
    params, stats, _ = carry
    return {"params": params, "batch_stats": stats} if stateful else params


def _step(model, batch_fn, carry, s, key, learning_rate, weight_decay, data, *, steps, warmup_steps, has_data,
          stateful):
    """One AdamW step on the minibatch ``batch_fn(key, s[, data])``: ``(carry, s) -> (carry, loss)``."""
    params, stats, opt_state = carry
    opt = _optimizer(learning_rate, weight_decay, steps, warmup_steps)

    def loss_fn(p, st, x, y):
        if stateful:
            logits, new_st = model.apply({"params": p, "batch_stats": st}, x, train=True)
        else:
            logits, new_st = model.apply(p, x), st
        if logits.ndim != 2 or logits.shape[0] != y.shape[0]:
            raise ValueError(f"fit: the model must return logits (B, classes) for a batch of {y.shape[0]}, got "
                             f"shape {logits.shape}")
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y)), new_st

    x, y = _call_batch(batch_fn, key, s, data, has_data)
    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, x, y)
    updates, opt_state = opt.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), stats, opt_state), loss


def _run(model, variables, batch_fn, key, learning_rate, weight_decay, data, *, steps, warmup_steps, has_data):
    stateful = is_stateful(variables)

    def body(carry, s):
        return _step(model, batch_fn, carry, s, key, learning_rate, weight_decay, data, steps=steps,
                     warmup_steps=warmup_steps, has_data=has_data, stateful=stateful)

    carry, losses = jax.lax.scan(body, _init_carry(variables), jnp.arange(steps))
    return TrainResult(_finish(carry, stateful), losses)


_STATIC = ("model", "batch_fn", "steps", "warmup_steps", "has_data")


@functools.partial(jax.jit, static_argnames=_STATIC)
def _fit_jit(model, variables, batch_fn, key, learning_rate, weight_decay, data, *, steps, warmup_steps, has_data):
    _TRACES["fit"] += 1
    return _run(model, variables, batch_fn, key, learning_rate, weight_decay, data, steps=steps,
                warmup_steps=warmup_steps, has_data=has_data)


@functools.partial(jax.jit, static_argnames=_STATIC)
def _fit_seeds_jit(model, variables, batch_fn, keys, learning_rate, weight_decay, data, *, steps, warmup_steps,
                   has_data):
    _TRACES["fit_seeds"] += 1

    def one(v, k):
        return _run(model, v, batch_fn, k, learning_rate, weight_decay, data, steps=steps,
                    warmup_steps=warmup_steps, has_data=has_data)

    return jax.vmap(one)(variables, keys)


@functools.partial(jax.jit, static_argnames=_STATIC + ("stateful", "seeds"), donate_argnums=(2,))
def _step_jit(model, batch_fn, carry, s, key, learning_rate, weight_decay, data, *, steps, warmup_steps, has_data,
              stateful, seeds):
    _TRACES["step"] += 1

    def one(c, k):
        return _step(model, batch_fn, c, s, k, learning_rate, weight_decay, data, steps=steps,
                     warmup_steps=warmup_steps, has_data=has_data, stateful=stateful)

    return jax.vmap(one)(carry, key) if seeds else one(carry, key)


def _step_loop(model, variables, batch_fn, key, learning_rate, weight_decay, data, *, steps, warmup_steps, has_data,
               seeds, progress):
    """The same steps as the scan, driven from Python: one compiled step, called ``steps`` times."""
    stateful = is_stateful(variables)
    init = jax.vmap(_init_carry) if seeds else _init_carry
    carry = jax.jit(init)(variables)
    losses = []
    for s in range(steps):
        carry, loss = _step_jit(model, batch_fn, carry, jnp.int32(s), key, learning_rate, weight_decay, data,
                                steps=steps, warmup_steps=warmup_steps, has_data=has_data, stateful=stateful,
                                seeds=seeds)
        losses.append(loss)
        if progress is not None:
            progress(1)
    stacked = jnp.stack(losses, axis=-1)
    return TrainResult(_finish(carry, stateful), stacked)


def default_loop() -> str:
    """``"scan"`` on accelerators, ``"python"`` on CPU.

    XLA:CPU runs convolutions inside a while loop (a ``lax.scan``) about ten times slower than the same
    convolutions at top level (jax-ml/jax#12868; measured here: 1.7 s against 0.2 s per small-CNN step), so on
    CPU one compiled step is called from Python instead; the numbers are the same (tested).
    """
    return "python" if jax.default_backend() == "cpu" else "scan"


def _check(model, batch_fn, steps, warmup_steps, learning_rate, weight_decay):
    if not (hasattr(model, "init") and hasattr(model, "apply") and callable(model.apply)):
        raise TypeError(f"fit: `model` must be a Functional(init, apply), got {type(model).__name__}")
    if not callable(batch_fn):
        raise TypeError("fit: `batch_fn` must be a callable (key, step[, data]) -> (x, labels)")
    for name, v, low in (("steps", steps, 1), ("warmup_steps", warmup_steps, 0)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
            raise ValueError(f"fit: `{name}` must be an integer >= {low}, got {v!r}")
    if warmup_steps >= steps and warmup_steps:
        raise ValueError(f"fit: `warmup_steps` ({warmup_steps}) must be smaller than `steps` ({steps})")
    if isinstance(learning_rate, (int, float)) and not (learning_rate > 0 and math.isfinite(learning_rate)):
        raise ValueError(f"fit: `learning_rate` must be a finite number > 0, got {learning_rate!r}")
    if isinstance(weight_decay, (int, float)) and not (weight_decay >= 0 and math.isfinite(weight_decay)):
        raise ValueError(f"fit: `weight_decay` must be a finite number >= 0, got {weight_decay!r}")


def _check_loop(loop):
    loop = default_loop() if loop is None else loop
    if loop not in ("scan", "python"):
        raise ValueError(f"fit: `loop` must be 'scan', 'python' or None, got {loop!r}")
    return loop


def _check_batch(batch_fn, key, data, has_data):
    """Shapes of one batch (abstractly: no FLOPs), checked before the expensive compile."""
    x, y = jax.eval_shape(lambda k, d: _call_batch(batch_fn, k, jnp.zeros((), jnp.int32), d, has_data), key, data)
    if not jnp.issubdtype(x.dtype, jnp.floating) or x.ndim < 2:
        raise ValueError(f"fit: `batch_fn` must return a float batch x (B, ...), got {x.dtype}{tuple(x.shape)}")
    if y.shape != (x.shape[0],) or not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"fit: `batch_fn` must return integer labels ({x.shape[0]},), got {y.dtype}{tuple(y.shape)}")


def fit(model, variables, batch_fn: Callable, key: jax.Array, *, steps: int, learning_rate: float = 1e-3,
        weight_decay: float = 1e-4, warmup_steps: int = 0, data: Any = None, loop: str | None = None,
        progress: Callable[[int], Any] | None = None) -> TrainResult:
    """One training run (module docstring). Returns ``TrainResult(variables, losses (steps,))``.

    ``loop``: ``"scan"`` (the whole run in one program) or ``"python"`` (one compiled step called ``steps``
    times; ``progress(1)`` after each); ``None`` picks ``default_loop()``.
    """
    _check(model, batch_fn, steps, warmup_steps, learning_rate, weight_decay)
    loop = _check_loop(loop)
    has_data = data is not None
    _check_batch(batch_fn, key, data, has_data)
    if loop == "python":
        return _step_loop(model, variables, batch_fn, key, jnp.float32(learning_rate), jnp.float32(weight_decay),
                          data, steps=int(steps), warmup_steps=int(warmup_steps), has_data=has_data, seeds=False,
                          progress=progress)
    return _fit_jit(model, variables, batch_fn, key, jnp.float32(learning_rate), jnp.float32(weight_decay), data,
                    steps=int(steps), warmup_steps=int(warmup_steps), has_data=has_data)


def fit_seeds(model, variables, batch_fn: Callable, keys: jax.Array, *, steps: int, learning_rate: float = 1e-3,
              weight_decay: float = 1e-4, warmup_steps: int = 0, data: Any = None, loop: str | None = None,
              progress: Callable[[int], Any] | None = None) -> TrainResult:
    """``S`` runs in one ``jit(vmap)``: ``variables`` and ``keys`` carry a leading axis ``S`` (module docstring).

    ``loop`` and ``progress`` as in ``fit`` (the Python loop calls one vmapped step).
    """
    _check(model, batch_fn, steps, warmup_steps, learning_rate, weight_decay)
    loop = _check_loop(loop)
    leaves = jax.tree.leaves(variables)
    sizes = {int(jnp.shape(a)[0]) if jnp.ndim(a) else -1 for a in leaves}
    keys = jnp.asarray(keys)
    if len(sizes) != 1 or -1 in sizes or keys.ndim < 1 or keys.shape[0] not in sizes:
        raise ValueError(f"fit_seeds: every leaf of `variables` and `keys` needs the same leading seed axis; got "
                         f"variable sizes {sorted(sizes)} and keys of shape {keys.shape}")
    has_data = data is not None
    _check_batch(batch_fn, keys[0], data, has_data)
    if loop == "python":
        return _step_loop(model, variables, batch_fn, keys, jnp.float32(learning_rate), jnp.float32(weight_decay),
                          data, steps=int(steps), warmup_steps=int(warmup_steps), has_data=has_data, seeds=True,
                          progress=progress)
    return _fit_seeds_jit(model, variables, batch_fn, keys, jnp.float32(learning_rate), jnp.float32(weight_decay),
                          data, steps=int(steps), warmup_steps=int(warmup_steps), has_data=has_data)


def logits_fn(model, variables, *, train: bool = False) -> Callable[[jax.Array], jax.Array]:
    """``x -> logits``: the model as a batch function, what ``chaosjax.attribution.target`` wraps.

    ``train=False``: inference mode, samples never interact (BatchNorm on running statistics). ``train=True``:
    training mode without the update, BatchNorm on the statistics of the batch the function is called on, so a
    sample's logits (and attributions) depend on its batch-mates: the study's audio protocol (docs/protocol.md,
    "Audio"). Stateless models ignore ``train``.
    """
    if not isinstance(train, bool):
        raise TypeError(f"logits_fn: `train` must be a bool, got {train!r}")
    if train and is_stateful(variables):
        return lambda x: model.apply(variables, x, train=True)[0]
    return lambda x: model.apply(variables, x)


@functools.partial(jax.jit, static_argnames=("model", "batch_size", "together"))
def _predict(model, variables, x, *, batch_size, together):
    _TRACES["predict"] += 1
    if not together:
        return jax.lax.map(lambda xi: model.apply(variables, xi[None])[0], x, batch_size=batch_size)
    full = x.shape[0] // batch_size * batch_size
    batches = x[:full].reshape((-1, batch_size) + x.shape[1:])
    out = jax.lax.map(lambda xb: model.apply(variables, xb), batches)
    out = out.reshape((full,) + out.shape[2:])
    if full < x.shape[0]:  # the last, shorter batch (DataLoader's drop_last=False)
        out = jnp.concatenate([out, model.apply(variables, x[full:])])
    return out


def predict(model, variables, x: jax.Array, *, batch_size: int = 256, together: bool = False) -> jax.Array:
    """Logits ``(n, classes)`` in inference mode, ``batch_size`` samples at a time; with ``together``, each batch
    of ``batch_size`` consecutive samples goes through the model as one batch (module docstring)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"predict: `batch_size` must be an integer >= 1, got {batch_size!r}")
    if not isinstance(together, bool):
        raise TypeError(f"predict: `together` must be a bool, got {together!r}")
    x = jnp.asarray(x)
    return _predict(model, variables, x, batch_size=int(min(batch_size, x.shape[0])), together=together)


def accuracy(logits: jax.Array, labels: jax.Array) -> Accuracy:
    """Top-1 and top-5 accuracy of ``logits (n, C)`` against integer ``labels (n,)``."""
    labels = jnp.asarray(labels)
    top1 = jnp.mean((jnp.argmax(logits, axis=1) == labels).astype(jnp.float32))
    k = min(5, logits.shape[1])
    top = jax.lax.top_k(logits, k)[1]
    top5 = jnp.mean(jnp.any(top == labels[:, None], axis=1).astype(jnp.float32))
    return Accuracy(top1, top5)


def evaluate(model, variables, x: jax.Array, labels: jax.Array, *, batch_size: int = 256,
             together: bool = False) -> Accuracy:
    """Top-1 / top-5 accuracy in inference mode over ``x`` in chunks of ``batch_size`` (``together``: as `predict`)."""
    labels = jnp.asarray(labels)
    if labels.shape != (jnp.shape(x)[0],):
        raise ValueError(f"evaluate: `labels` must have shape ({jnp.shape(x)[0]},), got {labels.shape}")
    return accuracy(predict(model, variables, x, batch_size=batch_size, together=together), labels)
