"""Symbolic functional track: formulas, synthetic tabular data and the true functions' own attributions.

Protocol (docs/protocol.md, "Symbolic"): every column is i.i.d. ``clip(N(0, x_std^2), -1, 1)``; the first ``m``
columns feed a known formula ``f``, the next ``noise_features`` columns are pure noise, and
``y = f(x_1..x_m) + N(0, y_std^2)``. Because ``f`` is known, each attribution method has a ground truth computed
from ``f`` itself (:func:`ground_truth`).

Public names:

- :class:`Formula`, :func:`formula` -- a formula parsed from text with sympy and compiled to a jnp function.
- :data:`FORMULAS`, :func:`formulas` -- the study's 15 formulas (``"paper"`` or ``"corrected"``).
- :class:`SymbolicData`, :func:`make_dataset` -- train/test splits of the synthetic data.
- :func:`ground_truth`, :data:`GROUND_TRUTH_METHODS` -- true attributions of ``f``.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import keyword
import math
import operator
import re
import tokenize
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import sympy
from sympy.parsing.sympy_parser import auto_number, convert_xor, parse_expr

__all__ = [
    "FORMULAS",
    "GROUND_TRUTH_METHODS",
    "PROTOCOLS",
    "Formula",
    "SymbolicData",
    "formula",
    "formulas",
    "ground_truth",
    "make_dataset",
]

PROTOCOLS = ("paper", "corrected")

# ---------------------------------------------------------------------------------------------------------------
# Parsing and compiling formulas
# ---------------------------------------------------------------------------------------------------------------

# Functions a formula may call: text name -> sympy function; and sympy class -> jnp function for compilation.
_SYMPY_FUNCTIONS: dict[str, Any] = {
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tan": sympy.tan,
    "asin": sympy.asin,
    "acos": sympy.acos,
    "atan": sympy.atan,
    "sinh": sympy.sinh,
    "cosh": sympy.cosh,
    "tanh": sympy.tanh,
    "exp": sympy.exp,
    "log": sympy.log,
    "sqrt": sympy.sqrt,
    "Abs": sympy.Abs,
    "abs": sympy.Abs,
}
_SYMPY_CONSTANTS: dict[str, Any] = {"pi": sympy.pi, "E": sympy.E}
_JNP_FUNCTIONS: dict[Any, Callable] = {
    sympy.sin: jnp.sin,
    sympy.cos: jnp.cos,
    sympy.tan: jnp.tan,
    sympy.asin: jnp.arcsin,
    sympy.acos: jnp.arccos,
    sympy.atan: jnp.arctan,
    sympy.sinh: jnp.sinh,
    sympy.cosh: jnp.cosh,
    sympy.tanh: jnp.tanh,
    sympy.exp: jnp.exp,
    sympy.log: jnp.log,
    sympy.Abs: jnp.abs,
}
_RESERVED = frozenset(_SYMPY_FUNCTIONS) | frozenset(_SYMPY_CONSTANTS)
_ALLOWED_OPS = frozenset({"+", "-", "*", "/", "**", "^", "(", ")", ","})


def _tokens(text: str) -> list[tokenize.TokenInfo]:
    """Tokenises ``text`` and rejects anything that is not arithmetic on names and numbers.

    The whitelist is the safety net: sympy's parser ends in ``eval``, so attribute access, keywords, strings,
    indexing, assignments and dunder names never reach it.
    """
    if "\n" in text or "\r" in text:
        raise ValueError(f"formula text must be a single line, got {text!r}")
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError) as err:
        raise ValueError(f"malformed formula {text!r}: {err} (unbalanced parentheses?)") from None
    skip = {tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.ENCODING}
    out = []
    for tok in toks:
        if tok.type in skip:
            continue
        if tok.type == tokenize.NAME:
            if tok.string.startswith("_") or keyword.iskeyword(tok.string):
                raise ValueError(f"formula {text!r}: name {tok.string!r} is not allowed")
        elif tok.type == tokenize.NUMBER:
            if tok.string[-1] in "jJ" or tok.string[:2].lower() in ("0x", "0o", "0b"):
                raise ValueError(f"formula {text!r}: number {tok.string!r} is not a real decimal literal")
        elif tok.type == tokenize.OP:
            if tok.string not in _ALLOWED_OPS:
                raise ValueError(
                    f"formula {text!r}: operator {tok.string!r} is not allowed "
                    f"(allowed: {' '.join(sorted(_ALLOWED_OPS))})"
                )
        else:
            raise ValueError(f"formula {text!r}: unexpected token {tok.string!r}")
        out.append(tok)
    if not out:
        raise ValueError("formula text is empty")
    return out


def _parse(text: str) -> sympy.Expr:
    """Parses ``text`` into a real-valued sympy expression using a restricted namespace (no arbitrary code)."""
    toks = _tokens(text)
    local_dict: dict[str, Any] = {}
    for i, tok in enumerate(toks):
        if tok.type != tokenize.NAME:
            continue
        called = i + 1 < len(toks) and toks[i + 1].string == "("
        if called and tok.string not in _SYMPY_FUNCTIONS:
            raise ValueError(
                f"formula {text!r}: unknown function {tok.string!r} (supported: {', '.join(_SYMPY_FUNCTIONS)})"
            )
        if tok.string not in _RESERVED:
            local_dict[tok.string] = sympy.Symbol(tok.string, real=True)
    # Only what auto_number emits plus the whitelisted functions/constants; empty builtins so eval sees nothing else.
    global_dict: dict[str, Any] = {
        "__builtins__": {},
        "Integer": sympy.Integer,
        "Float": sympy.Float,
        "Rational": sympy.Rational,
        **_SYMPY_FUNCTIONS,
        **_SYMPY_CONSTANTS,
    }
    try:
        expr = parse_expr(
            text, local_dict=local_dict, global_dict=global_dict, transformations=(auto_number, convert_xor)
        )
    except Exception as err:  # noqa: BLE001 -- sympy raises many types; all mean "not a valid formula"
        raise ValueError(f"malformed formula {text!r}: {type(err).__name__}: {err}") from None
    if not isinstance(expr, sympy.Expr) or isinstance(expr, sympy.Tuple):
        raise ValueError(f"formula {text!r} is not a single scalar expression")
    if expr.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan, sympy.I):
        raise ValueError(f"formula {text!r} contains a non-finite or complex constant: {expr}")
    return expr


def _compile(expr: sympy.Expr, index: dict[sympy.Symbol, int]) -> Callable[[list], Any]:
    """Translates a sympy tree into a closure over a list of column arrays.

    Constants become Python floats (JAX weak types), so the result keeps the columns' dtype: sympy's own numbers
    never promote float32 inputs to float64.
    """
    if expr.is_Symbol:
        j = index[expr]
        return lambda cols: cols[j]
    if expr.is_Number or isinstance(expr, sympy.NumberSymbol):
        try:
            c = float(expr)
        except TypeError:
            raise ValueError(f"constant {expr} in formula is not real") from None
        if not math.isfinite(c):
            raise ValueError(f"constant {expr} in formula is not finite")
        return lambda cols: c
    if expr.is_Add or expr.is_Mul:
        parts = [_compile(a, index) for a in expr.args]
        op = operator.add if expr.is_Add else operator.mul
        return lambda cols: functools.reduce(op, [p(cols) for p in parts])
    if expr.is_Pow:
        base, ex = expr.args
        b = _compile(base, index)
        if ex.is_Integer:
            k = int(ex)  # integer_pow: exact and differentiable at negative bases
            return lambda cols: b(cols) ** k
        if ex == sympy.Rational(1, 2):
            return lambda cols: jnp.sqrt(b(cols))
        if ex == sympy.Rational(-1, 2):
            return lambda cols: 1.0 / jnp.sqrt(b(cols))
        e = _compile(ex, index)
        return lambda cols: jnp.power(b(cols), e(cols))
    if expr.func in _JNP_FUNCTIONS and len(expr.args) == 1:
        fn = _JNP_FUNCTIONS[expr.func]
        arg = _compile(expr.args[0], index)
        return lambda cols: fn(arg(cols))
    raise ValueError(f"unsupported operation {expr.func.__name__!r} in formula ({expr})")


def _natural_key(name: str) -> tuple:
    """Sort key that orders ``x2`` before ``x10`` (plain alphabetical order for single letters)."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


