"""Agreement with Captum on the same weights. torch and captum (the `compare` extra) are required: without them
these tests fail, never skip, so a CI without the extra cannot pass them silently."""

import captum.attr as captum_attr  # the `compare` extra: an ImportError here fails the run
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from attribution_models import cnn_apply, mlp_fn
from chaosjax import attribution as A

nn = torch.nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def _torch_mlp(sizes, activation, seed):
    torch.manual_seed(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())  # one module per use, as Captum's DeepLift needs
    return nn.Sequential(*layers).eval()


def _jax_mlp_params(model):
    linears = [m for m in model if isinstance(m, nn.Linear)]
    return [(jnp.asarray(m.weight.detach().numpy().T), jnp.asarray(m.bias.detach().numpy())) for m in linears]


def _torch_cnn(seed, channels=3, hidden=4, size=8):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, hidden, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(hidden, hidden, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(hidden * size * size, 1, bias=False),
    ).eval()


def _jax_cnn_params(model):
    def t(p):
        return jnp.asarray(p.detach().numpy())

    return {
        "w1": t(model[0].weight),
        "b1": t(model[0].bias),
        "w2": t(model[2].weight),
        "b2": t(model[2].bias),
        "w3": t(model[5].weight).T,
    }


def _agree(ours, theirs, rtol=1e-4):
    ours = np.asarray(ours, np.float64)
    theirs = theirs.detach().numpy().astype(np.float64)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * np.abs(theirs).max())


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(16, 10)).astype(np.float32)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_gradient_methods_and_deeplift_agree_on_mlps(data, activation):
    model = _torch_mlp((10, 24, 24, 1), activation, seed=1)
    f = mlp_fn(_jax_mlp_params(model), activation)
    x, xt = jnp.asarray(data), torch.tensor(data)

    _agree(A.saliency(f, x), captum_attr.Saliency(model).attribute(xt, target=0, abs=True))
    _agree(A.input_x_gradient(f, x), captum_attr.InputXGradient(model).attribute(xt, target=0))
    _agree(A.deeplift(f, x), captum_attr.DeepLift(model).attribute(xt, target=0))
    baseline = np.full((1, 10), 0.25, np.float32)
    _agree(
        A.deeplift(f, x, baseline=baseline[0]),
        captum_attr.DeepLift(model).attribute(xt, baselines=torch.tensor(baseline), target=0),
    )


@pytest.mark.parametrize("rule", A.RULES)
def test_integrated_gradients_agree_for_every_rule(data, rule):
    model = _torch_mlp((10, 24, 24, 1), "tanh", seed=2)
    f = mlp_fn(_jax_mlp_params(model), "tanh")
    x, xt = jnp.asarray(data), torch.tensor(data)
    steps = 12
    theirs = captum_attr.IntegratedGradients(model).attribute(xt, target=0, n_steps=steps, method=rule)
    if rule == "riemann_trapezoid":
        # Captum's trapezoid weights sum to (n-1)/n; chaosjax's sum to 1 (see `quadrature`).
        theirs = theirs * steps / (steps - 1)
    _agree(A.integrated_gradients(f, x, steps=steps, rule=rule), theirs)


def test_deeplift_and_gradients_agree_on_a_cnn():
    model = _torch_cnn(seed=3)
    params = _jax_cnn_params(model)
    f = lambda x: cnn_apply(params, x)[:, 0]  # noqa: E731
    data = np.random.default_rng(1).normal(size=(4, 3, 8, 8)).astype(np.float32)
    x, xt = jnp.asarray(data), torch.tensor(data)
    _agree(A.saliency(f, x), captum_attr.Saliency(model).attribute(xt, target=0))
    _agree(A.deeplift(f, x), captum_attr.DeepLift(model).attribute(xt, target=0))
    _agree(
        A.integrated_gradients(f, x, steps=10),
        captum_attr.IntegratedGradients(model).attribute(xt, target=0, n_steps=10),
    )


