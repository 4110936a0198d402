"""The functional face of an NNX module: a pure ``init(key) -> params`` and ``apply(params, x, **kw)``.

Training, attribution and checkpoints only ever see ``apply`` and a params pytree (DESIGN.md, "Models"), so a grid
of models is one params pytree with a leading axis: ``params = jax.vmap(fn.init)(keys)`` and
``jax.vmap(fn.apply, in_axes=(0, None))(params, x)``.

``functional(factory)`` builds the pair from any ``factory(rngs) -> nnx.Module``. The module's graph definition is
computed once, on an abstract module (``nnx.eval_shape``), so no parameters are materialised to build it; ``apply``
merges that graph definition with the params inside whatever transformation calls it (``jit``, ``vmap``, ``grad``).

A ``Functional`` is a NamedTuple of two plain functions, so it is hashable and can be a static argument of
``jax.jit``. Two calls of ``functional`` give two different (unequal) objects; model constructors such as
``chaosjax.models.mlp.mlp`` cache their result (``cached_constructor``) so that equal arguments give the very same
``Functional`` and jitted callers do not retrace.
"""

from __future__ import annotations

import functools
import inspect
import numbers
from typing import Any, Callable, NamedTuple, TypeVar

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["Functional", "cached_constructor", "functional", "stateful_functional"]

Params = Any


class Functional(NamedTuple):
    """A model as two pure functions.

    Attributes:
      init: ``init(key) -> params``; pure, jittable and vmappable over keys (typed ``jax.random.key`` keys or raw
        ``uint32[2]`` keys). ``jax.vmap(init)(keys)`` gives a grid of models with a leading axis on every leaf.
      apply: ``apply(params, x, **kwargs) -> y``; pure, jittable, vmappable over a leading params axis and
        differentiable with respect to ``params`` and ``x``. ``params`` is the ``nnx.State`` returned by ``init``
        (or a plain nested dict of arrays of the same structure, e.g. ``State.to_pure_dict()``).
    """

    init: Callable[[jax.Array], Params]
    apply: Callable[..., jax.Array]


F = TypeVar("F", bound=Callable[..., Any])


def _normalised(value: Any) -> Any:
    """One spelling per value: numpy integers as int, lists as tuples (bools stay bools, so validation sees them)."""
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, (list, tuple)):
        return tuple(_normalised(v) for v in value)
    return value


def cached_constructor(constructor: F) -> F:
    """Caches a model constructor on what its arguments mean, not on how they were written: the arguments are bound
    to its signature with defaults applied (and ``_normalised``), so ``small_cnn(56)``, ``small_cnn(56, 10)`` and
    ``small_cnn(image_size=56)`` return the very same ``Functional`` (and a jitted caller compiles once)."""
    signature = inspect.signature(constructor)
    build = functools.lru_cache(maxsize=None, typed=True)(constructor)  # typed: width=True is not width=1

    @functools.wraps(constructor)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return build(*(_normalised(v) for v in bound.args), **{k: _normalised(v) for k, v in bound.kwargs.items()})

    wrapper.cache_info = build.cache_info  # type: ignore[attr-defined]
    wrapper.cache_clear = build.cache_clear  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def _as_key(key: Any) -> jax.Array:
    """Accepts a typed key, a raw ``uint32[2]`` key or an int seed."""
    if isinstance(key, int):
        return jax.random.key(key)
    key = jnp.asarray(key)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if key.dtype == jnp.uint32 and key.shape == (2,):
        return jax.random.wrap_key_data(key)
    raise TypeError(
        f"init: `key` must be a jax.random.key, a raw uint32[2] PRNGKey or an int, got dtype {key.dtype} and shape "
        f"{key.shape}"
    )


def functional(factory: Callable[[nnx.Rngs], nnx.Module]) -> Functional:
    """Turns ``factory(rngs) -> nnx.Module`` into a pure ``Functional(init, apply)``.

    ``apply(params, x, **kwargs)`` calls the merged module as ``module(x, **kwargs)`` (for the MLPs:
    ``dropout_key=``). The factory is called once here, abstractly (no FLOPs, no memory), to get the graph
    definition, and again by every ``init``. Both functions are wrapped in ``jax.jit``.
    """
    abstract = nnx.eval_shape(lambda: factory(nnx.Rngs(0)))
    graphdef, abstract_state = nnx.split(abstract)

    def init(key: Any) -> Params:
        _, state = nnx.split(factory(nnx.Rngs(params=_as_key(key))))
        return state

    def apply(params: Params, x: jax.Array, **kwargs: Any) -> jax.Array:
        if not isinstance(params, nnx.State):
            if not isinstance(params, dict):
                raise TypeError(
                    f"apply: `params` must be the nnx.State returned by init (or its pure dict), got "
                    f"{type(params).__name__}"
                )
            state = jax.tree.map(lambda leaf: leaf, abstract_state)  # a fresh copy to fill in
            nnx.replace_by_pure_dict(state, params)
            params = state
        return nnx.merge(graphdef, params)(x, **kwargs)

    # Jitted so that eager calls (a notebook, a quick check) compile once per shape instead of op by op; under an
    # outer jit/vmap/grad they are inlined like any other function.
    return Functional(jax.jit(init), jax.jit(apply))


def stateful_functional(factory: Callable[[nnx.Rngs], nnx.Module]) -> Functional:
    """`Functional(init, apply)` of a module whose `__call__(x, train)` may update BatchNorm statistics.

    `init(key) -> {"params": ..., "batch_stats": ...}`; `apply(variables, x, *, train=False)` returns logits,
    or `(logits, new_batch_stats)` when `train=True` (`chaosjax.classify`'s stateful contract). Both are jitted.
    Used by the vision and audio models.
    """
    abstract = nnx.eval_shape(lambda: factory(nnx.Rngs(0)))
    graphdef, _, _ = nnx.split(abstract, nnx.Param, ...)

    def init(key: Any):
        _, params, rest = nnx.split(factory(nnx.Rngs(params=_as_key(key))), nnx.Param, ...)
        return {"params": params, "batch_stats": rest}

    def apply(variables, x, *, train: bool = False):
        if not isinstance(variables, dict) or set(variables) != {"params", "batch_stats"}:
            raise TypeError("apply: `variables` must be the dict {'params', 'batch_stats'} returned by init")
        model = nnx.merge(graphdef, variables["params"], variables["batch_stats"])
        logits = model(x, train=train)
        if not train:
            return logits
        _, _, stats = nnx.split(model, nnx.Param, ...)
        return logits, stats

    return Functional(jax.jit(init), jax.jit(apply, static_argnames=("train",)))
