"""The perturbation family: occlusion, Shapley values (exact, sampled, kernel), LIME, feature permutation, guided
backprop and DeepLIFT-SHAP. Closed forms, efficiency, convergence, memory, retracing and bad input; agreement with
Captum is in test_captum.py, the symbolic ground truth of these methods at the end."""

import itertools
import math
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attribution_models import cnn_apply, cnn_params, mlp_fn, mlp_params
from chaosjax import attribution as A
from chaosjax.data import symbolic


def _run(method, f, x, **options):
    """`method(f, x, **options)` as one compiled program (eager calls compile every operation on its own)."""
    return jax.jit(lambda x: method(f, x, **options))(x)


def _close(a, b, rtol=1e-5):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(np.abs(b).max(), 1e-12))


def _delta(f, x, baseline):
    return f(x) - f(jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape))


def _terms(z):
    return jnp.stack([jnp.sin(2 * z[:, 0]), z[:, 1] ** 2, 3 * z[:, 2], jnp.exp(z[:, 3]), z[:, 4] ** 3], axis=1)


def _additive(z):
    return jnp.sum(_terms(z), axis=1)


# ---------------------------------------------------------------- closed forms


def test_shapley_family_on_an_additive_function_is_the_per_term_change(getkey):
    # f = sum_j g_j(x_j): every coalition adds g_j(x_j) - g_j(b_j) when j joins, whatever else is in it.
    x = jax.random.normal(getkey(), (6, 5))
    b = jax.random.normal(getkey(), (5,))
    drops = _terms(x) - _terms(jnp.broadcast_to(b, x.shape))
    key = getkey()
    _close(_run(A.shapley_exact, _additive, x, baseline=b), drops)
    _close(_run(A.shapley_sampling, _additive, x, key=key, permutations=3, baseline=b), drops)  # any order
    _close(_run(A.kernel_shap, _additive, x, key=key, samples=24, baseline=b), drops, rtol=1e-4)  # linear in z
    _close(_run(A.kernel_shap, _additive, x, key=key, samples=30, baseline=b), drops, rtol=1e-4)  # all of them
    _close(_run(A.lime, _additive, x, key=key, samples=64, alpha=0.0, baseline=b), drops, rtol=1e-3)  # exact LS
    _close(_run(A.feature_ablation, _additive, x, baseline=b), drops)


def test_shapley_splits_a_product_evenly(getkey):
    # f = a b with baseline (a0, b0): phi_a = (a - a0)(b + b0) / 2, phi_b = (b - b0)(a + a0) / 2.
    x = jax.random.normal(getkey(), (8, 3))
    base = jnp.array([0.3, -0.7, 0.0])
    f = lambda z: z[:, 0] * z[:, 1]  # noqa: E731
    a, b = x[:, 0], x[:, 1]
    expected = jnp.stack([(a - 0.3) * (b - 0.7) / 2, (b + 0.7) * (a + 0.3) / 2, jnp.zeros_like(a)], axis=1)
    _close(_run(A.shapley_exact, f, x, baseline=base), expected)
    _close(_run(A.kernel_shap, f, x, key=getkey(), samples=6, baseline=base), expected, rtol=1e-4)
    # Two players: an order and its reverse average to the exact split.
    groups = np.array([0, 1, 0])  # the dummy third column joins a
    _close(_run(A.shapley_sampling, f, x, key=getkey(), permutations=2, antithetic=True, baseline=base,
                groups=groups), expected.at[:, 2].set(expected[:, 0]))


def test_shapley_exact_matches_the_permutation_definition(getkey):
    # The Shapley value as the mean marginal contribution over all G! orders, by brute force.
    params = mlp_params(getkey(), (5, 12, 1))
    f = mlp_fn(params, "tanh")
    x = jax.random.normal(getkey(), (3, 5))
    groups = np.array([2, 0, 2, 7, 0])  # labels need not be contiguous: 3 players
    players = [np.isin(groups, g) for g in (0, 2, 7)]
    total = np.zeros((3, 3))
    for order in itertools.permutations(range(3)):
        present = np.zeros(5, bool)
        before = np.asarray(f(jnp.where(present, x, 0.0)))
        for p in order:
            present = present | players[p]
            after = np.asarray(f(jnp.where(present, x, 0.0)))
            total[:, p] += after - before
            before = after
    phi = total / math.factorial(3)
    expected = phi[:, [1, 0, 1, 2, 0]]  # feature j belongs to player {0: label 0, 1: label 2, 2: label 7}
    _close(_run(A.shapley_exact, f, x, groups=groups), expected)


