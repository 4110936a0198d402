"""Attribution methods: closed forms, conservation laws, transformations, memory and errors."""

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attribution_models import cnn_apply, cnn_params, mlp_fn, mlp_params
from chaosjax import attribution as A

RULES = A.RULES


def _linear(key, features=6):
    kw, kc = jax.random.split(key)
    w = jax.random.normal(kw, (features,))
    c = jax.random.normal(kc, ())
    return w, (lambda x: x @ w + c)


def _close(a, b, rtol=1e-5):
    """Relative agreement, scaled by the larger array's magnitude."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.abs(b).max(), 1e-12)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


# ---------------------------------------------------------------- closed forms on a linear model


def test_linear_closed_forms(getkey):
    w, f = _linear(getkey())
    x = jax.random.normal(getkey(), (5, 6))
    b = jax.random.normal(getkey(), (6,))
    expected = (x - b[None]) * w[None]

    _close(A.saliency(f, x), jnp.broadcast_to(jnp.abs(w), x.shape))
    _close(A.saliency(f, x, absolute=False), jnp.broadcast_to(w, x.shape))
    _close(A.input_x_gradient(f, x), x * w[None])
    for rule in RULES:
        _close(A.integrated_gradients(f, x, baseline=b, steps=7, rule=rule), expected)
    _close(A.deeplift(f, x, baseline=b), expected)
    _close(A.gradient_shap(f, x, key=getkey(), baselines=b[None], samples=3), expected)


def test_quadrature_rules_integrate_exactly():
    # Gauss-Legendre with n points is exact for polynomials of degree 2n-1; the midpoint and
    # trapezoid rules for degree 1; every rule's weights sum to 1.
    for rule in RULES:
        alphas, weights = A.quadrature(rule, 8)
        assert alphas.shape == weights.shape == (8,)
        assert np.all((alphas >= 0) & (alphas <= 1))
        if rule in ("gausslegendre", "riemann_middle", "riemann_trapezoid"):
            assert np.isclose(np.sum(weights * alphas), 0.5)
        assert np.isclose(np.sum(weights), 1.0)
    alphas, weights = A.quadrature("gausslegendre", 4)
    assert np.isclose(np.sum(weights * alphas**7), 1 / 8)


def test_feature_ablation_of_additive_function(getkey):
    x = jax.random.normal(getkey(), (4, 5))
    b = jax.random.normal(getkey(), (5,))

    def terms(z):
        return jnp.stack([jnp.sin(z[:, 0]), z[:, 1] ** 2, 3 * z[:, 2], jnp.exp(z[:, 3]), z[:, 4] ** 3], axis=1)

    def f(z):
        return jnp.sum(terms(z), axis=1)

    drops = terms(x) - terms(jnp.broadcast_to(b, x.shape))
    _close(A.feature_ablation(f, x, baseline=b), drops)
    groups = np.array([0, 0, 1, 2, 2])
    grouped = A.feature_ablation(f, x, baseline=b, groups=groups)
    expected = jnp.stack(
        [drops[:, 0] + drops[:, 1]] * 2 + [drops[:, 2]] + [drops[:, 3] + drops[:, 4]] * 2, axis=1
    )
    _close(grouped, expected)


# ---------------------------------------------------------------- conservation laws on networks


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "gelu"])
def test_deeplift_summation_to_delta_mlp(getkey, activation):
    params = mlp_params(getkey(), (10, 32, 32, 1))
    f = mlp_fn(params, activation)
    x = jax.random.normal(getkey(), (16, 10))
    b = 0.3 * jax.random.normal(getkey(), (10,))
    attr = A.deeplift(f, x, baseline=b)
    delta = f(x) - f(jnp.broadcast_to(b, x.shape))
    _close(jnp.sum(attr, axis=1), delta, rtol=1e-4)
    # Not the plain gradient: a nonlinear net's DeepLIFT differs from input x gradient.
    assert not np.allclose(attr, (x - b[None]) * A.saliency(f, x, absolute=False), atol=1e-4)


def test_deeplift_summation_to_delta_cnn(getkey):
    params = cnn_params(getkey())
    f = lambda x: cnn_apply(params, x)[:, 0]  # noqa: E731
    x = jax.random.normal(getkey(), (3, 3, 8, 8))
    attr = A.deeplift(f, x)
    _close(jnp.sum(attr, axis=(1, 2, 3)), f(x) - f(jnp.zeros_like(x)), rtol=1e-4)


def test_deeplift_treats_composite_activations_as_one_nonlinearity(getkey):
    # x * sigmoid(x) and a hand-written leaky ReLU are products / selects of the same variable:
    # each is one elementwise nonlinearity, so summation-to-delta still holds exactly.
    params = mlp_params(getkey(), (6, 16, 1))
    (w1, b1), (w2, b2) = params
    for act in (lambda z: z * jax.nn.sigmoid(z), lambda z: jnp.where(z > 0, z, 0.1 * z), jax.nn.silu):
        f = lambda x, act=act: (act(x @ w1 + b1[None]) @ w2 + b2[None])[:, 0]  # noqa: E731
        x = jax.random.normal(getkey(), (8, 6))
        _close(jnp.sum(A.deeplift(f, x), axis=1), f(x) - f(jnp.zeros_like(x)), rtol=1e-4)


def test_deeplift_falls_back_to_gradient_without_a_rule(getkey):
    # A product of two different input-dependent terms has no rule: its plain derivative is used.
    x = jax.random.normal(getkey(), (4, 3))
    f = lambda z: z[:, 0] * z[:, 1] + z[:, 2]  # noqa: E731
    _close(A.deeplift(f, x), A.input_x_gradient(f, x))


def test_integrated_gradients_completeness_improves_with_steps(getkey):
    params = mlp_params(getkey(), (10, 32, 32, 1))
    f = mlp_fn(params, "tanh")
    x = 2.0 * jax.random.normal(getkey(), (32, 10))
    delta = f(x) - f(jnp.zeros_like(x))

    def error(steps, rule):
        attr = A.integrated_gradients(f, x, steps=steps, rule=rule)
        return float(jnp.max(jnp.abs(jnp.sum(attr, axis=1) - delta)) / jnp.max(jnp.abs(delta)))

    # Gauss-Legendre reaches float precision within a few steps, so test the fall before that.
    for rule, steps in [("gausslegendre", (1, 2, 4)), ("riemann_middle", (2, 8, 32)), ("riemann_left", (2, 8, 32))]:
        errors = [error(n, rule) for n in steps]
        assert errors == sorted(errors, reverse=True) and errors[0] > 10 * errors[-1], (rule, errors)
    assert error(50, "gausslegendre") < 1e-3


def test_gradient_shap_converges_to_integrated_gradients(getkey):
    params = mlp_params(getkey(), (5, 16, 1))
    f = mlp_fn(params, "tanh")
    x = jax.random.normal(getkey(), (4, 5))
    b = jax.random.normal(getkey(), (5,))
    ig = A.integrated_gradients(f, x, baseline=b, steps=64)
    key = getkey()
    errors = [
        float(jnp.linalg.norm(A.gradient_shap(f, x, key=key, baselines=b[None], samples=n) - ig))
        for n in (8, 512, 8192)
    ]
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < 0.02 * float(jnp.linalg.norm(ig)), errors


# ---------------------------------------------------------------- SmoothGrad by its definition


@pytest.mark.parametrize("method", ["saliency", "input_x_gradient", "integrated_gradients"])
def test_smoothgrad_is_the_mean_over_its_noisy_inputs(getkey, method):
    params = mlp_params(getkey(), (5, 16, 1))
    f = mlp_fn(params, "tanh")
    x = jax.random.normal(getkey(), (3, 5))
    key = getkey()
    noisy = A.smoothgrad_inputs(key, x, samples=6, stdev=0.2)
    base = jnp.stack([A.METHODS[method](f, xn) for xn in noisy])
    for kind, expected in [
        ("smoothgrad", base.mean(0)),
        ("smoothgrad_sq", (base**2).mean(0)),
        ("vargrad", (base**2).mean(0) - base.mean(0) ** 2),
    ]:
        got = A.smoothgrad(f, x, key=key, samples=6, stdev=0.2, method=method, kind=kind)
        _close(got, expected, rtol=1e-4)


def test_smoothgrad_noise_scales_with_value_range(getkey):
    x = jnp.stack([jnp.linspace(0.0, 1.0, 50), jnp.linspace(0.0, 10.0, 50)])
    noisy = A.smoothgrad_inputs(getkey(), x, samples=400, stdev=0.1)
    std = jnp.std(noisy - x[None], axis=(0, 2))
    np.testing.assert_allclose(std, [0.1, 1.0], rtol=0.05)


# ---------------------------------------------------------------- transformations


def _all_methods(f, x, key, batch_size=None):
    b = jnp.zeros_like(x[:2])
    chunk = {"batch_size": batch_size}
    return {
        "saliency": A.saliency(f, x),
        "input_x_gradient": A.input_x_gradient(f, x),
        "integrated_gradients": A.integrated_gradients(f, x, steps=5, **chunk),
        "smoothgrad": A.smoothgrad(f, x, key=key, samples=5, **chunk),
        "deeplift": A.deeplift(f, x),
        "gradient_shap": A.gradient_shap(f, x, key=key, baselines=b, samples=5, **chunk),
        "feature_ablation": A.feature_ablation(f, x, **chunk),
        "random_baseline": A.random_baseline(f, x, key=key),
        "occlusion": A.occlusion(f, x, window=2, strides=1, **chunk),
        "shapley_exact": A.shapley_exact(f, x, **chunk),
        "shapley_sampling": A.shapley_sampling(f, x, key=key, permutations=3, **chunk),
        "kernel_shap": A.kernel_shap(f, x, key=key, samples=9, **chunk),
        "lime": A.lime(f, x, key=key, samples=9, **chunk),
        "feature_permutation": A.feature_permutation(f, x, key=key, **chunk),
        "guided_backprop": A.guided_backprop(f, x),
        "deeplift_shap": A.deeplift_shap(f, x, baselines=b, **chunk),
    }


def test_registry_covers_every_method():
    assert set(A.METHODS) == {
        "saliency",
        "input_x_gradient",
        "integrated_gradients",
        "smoothgrad",
        "deeplift",
        "gradient_shap",
        "feature_ablation",
        "random_baseline",
        "occlusion",
        "shapley_exact",
        "shapley_sampling",
        "kernel_shap",
        "lime",
        "feature_permutation",
        "guided_backprop",
        "deeplift_shap",
    }
    assert A.NEEDS_KEY <= set(A.METHODS)
    assert A.NEEDS_BASELINES <= set(A.METHODS) and A.TAKES_GROUPS <= set(A.METHODS)


def test_jit_matches_eager_and_chunking_matches_unchunked(getkey):
    params = mlp_params(getkey(), (6, 16, 16, 1))
    f = mlp_fn(params, "gelu")
    x = jax.random.normal(getkey(), (4, 6))
    key = getkey()
    eager = _all_methods(f, x, key)
    jitted = jax.jit(lambda x: _all_methods(f, x, key))(x)
    chunked = jax.jit(lambda x: _all_methods(f, x, key, batch_size=2))(x)  # 5 draws: a ragged last chunk
    assert set(eager) == set(A.METHODS)
    for name in eager:
        assert eager[name].shape == x.shape and eager[name].dtype == x.dtype, name
        _close(jitted[name], eager[name], rtol=1e-5)
        _close(chunked[name], eager[name], rtol=1e-5)


def test_vmap_over_a_leading_model_axis(getkey):
    keys = jax.random.split(getkey(), 3)
    stacked = jax.vmap(lambda k: mlp_params(k, (6, 8, 1)))(keys)
    x = jax.random.normal(getkey(), (4, 6))
    key = getkey()

    def run(params):
        return _all_methods(mlp_fn(params, "relu"), x, key)

    batched = jax.jit(jax.vmap(run))(stacked)
    for i in range(3):
        single = run(jax.tree.map(lambda p: p[i], stacked))
        for name in single:
            _close(batched[name][i], single[name], rtol=1e-5)


def test_second_call_does_not_retrace(getkey):
    params = mlp_params(getkey(), (6, 8, 1))
    key = getkey()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(params, x):
        return _all_methods(mlp_fn(params, "tanh"), x, key, batch_size=2)

    x = jax.random.normal(getkey(), (4, 6))
    run(params, x)
    run(jax.tree.map(lambda p: p + 1.0, params), x + 1.0)  # new values, same shapes: no retrace
    chex.clear_trace_counter()


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_dtypes_are_kept(getkey, dtype):
    params = jax.tree.map(lambda p: p.astype(dtype), mlp_params(getkey(), (6, 8, 1)))
    f = mlp_fn(params, "tanh")
    x = jax.random.normal(getkey(), (4, 6), dtype)
    for name, attr in _all_methods(f, x, getkey()).items():
        assert attr.dtype == dtype, name
        assert bool(jnp.all(jnp.isfinite(attr))), name


def test_float64(getkey):
    with jax.enable_x64(True):
        params = mlp_params(getkey(), (6, 8, 1), dtype=jnp.float64)
        f = mlp_fn(params, "sigmoid")
        x = jax.random.normal(getkey(), (4, 6), jnp.float64)
        attr = A.deeplift(f, x)
        assert attr.dtype == jnp.float64
        np.testing.assert_allclose(attr.sum(1), f(x) - f(jnp.zeros_like(x)), rtol=1e-10)
        ig = A.integrated_gradients(f, x, steps=30)
        np.testing.assert_allclose(ig.sum(1), f(x) - f(jnp.zeros_like(x)), rtol=1e-9)


def test_random_baseline_is_deterministic_under_its_key(getkey):
    f = lambda x: x.sum(1)  # noqa: E731
    x = jnp.ones((3, 4))
    key = getkey()
    np.testing.assert_array_equal(A.random_baseline(f, x, key=key), A.random_baseline(f, x, key=key))
    assert not np.array_equal(A.random_baseline(f, x, key=key), A.random_baseline(f, x, key=getkey()))


def test_target_selects_one_score_per_sample(getkey):
    w = jax.random.normal(getkey(), (4, 3))
    apply_fn = lambda x: x @ w  # noqa: E731
    x = jax.random.normal(getkey(), (5, 4))
    labels = jnp.array([0, 1, 2, 1, 0])
    f = A.target(apply_fn, labels)
    np.testing.assert_allclose(f(x), (x @ w)[jnp.arange(5), labels], rtol=1e-6)
    _close(A.saliency(f, x, absolute=False), w.T[labels])
    np.testing.assert_allclose(A.target(apply_fn, 2)(x), (x @ w)[:, 2], rtol=1e-6)
    with pytest.raises(TypeError, match="integers"):
        A.target(apply_fn, 1.5)


# ---------------------------------------------------------------- memory


def _largest_buffer(compiled) -> int:
    """Elements of the largest array in an optimised HLO module."""
    sizes = [
        int(np.prod([int(d) for d in dims.split(",") if d])) if dims else 1
        for dims in re.findall(r"f32\[([0-9,]*)\]", compiled.as_text())
    ]
    return max(sizes)


def test_chunked_integrated_gradients_bounds_memory(getkey):
    # 512 steps of a 64 x 2048 batch would hold 512 * 64 * 2048 floats (256 MiB) at once without
    # chunking; with batch_size=8 no array in the compiled program exceeds 8 evaluations. (XLA's
    # CPU fusions hide their scratch from memory_analysis(), so the HLO's array shapes are checked.)
    w = jax.random.normal(getkey(), (2048, 128)) / 45.0
    v = jax.random.normal(getkey(), (128,))
    f = lambda z: jnp.tanh(z @ w) @ v  # noqa: E731
    x = jnp.zeros((64, 2048))
    one_eval = 64 * 2048

    def largest(batch_size):
        fn = jax.jit(lambda x: A.integrated_gradients(f, x, steps=512, batch_size=batch_size))
        return _largest_buffer(fn.lower(x).compile())

    assert largest(8) <= 8 * one_eval
    assert largest(None) >= 512 * one_eval

    # Same numbers on a small case, with a ragged last chunk.
    xs = jax.random.normal(getkey(), (3, 2048))
    _close(
        A.integrated_gradients(f, xs, steps=512, batch_size=24),
        A.integrated_gradients(f, xs, steps=512),
        rtol=1e-5,
    )


# ---------------------------------------------------------------- bad input


def test_bad_input_raises_naming_the_argument(getkey):
    f = lambda x: x.sum(1)  # noqa: E731
    x = jnp.ones((3, 4))
    key = getkey()
    cases = [
        (lambda: A.integrated_gradients(f, x, rule="simpson"), ValueError, "rule"),
        (lambda: A.integrated_gradients(f, x, steps=0), ValueError, "steps"),
        (lambda: A.integrated_gradients(f, x, batch_size=0), ValueError, "batch_size"),
        (lambda: A.integrated_gradients(f, x, baseline=jnp.ones(3)), ValueError, "baseline"),
        (lambda: A.smoothgrad(f, x, key=key, kind="mean"), ValueError, "kind"),
        (lambda: A.smoothgrad(f, x, key=key, samples=0), ValueError, "samples"),
        (lambda: A.smoothgrad(f, x, key=key, method="occlusion"), ValueError, "method"),
        (lambda: A.gradient_shap(f, x, key=key, baselines=jnp.ones((2, 5))), ValueError, "baselines"),
        (lambda: A.gradient_shap(f, x, key=key, baselines=jnp.ones((2, 4)), samples=0), ValueError, "samples"),
        (lambda: A.feature_ablation(f, x, groups=np.zeros(3, int)), ValueError, "groups"),
        (lambda: A.feature_ablation(f, x, groups=np.zeros(4)), ValueError, "groups"),
        (lambda: A.saliency(lambda z: z, x), ValueError, "select a target"),
        (lambda: A.deeplift(lambda z: z.sum(), x), ValueError, "select a target"),
        (lambda: A.saliency(f, jnp.ones((3, 4), jnp.int32)), TypeError, "floating"),
        (lambda: A.saliency(f, x, absolute="yes"), TypeError, "absolute"),
        (lambda: A.integrated_gradients(f, x, baseline=jnp.nan), ValueError, "baseline"),
        (lambda: A.deeplift(f, x, baseline=np.array([0.0, np.inf, 0.0, 0.0])), ValueError, "baseline"),
        (lambda: A.feature_ablation(f, x, baseline=float("nan")), ValueError, "baseline"),
        (lambda: A.smoothgrad(f, x, key=key, stdev=float("nan")), ValueError, "stdev"),
        (lambda: A.smoothgrad(f, x, key=key, stdev=-0.1), ValueError, "stdev"),
        (lambda: A.smoothgrad_inputs(key, x, stdev=float("inf")), ValueError, "stdev"),
        (lambda: A.gradient_shap(f, x, key=key, baselines=jnp.ones((2, 4)), stdev=float("nan")), ValueError, "stdev"),
        (lambda: A.gradient_shap(f, x, key=key, baselines=jnp.full((2, 4), jnp.nan)), ValueError, "baselines"),
    ]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()


def test_target_refuses_a_class_outside_the_logits_when_it_can_and_gives_nan_when_it_cannot(getkey):
    w = jax.random.normal(getkey(), (4, 3))
    apply_fn = lambda x: x @ w  # noqa: E731  (3 classes)
    x = jax.random.normal(getkey(), (2, 4))
    for bad in (3, -1, np.array([0, 5]), [0, -2]):
        with pytest.raises(ValueError, match="outside the 3 classes"):
            A.saliency(A.target(apply_fn, bad), x)
    with pytest.raises(TypeError, match="integers"):
        A.target(apply_fn, True)
    # Traced (e.g. the predicted class inside jit): no check possible, and never another class's score.
    traced = jax.jit(lambda t: A.target(apply_fn, t)(x))
    assert np.isnan(traced(jnp.array([3, -1]))).all()
    np.testing.assert_allclose(traced(jnp.array([2, 0])), (x @ w)[jnp.arange(2), jnp.array([2, 0])], rtol=1e-5)


def test_errors_are_raised_at_trace_time(getkey):
    f = lambda x: x.sum(1)  # noqa: E731
    with pytest.raises(ValueError, match="rule"):
        jax.jit(lambda x: A.integrated_gradients(f, x, rule="bogus")).lower(jnp.ones((2, 3)))
    with pytest.raises(TypeError, match="groups"):
        jax.jit(lambda x, g: A.feature_ablation(f, x, groups=g)).lower(jnp.ones((2, 3)), jnp.zeros(3, int))
