"""Proxy metrics (chaosjax.proxies): closed forms, no retracing, bad input, and agreement with Quantus 0.6 (and
Captum for infidelity) on the same inputs, models and draws. Quantus and torch (the `compare` extra) are required:
without them these tests fail, never skip."""

import math

import captum.metrics  # the `compare` extra: an ImportError here fails the run
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import quantus  # the `compare` extra (quantus>=0.6): an ImportError here fails the run
import torch

from attribution_models import cnn_apply
from chaosjax import attribution as A
from chaosjax import proxies as P

nn = torch.nn
KEY = jax.random.key(0)
W = jnp.array([3.0, -1.0, 2.0, 0.5, -2.0, 1.5])
X = jax.random.normal(jax.random.key(1), (4, 6))
B0 = jnp.array([0.1, -0.2, 0.3, 0.0, 0.5, -0.4])


def linear(z):
    return z @ W


def grad(f, x):
    return A.saliency(f, x, absolute=False)


# ---------------------------------------------------------------------------------------------------------------
# closed forms


@pytest.mark.parametrize("order", P.ORDERS)
def test_deletion_and_insertion_of_an_additive_model_with_exact_attributions(order):
    exact = W[None] * (X - B0[None])  # f(x) - f(x with feature j at the baseline), exactly
    step = 2
    dele = P.deletion_curve(linear, X, exact, order=order, baseline=B0, features_per_step=step)
    ins = P.insertion_curve(linear, X, exact, order=order, baseline=B0, features_per_step=step)
    ranked = np.sort(np.asarray(exact), axis=1)[:, ::-1] if order == "morf" else np.sort(np.asarray(exact), axis=1)
    moved = np.concatenate([np.zeros((4, 1)), np.cumsum(ranked, axis=1)[:, step - 1::step]], axis=1)
    fx, fb = np.asarray(linear(X))[:, None], float(linear(B0[None])[0])
    np.testing.assert_allclose(dele, fx - moved, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ins, fb + moved, rtol=1e-5, atol=1e-5)
    t = np.linspace(0, 1, moved.shape[1])
    np.testing.assert_allclose(P.deletion_auc(linear, X, exact, order=order, baseline=B0, features_per_step=step),
                               np.trapezoid(fx - moved, t, axis=1), rtol=1e-5, atol=1e-5)
    if order == "morf":  # exact attributions: the steepest fall any order can make
        shuffled = jax.random.permutation(jax.random.key(2), exact, axis=1, independent=True)
        worse = P.deletion_auc(linear, X, shuffled, baseline=B0, features_per_step=step)
        assert np.all(P.deletion_auc(linear, X, exact, baseline=B0, features_per_step=step) <= worse + 1e-6)