def test_occlusion_matches_its_definition(getkey):
    params = mlp_params(getkey(), (7, 16, 1))
    f = mlp_fn(params, "tanh")
    x = jax.random.normal(getkey(), (4, 7))
    for window, strides in [(3, 2), (2, 2), (7, 1), (4, 3)]:
        total, count = np.zeros((4, 7)), np.zeros(7)
        for k in range(math.ceil((7 - window) / strides) + 1):  # Captum's positions; the last may be cut
            start = k * strides
            cover = np.zeros(7, bool)
            cover[start:start + window] = True
            drop = np.asarray(f(x) - f(jnp.where(cover, 0.5, x)))
            total += drop[:, None] * cover
            count += cover
        _close(_run(A.occlusion, f, x, window=window, strides=strides, baseline=0.5), total / count)
    _close(_run(A.occlusion, f, x, window=1, strides=1), _run(A.feature_ablation, f, x))


def test_occlusion_windows_on_images(getkey):
    # (channels, height, width) windows with per-dimension strides, against a linear map: every position's
    # drop is the window's sum of w * x.
    w = jax.random.normal(getkey(), (2, 6, 6))
    f = lambda z: jnp.sum(z * w[None], axis=(1, 2, 3))  # noqa: E731
    x = jax.random.normal(getkey(), (3, 2, 6, 6))
    counts, coverage = A.occlusion_positions((2, 6, 6), (2, 3, 3), (2, 2, 3))
    assert counts == (1, 3, 2) and coverage.shape == (2, 6, 6)
    contrib = np.asarray(x * w[None])
    expected = np.zeros_like(contrib)
    for r in range(3):
        for c in range(2):
            cover = np.zeros((2, 6, 6), bool)
            cover[:, 2 * r:2 * r + 3, 3 * c:3 * c + 3] = True
            expected += np.sum(contrib * cover, axis=(1, 2, 3))[:, None, None, None] * cover
    _close(_run(A.occlusion, f, x, window=(2, 3, 3), strides=(2, 2, 3)), expected / coverage)


def test_feature_permutation_of_a_linear_function(getkey):
    w = jax.random.normal(getkey(), (6,))
    f = lambda z: z @ w  # noqa: E731
    x = jax.random.normal(getkey(), (9, 6))
    key = getkey()
    orders = np.asarray(A.batch_permutations(key, 6, 9)).T  # (rows, features)
    expected = (np.asarray(x) - np.asarray(x)[orders, np.arange(6)]) * np.asarray(w)
    _close(_run(A.feature_permutation, f, x, key=key), expected)
    assert all((orders[:, j] != np.arange(9)).any() for j in range(6))
    # Groups are shuffled together, with one order per group.
    groups = np.array([1, 1, 0, 0, 0, 1])
    grouped = _run(A.feature_permutation, f, x, key=key, groups=groups)
    for g, order in enumerate(np.asarray(A.batch_permutations(key, 2, 9))):
        cols = groups == g
        drop = np.asarray(x)[:, cols] @ np.asarray(w)[cols] - np.asarray(x)[order][:, cols] @ np.asarray(w)[cols]
        _close(np.asarray(grouped)[:, cols], np.repeat(drop[:, None], cols.sum(), axis=1))
    # Two rows: the only order that moves anything is the swap.
    _close(_run(A.feature_permutation, f, x[:2], key=key), (x[:2] - x[:2][::-1]) * w[None])


def test_guided_backprop_of_a_one_layer_relu_net(getkey):
    # f = v . relu(W x): the gradient reaching the ReLU is v; only its positive part passes, where W x > 0.
    wmat = jax.random.normal(getkey(), (5, 8))
    v = jax.random.normal(getkey(), (8,))
    x = jax.random.normal(getkey(), (6, 5))
    expected = ((x @ wmat > 0) * jnp.maximum(v, 0)[None]) @ wmat.T
    for relu in (jax.nn.relu, lambda z: jnp.maximum(z, 0.0), lambda z: jnp.maximum(0.0, z),
                 lambda z: jnp.maximum(z, jnp.zeros_like(z)), jax.jit(jax.nn.relu)):
        f = lambda z, relu=relu: relu(z @ wmat) @ v  # noqa: E731
        _close(A.guided_backprop(f, x), expected)
    # The plain gradient lets negative v through.
    assert not np.allclose(A.saliency(lambda z: jax.nn.relu(z @ wmat) @ v, x, absolute=False), expected)


