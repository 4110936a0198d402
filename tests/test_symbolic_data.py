"""Symbolic track: formulas, data generation and the true functions' attributions."""

import math
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy

from chaosjax.data.symbolic import (
    FORMULAS,
    GROUND_TRUTH_METHODS,
    Formula,
    SymbolicData,
    formula,
    formulas,
    ground_truth,
    make_dataset,
)

PAPER_M = (1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
W = 12  # table width used by the ground-truth tests (>= every m)


def _points(key, n, width, std=0.33):
    return jnp.clip(jax.random.normal(key, (n, width)) * std, -1.0, 1.0)


def _numpy_fn(expr, variables, transform=lambda e, s: e):
    syms = [sympy.Symbol(v, real=True) for v in variables]
    return lambda x: np.broadcast_to(
        np.asarray(sympy.lambdify(syms, transform(expr, syms), "numpy")(*x.T), np.float64), x.shape[:1]
    )


# ----- formulas -----------------------------------------------------------------------------------------------


def test_fifteen_formulas_with_protocol_m():
    assert len(FORMULAS) == 15
    assert tuple(f.m for f in FORMULAS) == PAPER_M
    assert tuple(f.name for f in FORMULAS) == tuple(f"f{i}" for i in range(15))
    assert formulas("paper") == FORMULAS
    assert tuple(f.m for f in formulas("corrected")) == PAPER_M
    for f in FORMULAS:
        assert f.variables == tuple("abcdefghij"[: f.m])
    with pytest.raises(ValueError, match="protocol"):
        formulas("papr")


def test_formulas_match_protocol_table_at_a_point():
    # Spot values written independently of the module's texts, from the formula table of docs/protocol.md ("Symbolic").
    a, b, c, d, e, f, g, h, i, j = 0.3, -0.2, 0.5, 0.1, -0.4, 0.25, 0.6, -0.7, 0.15, 0.35
    expected = {
        2: 2 / (a**2 + 1) - 1,
        5: 2 * math.log(a**2 + 1) - 1,
        8: 0.5 * math.exp(a) * math.sin(b) - 0.25 * math.cos(d) ** 5 / (c**2 + 1),
        10: 0.5 * math.cos(a) * math.tan(b) - math.log((c - d) ** 2 + 1) / ((e + f + 1) ** 2 + 1),
        12: a + b**2 / 2 + c**3 / 3 + d**4 / 4 + e**5 / 5 + f**6 / 6 + f**7 / 7 + g**8 / 8,
        13: 0.5 * (a - 1) / (b**2 + 1) - 0.5 * c**3 / (d**2 + 1) + 0.5 * e**5 / (f**2 + 1)
        - 0.5 * g**7 / (h**2 + 1) + 0.5 * math.tan(i) + 0.5,
        14: 0.5 * math.sin(a) - 0.5 * b**3 - math.log(c**2 + 1) + 0.5 * math.sqrt((d + e) ** 2 + 1)
        - 0.5 * math.cos(f) * g + h * i**2 / ((1 - j) ** 2 + 1) - 0.5,
    }
    x = jnp.array([[a, b, c, d, e, f, g, h, i, j]])
    for k, want in expected.items():
        np.testing.assert_allclose(float(FORMULAS[k](x)[0]), want, rtol=1e-5, atol=1e-6)
    corrected = formulas("corrected")[12]
    want = expected[12] - f**7 / 7 + h**7 / 7
    np.testing.assert_allclose(float(corrected(x)[0]), want, rtol=1e-5, atol=1e-6)


def test_formula_12_differs_between_protocols(getkey):
    x = _points(getkey(), 64, 8)
    paper, corrected = formulas("paper")[12], formulas("corrected")[12]
    assert paper.m == corrected.m == 8
    g_paper = ground_truth(paper, x, "saliency")
    g_corr = ground_truth(corrected, x, "saliency")
    assert jnp.all(g_paper[:, 7] == 0.0)  # column h is declared predictive but unused
    assert jnp.all(jnp.abs(g_corr[:, 7]) > 0.0)
    # ... and corrected's f column lost the f**7/7 term
    assert not jnp.allclose(g_paper[:, 5], g_corr[:, 5])


def test_formula_eval_shapes_dtype_jit_vmap_grad(getkey):
    f = FORMULAS[9]
    x = _points(getkey(), 12, 7)
    y = f(x)
    assert y.shape == (12,) and y.dtype == jnp.float32
    assert f.fn(x).shape == (12,)
    assert f(x.reshape(3, 4, 7)).shape == (3, 4)
    np.testing.assert_allclose(jax.jit(f)(x), y, rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(f)(x), y, rtol=1e-6)
    assert jax.grad(lambda r: f(r))(x[0]).shape == (7,)
    # Constants (pi, rationals) must not promote float32 to float64 under x64.
    g = formula("pi*a/3 + E*b**2 + sqrt(a**2 + 1)")
    with jax.enable_x64(True):
        assert g(jnp.ones((3, 2), jnp.float32)).dtype == jnp.float32
        assert g(jnp.ones((3, 2), jnp.float64)).dtype == jnp.float64
    with pytest.raises(ValueError, match="W >= m"):
        f(jnp.ones((3, 4)))


def test_formula_parses_user_text():
    f = formula("0.5*sin(a) + b^2 - log(Abs(c) + 1) + exp(-a)*tan(b)/sqrt(c**2 + 1) + pi*E + 1/3")
    assert f.variables == ("a", "b", "c") and f.m == 3
    a, b, c = 0.2, -0.3, 0.7
    want = 0.5 * math.sin(a) + b**2 - math.log(abs(c) + 1) + math.exp(-a) * math.tan(b) / math.sqrt(c**2 + 1)
    want += math.pi * math.e + 1 / 3
    np.testing.assert_allclose(float(f(jnp.array([[a, b, c]]))[0]), want, rtol=1e-6)
    assert formula("x10 + x2").variables == ("x2", "x10")  # natural order
    g = formula("b*a", variables=["b", "a", "z"], name="mine")
    assert g.variables == ("b", "a", "z") and g.name == "mine" and g.m == 3
    np.testing.assert_allclose(g(jnp.array([[2.0, 3.0, 5.0]])), [6.0])
    # equal formulas hash equal (usable as jit static args); pickling rebuilds the compiled function
    assert formula("a + b") == formula("a + b") and hash(formula("a + b")) == hash(formula("a + b"))
    h = pickle.loads(pickle.dumps(FORMULAS[14]))
    np.testing.assert_allclose(h(jnp.ones((2, 10)) * 0.1), FORMULAS[14](jnp.ones((2, 10)) * 0.1))


@pytest.mark.parametrize(
    "text, match",
    [
        ("a +* b", "malformed"),
        ("(a + b", "parenthes"),
        ("a.__class__", "not allowed"),
        ("__import__('os')", "not allowed"),
        ("foo(a)", "unknown function"),
        ("1/0", "non-finite"),
        ("3 + 4", "no variables"),
        ("", "empty"),
        ("a if b else c", "not allowed"),
        ("a; b", "not allowed"),
    ],
)
def test_formula_rejects_bad_text(text, match):
    with pytest.raises(ValueError, match=match):
        formula(text)


def test_formula_variable_mismatch():
    with pytest.raises(ValueError, match="variables"):
        formula("a + b*c", variables=("a", "b"))
    with pytest.raises(ValueError, match="variables"):
        formula("a + b", variables=("a", "a", "b"))
    with pytest.raises(ValueError, match="variables"):
        formula("a", variables=())


# ----- data ---------------------------------------------------------------------------------------------------


def _clipped_normal_std(sigma, c=1.0):
    z = c / sigma
    phi = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + math.erf(z / math.sqrt(2)))
    second = sigma**2 * ((2 * cdf - 1) - 2 * z * phi) + c**2 * 2 * (1 - cdf)
    return math.sqrt(second)


