"""Conventions that meet Captum users halfway: `(1, *S)` baselines and groups, `completeness_delta`, one call for
every method of `METHODS`, and errors that say what to write."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from chaosjax import attribution as A

KEY = jax.random.key(0)


def f(z):  # (B, 2, 3) -> (B,): smooth, interacting, not additive
    return jnp.sin(z[:, 0, 0]) * z[:, 1, 2] + z[:, 0, 1] ** 2 + 0.5 * z[:, 1, 0] * z[:, 0, 2]


X = jax.random.normal(jax.random.key(1), (4, 2, 3))
B = jax.random.normal(jax.random.key(2), (2, 3))  # one baseline sample
GROUPS = np.array([[0, 0, 1], [2, 2, 1]])

BASELINE_METHODS = {
    "integrated_gradients": {"steps": 8},
    "deeplift": {},
    "feature_ablation": {},
    "occlusion": {"window": (1, 2), "strides": 1},
    "shapley_exact": {},
    "shapley_sampling": {"key": KEY, "permutations": 2},
    "kernel_shap": {"key": KEY, "samples": 16},
    "lime": {"key": KEY, "samples": 16},
}


@pytest.mark.parametrize("name", sorted(BASELINE_METHODS))
def test_a_baseline_with_a_batch_axis_of_one_is_one_sample(name):
    m, opts = A.METHODS[name], BASELINE_METHODS[name]
    one = m(f, X, baseline=B, **opts)
    np.testing.assert_allclose(m(f, X, baseline=B[None], **opts), one, rtol=0, atol=0)
    assert not np.allclose(one, m(f, X, **opts))  # the baseline is used at all
    with pytest.raises(ValueError, match=r"`baseline` must be .*\(1, 2, 3\)"):
        m(f, X, baseline=jnp.stack([B, B]), **opts)


@pytest.mark.parametrize("name", sorted(A.TAKES_GROUPS))
def test_groups_with_a_batch_axis_of_one_as_captums_feature_mask(name):
    opts = {"key": KEY} if name in A.NEEDS_KEY else {}
    m = A.METHODS[name]
    one = m(f, X, groups=GROUPS, **opts)
    np.testing.assert_allclose(m(f, X, groups=GROUPS[None], **opts), one, rtol=0, atol=0)
    np.testing.assert_allclose(one[:, 0, 0], one[:, 0, 1])  # a group shares one value
    with pytest.raises(ValueError, match=r"`groups` must be shaped like one sample"):
        m(f, X, groups=np.stack([GROUPS, GROUPS]), **opts)


def test_every_method_runs_as_m_f_x_key_with_its_defaults():
    for name, m in A.METHODS.items():
        attr = m(f, X, key=KEY)
        assert attr.shape == X.shape and attr.dtype == X.dtype, name
        assert np.all(np.isfinite(attr)), name


def test_shap_methods_default_to_one_zero_baseline():
    zero = jnp.zeros((1, 2, 3))
    np.testing.assert_allclose(A.gradient_shap(f, X, key=KEY), A.gradient_shap(f, X, key=KEY, baselines=zero))
    np.testing.assert_allclose(A.deeplift_shap(f, X), A.deeplift(f, X), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(A.deeplift_shap(f, X, baselines=B[None]), A.deeplift(f, X, baseline=B),
                               rtol=1e-6, atol=1e-6)


def test_completeness_delta_is_the_sum_minus_the_output_change():
    attr = jax.random.normal(jax.random.key(3), X.shape)
    want = attr.reshape(4, -1).sum(1) - (f(X) - f(jnp.broadcast_to(B, X.shape)))
    for baseline in (B, B[None], jnp.broadcast_to(B, X.shape)):
        np.testing.assert_allclose(A.completeness_delta(f, X, attr, baseline), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(A.completeness_delta(f, X, attr), attr.reshape(4, -1).sum(1) - (f(X) - f(0 * X)),
                               rtol=1e-6, atol=1e-6)
    # the mean reference of a baseline distribution, for deeplift_shap / gradient_shap
    refs = jax.random.normal(jax.random.key(4), (5, 2, 3))
    np.testing.assert_allclose(A.completeness_delta(f, X, attr, baselines=refs),
                               attr.reshape(4, -1).sum(1) - (f(X) - jnp.mean(f(refs))), rtol=1e-5, atol=1e-5)


def test_completeness_delta_of_methods_with_completeness_is_zero():
    exact = A.shapley_exact(f, X, baseline=B)
    assert np.max(np.abs(A.completeness_delta(f, X, exact, B))) < 1e-5
    rough, fine = (A.integrated_gradients(f, X, baseline=B, steps=s, rule="riemann_left") for s in (4, 256))
    assert np.max(np.abs(A.completeness_delta(f, X, fine, B))) < np.max(np.abs(A.completeness_delta(f, X, rough, B)))
    assert np.max(np.abs(A.completeness_delta(f, X, A.integrated_gradients(f, X, baseline=B, steps=32), B))) < 1e-4


def test_completeness_delta_refuses_misshaped_attributions():
    with pytest.raises(ValueError, match="`attributions` must be shaped like `x`"):
        A.completeness_delta(f, X, X[:, 0])


def test_one_output_column_error_suggests_selecting_it_before_the_classifier_hint():
    with pytest.raises(ValueError) as err:
        A.saliency(lambda z: f(z)[:, None], X)
    message = str(err.value)
    assert "[:, 0]" in message and message.index("[:, 0]") < message.index("target(")
    with pytest.raises(ValueError) as err:  # several columns: a classifier, no column hint
        A.saliency(lambda z: jnp.stack([f(z)] * 3, axis=1), X)
    assert "[:, 0]" not in str(err.value) and "target(" in str(err.value)


def test_smoothgrad_stdev_is_relative_to_each_samples_range():
    x = jnp.stack([jnp.linspace(0.0, 1.0, 6).reshape(2, 3), jnp.linspace(0.0, 10.0, 6).reshape(2, 3)])
    noise = A.smoothgrad_inputs(KEY, x, samples=4000, stdev=0.2) - x[None]
    np.testing.assert_allclose(np.std(noise[:, 0]), 0.2 * 1.0, rtol=0.05)
    np.testing.assert_allclose(np.std(noise[:, 1]), 0.2 * 10.0, rtol=0.05)


def test_a_batchnorm_model_in_training_mode_is_told_to_call_eval():
    import flax.nnx as nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.lin, self.bn, self.out = nnx.Linear(3, 8, rngs=rngs), nnx.BatchNorm(8, rngs=rngs), nnx.Linear(8, 1, rngs=rngs)

        def __call__(self, x):
            return self.out(nnx.relu(self.bn(self.lin(x))))[:, 0]

    model, x = Net(nnx.Rngs(0)), jax.random.normal(KEY, (4, 3))
    with pytest.raises(ValueError, match=r"saliency: .*call model\.eval\(\)"):
        A.saliency(model, x)
    model.eval()
    assert A.saliency(model, x).shape == x.shape
