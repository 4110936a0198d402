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