def test_feature_ablation_with_a_group_mask_agrees(data):
    model = _torch_mlp((10, 24, 1), "relu", seed=4)
    f = mlp_fn(_jax_mlp_params(model), "relu")
    groups = np.array([0, 0, 1, 1, 1, 2, 3, 3, 4, 4])
    x, xt = jnp.asarray(data), torch.tensor(data)
    theirs = captum_attr.FeatureAblation(model).attribute(
        xt, target=0, baselines=0.5, feature_mask=torch.tensor(groups)[None]
    )
    _agree(A.feature_ablation(f, x, baseline=0.5, groups=groups), theirs)
    _agree(A.feature_ablation(f, x), captum_attr.FeatureAblation(model).attribute(xt, target=0))


def test_classifier_target_agrees():
    # A 3-class head: chaosjax's `target` helper against Captum's per-sample targets.
    model = _torch_mlp((10, 16, 3), "relu", seed=5)
    params = _jax_mlp_params(model)
    from attribution_models import mlp_apply

    data = np.random.default_rng(2).normal(size=(6, 10)).astype(np.float32)
    labels = np.array([0, 1, 2, 2, 1, 0])
    f = A.target(lambda x: mlp_apply(params, x, "relu"), jnp.asarray(labels))
    xt = torch.tensor(data)
    _agree(
        A.integrated_gradients(f, jnp.asarray(data), steps=8),
        captum_attr.IntegratedGradients(model).attribute(xt, target=torch.tensor(labels), n_steps=8),
    )
    _agree(A.deeplift(f, jnp.asarray(data)), captum_attr.DeepLift(model).attribute(xt, target=torch.tensor(labels)))
    jax.clear_caches()


# =====================================================================================================================
# DeepLIFT with Captum's list of nonlinearities (deeplift(..., rescale="captum")): GELU, ReLU, ReLU + max-pool.
# =====================================================================================================================


def _torch_gelu_mlp(sizes, seed):
    torch.manual_seed(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.GELU())  # the study's MLP block: Linear + exact GELU
    return nn.Sequential(*layers).eval()


def _gelu_mlp_fn(params):
    from chaosjax.models.mlp import gelu_exact

    def f(x):
        h = x
        for w, b in params[:-1]:
            h = gelu_exact(h @ w + b[None])
        w, b = params[-1]
        return (h @ w + b[None])[:, 0]

    return f


def test_captum_list_deeplift_agrees_on_a_gelu_mlp(data):
    # Captum has no GELU rule: its DeepLift on the study's GELU MLPs is (x - b) * gradient; so is rescale="captum".
    model = _torch_gelu_mlp((10, 24, 24, 1), seed=11)
    f = _gelu_mlp_fn(_jax_mlp_params(model))
    x, xt = jnp.asarray(data), torch.tensor(data)
    _agree(A.deeplift(f, x, rescale="captum"), captum_attr.DeepLift(model).attribute(xt, target=0))
    baseline = np.random.default_rng(12).normal(size=data.shape).astype(np.float32)  # one baseline per sample
    theirs = captum_attr.DeepLift(model).attribute(xt, baselines=torch.tensor(baseline), target=0)
    _agree(A.deeplift(f, x, baseline=baseline, rescale="captum"), theirs)
    # Every-nonlinearity DeepLIFT rescales GELU and is not Captum's.
    assert not np.allclose(np.asarray(A.deeplift(f, x, baseline=baseline)), theirs.detach().numpy(), atol=1e-3)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_captum_list_deeplift_agrees_on_an_mlp_with_a_non_constant_baseline(data, activation):
    model = _torch_mlp((10, 24, 24, 1), activation, seed=13)
    f = mlp_fn(_jax_mlp_params(model), activation)
    baseline = np.random.default_rng(14).normal(size=data.shape).astype(np.float32)
    theirs = captum_attr.DeepLift(model).attribute(torch.tensor(data), baselines=torch.tensor(baseline), target=0)
    _agree(A.deeplift(f, jnp.asarray(data), baseline=baseline, rescale="captum"), theirs)