def test_a_group_is_removed_at_once_and_ranked_by_its_sum():
    groups = np.array([0, 0, 1, 1, 2, 2])
    exact = W[None] * X
    curve = P.deletion_curve(linear, X, exact, groups=groups)
    sums = np.asarray(exact).reshape(4, 3, 2).sum(-1)
    want = np.asarray(linear(X))[:, None] - np.concatenate(
        [np.zeros((4, 1)), np.cumsum(np.sort(sums, 1)[:, ::-1], 1)], axis=1)
    assert curve.shape == (4, 4)
    np.testing.assert_allclose(curve, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(P.deletion_auc(linear, X, exact, groups=groups), np.trapezoid(want, dx=1 / 3, axis=1),
                               rtol=1e-5, atol=1e-5)


def test_curve_auc_with_a_short_last_step():
    curve = jnp.array([[1.0, 0.5, 0.0]])  # 5 features, 2 per step: abscissae 0, 0.4, 0.8, then 1.0 cut to 5/5
    np.testing.assert_allclose(P.curve_auc(curve, 4, 2), [0.75 * 0.5 + 0.25 * 0.5])
    np.testing.assert_allclose(P.curve_auc(jnp.array([[1.0, 0.0, 0.0]]), 3, 2), [(1 + 0) / 2 * 2 / 3])


def test_road_curve_is_the_same_in_any_chunking():
    """Percentages are imputed one after another within a chunk and their forward passes run side by side; the
    chunks (full ones in a loop, a ragged last one apart) change nothing, bit for bit."""
    img = jax.random.normal(jax.random.key(4), (2, 8, 8, 3))
    score = jax.random.normal(jax.random.key(5), (2, 8, 8))
    total = lambda z: jnp.sum(z.reshape(z.shape[0], -1), axis=1)  # noqa: E731
    pct = (1, 10, 30, 50, 70, 90, 99)
    whole = np.asarray(P.road_curve(total, img, score, key=KEY, percentages=pct))
    assert whole.shape == (2, len(pct))
    for batch_size in (1, 3, 7):
        np.testing.assert_array_equal(P.road_curve(total, img, score, key=KEY, percentages=pct,
                                                   batch_size=batch_size), whole)


def test_road_imputes_a_linear_ramp_exactly_inside_the_image():
    yy, xx = np.meshgrid(np.arange(10.0), np.arange(12.0), indexing="ij")
    ramp = jnp.asarray(np.stack([0.3 * yy - 0.2 * xx, xx + 1.0], -1)[None], jnp.float32)  # (1, 10, 12, 2)
    mask = np.zeros((10, 12), bool)
    mask[2:8, 3:9] = True  # interior pixels: a linear function is the weighted mean of its neighbours there
    mask[4, 5] = False
    np.testing.assert_allclose(P.road_impute(ramp, mask), ramp, rtol=1e-5, atol=1e-4)
    out = P.road_impute(ramp[..., 0], mask)  # (B, H, W) single channel
    np.testing.assert_allclose(out, ramp[..., 0], rtol=1e-5, atol=1e-4)


def test_road_curve_removes_the_top_pixels_and_adds_the_stated_noise():
    img = jax.random.normal(jax.random.key(3), (3, 6, 6))
    score = jnp.arange(36.0).reshape(1, 6, 6) * jnp.ones((3, 1, 1))
    total = lambda z: jnp.sum(z.reshape(z.shape[0], -1), axis=1)  # noqa: E731
    mask = score >= 18  # MoRF at 50%: the 18 highest-scored pixels
    imputed = total(P.road_impute(img, mask))
    curve = P.road_curve(total, img, score, key=KEY, percentages=(0, 50), noise=0.0)
    np.testing.assert_allclose(curve, np.stack([total(img), imputed], 1), rtol=1e-5, atol=1e-5)
    noisy = P.road_curve(total, img, score, key=KEY, percentages=(0, 50), noise=0.5)  # noise is traced: no retrace
    eps = jax.random.normal(jax.random.fold_in(KEY, 1), (3, 6, 6, 1))[..., 0]
    np.testing.assert_allclose(noisy[:, 1], imputed + 0.5 * jnp.sum(jnp.where(mask, eps, 0.0), (1, 2)), rtol=1e-5,
                               atol=1e-4)
    lerf = P.road_curve(total, img, -score, key=KEY, order="lerf", percentages=(0, 50), noise=0.0)
    np.testing.assert_allclose(lerf, curve, rtol=1e-5, atol=1e-5)  # LeRF of -a is MoRF of a


def test_infidelity_is_zero_for_the_exact_gradient_of_a_linear_model():
    assert np.all(P.infidelity(linear, X, grad(linear, X), key=KEY) < 1e-10)
    quad = lambda z: jnp.sum(z ** 2, axis=1)  # noqa: E731
    # the gradient 2x of sum x^2: f(x) - f(x - I) - I.2x = -|I|^2, so INFD = mean_k |I_k|^4
    pert = P.infidelity_perturbations(KEY, X, samples=10, stdev=0.1)
    want = np.mean(np.sum(np.asarray(pert) ** 2, axis=2) ** 2, axis=0)
    np.testing.assert_allclose(P.infidelity(quad, X, 2 * X, key=KEY, samples=10, stdev=0.1), want, rtol=1e-4)
    # normalize: a scaled gradient of a linear model is rescaled back: still 0
    assert np.all(P.infidelity(linear, X, 3 * grad(linear, X), key=KEY, normalize=True) < 1e-10)
    assert np.all(P.infidelity(linear, X, 3 * grad(linear, X), key=KEY) > 1e-3)


def test_max_sensitivity_closed_forms():
    assert np.all(P.max_sensitivity(linear, X, grad(linear, X), grad, key=KEY, samples=20) == 0)
    quad = lambda z: jnp.sum(z ** 2, axis=1)  # noqa: E731
    d = np.asarray(P.max_sensitivity_perturbations(KEY, X, samples=20, radius=0.3))
    want = np.max(np.linalg.norm(2 * d, axis=2) / np.linalg.norm(2 * np.asarray(X), axis=1)[None], axis=0)
    got = P.max_sensitivity(quad, X, grad(quad, X), grad, key=KEY, samples=20, radius=0.3, batch_size=7)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    by_name = P.max_sensitivity(quad, X, A.input_x_gradient(quad, X), "input_x_gradient", key=KEY, samples=20,
                                radius=0.3)
    x2 = 2 * np.asarray(X) ** 2  # input x gradient of sum x^2
    want = np.max(np.linalg.norm(2 * (np.asarray(X)[None] + d) ** 2 - x2[None], axis=2)
                  / np.linalg.norm(x2, axis=1)[None], axis=0)
    np.testing.assert_allclose(by_name, want, rtol=1e-5)


def test_faithfulness_correlation_of_exact_linear_attributions_is_one():
    got = P.faithfulness_correlation(linear, X, W[None] * X, key=KEY, runs=30, subset_size=3)
    np.testing.assert_allclose(got, 1.0, rtol=1e-5)
    anti = P.faithfulness_correlation(linear, X, -W[None] * X, key=KEY, runs=30, subset_size=3)
    np.testing.assert_allclose(anti, -1.0, rtol=1e-5)
    idx = P.random_subsets(KEY, 4, 6, runs=5, subset_size=3)
    assert idx.shape == (5, 4, 3)
    assert all(len(set(row.tolist())) == 3 for row in np.asarray(idx).reshape(-1, 3))


def test_random_subsets_are_uniform_and_exactly_sized():
    """Each of the C(6, 2) = 15 pairs is drawn as often as the others (chi-square, 14 dof, 1e-4 level), rows differ
    across samples and runs, and a subset has exactly its size at any size (1, half, all but one, all)."""
    idx = np.asarray(P.random_subsets(KEY, 300, 6, runs=100, subset_size=2)).reshape(-1, 2)
    pairs = np.unique(idx[:, 0] * 6 + idx[:, 1], return_counts=True)[1]
    assert len(pairs) == 15 and (idx[:, 0] < idx[:, 1]).all()
    expected = len(idx) / 15
    assert np.sum((pairs - expected) ** 2 / expected) < 42.6  # chi2(14).ppf(1 - 1e-4)
    for size in (1, 500, 999, 1000):
        rows = np.asarray(P.random_subsets(KEY, 3, 1000, runs=2, subset_size=size)).reshape(-1, size)
        assert all(len(np.unique(r)) == size and r.min() >= 0 and r.max() < 1000 for r in rows)
        if size < 999:
            assert len({tuple(r) for r in rows}) == len(rows)


def test_sparseness_and_complexity_closed_forms():
    n = 10
    one_hot = jnp.eye(n)[:3] * 5.0
    np.testing.assert_allclose(P.sparseness(one_hot), (n - 1) / n, rtol=1e-5)
    np.testing.assert_allclose(P.sparseness(jnp.ones((2, n))), 0.0, atol=1e-6)
    np.testing.assert_allclose(P.complexity(one_hot), 0.0, atol=1e-6)
    np.testing.assert_allclose(P.complexity(-jnp.ones((2, 2, 5))), math.log(n), rtol=1e-6)


def _mlp(params, z):
    h = jnp.tanh(z @ params["w1"] + params["b1"][None])
    return h @ params["w2"]


MLP = {"w1": jax.random.normal(jax.random.key(4), (6, 8)), "b1": jnp.zeros(8),
       "w2": jax.random.normal(jax.random.key(5), (8,))}


def test_model_parameter_randomisation():
    attr = grad(lambda z: _mlp(MLP, z), X)
    same = P.model_parameter_randomisation(_mlp, MLP, X, attr, grad, key=KEY, randomise=lambda k, leaf: leaf)
    assert same.shape == (3, 4)  # a flat dict: one layer per entry
    np.testing.assert_allclose(same, 1.0, rtol=1e-5)
    layers = [("w1", ), ("b1",), ("w2",)]
    cascade = P.model_parameter_randomisation(_mlp, MLP, X, attr, grad, key=KEY, layers=layers)
    alone = P.model_parameter_randomisation(_mlp, MLP, X, attr, grad, key=KEY, layers=layers, order="independent")
    np.testing.assert_allclose(cascade[0], alone[0], rtol=1e-6)  # the top layer first, the same draw
    assert np.mean(cascade[-1]) < 0.9  # every layer random: the gradient moved
    # a method that ignores the model passes nothing: the input itself
    blind = P.model_parameter_randomisation(_mlp, MLP, X, X, lambda f, x: x, key=KEY, layers=layers)
    np.testing.assert_allclose(blind, 1.0, rtol=1e-6)


def test_random_logit_of_a_linear_classifier():
    w2 = jax.random.normal(jax.random.key(6), (6, 2))
    apply_fn = lambda z: z @ w2  # noqa: E731
    got = P.random_logit(apply_fn, X, jnp.zeros(4, jnp.int32), grad, key=KEY)
    want = P.spearman(jnp.broadcast_to(w2[:, 0], X.shape), jnp.broadcast_to(w2[:, 1], X.shape))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    w3 = jax.random.normal(jax.random.key(7), (6, 5))
    scores = P.random_logit(lambda z: z @ w3, X, jnp.arange(4), grad, key=KEY, similarity="cosine")
    assert scores.shape == (4,) and np.all(np.abs(scores) < 1 - 1e-3)  # another class, never the target's own


def test_spearman_matches_scipy_with_ties():
    import scipy.stats

    a = np.array([[1.0, 2.0, 2.0, 3.0, 0.5], [4.0, 4.0, 4.0, 1.0, 2.0]])
    b = np.array([[0.1, 0.3, 0.2, 0.2, 0.9], [1.0, 2.0, 3.0, 4.0, 5.0]])
    want = [scipy.stats.spearmanr(x, y)[0] for x, y in zip(a, b)]
    np.testing.assert_allclose(P.spearman(jnp.asarray(a), jnp.asarray(b)), want, rtol=1e-6)


def test_kendall_agreement():
    truth = np.array([[0.9, 0.5, 0.2, 0.1], [0.8, 0.6, 0.3, 0.0], [0.7, 0.4, 0.35, 0.2]])
    same = P.kendall_agreement(truth * 3 + 1, truth, resamples=200)
    assert same["tau"] == 1.0 and same["pairs"] == 1.0 and same["low"] == 1.0
    flipped = P.kendall_agreement(truth, truth, higher_is_better=False, resamples=200)
    assert flipped["tau"] == -1.0 and flipped["pairs"] == 0.0
    noisy = truth[:, [0, 2, 1, 3]]
    out = P.kendall_agreement(noisy, truth, resamples=200)
    assert out["tau"] == pytest.approx(4 / 6) and out["pairs"] == pytest.approx(5 / 6)
    assert out["low"] <= out["tau"] <= out["high"] and out["methods"] == 4 and out["replicates"] == 3


# ---------------------------------------------------------------------------------------------------------------
# compilation and bad input


def test_a_second_call_with_the_same_f_does_not_retrace():
    exact = W[None] * X
    flat_linear = lambda z: linear(z.reshape(z.shape[0], -1))  # noqa: E731
    cases = [
        (P._flip_curve, lambda x: P.deletion_curve(linear, x, exact, features_per_step=2)),
        (P._infidelity, lambda x: P.infidelity(linear, x, exact, key=KEY)),
        (P._max_sensitivity, lambda x: P.max_sensitivity(linear, x, exact, grad, key=KEY, samples=3)),
        (P._faithfulness, lambda x: P.faithfulness_correlation(linear, x, exact, key=KEY, runs=4, subset_size=2)),
        (P._road, lambda x: P.road_curve(flat_linear, x.reshape(4, 2, 3), exact.reshape(4, 2, 3), key=KEY,
                                         percentages=(10, 50))),
    ]
    for jitted, call in cases:
        call(X)
        before = jitted._cache_size()
        call(X + 1.0)
        assert jitted._cache_size() == before, jitted


@pytest.mark.parametrize(("call", "message"), [
    (lambda: P.deletion_curve(linear, X, X[:, :3]), r"deletion_curve: `attributions` must be shaped like `x`"),
    (lambda: P.deletion_curve(linear, X, X, order="up"), r"deletion_curve: unknown order 'up'"),
    (lambda: P.insertion_curve(linear, X, X, features_per_step=0), r"`features_per_step` must be an integer >= 1"),
    (lambda: P.deletion_curve(linear, X, X, features_per_step=7), r"`features_per_step` 7 exceeds the 6"),
    (lambda: P.deletion_curve(linear, X, X, baseline=jnp.ones(3)), r"`baseline` must be a scalar"),
    (lambda: P.deletion_curve(linear, X, X, baseline=float("nan")), r"`baseline` must be finite"),
    (lambda: P.deletion_curve(linear, X, X, groups=np.zeros(3, int)), r"`groups` must be shaped like one sample"),
    (lambda: P.deletion_curve(lambda z: z, X, X), r"`f` must return one scalar per sample"),
    (lambda: P.infidelity(linear, X, X, key=None), r"infidelity: `key` is required"),
    (lambda: P.infidelity(linear, X, X, key=KEY, stdev=-1.0), r"infidelity: `stdev` must be a finite number > 0"),
    (lambda: P.max_sensitivity(linear, X, X, "nope", key=KEY), r"max_sensitivity: unknown method 'nope'"),
    (lambda: P.max_sensitivity(linear, X, X, grad, key=KEY, samples=0), r"`samples` must be an integer >= 1"),
    (lambda: P.faithfulness_correlation(linear, X, X, key=KEY, subset_size=7), r"`subset_size` 7 exceeds the 6"),
    (lambda: P.road_curve(linear, X, X, key=KEY), r"road_curve: `x` must be images"),
    (lambda: P.road_curve(lambda z: z[:, 0, 0], X.reshape(4, 2, 3), X, key=KEY),
     r"road_curve: `attributions` must be shaped like `x`"),
    (lambda: P.road_curve(lambda z: z[:, 0, 0], X.reshape(4, 2, 3), X.reshape(4, 2, 3), key=KEY,
                          percentages=(50, 100)), r"`percentages` must be a non-empty sequence of numbers in \[0, 100\)"),
    (lambda: P.road_impute(X.reshape(4, 2, 3), np.ones((3, 3), bool)), r"road_impute: `mask` must be shaped"),
    (lambda: P.sparseness(jnp.ones(3)), r"sparseness: `attributions` must be a batch"),
    (lambda: P.model_parameter_randomisation(_mlp, MLP, X, X, grad, key=KEY, layers=[("w9",)]),
     r"layer \('w9',\) of `layers` matches no leaf"),
    (lambda: P.model_parameter_randomisation(_mlp, MLP, X, X, grad, key=KEY, similarity="ssim"),
     r"unknown similarity 'ssim'"),
    (lambda: P.random_logit(linear, X, 0, grad, key=KEY), r"`apply_fn` must return \(B, C\) scores"),
    (lambda: P.kendall_agreement(np.ones((3, 4)), np.ones((3, 5))), r"one shape"),
])
def test_bad_input_is_refused_naming_the_argument(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


# ---------------------------------------------------------------------------------------------------------------
# agreement with Quantus 0.6 (and Captum's infidelity) on the same model, inputs and draws


def _torch_cnn(seed, channels, size=8, hidden=4, classes=2):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(hidden * size * size, classes, bias=False),
    ).eval()


def _jax_twin(model):
    t = lambda p: jnp.asarray(p.detach().numpy())  # noqa: E731
    params = {"w1": t(model[0].weight), "b1": t(model[0].bias), "w2": t(model[2].weight), "b2": t(model[2].bias),
              "w3": t(model[5].weight).T}
    return lambda x: cnn_apply(params, x)  # NCHW, logits (B, classes)


@pytest.fixture(scope="module")
def rgb():
    model = _torch_cnn(0, 3)
    x = np.random.default_rng(0).normal(size=(5, 3, 8, 8)).astype(np.float32)
    y = np.array([0, 1, 1, 0, 1])
    apply_fn = _jax_twin(model)
    f = A.target(apply_fn, jnp.asarray(y))
    a = np.asarray(grad(f, jnp.asarray(x)))
    return model, apply_fn, f, x, y, a


def _q(metric, model, x, y, a, **kwargs):
    return np.asarray(metric(model=model, x_batch=x, y_batch=y, a_batch=a, channel_first=True, softmax=False,
                             device="cpu", **kwargs), np.float64)


def test_pixel_flipping_agrees_with_quantus(rgb):
    model, _, f, x, y, a = rgb
    theirs = _q(quantus.PixelFlipping(features_in_step=8, perturb_baseline=0.25, normalise=False,
                                      disable_warnings=True), model, x, y, a)
    ours = P.deletion_curve(f, jnp.asarray(x), jnp.asarray(a), baseline=0.25, features_per_step=8)
    np.testing.assert_allclose(ours[:, 1:], theirs, rtol=1e-5, atol=1e-5)  # Quantus's curve lacks point 0
    # (Quantus's return_auc_per_sample calls np.trapz, gone from NumPy 2.4: its AUC is np.trapezoid(theirs, dx=1))


def test_road_agrees_with_quantus_without_noise():
    model = _torch_cnn(1, 1)  # Quantus's ROAD handles single-channel images only (docs/proxies.md)
    x = np.random.default_rng(1).normal(size=(6, 1, 8, 8)).astype(np.float32)
    logits = _jax_twin(model)
    margin = lambda z: logits(z[:, None])[:, 1] - logits(z[:, None])[:, 0]  # noqa: E731  on (B, H, W) images
    a = np.asarray(grad(margin, jnp.asarray(x[:, 0])))[:, None]
    pct, y = [5, 20, 40, 60, 90], np.ones(6, int)
    metric = quantus.ROAD(percentages=pct, noise=0.0, normalise=False, disable_warnings=True)
    metric.a_size = 64
    wrapped = quantus.helpers.model.pytorch_model.PyTorchModel(model, channel_first=True, softmax=False, device="cpu")
    theirs = np.asarray(metric.evaluate_batch(wrapped, x, y, a)[0])  # (B, P): argmax == y per percentage
    ours = np.asarray(P.road_curve(margin, jnp.asarray(x[:, 0]), jnp.asarray(a[:, 0]), key=KEY, percentages=pct,
                                   noise=0.0))
    assert np.abs(ours).min() > 1e-3  # no decision within the solver's tolerance of the boundary
    np.testing.assert_array_equal(ours > 0, theirs.astype(bool))  # class 1 wins exactly when the margin is > 0
    assert 0 < theirs.mean() < 1  # both outcomes occur: the comparison can fail


def test_road_imputation_agrees_with_quantus_on_several_channels():
    from quantus.functions.perturb_func import noisy_linear_imputation

    img = np.random.default_rng(2).normal(size=(2, 9, 7, 3)).astype(np.float32)
    masks = np.random.default_rng(3).uniform(size=(2, 9, 7)) < np.array([0.3, 0.95])[:, None, None]
    ours = np.asarray(P.road_impute(jnp.asarray(img), jnp.asarray(masks)))
    for i in range(2):
        theirs = noisy_linear_imputation(img[i].transpose(2, 0, 1), np.flatnonzero(masks[i]), noise=0.0)
        np.testing.assert_allclose(ours[i], theirs.transpose(1, 2, 0), rtol=1e-5, atol=2e-5)


def test_faithfulness_correlation_agrees_with_quantus_on_the_same_subsets(rgb, monkeypatch):
    model, _, f, x, y, a = rgb
    runs, size = 12, 20
    subsets = np.asarray(P.random_subsets(jax.random.fold_in(KEY, 0), 5, 192, runs=1, subset_size=size))
    draws = iter([np.asarray(P.random_subsets(jax.random.fold_in(KEY, k), 5, 192, runs=1, subset_size=size))[0, i]
                  for k in range(runs) for i in range(5)])  # Quantus draws run by run, sample by sample
    monkeypatch.setattr(np.random, "choice", lambda n, k, replace=False: next(draws))
    theirs = _q(quantus.FaithfulnessCorrelation(nr_runs=runs, subset_size=size, perturb_baseline=0.0,
                                                normalise=False, return_aggregate=False, disable_warnings=True),
                model, x, y, a)
    ours = P.faithfulness_correlation(f, jnp.asarray(x), jnp.asarray(a), key=KEY, runs=runs, subset_size=size)
    assert subsets.shape == (1, 5, size)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_max_sensitivity_agrees_with_quantus_on_the_same_draws(rgb):
    model, apply_fn, f, x, y, a = rgb
    samples, radius = 6, 0.2
    noise = np.asarray(P.max_sensitivity_perturbations(KEY, jnp.asarray(x), samples=samples, radius=radius))
    draws = iter(noise.reshape(samples, 5, -1))

    def perturb(arr, indices, **kwargs):
        return arr + next(draws)

    def explain(model, inputs, targets, **kwargs):
        return np.asarray(grad(A.target(apply_fn, jnp.asarray(targets)), jnp.asarray(inputs)))

    theirs = _q(quantus.MaxSensitivity(nr_samples=samples, lower_bound=radius, perturb_func=perturb,
                                       disable_warnings=True), model, x, y, a, explain_func=explain)
    ours = P.max_sensitivity(f, jnp.asarray(x), jnp.asarray(a), grad, key=KEY, samples=samples, radius=radius)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)