def test_columns_have_protocol_marginals(getkey):
    data = make_dataset(getkey(), FORMULAS[7], noise_features=197, n=10_000)
    assert isinstance(data, SymbolicData)
    x = jnp.concatenate([data.x_train, data.x_test])
    assert x.shape == (10_000, 200) and x.dtype == jnp.float32
    assert data.x_train.shape == (8_000, 200) and data.x_test.shape == (2_000, 200)
    assert data.m == 3
    expected = _clipped_normal_std(0.33)
    # 2M draws: the std's standard error is ~1.7e-4 (clipping itself moves it by 7.5e-4; x_std=1 tests it below)
    np.testing.assert_allclose(float(jnp.std(x)), expected, atol=5e-4)
    np.testing.assert_allclose(float(jnp.mean(x)), 0.0, atol=2e-3)
    # every column has the same marginal, predictive ones included
    np.testing.assert_allclose(jnp.std(x, axis=0), expected, atol=0.02)
    assert float(jnp.max(jnp.abs(x))) <= 1.0
    wide = make_dataset(getkey(), FORMULAS[0], noise_features=50, n=2_000, x_std=1.0)
    xw = wide.x_train
    np.testing.assert_allclose(float(jnp.mean(jnp.abs(xw) == 1.0)), 2 * (1 - 0.8413447), atol=0.01)
    np.testing.assert_allclose(float(jnp.std(xw)), _clipped_normal_std(1.0), atol=0.01)


