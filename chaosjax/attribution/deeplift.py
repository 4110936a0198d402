"""Model-agnostic DeepLIFT (Rescale rule) through a jaxpr interpreter.

DeepLIFT explains `f(x) - f(b)` by propagating "multipliers" backwards: linear operations keep
their ordinary derivative, and every nonlinearity `y = g(z)` uses the secant slope
`(g(z) - g(z0)) / (z - z0)` between the input and the baseline instead of its derivative `g'(z)`.
The attribution is `(x - b) * multiplier`; for networks of linear layers and elementwise
nonlinearities the chain rule on secants telescopes, so `sum(attr) = f(x) - f(b)` holds exactly.

How it works here, on any traceable `f`:

1. `f` is traced to a jaxpr once.
2. An interpreter evaluates the jaxpr on the input and on the baseline side by side. It groups
   every maximal chain of elementwise operations that depend on a single variable `z` (the chain's
   "root", typically a pre-activation) into one function `g`: `jax.nn.relu`, exact or tanh GELU,
   `x * sigmoid(x)`, `where(x > 0, x, 0.01 * x)` and any user-written activation are each one
   nonlinearity, whatever primitives and sub-jits they are built from. Calls (`jit`,
   `custom_jvp`, `custom_vjp`, `checkpoint`) are entered, so chains continue through them. A chain
   is a small graph over its root; evaluating it computes each of its operations once, so tracing
   costs time linear in the number of operations, however often an intermediate value is reused.
3. Where such a chain is used by anything else (a matmul, a convolution, a reduction, the output),
   its value is `g(z)` and its backward pass carries the secant slope: the value is built as
   `stop_gradient(g(z)) + stop_gradient(slope) * (z - stop_gradient(z))`, so no custom VJP is
   needed and the result works under `jit`, `vmap` and `grad`. Where `|z - z0|` is tiny the
   slope is the plain derivative `g'(z)`, as in Captum.
4. Chains of only linear elementwise operations (bias adds, scaling) keep their ordinary derivative.

Which nonlinearities get the Rescale rule (`rescale=`):

- `"all"` (default): every elementwise nonlinearity, as above.
- `"captum"`: only those Captum's `DeepLift` has a rule for, to reproduce studies run with it.
  Captum (`captum/attr/_core/deep_lift.py`, `SUPPORTED_NON_LINEAR`) hooks modules of the types
  `nn.ReLU`, `nn.ELU`, `nn.LeakyReLU`, `nn.Sigmoid`, `nn.Tanh`, `nn.Softplus` (Rescale),
  `nn.MaxPool1d/2d/3d` (its own max-pool rule, see below) and `nn.Softmax`; everything else,
  `nn.GELU` and `nn.SiLU` included, passes the plain gradient. So on a GELU MLP Captum's DeepLIFT
  is exactly input x gradient. chaosjax maps the list to what JAX traces: `jax.nn.relu`, `elu`,
  `leaky_relu`, `softplus` (named calls in the jaxpr) and the `tanh` and `logistic` primitives
  (`jnp.tanh`, `jax.nn.sigmoid`) are rescaled; every other nonlinear operation, user-written
  activations included, is differentiated as it is, and calls named after the other `jax.nn`
  functions (`gelu`, `silu`, `mish`, `selu`, `relu6`, ...) are not entered, so nothing inside
  them is rescaled. Differences that remain: `jax.nn.gelu(approximate=True)` is inlined by JAX,
  so the `tanh` inside it is rescaled; Captum's `Softmax` rule is not reproduced (chaosjax's
  tracks attribute logits); Captum falls back to the gradient only where `|z - z0| < 1e-10`.

Where no rule applies the plain gradient is used: products of two input-dependent terms that are
not one elementwise chain (gating, attention scores), max-pooling and other reductions,
normalisation layers, and loops (`scan`, `while`, `cond`) are differentiated as they are.
Summation-to-delta then holds only approximately.

Max-pooling. chaosjax passes the plain gradient through `reduce_window_max` / `reduce_max`: the
whole multiplier goes to the window's maximum at the input `x`. Captum has a max-pool rule (the
output difference `max(y, y0) - y0` sent to the argmax at `x` and `y - max(y, y0)` to the argmax
at the baseline, divided by each position's `x - x0`), but its hooks keep it only where the pool
does not directly consume another hooked module's output: each hooked module records the gradient
at its output before the next module's hook rewrites it, so in the usual ReLU -> MaxPool order the
ReLU's Rescale is computed from the plain max-pool gradient and the max-pool rule is discarded.
On a ReLU + max-pool CNN Captum and chaosjax therefore agree (tests/test_captum.py), and both
break summation-to-delta there (docs/protocol.md gives the measured size). A pool after an unhooked
op (a convolution, or a functional `F.relu`, as in the study's audio models) keeps Captum's rule,
which chaosjax does not reproduce.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

try:  # jax >= 0.4.30 keeps the public jaxpr types in jax.extend.core
    from jax.extend.core import Literal
except ImportError:  # pragma: no cover - older jax
    from jax.core import Literal  # type: ignore[attr-defined,no-redef]

from chaosjax.attribution._core import Array, BatchFn, broadcast_baseline, check_choice, check_inputs

#: Values of `deeplift(..., rescale=)`: every elementwise nonlinearity, or only Captum's list.
RESCALE = ("all", "captum")

# Elementwise primitives: one output shaped like the inputs, each output element a function of
# the same element of every input.
_ELEMENTWISE = frozenset(
    """
    neg sign floor ceil round is_finite exp exp2 log log1p expm1 tanh logistic sin cos tan asin
    acos atan sinh cosh asinh acosh atanh sqrt rsqrt cbrt erf erfc erf_inv lgamma digamma abs
    integer_pow pow square add add_any sub mul div rem max min atan2 nextafter select_n clamp
    convert_element_type copy copy_p reduce_precision eq ne lt le gt ge and or not xor real imag conj
    """.split()
)
# Elementwise primitives that are linear in their input-dependent operands (see `_is_nonlinear`).
_LINEAR = frozenset("neg add add_any sub convert_element_type copy copy_p reduce_precision real imag conj".split())
# Call-like primitives whose body is evaluated once with the same operands: safe to enter.
_CALLS = frozenset(
    "pjit jit closed_call core_call custom_jvp_call custom_vjp_call custom_vjp_call_jaxpr remat remat2 checkpoint".split()
)
# rescale="captum": Captum's SUPPORTED_NON_LINEAR as JAX traces it. Named calls (`jit` names) of the
# jax.nn functions behind nn.ReLU, nn.ELU, nn.LeakyReLU, nn.Softplus (nn.Sigmoid and nn.Tanh trace to
# the `logistic` and `tanh` primitives); inside them every elementwise operation is rescaled.
_CAPTUM_CALLS = frozenset({"relu", "elu", "leaky_relu", "softplus", "sigmoid", "tanh"})
_CAPTUM_PRIMITIVES = frozenset({"tanh", "logistic"})
# Calls named after any other jax.nn function (gelu, silu, mish, selu, relu6, softmax, ...): Captum has
# no rule for their modules, so under "captum" they are differentiated whole, not entered.
_CAPTUM_OPAQUE = frozenset(
    name for name in dir(jax.nn) if not name.startswith("_") and callable(getattr(jax.nn, name))
) - _CAPTUM_CALLS


class _Const:
    """A value that does not depend on the input (weights, literals, anything built from them)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