def _torch_pool_cnn(seed, channels=3, hidden=4):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(hidden * 2 * 2, 1),
    ).eval()


def _jax_pool_cnn(model):
    def t(p):
        return jnp.asarray(p.detach().numpy())

    w1, b1, w2, b2 = t(model[0].weight), t(model[0].bias), t(model[3].weight), t(model[3].bias)
    w3, b3 = t(model[7].weight).T, t(model[7].bias)
    dn = ("NCHW", "OIHW", "NCHW")

    def block(h, w, b):
        h = jax.lax.conv_general_dilated(h, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn)
        h = jax.nn.relu(h + b[None, :, None, None])
        return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    return lambda x: (block(block(x, w1, b1), w2, b2).reshape(x.shape[0], -1) @ w3 + b3[None])[:, 0]


@pytest.mark.parametrize("rescale", ["captum", "all"])
def test_deeplift_agrees_on_a_relu_max_pool_cnn_with_a_non_constant_baseline(rescale):
    # ReLU -> MaxPool: Captum's ReLU hook reads the gradient at its output before the MaxPool hook rewrites it, so
    # its max-pool rule is discarded and the pool passes its plain gradient, as chaosjax's does (ReLU nets: both
    # modes are the same).
    model = _torch_pool_cnn(seed=15)
    f = _jax_pool_cnn(model)
    rng = np.random.default_rng(16)
    data = rng.normal(size=(6, 3, 8, 8)).astype(np.float32)
    baseline = rng.normal(size=(6, 3, 8, 8)).astype(np.float32)  # per sample, not constant
    theirs, delta = captum_attr.DeepLift(model).attribute(torch.tensor(data), baselines=torch.tensor(baseline),
                                                          target=0, return_convergence_delta=True)
    ours = A.deeplift(f, jnp.asarray(data), baseline=baseline, rescale=rescale)
    _agree(ours, theirs)
    # Both break summation-to-delta by the same amount (Captum's own convergence delta).
    ours_delta = np.asarray(jnp.sum(ours, axis=(1, 2, 3)) - (f(jnp.asarray(data)) - f(jnp.asarray(baseline))))
    np.testing.assert_allclose(ours_delta, delta.detach().numpy(), rtol=1e-3, atol=1e-5)
    assert np.abs(ours_delta).max() > 1e-3


# ------------------------------------------------------------------- the perturbation family


def _agree_tight(ours, theirs, rtol=1e-5):
    """Agreement to `rtol` of the larger magnitude (float32 sums of many model outputs)."""
    ours = np.asarray(ours, np.float64)
    theirs = (theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)).astype(np.float64)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * max(np.abs(theirs).max(), 1e-12))


def _cnn_pair(seed):
    model = _torch_cnn(seed=seed)
    params = _jax_cnn_params(model)
    return model, (lambda x: cnn_apply(params, x)[:, 0])


@pytest.mark.parametrize(
    "window, strides", [((3, 3, 3), (3, 2, 2)), ((1, 4, 4), (1, 4, 4)), ((2, 5, 3), (1, 2, 3))]
)
def test_occlusion_agrees_on_an_image_cnn(window, strides):
    model, f = _cnn_pair(seed=6)
    data = np.random.default_rng(3).normal(size=(3, 3, 8, 8)).astype(np.float32)
    theirs = captum_attr.Occlusion(model).attribute(
        torch.tensor(data), sliding_window_shapes=window, strides=strides, target=0, baselines=0.1
    )
    _agree_tight(A.occlusion(f, jnp.asarray(data), window=window, strides=strides, baseline=0.1), theirs)


@pytest.mark.parametrize("window, strides", [((3,), (2,)), ((1,), (1,)), ((4,), (3,)), ((10,), (1,))])
def test_occlusion_agrees_on_tabular_rows(data, window, strides):
    model = _torch_mlp((10, 24, 1), "tanh", seed=7)
    f = mlp_fn(_jax_mlp_params(model), "tanh")
    theirs = captum_attr.Occlusion(model).attribute(
        torch.tensor(data), sliding_window_shapes=window, strides=strides, target=0, baselines=0.5
    )
    _agree_tight(A.occlusion(f, jnp.asarray(data), window=window, strides=strides, baseline=0.5), theirs)