def test_guided_backprop_is_the_gradient_without_relus(getkey):
    for activation in ("tanh", "gelu", "sigmoid"):
        f = mlp_fn(mlp_params(getkey(), (6, 16, 16, 1)), activation)
        x = jax.random.normal(getkey(), (5, 6))
        _close(A.guided_backprop(f, x), A.saliency(f, x, absolute=False))


def test_guided_backprop_finds_relus_in_flax_models(getkey):
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.a = nnx.Linear(4, 8, rngs=rngs)
            self.b = nnx.Linear(8, 1, rngs=rngs)

        def __call__(self, z):
            return self.b(nnx.relu(self.a(z)))[:, 0]

    net = Net(nnx.Rngs(0))
    x = jax.random.normal(getkey(), (5, 4))
    w1, b1 = net.a.kernel[...], net.a.bias[...]
    w2 = net.b.kernel[...][:, 0]
    expected = ((x @ w1 + b1[None] > 0) * jnp.maximum(w2, 0)[None]) @ w1.T
    _close(A.guided_backprop(net, x), expected)


def test_deeplift_shap_is_the_mean_of_deeplift_over_baselines(getkey):
    f = mlp_fn(mlp_params(getkey(), (6, 16, 16, 1)), "relu")
    x = jax.random.normal(getkey(), (4, 6))
    refs = jax.random.normal(getkey(), (5, 6))
    expected = jnp.mean(jax.jit(jax.vmap(lambda r: A.deeplift(f, x, baseline=r)))(refs), axis=0)
    attr = _run(A.deeplift_shap, f, x, baselines=refs)
    _close(attr, expected)
    _close(_run(A.deeplift_shap, f, x, baselines=refs, batch_size=2), expected)
    # Summation to delta against the baselines' mean output; on a linear map, (x - mean b) * w.
    _close(jnp.sum(attr, axis=1), f(x) - jnp.mean(f(refs)), rtol=1e-4)
    w = jax.random.normal(getkey(), (6,))
    _close(A.deeplift_shap(lambda z: z @ w, x, baselines=refs), (x - refs.mean(0)[None]) * w[None])


# ---------------------------------------------------------------- efficiency and exactness


@pytest.mark.parametrize("groups", [None, np.array([0, 1, 1, 2, 3, 3, 3, 4])])
def test_shapley_family_is_efficient(getkey, groups):
    f = mlp_fn(mlp_params(getkey(), (8, 24, 24, 1)), "gelu")
    x = jax.random.normal(getkey(), (10, 8))
    b = 0.2 * jax.random.normal(getkey(), (8,))
    delta = _delta(f, x, b)
    key = getkey()

    @jax.jit
    def all_of_them(x):
        return (
            A.shapley_exact(f, x, groups=groups, baseline=b),
            A.shapley_sampling(f, x, key=key, permutations=3, groups=groups, baseline=b),
            A.shapley_sampling(f, x, key=key, permutations=4, groups=groups, baseline=b, antithetic=True),
            A.kernel_shap(f, x, key=key, samples=10, groups=groups, baseline=b),  # few samples: still efficient
            A.kernel_shap(f, x, key=key, samples=200, groups=groups, baseline=b),
        )

    for attr in all_of_them(x):
        per_group = attr if groups is None else jnp.stack([attr[:, np.argmax(groups == g)] for g in range(5)], 1)
        _close(jnp.sum(per_group, axis=1), delta, rtol=2e-5)


def test_kernel_shap_over_every_coalition_is_exact(getkey):
    f = mlp_fn(mlp_params(getkey(), (7, 24, 1)), "tanh")
    x = jax.random.normal(getkey(), (6, 7))
    exact = _run(A.shapley_exact, f, x, baseline=0.1)
    for samples in (2**7 - 2, 5000):  # at or beyond the 126 proper coalitions: enumeration, no randomness
        _close(_run(A.kernel_shap, f, x, key=getkey(), samples=samples, baseline=0.1), exact, rtol=1e-5)
    present, weights = A.kernel_shap_coalitions(getkey(), 7, 126)
    assert present.shape == (126, 7) and len({tuple(map(bool, p)) for p in present}) == 126
    # The Shapley kernel: (G - 1) / (C(G, s) s (G - s)).
    sizes = np.asarray(present).sum(1)
    np.testing.assert_allclose(weights, [6 / (math.comb(7, s) * s * (7 - s)) for s in sizes], rtol=1e-6)