def test_same_key_same_data_different_key_different(getkey):
    key = getkey()
    d1 = make_dataset(key, FORMULAS[11], noise_features=20, n=500)
    d2 = make_dataset(key, FORMULAS[11], noise_features=20, n=500)
    d3 = make_dataset(getkey(), FORMULAS[11], noise_features=20, n=500)
    for a, b, c in zip(d1, d2, d3):
        if isinstance(a, int):
            continue
        np.testing.assert_array_equal(a, b)
        if a.dtype != jnp.bool_:
            assert not np.array_equal(a, c)
    # common random numbers: the predictive block and targets do not depend on the noise count
    d4 = make_dataset(key, FORMULAS[11], noise_features=5, n=500)
    np.testing.assert_array_equal(d4.x_train[:, :7], d1.x_train[:, :7])
    np.testing.assert_array_equal(d4.y_train, d1.y_train)


def test_targets_and_label_noise(getkey):
    data = make_dataset(getkey(), FORMULAS[9], noise_features=10, n=10_000, y_std=0.05)
    np.testing.assert_allclose(data.y_train_clean, FORMULAS[9](data.x_train), rtol=1e-6)
    np.testing.assert_allclose(data.y_test_clean, FORMULAS[9](data.x_test), rtol=1e-6)
    resid = jnp.concatenate([data.y_train - data.y_train_clean, data.y_test - data.y_test_clean])
    np.testing.assert_allclose(float(jnp.std(resid)), 0.05, rtol=0.03)
    np.testing.assert_allclose(float(jnp.mean(resid)), 0.0, atol=2e-3)
    clean = make_dataset(getkey(), FORMULAS[9], noise_features=10, n=100, y_std=0.0)
    np.testing.assert_array_equal(clean.y_train, clean.y_train_clean)


def test_padding_and_column_mask(getkey):
    data = make_dataset(getkey(), FORMULAS[8], noise_features=6, n=100, pad_to=16)
    assert data.x_train.shape == (80, 16) and data.x_test.shape == (20, 16)
    np.testing.assert_array_equal(data.column_mask, np.arange(16) < 10)
    assert jnp.all(data.x_train[:, 10:] == 0.0) and jnp.all(data.x_test[:, 10:] == 0.0)
    assert jnp.all(jnp.any(data.x_train[:, :10] != 0.0, axis=0))
    unpadded = make_dataset(getkey(), FORMULAS[8], noise_features=6, n=100)
    assert unpadded.x_train.shape == (80, 10) and bool(jnp.all(unpadded.column_mask))
    # formulas with different m stack into one grid at a common width
    some = (0, 7, 12, 14)
    grid = [make_dataset(getkey(), FORMULAS[k], noise_features=3, n=50, pad_to=13) for k in some]
    assert jnp.stack([d.x_train for d in grid]).shape == (4, 40, 13)
    np.testing.assert_array_equal(jnp.stack([d.column_mask for d in grid]).sum(axis=1), [4, 6, 11, 13])


@pytest.mark.parametrize(
    "kwargs, argname",
    [
        ({"noise_features": -1}, "noise_features"),
        ({"n": 1}, "n="),
        ({"n": 4, "test_fraction": 0.1}, "n="),
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"pad_to": 5}, "pad_to"),
        ({"x_std": 0.0}, "x_std"),
        ({"y_std": -0.1}, "y_std"),
    ],
)
def test_make_dataset_rejects_bad_arguments(kwargs, argname):
    with pytest.raises(ValueError, match=argname):
        make_dataset(jax.random.key(0), FORMULAS[7], **{"noise_features": 10, "n": 100, **kwargs})


