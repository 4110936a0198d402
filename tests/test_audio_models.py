"""The audio models: shapes, the stem's arithmetic, train/inference modes, samples that do not interact."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from chaosjax.models import audio as M

LENGTH = 800  # 0.1 s at 8 kHz: 46 stem frames, 11 after pooling


@pytest.fixture(scope="module")
def clips():
    return jax.random.normal(jax.random.key(0), (4, 10, LENGTH)) * 0.3


@pytest.mark.parametrize("name", list(M.MODELS))
def test_shapes_modes_and_no_interaction(name, clips):
    model = M.MODELS[name](10, 35)
    variables = model.init(jax.random.key(1))
    logits = model.apply(variables, clips)
    assert logits.shape == (4, 35) and bool(jnp.all(jnp.isfinite(logits)))
    out, stats = model.apply(variables, clips, train=True)
    assert out.shape == (4, 35)
    # Training updates the running statistics; inference ignores the batch.
    before = jax.tree.leaves(variables["batch_stats"])
    assert any(not np.allclose(a, b) for a, b in zip(before, jax.tree.leaves(stats)))
    changed = clips.at[1:].set(jax.random.normal(jax.random.key(2), (3, 10, LENGTH)))
    np.testing.assert_allclose(np.asarray(model.apply(variables, changed)[0]), np.asarray(logits[0]), atol=1e-5)
    single = model.apply(variables, clips[:1])
    np.testing.assert_allclose(np.asarray(single[0]), np.asarray(logits[0]), atol=1e-5)
    # Gradients reach the input (attribution needs them) and depend on the sample only.
    g = jax.grad(lambda x: model.apply(variables, x)[:, 0].sum())(clips)
    g2 = jax.grad(lambda x: model.apply(variables, x)[:, 0].sum())(changed)
    assert float(jnp.abs(g[0]).sum()) > 0
    np.testing.assert_allclose(np.asarray(g2[0]), np.asarray(g[0]), atol=1e-5)


def test_constructors_cached_and_validated():
    assert M.tcn(10, 35) is M.tcn(10, 35)
    # Cached on what the arguments mean, not how they were written (equal models must not retrace).
    assert M.tcn() is M.tcn(10) is M.tcn(channels=10, num_classes=35) is M.tcn(np.int64(10), widths=[60, 120, 120])
    assert M.lstm(10, 35, hidden=8) is M.lstm(hidden=8)
    assert M.lstm(10, 35, hidden=8) is not M.lstm(10, 35, hidden=16)
    with pytest.raises(ValueError, match="heads"):
        M.transformer(heads=7)
    with pytest.raises(ValueError, match="hidden"):
        M.rnn(hidden=0)
    model = M.tcn(10, 35)
    variables = model.init(jax.random.key(0))
    with pytest.raises(ValueError, match="expected clips"):
        model.apply(variables, jnp.zeros((2, 8, LENGTH)))
    with pytest.raises(ValueError, match="too short"):
        model.apply(variables, jnp.zeros((2, 10, 100)))


def test_stem_frames_and_conv_matches_lax_conv():
    assert M.frames(16000) == 249 and M.frames(8000) == 124 and M.frames(LENGTH) == 11
    stem = M.Stem(10, rngs=__import__("flax").nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(3), (2, 10, LENGTH))
    assert stem(x).shape == (2, 11, 60)
    # The matrix-product convolutions equal lax.conv (stem: stride 16; TCN: dilation 2, padding 2).
    for conv in (stem.conv, M.Conv1d(10, 6, 3, dilation=2, pad=2, rngs=__import__("flax").nnx.Rngs(1))):
        xt = jnp.swapaxes(x, 1, 2)
        ref = jax.lax.conv_general_dilated(
            xt, conv.kernel[...], (conv.stride,), [(conv.pad, conv.pad)], rhs_dilation=(conv.dilation,),
            dimension_numbers=("NWC", "WIO", "NWC"),
        ) + conv.bias[...][None, None, :]
        np.testing.assert_allclose(np.asarray(conv(xt)), np.asarray(ref), atol=1e-4)


def test_lstm_matches_reference_equations():
    """One LSTM layer against a plain Python loop of PyTorch's equations (gate order i, f, g, o)."""
    from flax import nnx

    layer = M._Recurrent(5, 4, True, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(4), (2, 6, 5))
    w_ih, w_hh, b = (np.asarray(p[...]) for p in (layer.w_ih, layer.w_hh, layer.b))
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    h = c = np.zeros((2, 4))
    outs = []
    for t in range(6):
        z = np.asarray(x[:, t]) @ w_ih + h @ w_hh + b
        i, f, g, o = np.split(z, 4, axis=1)
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
        outs.append(h)
    np.testing.assert_allclose(np.asarray(layer(x)), np.stack(outs, 1), atol=1e-5)


def test_max_pool_gradients_agree_under_jit(clips):
    """The max-pools' gradient is the same eager and under jit (jnp.max's was not: under jit XLA recomputed its
    operand with other rounding, the equality test that locates the maximum failed, and whole windows lost their
    gradient: 0.2 of a 0.5 saliency map in training mode)."""
    model = M.tcn(10, 35, widths=(8,))
    variables = model.init(jax.random.key(5))
    for train in (False, True):
        def h(x):
            out = model.apply(variables, x, train=True)[0] if train else model.apply(variables, x)
            return out[:, 3].sum()

        eager, jitted = jax.grad(h)(clips), jax.jit(jax.grad(h))(clips)
        np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), atol=1e-6 * float(jnp.abs(eager).max()))