def test_kernel_shap_samples_come_in_complementary_pairs(getkey):
    # 12 players, 200 samples: sizes 1 and 11 (24 coalitions) are enumerated, the other 176 are sampled pairs.
    present, weights = A.kernel_shap_coalitions(getkey(), 12, 200)
    present, weights = np.asarray(present), np.asarray(weights)
    assert present.shape == (200, 12)
    sizes = present.sum(1)
    assert sorted(sizes[:24]) == [1] * 12 + [11] * 12 and len({tuple(p) for p in present[:24]}) == 24
    np.testing.assert_allclose(weights[:24], 11 / (12 * 11))
    sampled = present[24:]
    np.testing.assert_array_equal(sampled[1::2], ~sampled[0::2])
    assert sizes[24:].min() >= 2 and sizes[24:].max() <= 10 and np.all(weights[24:] == weights[24])
    # Their weights carry the kernel's remaining mass: sum over sizes 2..10 of (G - 1) / (s (G - s)).
    np.testing.assert_allclose(weights[24:].sum(), sum(11 / (s * (12 - s)) for s in range(2, 11)), rtol=1e-5)


def test_float64_is_exact(getkey):
    with jax.enable_x64(True):
        f = mlp_fn(mlp_params(getkey(), (6, 16, 1), dtype=jnp.float64), "tanh")
        x = jax.random.normal(getkey(), (4, 6), jnp.float64)
        delta = _delta(f, x, 0.0)
        exact = _run(A.shapley_exact, f, x)
        assert exact.dtype == jnp.float64
        np.testing.assert_allclose(exact.sum(1), delta, rtol=1e-12)
        np.testing.assert_allclose(_run(A.kernel_shap, f, x, key=getkey(), samples=62), exact, rtol=1e-9, atol=1e-12)
        sampled = _run(A.shapley_sampling, f, x, key=getkey(), permutations=5)
        np.testing.assert_allclose(sampled.sum(1), delta, rtol=1e-12)


# ---------------------------------------------------------------- convergence of the sampling methods


def _slope(sizes, errors):
    return np.polyfit(np.log(sizes), np.log(errors), 1)[0]


@pytest.fixture(scope="module")
def ten_features():
    key = jax.random.key(123)
    k1, k2 = jax.random.split(key)
    f = mlp_fn(mlp_params(k1, (10, 32, 32, 1)), "tanh")
    x = jax.random.normal(k2, (64, 10))
    return f, x, _run(A.shapley_exact, f, x)


def test_shapley_sampling_and_kernel_shap_converge_to_the_exact_values(ten_features):
    # Permutation sampling is plain Monte Carlo: the mean of n independent one-order estimates, whose error falls
    # as n^-1/2 (fit of log error against log n, over 32 disjoint draws of each size). Antithetic pairs lower it.
    # Kernel SHAP falls faster: as the budget grows, whole coalition sizes move from sampled to enumerated, and at
    # every coalition (1022 for 10 players) it is exact.
    f, x, exact = ten_features
    scale = jnp.sqrt(jnp.mean(exact**2))

    def rms(estimates):  # (draws, rows, features) -> mean relative RMS error of the draws
        return float(jnp.mean(jnp.sqrt(jnp.mean((estimates - exact[None]) ** 2, axis=(1, 2))) / scale))

    def many(method, draws):  # `draws` runs of `method(key)` in one compiled program, 256 at a time
        keys = jax.random.split(jax.random.key(0), draws)
        return jax.jit(lambda keys: jax.lax.map(method, keys, batch_size=min(draws, 256)))(keys)

    single = many(lambda key: A.shapley_sampling(f, x, key=key, permutations=1), 32 * 64)
    sizes = (4, 16, 64)
    plain = [rms(single.reshape((-1, n) + x.shape).mean(axis=1)[:32]) for n in sizes]
    assert -0.65 < _slope(sizes, plain) < -0.35, plain
    pairs = many(lambda key: A.shapley_sampling(f, x, key=key, permutations=64, antithetic=True), 8)
    assert rms(pairs) < 0.8 * plain[-1], (rms(pairs), plain)

    kernel = [rms(many(lambda key, n=n: A.kernel_shap(f, x, key=key, samples=n), 4)) for n in (32, 128, 512)]
    assert _slope((32, 128, 512), kernel) < -0.5 and kernel[-1] < 0.05, kernel
    assert rms(many(lambda key: A.kernel_shap(f, x, key=key, samples=1022), 1)) < 5e-5  # float32 rounding