def test_make_dataset_dtype_and_text_formula(getkey):
    with jax.enable_x64(True):
        d = make_dataset(getkey(), "a*b", noise_features=2, n=10, dtype=jnp.float64)
        assert d.x_train.dtype == jnp.float64 and d.y_train.dtype == jnp.float64 and d.m == 2
    with pytest.raises(TypeError, match="dtype"):
        make_dataset(getkey(), FORMULAS[0], n=10, dtype=jnp.int32)
    with pytest.raises(TypeError, match="formula"):
        make_dataset(getkey(), 3, n=10)


# ----- ground truth -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["paper", "corrected"])
def test_saliency_truth_matches_sympy_derivative(getkey, protocol):
    for f in formulas(protocol):
        x = _points(getkey(), 32, W)  # one shape for all formulas: compiled kernels are reused
        g = ground_truth(f, x, "saliency", protocol=protocol)
        assert g.shape == x.shape and g.dtype == jnp.float32
        xn = np.asarray(x, np.float64)
        for j, v in enumerate(f.variables):
            want = _numpy_fn(f.expr, f.variables, lambda e, s, j=j: sympy.diff(e, s[j]))(xn[:, : f.m])
            np.testing.assert_allclose(g[:, j], want, rtol=2e-5, atol=2e-6, err_msg=f"{f.name} d/d{v}")
        assert jnp.all(g[:, f.m :] == 0.0)


def test_paper_ig_matches_explicit_loop(getkey):
    steps = 7
    for f in FORMULAS:
        x = _points(getkey(), 8, W)
        g = ground_truth(f, x, "integrated_gradients", steps=steps, protocol="paper")
        xd = np.asarray(x, np.float64)
        fn = _numpy_fn(f.expr, f.variables)
        want = np.zeros((8, f.m))
        for t in range(steps):
            p = xd[:, : f.m] * t / steps
            for j in range(f.m):
                q = p.copy()
                q[:, j] += xd[:, j] / steps
                want[:, j] += fn(q) - fn(p)
        np.testing.assert_allclose(g[:, : f.m], want, rtol=1e-4, atol=1e-5, err_msg=f.name)
        assert jnp.all(g[:, f.m :] == 0.0)


def test_paper_ig_is_a_left_riemann_sum_not_the_exact_integral(getkey):
    # f = a*b: the exact IG gives each variable x_a x_b / 2; the left sum misses the last step's slope.
    f = formula("a*b")
    x = jnp.array([[0.5, 0.8]])
    S = 4
    paper = ground_truth(f, x, "integrated_gradients", steps=S, protocol="paper")
    exact = ground_truth(f, x, "integrated_gradients", protocol="corrected")
    # left sum for d/da of a*b along the path: sum_t (x_a/S) * (x_b t/S) = x_a x_b (S-1)/(2S)
    np.testing.assert_allclose(paper[0], [0.4 * 3 / 8, 0.4 * 3 / 8], rtol=1e-6)
    np.testing.assert_allclose(exact[0], [0.2, 0.2], rtol=1e-6)


@pytest.mark.parametrize("protocol", ["paper", "corrected"])
def test_corrected_ig_is_complete_for_all_formulas(getkey, protocol):
    for f in formulas(protocol):
        x = _points(getkey(), 32, W)
        g = ground_truth(f, x, "integrated_gradients", protocol="corrected")
        np.testing.assert_allclose(
            jnp.sum(g, axis=1), f(x) - f(jnp.zeros_like(x)), atol=1e-4, rtol=1e-4, err_msg=f.name
        )
        assert jnp.all(g[:, f.m :] == 0.0)
    # and with a non-zero baseline: sum_j g_j = f(x) - f(b)
    f = FORMULAS[14]
    x = _points(getkey(), 32, W)
    b = jnp.full((W,), 0.1)
    g = ground_truth(f, x, "integrated_gradients", protocol="corrected", baseline=b)
    np.testing.assert_allclose(jnp.sum(g, axis=1), f(x) - f(jnp.broadcast_to(b, x.shape)), atol=1e-5)


def test_feature_ablation_truth_matches_direct_evaluation(getkey):
    for f in FORMULAS:
        x = _points(getkey(), 32, W)
        g = ground_truth(f, x, "feature_ablation")
        for j in range(f.m):
            want = f(x) - f(x.at[:, j].set(0.0))
            np.testing.assert_allclose(g[:, j], want, rtol=1e-5, atol=1e-6, err_msg=f"{f.name} col {j}")
        assert jnp.all(g[:, f.m :] == 0.0)
    f = FORMULAS[7]
    x = _points(getkey(), 16, 5)
    g = ground_truth(f, x, "feature_ablation", baseline=0.5)
    np.testing.assert_allclose(g[:, 1], f(x) - f(x.at[:, 1].set(0.5)), rtol=1e-5, atol=1e-6)