class _Root:
    """An input-dependent value computed by a non-elementwise operation (or the input itself).

    `val` carries the modified backward pass; `ref` is the same quantity on the baseline.
    """

    __slots__ = ("val", "ref")

    def __init__(self, val, ref):
        self.val, self.ref = val, ref


class _Chain:
    """An elementwise operation `eqn` on `operands` (constants, the root, or chains of the same root),
    not yet materialised: together with its operand chains, a small graph computing a function of the root."""

    __slots__ = ("root", "eqn", "operands", "nonlinear", "_cached")

    def __init__(self, root: _Root, eqn, operands: Sequence[Any], nonlinear: bool):
        self.root, self.eqn, self.operands, self.nonlinear, self._cached = root, eqn, tuple(operands), nonlinear, None


def _bind(eqn, values: Sequence[Any]) -> list[Any]:
    bind_params = eqn.primitive.get_bind_params(eqn.params)
    # jax < 0.8 returns (subfuns, params); newer versions return params alone.
    subfuns, params = bind_params if isinstance(bind_params, tuple) else ((), bind_params)
    out = eqn.primitive.bind(*subfuns, *values, **params)
    return list(out) if eqn.primitive.multiple_results else [out]


def call_body(eqn):
    """The body of a call-like equation (jit, custom_jvp_call, ...) as (jaxpr, consts), or None."""
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        body = eqn.params.get(key)
        if body is None:
            continue
        if hasattr(body, "consts"):  # ClosedJaxpr
            return body.jaxpr, body.consts
        if hasattr(body, "eqns"):  # open Jaxpr
            return body, ()
    return None