@pytest.mark.parametrize("groups", [np.array([0, 0, 1, 1, 1, 2, 3, 3, 4, 5]), None])
def test_shapley_exact_agrees_with_shapley_values(data, groups):
    # Captum walks all G! orders (720 for 6 groups); chaosjax enumerates the 2^G coalitions.
    model = _torch_mlp((10, 24, 1) if groups is not None else (6, 24, 1), "tanh", seed=8)
    f = mlp_fn(_jax_mlp_params(model), "tanh")
    x = data if groups is not None else data[:, :6]
    mask = None if groups is None else torch.tensor(groups)[None]
    theirs = captum_attr.ShapleyValues(model).attribute(
        torch.tensor(x), target=0, baselines=0.25, feature_mask=mask, perturbations_per_eval=16
    )
    _agree_tight(A.shapley_exact(f, jnp.asarray(x), groups=groups, baseline=0.25), theirs)


def test_shapley_sampling_agrees_on_the_same_orders(data, monkeypatch):
    # Captum draws its orders with torch.randperm; given chaosjax's orders, the estimates must agree.
    model = _torch_mlp((10, 24, 1), "relu", seed=9)
    f = mlp_fn(_jax_mlp_params(model), "relu")
    groups = np.array([0, 0, 1, 1, 1, 2, 3, 3, 4, 4])
    key = jax.random.key(5)
    for antithetic in (False, True):
        orders = np.asarray(A.shapley_permutations(key, 5, 7, antithetic=antithetic))
        svs = captum_attr.ShapleyValueSampling(model)
        monkeypatch.setattr(svs, "permutation_generator", lambda num_features, num_samples: iter(orders.tolist()))
        theirs = svs.attribute(
            torch.tensor(data), target=0, baselines=0.1, feature_mask=torch.tensor(groups)[None], n_samples=7
        )
        ours = A.shapley_sampling(
            f, jnp.asarray(data), key=key, permutations=7, groups=groups, baseline=0.1, antithetic=antithetic
        )
        _agree_tight(ours, theirs)


@pytest.mark.filterwarnings("ignore:Objective did not converge")  # scikit-learn's float32 duality gap
def test_lime_agrees_with_captum_defaults_on_the_same_samples(data):
    # Captum's default Lime: Bernoulli(1/2) interpretable samples, exp(-d^2 / 2) on the cosine distance in
    # input space, and SkLearnLasso(alpha=0.01). Given chaosjax's samples (a perturb_func generator, which
    # Captum restarts for every row) and the same Lasso run to convergence, the coefficients agree.
    from captum._utils.models.linear_model import SkLearnLasso

    model = _torch_mlp((10, 24, 1), "tanh", seed=10)
    f = mlp_fn(_jax_mlp_params(model), "tanh")
    groups = np.array([0, 0, 1, 1, 1, 2, 3, 3, 4, 5])
    key = jax.random.key(6)
    samples = 60
    present = np.asarray(A.lime_coalitions(key, 6, samples)).astype(np.int64)
    x = data[:6] * 3.0  # larger outputs, so that the Lasso keeps several coefficients

    def perturb(original, **kwargs):
        for row in present:
            yield torch.tensor(row)[None]

    for alpha, width in ((0.01, 1.0), (0.002, 0.5)):
        lime = captum_attr.Lime(
            model, interpretable_model=SkLearnLasso(alpha=alpha, tol=1e-12, max_iter=100_000), perturb_func=perturb,
            similarity_func=captum_attr._core.lime.get_exp_kernel_similarity_function("cosine", width),
        )
        theirs = lime.attribute(torch.tensor(x), target=0, feature_mask=torch.tensor(groups)[None],
                                n_samples=samples, baselines=0.2)
        ours = A.lime(f, jnp.asarray(x), key=key, samples=samples, groups=groups, kernel_width=width, alpha=alpha,
                      baseline=0.2)
        assert np.count_nonzero(np.asarray(ours)) > x.size // 3  # the comparison is not one of zeros
        _agree_tight(ours, theirs, rtol=1e-4)  # scikit-learn solves in float64, chaosjax in float32

    # More interpretable features (10) than samples (8): chaosjax descends on the samples, no 10 x 10 matrices.
    present = np.asarray(A.lime_coalitions(key, 10, 8)).astype(np.int64)
    lime = captum_attr.Lime(model, interpretable_model=SkLearnLasso(alpha=0.005, tol=1e-12, max_iter=100_000),
                            perturb_func=perturb)
    theirs = lime.attribute(torch.tensor(x), target=0, n_samples=8, baselines=0.2)
    ours = A.lime(f, jnp.asarray(x), key=key, samples=8, alpha=0.005, baseline=0.2)
    assert np.count_nonzero(np.asarray(ours)) > x.size // 4
    _agree_tight(ours, theirs, rtol=1e-4)