def test_input_x_gradient_and_deeplift_aliases(getkey):
    f = FORMULAS[10]
    x = _points(getkey(), 16, 9)
    sal = ground_truth(f, x, "saliency")
    np.testing.assert_allclose(ground_truth(f, x, "input_x_gradient"), x * sal, rtol=1e-6)
    np.testing.assert_allclose(ground_truth(f, x, "deeplift"), x * sal, rtol=1e-6)
    np.testing.assert_allclose(ground_truth(f, x, "deeplift", baseline=0.2)[:, :6], (x - 0.2)[:, :6] * sal[:, :6],
                               rtol=1e-6)


def test_ground_truth_errors(getkey):
    x = _points(getkey(), 4, 6)
    with pytest.raises(ValueError, match="method must be one of"):
        ground_truth(FORMULAS[7], x, "shap")
    with pytest.raises(ValueError, match="protocol"):
        ground_truth(FORMULAS[7], x, "saliency", protocol="exact")
    with pytest.raises(ValueError, match="W >= m"):
        ground_truth(FORMULAS[14], x, "saliency")
    with pytest.raises(ValueError, match="steps"):
        ground_truth(FORMULAS[7], x, "integrated_gradients", steps=0)
    with pytest.raises(ValueError, match="baseline"):
        ground_truth(FORMULAS[7], x, "feature_ablation", baseline=jnp.zeros(5))


def test_ground_truth_jits_and_vmaps(getkey):
    gt = jax.jit(ground_truth, static_argnames=("formula", "method", "steps", "protocol"))
    x = _points(getkey(), 16, 12)
    for method in GROUND_TRUTH_METHODS:
        for protocol in ("paper", "corrected"):
            eager = ground_truth(FORMULAS[13], x, method, protocol=protocol)
            np.testing.assert_allclose(
                gt(FORMULAS[13], x, method, protocol=protocol), eager, rtol=1e-5, atol=1e-6
            )
    # vmap over a stack of datasets (e.g. seeds)
    xs = _points(getkey(), 48, 12).reshape(3, 16, 12)
    stacked = jax.vmap(lambda xx: ground_truth(FORMULAS[13], xx, "integrated_gradients"))(xs)
    np.testing.assert_allclose(stacked[1], ground_truth(FORMULAS[13], xs[1], "integrated_gradients"), rtol=1e-5,
                               atol=1e-6)
    assert isinstance(FORMULAS[13], Formula)


def test_ground_truth_compiles_once_across_noise_widths(getkey):
    from chaosjax.data import symbolic

    x = _points(getkey(), 16, 40)
    before = symbolic._ground_truth._cache_size()
    truths = [ground_truth(FORMULAS[4], x[:, :width], "feature_ablation") for width in (12, 25, 40)]
    assert symbolic._ground_truth._cache_size() == before + 1  # only the formula's columns are traced
    for t in truths:
        np.testing.assert_array_equal(t, truths[-1][:, : t.shape[1]])
        assert not np.any(t[:, FORMULAS[4].m:])


def test_formulas_undefined_or_constant_on_the_sampled_range_are_refused():
    from chaosjax.data import symbolic

    for text, message in [("1/a", "not finite"), ("log(a)", "not finite"), ("sqrt(a - 0.5)", "not finite"),
                          ("1/(b - 0.25) + a", "not finite"), ("exp(exp(exp(exp(a))))", "not finite"),
                          ("sin(a)**2 + cos(a)**2", "constant"), ("a - a*(1 + 0)", "no variables")]:
        with pytest.raises(ValueError, match=message):
            symbolic.check_on_range(symbolic.formula(text))
    assert symbolic.check_on_range(symbolic.formula("0.5*sin(a) + b**2")) == []
    warned = symbolic.check_on_range(symbolic.formula("a + sin(b)**2 + cos(b)**2"))
    assert len(warned) == 1 and "variable b has no effect" in warned[0]
    # The study's formulas are usable; f12's declared-but-unused h (the paper's quirk) is the one warning.
    assert [bool(symbolic.check_on_range(f)) for f in symbolic.FORMULAS] == [i == 12 for i in range(15)]
    assert not any(symbolic.check_on_range(f) for f in symbolic.formulas("corrected"))