def _sub_jaxpr(eqn):
    """The body of a call-like primitive as (jaxpr, consts), or None."""
    if eqn.primitive.name not in _CALLS:
        return None
    return call_body(eqn)


def _is_nonlinear(eqn, dep: Sequence[int]) -> bool:
    name = eqn.primitive.name
    if name in _LINEAR:
        return False
    if name == "mul":
        return len(dep) > 1
    if name == "div":
        return 1 in dep
    if name == "select_n":
        return 0 in dep
    return True


def _root_of(node) -> _Root:
    return node if isinstance(node, _Root) else node.root


def _chain_value(node, z, memo: dict[int, Any]) -> Any:
    """The value of `node` with its chain's root set to `z`; `memo` holds every chain node already evaluated, so
    a node reused by several others is computed once (without it, evaluation doubles with each reuse)."""
    if isinstance(node, _Const):
        return node.value
    if isinstance(node, _Root):
        return z  # the only root a chain depends on
    key = id(node)
    if key not in memo:
        memo[key] = _bind(node.eqn, [_chain_value(op, z, memo) for op in node.operands])[0]
    return memo[key]


def _chain_fn(chain: _Chain):
    return lambda z: _chain_value(chain, z, {})


def _materialise(node) -> tuple[Any, Any]:
    """(value with the DeepLIFT backward pass, baseline value) of a node."""
    if isinstance(node, _Const):
        return node.value, node.value
    if isinstance(node, _Root):
        return node.val, node.ref
    if node._cached is None:
        node._cached = _rescale(node)
    return node._cached


def _rescale(chain: _Chain) -> tuple[Array, Array]:
    z, z0 = chain.root.val, chain.root.ref
    fn = _chain_fn(chain)
    float_chain = jnp.issubdtype(jnp.result_type(z), jnp.floating)
    out0 = fn(z0)
    if not chain.nonlinear or not float_chain or not jnp.issubdtype(jnp.result_type(out0), jnp.floating):
        return fn(z), out0
    z_const = lax.stop_gradient(z)
    out, derivative = jax.jvp(fn, (z_const,), (jnp.ones_like(z_const),))
    dz = z_const - z0
    tiny = jnp.abs(dz) <= jnp.finfo(jnp.result_type(z)).eps ** 0.5
    secant = (out - out0) / jnp.where(tiny, jnp.ones_like(dz), dz)
    slope = lax.stop_gradient(jnp.where(tiny, derivative, secant).astype(out.dtype))
    # Value g(z); derivative w.r.t. z: the secant slope.
    return out + slope * (z - z_const).astype(out.dtype), out0


def _eval_eqn(eqn, nodes: list, rescale: str) -> list:
    dep = [i for i, n in enumerate(nodes) if not isinstance(n, _Const)]
    if not dep:
        return [_Const(v) for v in _bind(eqn, [n.value for n in nodes])]

    body = _sub_jaxpr(eqn)
    if body is not None:
        name = eqn.params.get("name")
        if rescale != "captum":
            return _eval_jaxpr(body[0], body[1], nodes, rescale)
        if name in _CAPTUM_CALLS:  # one of Captum's nonlinearities: rescaled whole
            return _eval_jaxpr(body[0], body[1], nodes, "all")
        if name not in _CAPTUM_OPAQUE:  # a user's jit, a model, `_where`: entered
            return _eval_jaxpr(body[0], body[1], nodes, rescale)
        # else: an activation Captum has no rule for; the plain derivative below.

    elif eqn.primitive.name in _ELEMENTWISE:
        roots = {id(_root_of(nodes[i])) for i in dep}
        root = _root_of(nodes[dep[0]])
        nonlinear_here = _is_nonlinear(eqn, dep)
        rule = rescale == "all" or not nonlinear_here or eqn.primitive.name in _CAPTUM_PRIMITIVES
        if rule and len(roots) == 1 and tuple(eqn.outvars[0].aval.shape) == tuple(jnp.shape(root.val)):
            nonlinear = nonlinear_here or any(isinstance(nodes[i], _Chain) and nodes[i].nonlinear for i in dep)
            return [_Chain(root, eqn, nodes, nonlinear)]

    # No rule: the plain derivative, evaluated on the input and on the baseline.
    pairs = [_materialise(n) for n in nodes]
    vals = _bind(eqn, [p[0] for p in pairs])
    refs = _bind(eqn, [p[1] for p in pairs])
    return [_Root(v, r) for v, r in zip(vals, refs)]


