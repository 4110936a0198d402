"""DeepLIFT's interpreter: which nonlinearities get the Rescale rule, max-pooling, and the cost of tracing."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attribution_models import mlp_params
from chaosjax import attribution as A
from chaosjax.models.mlp import gelu_exact

deeplift_module = importlib.import_module("chaosjax.attribution.deeplift")  # the module; the package exports the function


def _close(a, b, rtol=1e-5):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(np.abs(b).max(), 1e-12))


def _gradient_times_delta(f, x, b):
    """(x - b) * df/dx: what DeepLIFT is when no nonlinearity gets a rule."""
    return (x - b) * A.saliency(f, x, absolute=False)


def _one_hidden_layer(key, activation):
    (w1, b1), (w2, b2) = mlp_params(key, (6, 16, 1))
    return lambda x: (activation(x @ w1 + b1[None]) @ w2 + b2[None])[:, 0]


# ------------------------------------------------------------------ rescale="captum": Captum's list


@pytest.mark.parametrize("activation", [gelu_exact, lambda z: jax.nn.gelu(z, approximate=False), jax.nn.silu,
                                        jax.nn.mish, jax.nn.selu, jax.nn.relu6, jax.nn.celu])
def test_captum_list_passes_the_gradient_through_activations_it_has_no_rule_for(getkey, activation):
    # Captum's DeepLift hooks only ReLU, ELU, LeakyReLU, Sigmoid, Tanh, Softplus, MaxPool and Softmax modules:
    # through GELU (the study's MLPs), SiLU, Mish, SELU, ReLU6, CELU it is (x - b) * gradient.
    f = _one_hidden_layer(getkey(), activation)
    x = jax.random.normal(getkey(), (8, 6))
    b = 0.5 * jax.random.normal(getkey(), (8, 6))
    _close(A.deeplift(f, x, baseline=b, rescale="captum"), _gradient_times_delta(f, x, b))
    # ... while every-nonlinearity DeepLIFT rescales them (and so differs).
    assert not np.allclose(A.deeplift(f, x, baseline=b), _gradient_times_delta(f, x, b), atol=1e-4)


@pytest.mark.parametrize("activation", [jax.nn.relu, jnp.tanh, jax.nn.sigmoid, jax.nn.elu, jax.nn.leaky_relu,
                                        jax.nn.softplus])
def test_captum_list_rescales_the_activations_on_it(getkey, activation):
    f = _one_hidden_layer(getkey(), activation)
    x = jax.random.normal(getkey(), (8, 6))
    b = 0.5 * jax.random.normal(getkey(), (6,))
    captum = A.deeplift(f, x, baseline=b, rescale="captum")
    _close(captum, A.deeplift(f, x, baseline=b))
    _close(jnp.sum(captum, axis=1), f(x) - f(jnp.broadcast_to(b, x.shape)), rtol=1e-4)  # summation-to-delta


def test_captum_list_rescales_only_the_listed_part_of_a_composite(getkey):
    # tanh(z)**2 with baseline 0: Captum rescales nn.Tanh (secant tanh(x)/x) and passes the square's gradient
    # 2 tanh(x), so a = x * 2 tanh(x) * tanh(x) / x = 2 tanh(x)**2; "all" takes the secant of the whole chain,
    # a = tanh(x)**2 = f's own difference per column.
    x = jax.random.normal(getkey(), (5, 3))
    f = lambda z: jnp.sum(jnp.tanh(z) ** 2, axis=1)  # noqa: E731
    _close(A.deeplift(f, x, rescale="captum"), 2 * jnp.tanh(x) ** 2)
    _close(A.deeplift(f, x), jnp.tanh(x) ** 2)


def test_rescale_must_be_known():
    with pytest.raises(ValueError, match="rescale"):
        A.deeplift(lambda z: z.sum(1), jnp.ones((2, 3)), rescale="some")


# ------------------------------------------------------------------ max-pooling: the plain gradient


def _pool_net(key):
    k1, k2 = jax.random.split(key)
    w = jax.random.normal(k1, (4, 2, 3, 3)) / 3
    v = jax.random.normal(k2, (4 * 3 * 3,))

    def f(x):
        h = jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW"))
        h = jax.nn.relu(h)
        h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        return h.reshape(h.shape[0], -1) @ v

    return f


@pytest.mark.parametrize("rescale", A.RESCALE)
def test_max_pooling_passes_the_gradient_to_the_window_maximum(getkey, rescale):
    # No ReLU: a conv, a max-pool and a linear head. DeepLIFT's multiplier through the pool is the plain
    # gradient (all of it to each window's maximum at x), so the attribution is (x - b) * gradient ...
    k1, k2 = jax.random.split(getkey())
    w = jax.random.normal(k1, (3, 1, 3, 3))
    v = jax.random.normal(k2, (3 * 2 * 2,))

    def f(x):
        h = jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW"))
        h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        return h.reshape(h.shape[0], -1) @ v

    x = jax.random.normal(getkey(), (4, 1, 4, 4))
    b = jax.random.normal(getkey(), (4, 1, 4, 4))
    attr = A.deeplift(f, x, baseline=b, rescale=rescale)
    _close(attr, _gradient_times_delta(f, x, b))
    # ... and summation-to-delta is off: the pool's output difference is not the maximum's input difference.
    gap = jnp.abs(jnp.sum(attr, axis=(1, 2, 3)) - (f(x) - f(b)))
    assert float(jnp.max(gap)) > 1e-2


def test_relu_max_pool_net_breaks_summation_to_delta_with_a_random_baseline(getkey):
    f = _pool_net(getkey())
    x = jax.random.normal(getkey(), (16, 2, 6, 6))
    b = jax.random.normal(getkey(), (16, 2, 6, 6))
    attr = A.deeplift(f, x, baseline=b)
    delta = f(x) - f(b)
    gap = jnp.abs(jnp.sum(attr, axis=(1, 2, 3)) - delta)
    assert float(jnp.mean(gap)) > 0.05 * float(jnp.mean(jnp.abs(delta)))


# ------------------------------------------------------------------ tracing cost: linear in depth


def _count_binds(monkeypatch):
    calls = {"n": 0, "budget": None}
    original = deeplift_module._bind

    def counting(eqn, values):
        calls["n"] += 1
        if calls["budget"] is not None and calls["n"] > calls["budget"]:
            raise RuntimeError(f"deeplift evaluated more than {calls['budget']} operations")
        return original(eqn, values)

    monkeypatch.setattr(deeplift_module, "_bind", counting)
    return calls


def _reusing_chain(depth):
    # Each level uses the previous value twice (y + sin(y)): one elementwise chain of 2 * depth operations
    # whose closure tree, evaluated without memoising, doubles with every level.
    def f(x):
        y = x
        for _ in range(depth):
            y = y + jnp.sin(y)
        return jnp.sum(y, axis=1)

    return f


@pytest.mark.parametrize("rescale", A.RESCALE)
def test_tracing_evaluates_each_operation_a_bounded_number_of_times(monkeypatch, rescale):
    calls = _count_binds(monkeypatch)
    x = jnp.linspace(-1.0, 1.0, 6).reshape(2, 3)
    counts = {}
    for depth in (8, 16, 32):
        calls["n"], calls["budget"] = 0, 40 * depth  # far below 2**depth: an exponential trace fails, not hangs
        jax.make_jaxpr(lambda z, depth=depth: A.deeplift(_reusing_chain(depth), z, rescale=rescale))(x)
        counts[depth] = calls["n"]
    # Linear: doubling the depth doubles the count (up to the constant work outside the chain).
    assert counts[32] - counts[16] == 2 * (counts[16] - counts[8])
    assert counts[32] <= 20 * 32


def test_memoised_chain_gives_the_same_attribution(getkey):
    # f(x) = sum_j g(x_j) with g(y) = (y + sin(y)) iterated: one chain per column, so DeepLIFT is exact per column.
    def g(y):
        for _ in range(5):
            y = y + jnp.sin(y)
        return y

    x = jax.random.normal(getkey(), (3, 4))
    b = 0.1 * jax.random.normal(getkey(), (3, 4))
    _close(A.deeplift(_reusing_chain(5), x, baseline=b), g(x) - g(b), rtol=1e-4)


def test_a_checkpointed_nonlinearity_is_rescaled_like_the_plain_one(getkey):
    """`jax.checkpoint` (the `remat2` primitive) is entered like jit: the GELU inside it gets its secant slope,
    so DeepLIFT does not change when a model rematerialises a layer (it fell back to the gradient before)."""
    w = jax.random.normal(getkey(), (4,))

    def f(x, act):
        return act(x * w[None, :]).sum(axis=-1)

    x = jax.random.normal(getkey(), (3, 4))
    b = 0.5 * jax.random.normal(getkey(), (3, 4))
    plain = A.deeplift(lambda z: f(z, gelu_exact), x, baseline=b)
    checkpointed = A.deeplift(lambda z: f(z, jax.checkpoint(gelu_exact)), x, baseline=b)
    _close(checkpointed, plain, rtol=1e-6)
    _close(plain.sum(axis=-1), f(x, gelu_exact) - f(b, gelu_exact), rtol=1e-5)  # summation to delta
