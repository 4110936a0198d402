"""Tests of chaosjax.models.mlp: NNX modules and the functional API."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from chaosjax.models.mlp import ACTIVATIONS, MLP, ResidualMLP, activation_fn, mlp


def _n_params(tree):
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def _linears(params):
    """(path, kernel, bias) of every Linear in an MLP params State."""
    out = []
    flat = dict(nnx.to_flat_state(params))
    for path, var in flat.items():
        if path[-1] == "kernel":
            out.append((path, var.get_value(), flat[path[:-1] + ("bias",)].get_value()))
    return sorted(out, key=lambda item: (item[0][0] == "head", item[0]))  # hidden layers in order, then head


@pytest.mark.parametrize("depth,width,out", [(3, 100, 1), (1, 7, 3), (0, 5, 2)])
def test_output_shapes(getkey, depth, width, out):
    model = MLP(11, out, depth=depth, width=width, rngs=nnx.Rngs(params=getkey()))
    x = jax.random.normal(getkey(), (6, 11))
    assert model(x).shape == (6, out)
    fn = mlp(11, out, depth=depth, width=width)
    params = fn.init(getkey())
    assert fn.apply(params, x).shape == (6, out)
    assert len(_linears(params)) == depth + 1


def test_parameter_count_matches_torch_model(getkey):
    expected = 110 * 100 + 100 + 2 * (100 * 100 + 100) + 100 + 1
    params = mlp(110).init(getkey())
    assert _n_params(params) == expected
    import torch  # the `compare` extra: a parity test fails without it, never skips
    tmodel = torch.nn.Sequential(
        torch.nn.Linear(110, 100), torch.nn.GELU(), torch.nn.Linear(100, 100), torch.nn.GELU(),
        torch.nn.Linear(100, 100), torch.nn.GELU(), torch.nn.Linear(100, 1),
    )
    assert sum(p.numel() for p in tmodel.parameters()) == expected


def test_matches_torch_forward_with_shared_weights(getkey):
    import torch  # the `compare` extra: a parity test fails without it, never skips
    fn = mlp(6, 2, depth=2, width=9)
    params = fn.init(getkey())
    layers = []
    for _, kernel, bias in _linears(params):
        lin = torch.nn.Linear(*kernel.shape)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.asarray(kernel).T.copy()))
            lin.bias.copy_(torch.from_numpy(np.asarray(bias).copy()))
        layers += [lin, torch.nn.GELU()]
    tmodel = torch.nn.Sequential(*layers[:-1])
    x = jax.random.normal(getkey(), (5, 6))
    expected = tmodel(torch.from_numpy(np.asarray(x).copy())).detach().numpy()
    np.testing.assert_allclose(np.asarray(fn.apply(params, x)), expected, rtol=1e-5, atol=1e-6)


def test_gelu_is_exact():
    x = jnp.linspace(-5.0, 5.0, 1001)
    exact = x * jax.scipy.stats.norm.cdf(x)
    np.testing.assert_allclose(ACTIVATIONS["gelu"](x), exact, rtol=1e-6, atol=1e-6)
    # The tanh approximation differs by more than the tolerance, so the check above can tell them apart.
    assert float(jnp.max(jnp.abs(jax.nn.gelu(x, approximate=True) - exact))) > 1e-4
    # Its hand-written derivative is the exact one, Phi(x) + x phi(x), and so is the second derivative.
    gelu = ACTIVATIONS["gelu"]
    reference = lambda x: x * jax.scipy.stats.norm.cdf(x)  # noqa: E731
    for order in (1, 2):
        d, d_ref = gelu, reference
        for _ in range(order):
            d, d_ref = jax.grad(d), jax.grad(d_ref)
        np.testing.assert_allclose(jax.vmap(d)(x), jax.vmap(d_ref)(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jax.vmap(jax.grad(gelu))(x),
                               jax.scipy.stats.norm.cdf(x) + x * jax.scipy.stats.norm.pdf(x), rtol=1e-5, atol=1e-6)


def test_init_bounds_match_torch_linear(getkey):
    params = mlp(110, depth=3, width=100).init(getkey())
    for path, kernel, bias in _linears(params):
        bound = 1.0 / math.sqrt(kernel.shape[0])
        for w in (kernel, bias):
            assert float(jnp.max(jnp.abs(w))) <= bound, path
        if kernel.size >= 10_000:  # uniform over the whole range: extremes near the bound, std bound / sqrt(3)
            assert float(jnp.max(jnp.abs(kernel))) > 0.99 * bound, path
            np.testing.assert_allclose(float(jnp.std(kernel)), bound / math.sqrt(3), rtol=0.05)
        if bias.size >= 100:  # the bias is uniform too, not zero as in flax's default
            assert float(jnp.max(jnp.abs(bias))) > 0.5 * bound, path


def test_vmapped_init_gives_distinct_members(getkey):
    fn = mlp(4, depth=2, width=8)
    keys = jax.random.split(getkey(), 5)
    params = jax.vmap(fn.init)(keys)
    single = fn.init(keys[3])
    for leaf, one in zip(jax.tree.leaves(params), jax.tree.leaves(single)):
        assert leaf.shape == (5,) + one.shape
        np.testing.assert_array_equal(leaf[3], one)
    kernels = params["hidden"][0]["kernel"].get_value()
    for i in range(5):
        for j in range(i + 1, 5):
            assert not np.allclose(kernels[i], kernels[j])


def test_init_accepts_raw_keys(getkey):
    fn = mlp(3, width=4)
    raw = jax.random.split(jax.random.PRNGKey(0), 2)
    params = jax.vmap(fn.init)(raw)
    assert params["head"]["kernel"].get_value().shape == (2, 4, 1)


def test_vmapped_apply_equals_loop(getkey):
    fn = mlp(5, 2, depth=2, width=12)
    params = jax.vmap(fn.init)(jax.random.split(getkey(), 4))
    x = jax.random.normal(getkey(), (7, 5))
    batched = jax.jit(jax.vmap(fn.apply, in_axes=(0, None)))(params, x)
    assert batched.shape == (4, 7, 2)
    for i in range(4):
        member = jax.tree.map(lambda a: a[i], params)
        np.testing.assert_allclose(batched[i], fn.apply(member, x), rtol=1e-5, atol=1e-6)


def test_apply_accepts_pure_dict_params(getkey):
    fn = mlp(5, depth=1, width=3)
    params = fn.init(getkey())
    x = jax.random.normal(getkey(), (2, 5))
    np.testing.assert_array_equal(fn.apply(nnx.to_pure_dict(params), x), fn.apply(params, x))


def test_gradient_wrt_input_matches_finite_differences(getkey):
    fn = mlp(3, depth=2, width=8, activation="tanh")
    params = fn.init(getkey())
    x = jax.random.normal(getkey(), (1, 3))
    f = lambda x: fn.apply(params, x)[0, 0]  # noqa: E731
    grad = jax.jit(jax.grad(f))(x)
    eps = 1e-2
    for j in range(3):
        e = jnp.zeros_like(x).at[0, j].set(eps)
        fd = (f(x + e) - f(x - e)) / (2 * eps)
        np.testing.assert_allclose(grad[0, j], fd, rtol=1e-2, atol=1e-4)


def test_dropout_is_explicit_and_pure(getkey):
    fn = mlp(6, depth=2, width=64, dropout=0.3)
    params = fn.init(getkey())
    x = jax.random.normal(getkey(), (4, 6))
    k1, k2 = getkey(), getkey()
    # No key: deterministic, and the same as a model without dropout.
    np.testing.assert_array_equal(fn.apply(params, x), fn.apply(params, x))
    np.testing.assert_array_equal(fn.apply(params, x), mlp(6, depth=2, width=64).apply(params, x))
    a = fn.apply(params, x, dropout_key=k1)
    assert not np.allclose(a, fn.apply(params, x))
    np.testing.assert_array_equal(a, jax.jit(fn.apply)(params, x, dropout_key=k1))
    assert not np.allclose(a, fn.apply(params, x, dropout_key=k2))
    # Inverted dropout keeps the expected activation: the average over many keys approaches eval mode.
    keys = jax.random.split(getkey(), 2000)
    mean = jnp.mean(jax.vmap(lambda k: fn.apply(params, x, dropout_key=k))(keys), axis=0)
    np.testing.assert_allclose(mean, fn.apply(params, x), atol=0.05)


def test_dropout_zero_with_key_is_identity(getkey):
    fn = mlp(6, depth=2, width=8)
    params = fn.init(getkey())
    x = jax.random.normal(getkey(), (4, 6))
    np.testing.assert_array_equal(fn.apply(params, x, dropout_key=getkey()), fn.apply(params, x))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="gelu"):
        mlp(3, activation="swish")
    with pytest.raises(ValueError, match="activation"):
        MLP(3, activation="nope", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="dropout"):
        mlp(3, dropout=1.0)
    with pytest.raises(ValueError, match="width"):
        mlp(3, width=0)
    fn = mlp(3, width=4)
    with pytest.raises(ValueError, match="3 features"):
        fn.apply(fn.init(jax.random.key(0)), jnp.ones((2, 4)))


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_runs(getkey, name):
    fn = mlp(3, depth=1, width=4, activation=name)
    out = fn.apply(fn.init(getkey()), jnp.linspace(-2.0, 2.0, 6).reshape(2, 3))
    assert out.shape == (2, 1) and bool(jnp.all(jnp.isfinite(out)))
    assert activation_fn(name) is ACTIVATIONS[name]


def test_residual_mlp(getkey):
    model = ResidualMLP(10, 3, depth=2, width=16, rngs=nnx.Rngs(params=getkey()))
    x = jax.random.normal(getkey(), (5, 10))
    assert model(x).shape == (5, 3)
    fn = mlp(10, 3, depth=2, width=16, residual=True, dropout=0.2)
    params = fn.init(getkey())
    # stem + 2 blocks x (2 linears + 2 layer norms) + head
    expected = (10 * 16 + 16) + 2 * (2 * (16 * 16 + 16) + 2 * 2 * 16) + (16 * 3 + 3)
    assert _n_params(params) == expected
    batch = jax.vmap(fn.apply, in_axes=(0, None))(jax.vmap(fn.init)(jax.random.split(getkey(), 2)), x)
    assert batch.shape == (2, 5, 3)
    assert not np.allclose(fn.apply(params, x, dropout_key=getkey()), fn.apply(params, x))
    # Layer norms start like torch: scale 1, bias 0.
    norm = params["blocks"][0]["norm1"]
    np.testing.assert_array_equal(norm["scale"].get_value(), jnp.ones(16))
    np.testing.assert_array_equal(norm["bias"].get_value(), jnp.zeros(16))


def test_functional_is_cached_and_does_not_retrace(getkey):
    assert mlp(4, width=8) is mlp(4, width=8)
    assert mlp(4, width=8) is not mlp(4, width=9)
    assert hash(mlp(4, width=8)) == hash(mlp(4, width=8))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def forward(params, x):
        return mlp(4, width=8).apply(params, x)

    params = mlp(4, width=8).init(getkey())
    forward(params, jnp.ones((3, 4)))
    forward(params, jnp.zeros((3, 4)))

    counted = chex.assert_max_traces(lambda fn, p, x: fn.apply(p, x), n=1)
    apply_static = jax.jit(counted, static_argnums=0)
    apply_static(mlp(4, width=8), params, jnp.ones((3, 4)))
    apply_static(mlp(4, width=8), params, jnp.ones((3, 4)))


def test_residual_block_formula(getkey):
    """ResidualMLP(depth=1) by hand: stem, act(LN(h + fc2(act(LN(fc1(h)))))), head; torch's LayerNorm eps."""
    fn = mlp(4, 2, depth=1, width=6, residual=True)
    params = fn.init(getkey())
    # give the layer norms non-trivial affine parameters so that they are checked too
    params = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(getkey(), a.shape), params)
    p = nnx.to_pure_dict(params)
    x = jax.random.normal(getkey(), (3, 4))
    gelu = lambda v: v * jax.scipy.stats.norm.cdf(v)  # noqa: E731

    def lin(q, v):
        return v @ q["kernel"] + q["bias"][None, :]

    def ln(q, v):
        mean = v.mean(-1, keepdims=True)
        var = ((v - mean) ** 2).mean(-1, keepdims=True)
        return (v - mean) / jnp.sqrt(var + 1e-5) * q["scale"][None, :] + q["bias"][None, :]

    b = p["blocks"][0]
    h = lin(p["stem"], x)
    h = gelu(ln(b["norm2"], h + lin(b["fc2"], gelu(ln(b["norm1"], lin(b["fc1"], h))))))
    np.testing.assert_allclose(fn.apply(params, x), lin(p["head"], h), rtol=1e-5, atol=1e-5)