def test_feature_permutation_agrees_on_the_same_orders(data):
    model = _torch_mlp((10, 24, 1), "tanh", seed=11)
    f = mlp_fn(_jax_mlp_params(model), "tanh")
    groups = np.array([0, 0, 1, 1, 1, 2, 3, 3, 4, 4])
    key = jax.random.key(7)
    orders = dict(enumerate(np.asarray(A.batch_permutations(key, 5, data.shape[0]))))

    def perm_func(x, mask):  # Captum passes one group's mask at a time
        group = int(np.unique(groups[mask[0].numpy().astype(bool).reshape(-1)])[0])
        return x[torch.tensor(orders[group])] * mask.to(x.dtype) + x * mask.bitwise_not().to(x.dtype)

    theirs = captum_attr.FeaturePermutation(model, perm_func=perm_func).attribute(
        torch.tensor(data), target=0, feature_mask=torch.tensor(groups)[None]
    )
    _agree_tight(A.feature_permutation(f, jnp.asarray(data), key=key, groups=groups), theirs)


def test_guided_backprop_agrees_on_a_relu_cnn():
    model, f = _cnn_pair(seed=12)
    data = np.random.default_rng(4).normal(size=(4, 3, 8, 8)).astype(np.float32)
    theirs = captum_attr.GuidedBackprop(model).attribute(torch.tensor(data), target=0)
    ours = A.guided_backprop(f, jnp.asarray(data))
    _agree_tight(ours, theirs)
    # Not the plain gradient: negative gradients were stopped at the ReLUs.
    assert not np.allclose(ours, A.saliency(f, jnp.asarray(data), absolute=False), atol=1e-4)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_deeplift_shap_agrees_on_mlps(data, activation):
    model = _torch_mlp((10, 24, 24, 1), activation, seed=13)
    f = mlp_fn(_jax_mlp_params(model), activation)
    refs = np.random.default_rng(5).normal(size=(5, 10)).astype(np.float32)
    theirs = captum_attr.DeepLiftShap(model).attribute(torch.tensor(data), baselines=torch.tensor(refs), target=0)
    _agree_tight(A.deeplift_shap(f, jnp.asarray(data), baselines=refs), theirs)


def test_deeplift_shap_agrees_on_a_cnn():
    model, f = _cnn_pair(seed=14)
    data = np.random.default_rng(6).normal(size=(3, 3, 8, 8)).astype(np.float32)
    refs = 0.3 * np.random.default_rng(7).normal(size=(4, 3, 8, 8)).astype(np.float32)
    theirs = captum_attr.DeepLiftShap(model).attribute(torch.tensor(data), baselines=torch.tensor(refs), target=0)
    _agree_tight(A.deeplift_shap(f, jnp.asarray(data), baselines=refs, batch_size=3), theirs)
