"""Small plain-JAX models shared by the attribution tests: dense MLPs and a conv net."""

import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "gelu": lambda z: jax.nn.gelu(z, approximate=False),
}


def mlp_params(key, sizes, dtype=jnp.float32):
    """[(W, b), ...] for layer sizes like (5, 16, 16, 1), torch-style uniform init."""
    params = []
    for k, (n_in, n_out) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
        kw, kb = jax.random.split(k)
        bound = 1.0 / np.sqrt(n_in)
        params.append(
            (
                jax.random.uniform(kw, (n_in, n_out), dtype, -bound, bound),
                jax.random.uniform(kb, (n_out,), dtype, -bound, bound),
            )
        )
    return params


def mlp_apply(params, x, activation="relu"):
    act = ACTIVATIONS[activation]
    h = x
    for w, b in params[:-1]:
        h = act(h @ w + b[None])
    w, b = params[-1]
    return h @ w + b[None]


def mlp_fn(params, activation="relu"):
    """Per-sample scalar output, the shape every method takes."""
    return lambda x: mlp_apply(params, x, activation)[:, 0]


def cnn_params(key, channels=3, hidden=4, size=8, dtype=jnp.float32):
    """Two 3x3 convs (NCHW, padding 1) and a linear head on the flattened map."""
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)

    def u(k, shape, fan_in):
        bound = 1.0 / np.sqrt(fan_in)
        return jax.random.uniform(k, shape, dtype, -bound, bound)

    return {
        "w1": u(k1, (hidden, channels, 3, 3), channels * 9),
        "b1": u(k2, (hidden,), channels * 9),
        "w2": u(k3, (hidden, hidden, 3, 3), hidden * 9),
        "b2": u(k4, (hidden,), hidden * 9),
        "w3": u(k5, (hidden * size * size, 1), hidden * size * size),
    }


def cnn_apply(params, x):
    dn = ("NCHW", "OIHW", "NCHW")
    h = jax.lax.conv_general_dilated(x, params["w1"], (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn)
    h = jax.nn.relu(h + params["b1"][None, :, None, None])
    h = jax.lax.conv_general_dilated(h, params["w2"], (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn)
    h = jax.nn.relu(h + params["b2"][None, :, None, None])
    return h.reshape(h.shape[0], -1) @ params["w3"]