@dataclasses.dataclass(frozen=True)
class Formula:
    """A known target function ``f(x_1..x_m)`` of the first ``m`` columns of a table.

    Attributes:
      name: short label (``"f0"``..``"f14"`` for the study's formulas).
      text: the sympy-parsable expression, e.g. ``"0.5*a**3 + 0.75*b**2 + a*c"``; ``^`` also means power.
      variables: predictive variables in column order: column ``j`` holds ``variables[j]``. It may list variables
        the expression does not use (such a column is predictive by declaration but carries no signal).
      expr: the parsed sympy expression (not part of equality).
      fn: ``fn(x) -> y``: ``x`` of shape ``(..., W)`` with ``W >= m``; uses columns ``0..m-1``, returns ``(...)`` in
        ``x``'s float dtype. Pure jnp, so jittable, vmappable and differentiable. Calling the formula calls ``fn``.

    Equality and hashing use ``(name, text, variables)`` only, so a formula can be a static argument of ``jit``.
    """

    name: str
    text: str
    variables: tuple[str, ...] | None = None
    expr: sympy.Expr = dataclasses.field(init=False, compare=False, repr=False)
    fn: Callable[[jax.Array], jax.Array] = dataclasses.field(init=False, compare=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {type(self.name).__name__}")
        if not isinstance(self.text, str):
            raise TypeError(f"text must be a str, got {type(self.text).__name__}")
        text = self.text.strip()
        expr = _parse(text)
        used = {s.name for s in expr.free_symbols}
        if self.variables is None:
            variables = tuple(sorted(used, key=_natural_key))
        else:
            if isinstance(self.variables, str) or not all(isinstance(v, str) for v in self.variables):
                raise TypeError(f"variables must be a sequence of str, got {self.variables!r}")
            variables = tuple(self.variables)
            bad = [v for v in variables if not v.isidentifier() or v.startswith("_") or v in _RESERVED]
            if bad:
                raise ValueError(f"variables: invalid variable names {bad} (reserved: {sorted(_RESERVED)})")
            if len(set(variables)) != len(variables):
                raise ValueError(f"variables: duplicate names in {variables}")
            missing = sorted(used - set(variables), key=_natural_key)
            if missing:
                raise ValueError(
                    f"variables: formula {text!r} uses {missing}, which are not listed in variables={variables}"
                )
        if not variables:
            raise ValueError(f"formula {text!r} has no variables (a constant is not a target function)")
        index = {sympy.Symbol(v, real=True): j for j, v in enumerate(variables)}
        compiled = _compile(expr, index)
        m = len(variables)

        # jit: one XLA program per input shape instead of dozens of eager op dispatches; inlined under an outer jit.
        @jax.jit
        def fn(x: jax.Array) -> jax.Array:
            x = jnp.asarray(x)
            if x.ndim < 1 or x.shape[-1] < m:
                raise ValueError(f"x must have shape (..., W) with W >= m={m}, got shape {x.shape}")
            if not jnp.issubdtype(x.dtype, jnp.floating):
                x = x.astype(jnp.result_type(float))
            y = compiled([x[..., j] for j in range(m)])
            # Unused columns / constant terms may leave a Python float: give it the batch shape and dtype.
            return jnp.broadcast_to(jnp.asarray(y, dtype=x.dtype), x.shape[:-1])

        object.__setattr__(self, "text", text)
        object.__setattr__(self, "variables", variables)
        object.__setattr__(self, "expr", expr)
        object.__setattr__(self, "fn", fn)

    @property
    def m(self) -> int:
        """Number of predictive variables (columns ``0..m-1``)."""
        return len(self.variables)

    def __call__(self, x: jax.Array) -> jax.Array:
        """``f(x[..., :m])`` with shape ``x.shape[:-1]``; see :attr:`fn`."""
        return self.fn(x)

    def __reduce__(self):
        # The compiled closure cannot be pickled; rebuild it from the text.
        return (Formula, (self.name, self.text, self.variables))


def formula(text: str, variables: tuple[str, ...] | list[str] | None = None, name: str | None = None) -> Formula:
    """Parses a user formula and compiles it to a jnp function.

    Args:
      text: expression in sympy syntax over variable names, numbers, ``+ - * / ** ^ ( )`` and the functions
        ``sin cos tan asin acos atan sinh cosh tanh exp log sqrt Abs`` (``abs`` is ``Abs``); constants ``pi``
        and ``E``. ``log`` is the natural log. No other code is accepted (the namespace is restricted).
      variables: predictive variables in column order. Default: the expression's free symbols in natural order
        (``a, b, c``; ``x2`` before ``x10``). Every symbol used must be listed; extra listed ones are allowed.
      name: label; defaults to the text.

    Returns:
      A :class:`Formula`.

    Raises:
      ValueError: malformed text, unknown function, a used symbol missing from ``variables``, or no variables.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return Formula(text.strip() if name is None else name, text, None if variables is None else tuple(variables))


_LETTERS = "abcdefghij"
_PAPER_TEXTS = (
    "a",
    "a**2",
    "2/(a**2 + 1) - 1",
    "sin(a)",
    "exp(a) - 1.5",
    "2*log(a**2 + 1) - 1",
    "0.25*a**3 + 0.75*b**2",
    "0.5*a**3 + 0.75*b**2 + a*c",
    "0.5*exp(a)*sin(b) - 0.25*cos(d)**5/(c**2 + 1)",
    "0.5*(a - b)**2 + 0.2*(c + d*e)**3 - 0.5",
    "0.5*cos(a)*tan(b) - log((c - d)**2 + 1)/((e + f + 1)**2 + 1)",
    "0.5*(b - c)**2/(a**2 + 1) + tan(d)*log(e**2 + 1) + 0.5*cos(f)*sin(g)",
    "a + b**2/2 + c**3/3 + d**4/4 + e**5/5 + f**6/6 + f**7/7 + g**8/8",
    "0.5*(a - 1)/(b**2 + 1) - 0.5*c**3/(d**2 + 1) + 0.5*e**5/(f**2 + 1) - 0.5*g**7/(h**2 + 1) + 0.5*tan(i) + 0.5",
    "0.5*sin(a) - 0.5*b**3 - log(c**2 + 1) + 0.5*sqrt((d + e)**2 + 1) - 0.5*cos(f)*g"
    " + h*i**2/((1 - j)**2 + 1) - 0.5",
)
_PAPER_M = (1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
_CORRECTED_12 = "a + b**2/2 + c**3/3 + d**4/4 + e**5/5 + f**6/6 + h**7/7 + g**8/8"

#: The study's 15 formulas as published (protocol ``"paper"``): ``f12`` uses ``f`` twice and never ``h``, yet has
#: ``m = 8`` variables ``a..h``, so its column ``h`` is declared predictive but is noise.
FORMULAS: tuple[Formula, ...] = tuple(
    Formula(f"f{i}", t, tuple(_LETTERS[:m])) for i, (t, m) in enumerate(zip(_PAPER_TEXTS, _PAPER_M))
)
_CORRECTED = FORMULAS[:12] + (Formula("f12", _CORRECTED_12, tuple(_LETTERS[:8])),) + FORMULAS[13:]


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")


def formulas(protocol: str = "paper") -> tuple[Formula, ...]:
    """The study's 15 formulas ``f0..f14``.

    ``"paper"`` is :data:`FORMULAS`; ``"corrected"`` replaces ``f12``'s second ``f**7/7`` term by ``h**7/7`` so that
    all 8 declared variables carry signal.
    """
    _check_protocol(protocol)
    return FORMULAS if protocol == "paper" else _CORRECTED


def check_on_range(f: Formula, *, bound: float = 1.0) -> list[str]:
    """Refuses a formula the benchmark cannot learn from: one that is not finite somewhere on ``[-bound, bound]^m``
    (``make_dataset`` clips every column to ``[-1, 1]``; e.g. ``1/a`` at ``a = 0``, ``log(a)`` for ``a < 0``,
    an overflow) or constant there (``sin(a)**2 + cos(a)**2``: nothing to attribute). Returns warnings (one per
    variable that has no effect on the range: declared predictive, but noise), and raises ``ValueError`` otherwise.

    A numerical probe, in float32 as the data: 64 random points, and along each variable a grid of 201 values
    (``0`` and ``±bound`` included) at 8 of them.
    """
    f = _as_formula(f)
    rng = np.random.default_rng(0)
    base = rng.uniform(-bound, bound, (64, f.m))
    grid = np.linspace(-bound, bound, 201)
    lines = []
    for j in range(f.m):
        line = np.repeat(base[:8], grid.size, axis=0)
        line[:, j] = np.tile(grid, 8)
        lines.append(line)
    x = np.concatenate([base, *lines]).astype(np.float32)
    with np.errstate(all="ignore"):
        y = np.asarray(f(jnp.asarray(x)), np.float64)
    bad = ~np.isfinite(y)
    if bad.any():
        at = ", ".join(f"{v}={float(x[np.argmax(bad), i]):.3g}" for i, v in enumerate(f.variables))
        raise ValueError(f"formula {f.text!r} is not finite ({y[np.argmax(bad)]}) at {at}: it must be defined on "
                         f"[-{bound:g}, {bound:g}], where every column is sampled")
    scale = max(1.0, float(np.max(np.abs(y))))
    if np.ptp(y) <= 1e-5 * scale:
        raise ValueError(f"formula {f.text!r} is constant ({float(np.mean(y)):.6g}) on [-{bound:g}, {bound:g}]: "
                         "there is no signal to find")
    warnings = []
    along = y[len(base):].reshape(f.m, 8, grid.size)
    for j, v in enumerate(f.variables):
        if np.ptp(along[j], axis=1).max() <= 1e-5 * scale:
            warnings.append(f"formula {f.text!r}: variable {v} has no effect on [-{bound:g}, {bound:g}]; its column "
                            "counts as predictive but is noise")
    return warnings


# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------


class SymbolicData(NamedTuple):
    """Train/test split of one formula's table.

    ``x_*``: ``(rows, W)``; ``y_*``: noisy targets ``f(x) + eps``; ``y_*_clean``: ``f(x)``; ``m``: number of
    predictive columns (the first ``m``); ``column_mask``: bool ``(W,)``, True on real (predictive and noise)
    columns, False on zero padding.
    """

    x_train: jax.Array
    y_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array
    y_test_clean: jax.Array
    y_train_clean: jax.Array
    m: int
    column_mask: jax.Array


def _as_formula(f: Formula | str, argname: str = "formula") -> Formula:
    if isinstance(f, Formula):
        return f
    if isinstance(f, str):
        return formula(f)
    raise TypeError(f"{argname} must be a Formula or a formula string, got {type(f).__name__}")


def _check_int(value: Any, argname: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{argname} must be an int, got {value!r}")
    return int(value)


def make_dataset(
    key: jax.Array,
    formula: Formula | str,
    *,
    noise_features: int = 100,
    n: int = 10_000,
    x_std: float = 0.33,
    y_std: float = 0.01,
    test_fraction: float = 0.2,
    pad_to: int | None = None,
    dtype: Any = jnp.float32,
) -> SymbolicData:
    """Samples one formula's table and splits it into train and test rows.

    ``x[:, j] ~ clip(N(0, x_std^2), -1, 1)`` i.i.d. for the ``m + noise_features`` real columns, followed by zero
    columns up to width ``pad_to`` (so formulas with different ``m`` stack into one grid); ``y = f(x) + N(0,
    y_std^2)``. The first ``n - round(n * test_fraction)`` rows are train, the rest test.

    The predictive block, the noise block and the label noise use three independent subkeys of ``key``, so for a
    fixed key the predictive columns and targets are the same whatever ``noise_features`` is (common random numbers
    across a noise ablation). Same key, same arrays.

    Args:
      key: a ``jax.random`` key.
      formula: a :class:`Formula` (or text for :func:`formula`).
      noise_features: number of pure-noise columns (>= 0).
      n: total rows.
      x_std: std of the normal before clipping (> 0).
      y_std: label-noise std (>= 0).
      test_fraction: share of rows in the test split, in (0, 1).
      pad_to: total width ``W >= m + noise_features``; None means no padding.
      dtype: float dtype of all arrays.

    Returns:
      :class:`SymbolicData`.
    """
    f = _as_formula(formula)
    m = f.m
    noise_features = _check_int(noise_features, "noise_features")
    n = _check_int(n, "n")
    if noise_features < 0:
        raise ValueError(f"noise_features must be >= 0, got {noise_features}")
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_test = int(round(n * float(test_fraction)))
    n_train = n - n_test
    if n_test < 1 or n_train < 1:
        raise ValueError(
            f"n={n} is too small for test_fraction={test_fraction}: split gives {n_train} train / {n_test} test rows"
        )
    if not float(x_std) > 0.0:
        raise ValueError(f"x_std must be > 0, got {x_std}")
    if not float(y_std) >= 0.0:
        raise ValueError(f"y_std must be >= 0, got {y_std}")
    real = m + noise_features
    if pad_to is None:
        width = real
    else:
        width = _check_int(pad_to, "pad_to")
        if width < real:
            raise ValueError(f"pad_to={width} is smaller than m + noise_features = {m} + {noise_features} = {real}")
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a float dtype, got {dtype}")

    x, y, y_clean = _sample(key, x_std, y_std, f=f, noise_features=noise_features, n=n, width=width, dtype=dtype)
    mask = jnp.arange(width) < real
    return SymbolicData(
        x_train=x[:n_train],
        y_train=y[:n_train],
        x_test=x[n_train:],
        y_test=y[n_train:],
        y_test_clean=y_clean[n_train:],
        y_train_clean=y_clean[:n_train],
        m=m,
        column_mask=mask,
    )


def _sample(key, x_std, y_std, *, f: Formula, noise_features: int, n: int, width: int, dtype):
    # Eager on purpose: the sampling kernels are cached per shape and reused across formulas, which beats
    # compiling one program per (formula, width); ``f`` itself is jitted. Arguments were validated by make_dataset.
    k_pred, k_noise, k_y = jax.random.split(key, 3)

    def columns(k, cols):
        return jnp.clip(jax.random.normal(k, (n, cols), dtype) * jnp.asarray(x_std, dtype), -1.0, 1.0)

    real = f.m + noise_features
    x = jnp.concatenate(
        [columns(k_pred, f.m), columns(k_noise, noise_features), jnp.zeros((n, width - real), dtype)], axis=1
    )
    y_clean = f(x)
    y = y_clean + jnp.asarray(y_std, dtype) * jax.random.normal(k_y, (n,), dtype)
    return x, y, y_clean


# ---------------------------------------------------------------------------------------------------------------
# Ground truth
# ---------------------------------------------------------------------------------------------------------------

#: Methods :func:`ground_truth` knows. ``input_x_gradient`` and ``deeplift`` are aliases (see there).
GROUND_TRUTH_METHODS = ("saliency", "integrated_gradients", "feature_ablation", "input_x_gradient", "deeplift")
#: The perturbation family's truths (``docs/ground_truth.md``): exact Shapley values, occlusion, permutation.
GROUND_TRUTH_METHODS += ("shapley", "occlusion", "feature_permutation")
#: Most variables ``"shapley"`` enumerates the ``2^m`` coalitions of.
SHAPLEY_MAX_VARIABLES = 16

# Gauss-Legendre nodes for the exact IG integral under "corrected": the formulas are analytic on the path, so 64
# nodes reach float64 round-off, far below float32 tolerance.
_GL_NODES = 64


def _grad(f: Formula, z: jax.Array) -> jax.Array:
    # Rows do not interact, so the gradient of the sum is the per-row gradient.
    return jax.grad(lambda u: jnp.sum(f(u)))(z)


def _shapley(f: Formula, z: jax.Array, b: jax.Array) -> jax.Array:
    """Exact Shapley values ``(n, m)`` of ``f`` at rows ``z`` against baselines ``b`` (both ``(n, m)``): the
    ``2^m`` coalition values times their signed weights, ``(|S|-1)! (m-|S|)! / m!`` for a member, ``-|S|! (m-|S|-1)!
    / m!`` for a non-member."""
    m = z.shape[1]
    present = (np.arange(2**m)[:, None] >> np.arange(m)[None, :]) & 1  # (C, m)
    size = present.sum(axis=1)
    w = np.array([math.factorial(s) * math.factorial(m - s - 1) / math.factorial(m) for s in range(m)] + [0.0])
    coef = np.where(present == 1, w[np.maximum(size - 1, 0)][:, None], -w[size][:, None])  # (C, m)
    mask = jnp.asarray(present == 1)

    def value(keep):
        return f(jnp.where(keep[None, :], z, b))

    values = jax.lax.map(value, mask, batch_size=min(256, 2**m))  # (C, n)
    return jnp.matmul(values.T, jnp.asarray(coef, z.dtype), precision=jax.lax.Precision.HIGHEST)


def ground_truth(
    formula: Formula,
    x: jax.Array,
    method: str,
    *,
    steps: int = 20,
    protocol: str = "paper",
    baseline: float | jax.Array = 0.0,
    background: jax.Array | None = None,
) -> jax.Array:
    """The true function's own attribution for each row of ``x``.

    With ``b`` the baseline, ``S = steps`` and ``e_j`` the j-th unit vector, for predictive columns ``j < m``:

    - ``"saliency"``: ``g_j = df/dx_j (x)`` (signed, both protocols).
    - ``"integrated_gradients"``:
      ``"paper"``: the study's left-Riemann path sum
      ``g_j = sum_{t=0}^{S-1} [f(p_t + e_j (x_j - b_j)/S) - f(p_t)]`` with ``p_t = b + (x - b) t/S``
      (the study: ``b = 0``, ``S = 20``);
      ``"corrected"``: the exact path integral ``g_j = (x_j - b_j) int_0^1 df/dx_j(b + a (x - b)) da`` by 64-point
      Gauss-Legendre quadrature (``steps`` is then unused). It is complete: ``sum_j g_j = f(x) - f(b)``.
    - ``"feature_ablation"``: ``g_j = f(x) - f(x with x_j = b_j)``.
    - ``"input_x_gradient"``: ``g_j = x_j df/dx_j (x)``.
    - ``"deeplift"``: ``"paper"``: ``g_j = (x_j - b_j) df/dx_j (x)``. The study scores DeepLIFT by functional
      precision only (no truth needed); on its GELU MLPs Captum's DeepLIFT has no GELU rule and reduces to
      ``(x - b) * gradient``, so this is the matching target. ``"corrected"``: DeepLIFT itself (Rescale on every
      elementwise nonlinearity, ``chaosjax.attribution.deeplift``) run on the formula's own JAX function, so a
      model that computes ``f`` as the formula does scores 1. DeepLIFT depends on how a function is computed, not
      only on its values: on the formula's graph products of two variables (``a*c``) pass their plain gradient.
    - ``"shapley"``: the exact Shapley values of ``f`` over its ``m`` variables, a variable absent from a coalition
      taking its baseline value: ``g_j = sum_{S not containing j} |S|! (m-|S|-1)! / m! [f(x_{S+j}, b) - f(x_S, b)]``
      (all ``2^m`` coalitions; ``m <= 16``). Efficient: ``sum_j g_j = f(x) - f(b)``. With ``background`` (rows
      ``(K, W)``), the mean over its rows used as baselines (the Shapley values DeepLIFT-SHAP approximates).
    - ``"occlusion"``: single-column occlusion, the symbolic track's (a table's column order carries no
      meaning, so its windows are one column wide): the ablation difference, as ``"feature_ablation"``.
    - ``"feature_permutation"``: the expectation over permutations of the permutation drop,
      ``g_j = f(x) - mean_k f(x with x_j = background_kj)``; ``background`` defaults to the rows of ``x`` (the
      batch a permutation shuffles).

    Columns ``j >= m`` (noise and padding) are zero. Only the formula's own columns are used, so the declared-but-
    unused column of the paper's ``f12`` gets zero truth; the protocol flag does not change the formula (pass
    ``formulas("corrected")[12]`` for the fixed one).

    Args:
      formula: the true function (static under ``jit``).
      x: ``(n, W)`` inputs, ``W >= m`` (any leading batch shape is accepted).
      method: one of :data:`GROUND_TRUTH_METHODS`.
      steps: path steps ``S`` of the paper IG sum.
      protocol: ``"paper"`` or ``"corrected"``; changes ``"integrated_gradients"`` and ``"deeplift"``.
      baseline: scalar or array broadcastable to ``x`` (e.g. ``(W,)``).
      background: ``(K, W)`` rows: the baselines ``"shapley"`` averages over, or the rows
        ``"feature_permutation"`` draws from; unused by the other methods.

    Returns:
      Array shaped like ``x``.
    """
    f = _as_formula(formula)
    if method not in GROUND_TRUTH_METHODS:
        raise ValueError(f"method must be one of {GROUND_TRUTH_METHODS}, got {method!r}")
    _check_protocol(protocol)
    steps = _check_int(steps, "steps")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"x must have a float dtype, got {x.dtype}")
    m = f.m
    if x.ndim < 1 or x.shape[-1] < m:
        raise ValueError(f"x must have shape (n, W) with W >= m={m}, got shape {x.shape}")
    try:
        fits = jnp.broadcast_shapes(jnp.shape(baseline), x.shape) == x.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"baseline of shape {jnp.shape(baseline)} does not broadcast to x's shape {x.shape}")

    # Only the formula's m columns enter the compiled program, so tables that differ only in their noise
    # columns (a noise sweep) share it; the noise columns' truth is zero.
    if method == "shapley" and m > SHAPLEY_MAX_VARIABLES:
        raise ValueError(
            f"method 'shapley' enumerates all 2^m coalitions; formula {f.text!r} has m={m} variables, more than "
            f"{SHAPLEY_MAX_VARIABLES}"
        )
    if background is not None:
        background = jnp.asarray(background, x.dtype)
        if background.ndim != 2 or background.shape[0] < 1 or background.shape[1] < m:
            raise ValueError(f"background must be rows (K, W) with K >= 1 and W >= m={m}, got shape "
                             f"{background.shape}")
        background = background[:, :m]
    elif method == "feature_permutation":
        background = x.reshape(-1, x.shape[-1])[:, :m]

    b = jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)[..., :m]
    g = _ground_truth(f, x[..., :m], b, background if method in ("shapley", "feature_permutation") else None,
                      method=method, steps=steps, protocol=protocol)
    return jnp.concatenate([g, jnp.zeros(g.shape[:-1] + (x.shape[-1] - m,), g.dtype)], axis=-1)


@functools.partial(jax.jit, static_argnames=("f", "method", "steps", "protocol"))
def _ground_truth(f: Formula, x: jax.Array, baseline: Any, background: Any = None, *, method: str, steps: int,
                  protocol: str) -> jax.Array:
    # Arguments were validated by ground_truth; jit so an eager call is one compiled program.
    m = f.m
    b_full = jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)
    shape, width = x.shape, x.shape[-1]
    z = x.reshape(-1, width)[:, :m]  # (n, m): only the formula's columns matter
    b = b_full.reshape(-1, width)[:, :m]
    dt = x.dtype

    if method == "deeplift" and protocol == "corrected":
        # The one place data uses an attribution method: DeepLIFT's truth is DeepLIFT of the true function.
        from chaosjax.attribution.deeplift import deeplift

        g = deeplift(f, z, baseline=b, rescale="all")
    elif method in ("saliency", "input_x_gradient", "deeplift"):
        g = _grad(f, z)
        if method == "input_x_gradient":
            g = z * g
        elif method == "deeplift":
            g = (z - b) * g
    elif method == "shapley":
        if background is None:
            g = _shapley(f, z, b)
        else:  # one baseline per background row, averaged: a sequential map keeps one row's coalitions alive
            g = jnp.mean(jax.lax.map(lambda row: _shapley(f, z, jnp.broadcast_to(row, z.shape)), background), axis=0)
    elif method == "feature_permutation":
        eye = jnp.eye(m, dtype=bool)

        def replaced(row):  # (n, j, m): every row with column j set to this background row's value
            return f(jnp.where(eye[None, :, :], row[None, None, :], z[:, None, :]))

        g = f(z)[:, None] - jnp.mean(jax.lax.map(replaced, background, batch_size=16), axis=0)
    elif method in ("feature_ablation", "occlusion"):
        eye = jnp.eye(m, dtype=bool)
        # (n, j, m): row i with column j replaced by its baseline
        ablated = jnp.where(eye[None, :, :], b[:, None, :], z[:, None, :])
        g = f(z)[:, None] - f(ablated)
    elif protocol == "paper":
        delta = (z - b) / steps
        eye = jnp.eye(m, dtype=dt)

        def step(t):
            p = b + (z - b) * (t.astype(dt) / steps)  # left Riemann point p_t
            moved = p[:, None, :] + eye[None, :, :] * delta[:, None, :]  # (n, j, m): p_t + e_j delta_j
            return f(moved) - f(p)[:, None]

        # lax.map keeps memory at one step's (n, m, m) block, whatever S is.
        g = jnp.sum(jax.lax.map(step, jnp.arange(steps)), axis=0)
    else:
        nodes, weights = np.polynomial.legendre.leggauss(_GL_NODES)
        alpha = jnp.asarray((nodes + 1.0) / 2.0, dt)  # map [-1, 1] -> [0, 1]
        w = jnp.asarray(weights / 2.0, dt)
        path = b[None] + alpha[:, None, None] * (z - b)[None]  # (K, n, m)
        grads = _grad(f, path)
        g = (z - b) * jnp.sum(w[:, None, None] * grads, axis=0)

    g = g.astype(dt)
    out = jnp.concatenate([g, jnp.zeros((g.shape[0], width - m), dt)], axis=1)
    return out.reshape(shape)