def test_lime_ranking_converges_to_the_shapley_ranking(getkey):
    # LIME's slope is not the Shapley value, but on a function with strong main effects and a weak interaction
    # it ranks the features as the Shapley values do once it has samples enough: the share of feature pairs in
    # the wrong order falls with the samples (fit of its log against log samples, mean of 3 keys).
    c = jnp.array([2.0, -1.5, 1.2, 0.9, -0.7, 0.5, 0.3, 0.15])
    f = lambda z: jnp.tanh(z) @ c + 0.2 * z[:, 0] * z[:, 1]  # noqa: E731
    x = jax.random.uniform(getkey(), (128, 8), minval=0.3, maxval=1.5)
    exact = _run(A.shapley_exact, f, x)
    upper = np.triu(np.ones((8, 8), bool), 1)
    keys = jax.random.split(getkey(), 3)

    def discordance(samples):
        attr = jax.jit(jax.vmap(lambda k: A.lime(f, x, key=k, samples=samples, alpha=0.0)))(keys)
        order = jnp.sign(attr[..., :, None] - attr[..., None, :])
        truth = jnp.sign(exact[:, :, None] - exact[:, None, :])
        return float(jnp.mean((order != truth[None])[..., upper]))

    sizes = (12, 24, 48, 96, 192)
    errs = [discordance(n) for n in sizes]
    assert _slope(sizes, errs) < -0.3, errs
    assert errs[-1] < 0.05 and errs[-1] < 0.3 * errs[0], errs


# ---------------------------------------------------------------- transformations, dtypes, determinism


def _new_methods(f, x, key, batch_size=None):
    chunk = {"batch_size": batch_size}
    refs = jnp.zeros_like(x[:3]) + 0.1
    return {
        "occlusion": A.occlusion(f, x, window=2, strides=1, **chunk),
        "shapley_exact": A.shapley_exact(f, x, **chunk),
        "shapley_sampling": A.shapley_sampling(f, x, key=key, permutations=3, **chunk),
        "kernel_shap": A.kernel_shap(f, x, key=key, samples=9, **chunk),
        "lime": A.lime(f, x, key=key, samples=9, **chunk),
        "feature_permutation": A.feature_permutation(f, x, key=key, **chunk),
        "guided_backprop": A.guided_backprop(f, x),
        "deeplift_shap": A.deeplift_shap(f, x, baselines=refs, **chunk),
    }


def test_second_call_does_not_retrace(getkey):
    params = mlp_params(getkey(), (6, 8, 1))
    key = getkey()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(params, x):
        return _new_methods(mlp_fn(params, "relu"), x, key, batch_size=2)

    x = jax.random.normal(getkey(), (4, 6))
    first = run(params, x)
    second = run(jax.tree.map(lambda p: p + 1.0, params), x + 1.0)
    chex.clear_trace_counter()
    assert set(first) == set(second)


def test_draws_depend_on_the_key_only(getkey):
    f = mlp_fn(mlp_params(getkey(), (6, 8, 1)), "tanh")
    x = jax.random.normal(getkey(), (5, 6))
    key, other = getkey(), getkey()
    draws = {
        "shapley_sampling": lambda key, bs: A.shapley_sampling(f, x, key=key, permutations=3, batch_size=bs),
        "kernel_shap": lambda key, bs: A.kernel_shap(f, x, key=key, samples=40, batch_size=bs),
        "lime": lambda key, bs: A.lime(f, x, key=key, samples=9, batch_size=bs),
        "feature_permutation": lambda key, bs: A.feature_permutation(f, x, key=key, batch_size=bs),
    }
    for name, method in draws.items():
        whole, chunked = jax.jit(lambda k: method(k, None)), jax.jit(lambda k: method(k, 4))
        a = whole(key)
        np.testing.assert_array_equal(a, whole(key))
        _close(chunked(key), a)  # chunking never changes the draws
        assert not np.allclose(a, whole(other)), name