def _eval_jaxpr(jaxpr, consts: Sequence[Any], args: Sequence[Any], rescale: str) -> list:
    env: dict[Any, Any] = {}

    def read(var):
        return _Const(var.val) if isinstance(var, Literal) else env[var]

    for var, value in zip(jaxpr.constvars, consts):
        env[var] = _Const(value)
    for var, node in zip(jaxpr.invars, args, strict=True):
        env[var] = node
    for eqn in jaxpr.eqns:
        outs = _eval_eqn(eqn, [read(v) for v in eqn.invars], rescale)
        for var, node in zip(eqn.outvars, outs, strict=True):
            env[var] = node
    return [read(v) for v in jaxpr.outvars]


def deeplift_multipliers(f: BatchFn, x: Array, baseline: Array, *, rescale: str = "all") -> Array:
    """DeepLIFT multipliers `m` with `attr = (x - b) * m` (Rescale rule); `baseline` shaped like `x`.

    `rescale`: `"all"` or `"captum"`, as in `deeplift`."""
    check_choice(rescale, "rescale", RESCALE, "deeplift")
    closed = jax.make_jaxpr(f)(x)

    def modified(z):
        (out,) = _eval_jaxpr(closed.jaxpr, closed.consts, [_Root(z, baseline)], rescale)
        return jnp.sum(_materialise(out)[0])

    return jax.grad(modified)(x)


def deeplift(
    f: BatchFn, x: Array, *, baseline: ArrayLike = 0.0, rescale: str = "all", key: Array | None = None
) -> Array:
    """DeepLIFT with the Rescale rule, for any traceable `f`: `a = (x - b) * m`.

    `m` is the gradient of `f` with the derivative of nonlinearities replaced by their secant slope
    between input and baseline (module docstring). With `rescale="all"` every elementwise
    nonlinearity is rescaled, and for networks of dense or convolutional layers with elementwise
    activations (ReLU, tanh, sigmoid, GELU, SiLU, ...) summation-to-delta holds:
    `sum(a) = f(x) - f(b)`. With `rescale="captum"` only the nonlinearities on Captum's list
    (ReLU, ELU, leaky ReLU, sigmoid, tanh, softplus) are rescaled and every other one passes its
    plain gradient, as Captum's `DeepLift` does: on a GELU network this is input x gradient (with
    `x - b` in place of `x`). In both modes products of two input-dependent terms (attention,
    gating), normalisation, loops and max-pooling pass the plain gradient (through a max-pool
    the multiplier goes to the window's maximum at `x`); summation-to-delta is then off.

    Args:
      f: batch `(B, *S)` -> per-sample scalars `(B,)`.
      x: the inputs `(B, *S)`.
      baseline: a scalar, one sample `S`, or one baseline per sample `(B, *S)`.
      rescale: `"all"` (default) or `"captum"`: which nonlinearities get the Rescale rule.
      key: unused: the method is deterministic. Accepted so that every entry of `METHODS` takes
        `m(f, x, key=key)`.

    Cost: one forward pass on the input and one on the baseline, one backward pass (plus a
    one-time trace of `f` to a jaxpr, linear in its number of operations).
    Captum: `DeepLift(model).attribute(x, baselines=b)` (its default Rescale rule) is
    `rescale="captum"`; the two agree on ReLU, tanh and sigmoid networks, with or without
    ReLU -> max-pool blocks (module docstring: where they differ).
    """
    check_choice(rescale, "rescale", RESCALE, "deeplift")
    del key
    x = check_inputs(f, x, "deeplift")
    b = broadcast_baseline(baseline, x, "deeplift")
    return (x - b) * deeplift_multipliers(f, x, b, rescale=rescale)
