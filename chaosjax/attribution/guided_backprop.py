"""Model-agnostic guided backpropagation through a jaxpr interpreter.

Guided backpropagation (Springenberg et al., 2015) is the gradient of `f` with every ReLU's backward pass
changed to pass only positive gradients: `dL/dz = 1[z > 0] * max(dL/dy, 0)` instead of `1[z > 0] * dL/dy`.
Here `f` is traced to a jaxpr once and re-evaluated with every ReLU replaced by a ReLU whose VJP is that
rule; the gradient of the result is the attribution. Everything else keeps its own derivative.

A ReLU is found wherever the program computes `max(z, 0)`: `jax.nn.relu` (a `custom_jvp` around it),
`jnp.maximum(z, 0)`, Flax's `nnx.relu`. Calls (`jit`, `closed_call`, `checkpoint`) are entered, so ReLUs inside
sub-functions are found; other `custom_jvp` / `custom_vjp` functions (GELU, softplus, ...) and control flow
(`scan`, `while`, `cond`) are kept whole, with their own derivatives, and ReLUs inside loops keep theirs.
Other rectifiers written differently (`where(z > 0, z, 0)`, leaky ReLU) are not ReLUs here, as in Captum,
which changes only `nn.ReLU` modules. On a network without ReLUs guided backprop is the plain gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import jax
import jax.numpy as jnp

try:  # jax >= 0.4.30 keeps the public jaxpr types in jax.extend.core
    from jax.extend.core import Literal
except ImportError:  # pragma: no cover - older jax
    from jax.core import Literal  # type: ignore[attr-defined,no-redef]

from chaosjax.attribution._core import Array, BatchFn, check_inputs
from chaosjax.attribution.deeplift import call_body

_CALLS = frozenset("pjit jit closed_call core_call remat checkpoint".split())
# Primitives that keep a zero constant zero (broadcasts, casts, reshapes of 0.0).
_ZERO_PRESERVING = frozenset("broadcast_in_dim convert_element_type reshape copy copy_p squeeze expand_dims".split())


@jax.custom_vjp
def guided_relu(z: Array) -> Array:
    """`max(z, 0)` whose backward pass lets only positive gradients through where `z > 0`."""
    return jnp.maximum(z, jnp.zeros((), z.dtype))


def _guided_relu_fwd(z):
    return guided_relu(z), z


def _guided_relu_bwd(z, g):
    return (jnp.where((z > 0) & (g > 0), g, jnp.zeros((), g.dtype)),)


guided_relu.defvjp(_guided_relu_fwd, _guided_relu_bwd)


def _is_zero_literal(atom) -> bool:
    if not isinstance(atom, Literal):
        return False
    value = np.asarray(atom.val)
    return value.size > 0 and not np.any(value)


_body = call_body  # the body of a call-like equation as (jaxpr, consts), or None


def _relu_operand(eqn, zeros: set) -> int | None:
    """The index of `z` if `eqn` is `max(z, 0)` (either order), else None."""
    if eqn.primitive.name != "max" or len(eqn.invars) != 2:
        return None
    for i, other in ((0, 1), (1, 0)):
        atom = eqn.invars[other]
        if _is_zero_literal(atom) or (not isinstance(atom, Literal) and atom in zeros):
            return i
    return None


def _is_relu_body(jaxpr) -> bool:
    """A `custom_jvp` body that computes `max(input, 0)` and nothing else (`jax.nn.relu`), through nested calls."""
    if len(jaxpr.invars) != 1 or len(jaxpr.outvars) != 1 or len(jaxpr.eqns) != 1:
        return False
    (eqn,) = jaxpr.eqns
    if eqn.primitive.name in _CALLS:
        body = _body(eqn)
        return body is not None and eqn.invars == list(jaxpr.invars) and _is_relu_body(body[0])
    i = _relu_operand(eqn, set())
    return i is not None and eqn.invars[i] == jaxpr.invars[0] and eqn.outvars == list(jaxpr.outvars)


def _bind(eqn, values: Sequence[Any]) -> list[Any]:
    bind_params = eqn.primitive.get_bind_params(eqn.params)
    subfuns, params = bind_params if isinstance(bind_params, tuple) else ((), bind_params)
    out = eqn.primitive.bind(*subfuns, *values, **params)
    return list(out) if eqn.primitive.multiple_results else [out]


def _eval(jaxpr, consts: Sequence[Any], args: Sequence[Any]) -> list[Any]:
    env: dict[Any, Any] = {}
    zeros: set = set()  # variables known to hold zeros (for `max(z, broadcast(0.0))`)

    def read(atom):
        return atom.val if isinstance(atom, Literal) else env[atom]

    for var, value in zip(jaxpr.constvars, consts):
        env[var] = value
    for var, value in zip(jaxpr.invars, args, strict=True):
        env[var] = value
    for eqn in jaxpr.eqns:
        values = [read(v) for v in eqn.invars]
        name = eqn.primitive.name
        relu = _relu_operand(eqn, zeros)
        if relu is not None:
            outs = [guided_relu(values[relu])]
        elif name == "custom_jvp_call" and _body(eqn) is not None and _is_relu_body(_body(eqn)[0]):
            outs = [guided_relu(values[-1])]
        elif name in _CALLS and _body(eqn) is not None:
            body, body_consts = _body(eqn)
            outs = _eval(body, body_consts, values)
        else:
            outs = _bind(eqn, values)
        if name in _ZERO_PRESERVING and (_is_zero_literal(eqn.invars[0]) or eqn.invars[0] in zeros):
            zeros.update(eqn.outvars)
        for var, value in zip(eqn.outvars, outs, strict=True):
            env[var] = value
    return [read(v) for v in jaxpr.outvars]


def guided_backprop(f: BatchFn, x: Array, *, key: Array | None = None) -> Array:
    """Guided backpropagation: the gradient of `f` with each ReLU passing back only positive gradients.

    Works on any traceable `f` (module docstring: which ReLUs are found). Signed, like a gradient; on a
    network without ReLUs it equals the plain gradient (`saliency(f, x, absolute=False)`).

    Args:
      f: batch `(B, *S)` -> per-sample scalars `(B,)`.
      x: the inputs `(B, *S)`.
      key: unused: the method is deterministic. Accepted so that every entry of `METHODS` takes
        `m(f, x, key=key)`.

    Cost: one forward and one backward pass over the batch (plus a one-time trace of `f` to a jaxpr).
    Captum: `GuidedBackprop(model).attribute(x, target=...)` (for `nn.ReLU` modules).
    """
    del key
    x = check_inputs(f, x, "guided_backprop")
    closed = jax.make_jaxpr(f)(x)

    def modified(z):
        (out,) = _eval(closed.jaxpr, closed.consts, [z])
        return jnp.sum(out)

    return jax.grad(modified)(x)