def test_cnn_methods_keep_shapes(getkey):
    params = cnn_params(getkey())
    f = lambda z: cnn_apply(params, z)[:, 0]  # noqa: E731
    x = jax.random.normal(getkey(), (2, 3, 8, 8))
    patches = np.repeat((np.arange(8)[:, None] // 4 * 2 + np.arange(8)[None, :] // 4)[None], 3, axis=0)
    key = getkey()

    @jax.jit
    def every_method(x):
        return [
            A.occlusion(f, x, window=(3, 4, 4), strides=(3, 2, 2)),
            A.shapley_exact(f, x, groups=patches),
            A.shapley_sampling(f, x, key=key, permutations=2, groups=patches),
            A.kernel_shap(f, x, key=key, samples=8, groups=patches),
            A.lime(f, x, key=key, samples=8, groups=patches),
            A.feature_permutation(f, x, key=key, groups=patches),
            A.guided_backprop(f, x),
            A.deeplift_shap(f, x, baselines=jnp.zeros((2, 3, 8, 8))),
        ]

    outs = every_method(x)
    for out in outs:
        assert out.shape == x.shape and bool(jnp.all(jnp.isfinite(out)))
    for out in outs[1:6]:  # grouped methods: one value per patch
        assert np.all(np.asarray(out)[:, :, :4, :4] == np.asarray(out)[:, :1, :1, :1])


# ---------------------------------------------------------------- memory


def _largest_buffer(compiled) -> int:
    sizes = [
        int(np.prod([int(d) for d in dims.split(",") if d])) if dims else 1
        for dims in re.findall(r"f32\[([0-9,]*)\]", compiled.as_text())
    ]
    return max(sizes)


def test_batch_size_bounds_memory(getkey):
    # Without chunking every perturbed copy of a 64 x 1024 batch is built at once; with batch_size=4 no array
    # of the compiled program exceeds 4 copies (+ the method's own small statistics).
    w = jax.random.normal(getkey(), (1024, 32)) / 32.0
    v = jax.random.normal(getkey(), (32,))
    f = lambda z: jnp.tanh(z @ w) @ v  # noqa: E731
    x = jnp.zeros((64, 1024))
    one = 64 * 1024
    blocks = np.arange(1024) // 128  # 8 column groups
    key = jax.random.key(0)
    cases = {
        "occlusion": (lambda x, bs: A.occlusion(f, x, window=64, strides=32, batch_size=bs), 31),
        "shapley_exact": (lambda x, bs: A.shapley_exact(f, x, groups=blocks, batch_size=bs), 256),
        "shapley_sampling": (lambda x, bs: A.shapley_sampling(f, x, key=key, permutations=16, groups=blocks,
                                                              batch_size=bs), 112),
        "kernel_shap": (lambda x, bs: A.kernel_shap(f, x, key=key, samples=200, groups=blocks, batch_size=bs), 200),
        "lime": (lambda x, bs: A.lime(f, x, key=key, samples=200, groups=blocks, batch_size=bs), 200),
        "feature_permutation": (lambda x, bs: A.feature_permutation(f, x, key=key, groups=np.arange(1024) // 16,
                                                                    batch_size=bs), 64),
        "deeplift_shap": (lambda x, bs: A.deeplift_shap(f, x, baselines=jnp.zeros((40, 1024)), batch_size=bs), 40),
    }
    for name, (method, draws) in cases.items():
        chunked = _largest_buffer(jax.jit(lambda x: method(x, 4)).lower(x).compile())
        whole = _largest_buffer(jax.jit(lambda x: method(x, None)).lower(x).compile())
        assert chunked <= 4 * one, (name, chunked / one)
        assert whole >= draws * one, (name, whole / one)


# ---------------------------------------------------------------- bad input


def test_bad_input_raises_naming_the_argument_before_any_work(getkey):
    evaluated = []

    def f(z):
        if not isinstance(z, jax.core.Tracer):
            evaluated.append(z.shape)
        return z.sum(axis=tuple(range(1, z.ndim)))

    x = jnp.ones((3, 4))
    img = jnp.ones((2, 3, 8, 8))
    key = getkey()
    cases = [
        (lambda: A.occlusion(f, x, window=5), "window"),
        (lambda: A.occlusion(f, img, window=(3, 9, 2)), "window"),
        (lambda: A.occlusion(f, img, window=(3, 2)), "window"),
        (lambda: A.occlusion(f, x, window=2, strides=0), "strides"),
        (lambda: A.occlusion(f, x, window=2, strides=3), "strides"),
        (lambda: A.occlusion(f, x, window=0), "window"),
        (lambda: A.occlusion(f, x, window=2, batch_size=0), "batch_size"),
        (lambda: A.shapley_exact(f, jnp.ones((2, 17))), "groups"),
        (lambda: A.shapley_exact(f, x, groups=np.zeros(3, int)), "groups"),
        (lambda: A.shapley_exact(f, x, groups=np.zeros(4)), "groups"),
        (lambda: A.shapley_exact(f, x, baseline=jnp.ones(3)), "baseline"),
        (lambda: A.shapley_sampling(f, x, key=key, permutations=0), "permutations"),
        (lambda: A.shapley_sampling(f, x, key=key, groups=np.zeros((2, 2), int)), "groups"),
        (lambda: A.kernel_shap(f, x, key=key, samples=1), "samples"),
        (lambda: A.kernel_shap(f, x, key=key, samples=8, groups=np.array([0, 1, -1, 2])), "groups"),
        (lambda: A.lime(f, x, key=key, samples=1), "samples"),
        (lambda: A.lime(f, x, key=key, samples=8, kernel_width=0.0), "kernel_width"),
        (lambda: A.lime(f, x, key=key, samples=8, alpha=-1.0), "alpha"),
        (lambda: A.lime(f, x, key=key, samples=8, groups=np.zeros(5, int)), "groups"),
        (lambda: A.feature_permutation(f, x[:1], key=key), "at least 2 rows"),
        (lambda: A.feature_permutation(f, x, key=key, groups=np.zeros((4, 1), int)), "groups"),
        (lambda: A.deeplift_shap(f, x, baselines=jnp.ones((2, 5))), "baselines"),
        (lambda: A.deeplift_shap(f, x, baselines=jnp.ones((2, 4)), batch_size=-1), "batch_size"),
        (lambda: A.guided_backprop(lambda z: z, x), "select a target"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()
    assert evaluated == []  # every error came before f ran on data
    with pytest.raises(TypeError, match="groups"):
        jax.jit(lambda x, g: A.kernel_shap(f, x, key=key, samples=4, groups=g)).lower(x, jnp.zeros(4, int))
    with pytest.raises(ValueError, match="limited to 16"):
        jax.jit(lambda x: A.shapley_exact(f, x)).lower(jnp.ones((2, 20)))


# ---------------------------------------------------------------- the symbolic track's ground truth


def test_ground_truth_shapley_of_additive_formulas_is_the_ablation_difference(getkey):
    x = jax.random.uniform(getkey(), (16, 12), minval=-1, maxval=1)
    for text in ("sin(a) + b**2 + 0.5*exp(c)", "a + b**2/2 + c**3/3 + d**4/4"):
        f = symbolic.formula(text)
        for b in (0.0, 0.3):
            shapley = symbolic.ground_truth(f, x, "shapley", baseline=b)
            _close(shapley, symbolic.ground_truth(f, x, "feature_ablation", baseline=b))
            assert not np.any(np.asarray(shapley)[:, f.m:])  # noise columns exactly 0
    # The study's additive formula 12 (paper: `f` twice, `h` never): column h is declared predictive, its truth 0.
    f12 = symbolic.FORMULAS[12]
    _close(symbolic.ground_truth(f12, x, "shapley"), symbolic.ground_truth(f12, x, "feature_ablation"))


def test_ground_truth_shapley_of_a_product_and_its_efficiency(getkey):
    x = jax.random.uniform(getkey(), (16, 5), minval=-1, maxval=1)
    g = symbolic.ground_truth(symbolic.formula("a*b"), x, "shapley", baseline=jnp.array([0.2, -0.4, 0, 0, 0]))
    a, b = x[:, 0], x[:, 1]
    _close(g[:, :2], jnp.stack([(a - 0.2) * (b - 0.4) / 2, (b + 0.4) * (a + 0.2) / 2], axis=1))
    for f in symbolic.FORMULAS[7:12]:
        xs = jax.random.uniform(getkey(), (16, f.m + 3), minval=-1, maxval=1)
        _close(jnp.sum(symbolic.ground_truth(f, xs, "shapley"), axis=1), f(xs) - f(jnp.zeros_like(xs)), rtol=1e-5)


def test_ground_truth_is_the_methods_exact_limit_on_the_formula(getkey):
    # The rule of docs/ground_truth.md: each method applied exactly to the formula's own function gives its truth.
    f = symbolic.FORMULAS[10]  # 6 variables
    x = jax.random.uniform(getkey(), (20, 9), minval=-1, maxval=1)
    refs = jax.random.uniform(getkey(), (5, 9), minval=-1, maxval=1)
    _close(symbolic.ground_truth(f, x, "shapley"), _run(A.shapley_exact, f, x))
    _close(symbolic.ground_truth(f, x, "shapley"), _run(A.kernel_shap, f, x, key=getkey(), samples=510), rtol=1e-4)
    _close(symbolic.ground_truth(f, x, "occlusion"), _run(A.occlusion, f, x, window=1))
    # DeepLIFT-SHAP's target: the Shapley values averaged over its baselines.
    expected = jnp.mean(jax.jit(jax.vmap(lambda r: A.shapley_exact(f, x, baseline=r)))(refs), axis=0)
    _close(symbolic.ground_truth(f, x, "shapley", background=refs), expected, rtol=1e-5)
    # Feature permutation's: its mean over orders, which the mean over many keys approaches.
    truth = symbolic.ground_truth(f, x, "feature_permutation")
    keys = jax.random.split(getkey(), 400)
    many = jnp.mean(jax.jit(jax.vmap(lambda k: A.feature_permutation(f, x, key=k)))(keys), axis=0)
    assert float(jnp.max(jnp.abs(many - truth))) < 0.1 * float(jnp.max(jnp.abs(truth)))
    assert not np.any(np.asarray(truth)[:, f.m:])


def test_ground_truth_rejects_what_it_cannot_enumerate(getkey):
    wide = symbolic.formula(" + ".join(f"x{i}**2" for i in range(17)))
    with pytest.raises(ValueError, match="2\\^m"):
        symbolic.ground_truth(wide, jnp.ones((2, 17)), "shapley")
    with pytest.raises(ValueError, match="background"):
        symbolic.ground_truth(symbolic.FORMULAS[7], jnp.ones((2, 5)), "shapley", background=jnp.ones((3, 2)))


# ---------------------------------------------------------------- the tracks


def test_symbolic_track_runs_the_family_and_scores_it_against_its_truths(tmp_path):
    from chaosjax.tracks import symbolic as track

    tiny = dict(formulas=(0, 7), noise_features=5, n=200, epochs=30, depth=1, width=8)
    # Eight columns: the default includes the exact Shapley values, which a 110-column default leaves out.
    assert "shapley_exact" in track.SymbolicConfig(**tiny).method_names()
    assert "shapley_exact" not in track.SymbolicConfig().method_names()
    assert set(track.SymbolicConfig().method_names()) == set(A.METHODS) - {"shapley_exact"}
    with pytest.raises(ValueError, match="methods: shapley_exact .* 110 columns"):
        track.SymbolicConfig(methods=("shapley_exact",)).validate()
    with pytest.raises(ValueError, match="methods: shapley_exact"):
        track.SymbolicConfig(methods=("shapley_exact",), sweep=("noise", (5, 20)), **{
            k: v for k, v in tiny.items() if k != "noise_features"}).validate()
    family = ("shapley_exact", "shapley_sampling", "kernel_shap", "feature_permutation", "deeplift_shap", "occlusion")
    frame = track.run(track.SymbolicConfig(methods=family, **tiny), progress=False)
    assert set(frame["method"]) == set(family) and frame["functional_precision"].between(0, 1).all()
    assert frame["uniform_score"].between(0, 1).all() and len(frame) == 2 * len(family)


def test_other_tracks_refuse_exact_shapley_values_they_cannot_enumerate():
    from chaosjax.tracks import vision

    assert "shapley_exact" not in vision.VisionConfig().method_names()
    with pytest.raises(ValueError, match="methods: shapley_exact"):
        vision.VisionConfig(methods=("shapley_exact",)).validate()