def test_sparseness_and_complexity_agree_with_quantus(rgb):
    model, _, _, x, y, a = rgb
    np.testing.assert_allclose(P.sparseness(jnp.asarray(a)), _q(quantus.Sparseness(normalise=False,
                               disable_warnings=True), model, x, y, a), rtol=1e-5)
    np.testing.assert_allclose(P.complexity(jnp.asarray(a)), _q(quantus.Complexity(normalise=False,
                               disable_warnings=True), model, x, y, a), rtol=1e-5)


def test_random_logit_agrees_with_quantus_with_two_classes(rgb):
    model, apply_fn, f, x, y, a = rgb  # two classes: the other class is determined, no draw to share

    def explain(model, inputs, targets, **kwargs):
        return np.asarray(grad(A.target(apply_fn, jnp.asarray(targets)), jnp.asarray(inputs)))

    theirs = _q(quantus.RandomLogit(num_classes=2, similarity_func=quantus.similarity_func.correlation_spearman,
                                    disable_warnings=True), model, x, y, a, explain_func=explain)
    ours = P.random_logit(apply_fn, jnp.asarray(x), jnp.asarray(y), grad, key=KEY, attributions=jnp.asarray(a))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


@pytest.mark.parametrize("normalize", [False, True])
def test_infidelity_agrees_with_captum_on_the_same_perturbations(rgb, normalize):
    model, _, f, x, y, a = rgb
    samples = 8
    pert = torch.tensor(np.asarray(P.infidelity_perturbations(KEY, jnp.asarray(x), samples=samples, stdev=0.1)))
    draws = iter(pert)

    def perturb(inputs):
        i = next(draws)
        return i, inputs - i

    theirs = captum.metrics.infidelity(model, perturb, torch.tensor(x), torch.tensor(a), target=torch.tensor(y),
                                       n_perturb_samples=samples, max_examples_per_batch=5, normalize=normalize)
    ours = P.infidelity(f, jnp.asarray(x), jnp.asarray(a), key=KEY, samples=samples, stdev=0.1, normalize=normalize)
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-4, atol=1e-7)
