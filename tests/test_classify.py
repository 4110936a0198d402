"""Classifier training with on-device batches: learning, BatchNorm statistics, seeds under vmap, no retrace."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from chaosjax import classify as C
from chaosjax.models import vision as MV
from chaosjax.models.mlp import mlp

_CENTRES = 1.5 * jax.random.normal(jax.random.key(42), (4, 1, 1, 3))  # a colour per class


def blobs(key, step):
    """Four classes, each a fixed colour plus pixel noise: learnable in a few dozen steps."""
    k = jax.random.fold_in(key, step)
    k1, k2 = jax.random.split(k)
    y = jax.random.randint(k1, (32,), 0, 4)
    x = _CENTRES[y] + 0.8 * jax.random.normal(k2, (32, 8, 8, 3))
    return x, y


def blobs_data(key, step, data):
    x, y = blobs(key, step)
    return x * data, y


def flat_blobs(key, step):
    x, y = blobs(key, step)
    return x.reshape(32, -1), y


def _val(n=256):
    return blobs(jax.random.key(7), 0) if n == 32 else jax.vmap(lambda s: blobs(jax.random.key(7), s))(jnp.arange(n // 32))


def test_fit_learns_and_updates_batch_stats(getkey):
    model = MV.small_cnn(8, 4, width=8, depth=1)
    v = model.init(getkey())
    result = C.fit(model, v, blobs, getkey(), steps=60, learning_rate=3e-3)
    assert result.losses.shape == (60,)
    assert float(result.losses[-10:].mean()) < 0.5 * float(result.losses[:5].mean())
    xs, ys = _val()
    acc = C.evaluate(model, result.variables, xs.reshape(-1, 8, 8, 3), ys.reshape(-1), batch_size=100)
    assert float(acc.top1) > 0.7 and float(acc.top5) == 1.0  # chance: 0.25  # 4 classes: top-5 holds every label
    before, after = jax.tree.leaves(v["batch_stats"]), jax.tree.leaves(result.variables["batch_stats"])
    assert any(float(jnp.max(jnp.abs(a - b))) > 1e-3 for a, b in zip(before, after))


def test_stateless_model_and_data_argument(getkey):
    model = mlp(192, 4, depth=1, width=32)
    p = model.init(getkey())
    r = C.fit(model, p, flat_blobs, getkey(), steps=60, learning_rate=3e-3)
    xs, ys = _val()
    assert float(C.evaluate(model, r.variables, xs.reshape(-1, 192), ys.reshape(-1)).top1) > 0.9
    cnn = MV.small_cnn(8, 4, width=4, depth=1)
    r2 = C.fit(cnn, cnn.init(getkey()), blobs_data, getkey(), steps=3, data=jnp.float32(0.5))
    assert bool(jnp.all(jnp.isfinite(r2.losses)))


def test_fit_seeds_matches_single_runs_and_does_not_retrace(getkey):
    model = MV.small_cnn(8, 4, width=4, depth=1)
    init_keys = jax.random.split(getkey(), 2)
    keys = jax.random.split(getkey(), 2)
    v = jax.vmap(model.init)(init_keys)
    grid = C.fit_seeds(model, v, blobs, keys, steps=10)
    single = C.fit(model, model.init(init_keys[1]), blobs, keys[1], steps=10)
    np.testing.assert_allclose(grid.losses[1], single.losses, rtol=1e-4, atol=1e-5)
    traces = C._TRACES["fit_seeds"]
    C.fit_seeds(model, v, blobs, keys, steps=10, learning_rate=5e-4)  # traced lr: no retrace
    assert C._TRACES["fit_seeds"] == traces


def test_accuracy_top5():
    logits = jnp.array([[9.0, 1, 2, 3, 4, 5, 6], [0.0, 1, 2, 3, 4, 5, 6], [6.0, 5, 4, 3, 2, 1, 0]])
    acc = C.accuracy(logits, jnp.array([0, 0, 0]))
    assert float(acc.top1) == pytest.approx(2 / 3) and float(acc.top5) == pytest.approx(2 / 3)


def test_bad_input(getkey):
    model = MV.small_cnn(8, 4, width=4, depth=1)
    v = model.init(getkey())
    with pytest.raises(ValueError, match="steps"):
        C.fit(model, v, blobs, getkey(), steps=0)
    with pytest.raises(ValueError, match="labels"):
        C.fit(model, v, lambda k, s: (jnp.zeros((4, 8, 8, 3)), jnp.zeros((4,))), getkey(), steps=1)
    with pytest.raises(TypeError, match="model"):
        C.fit(object(), v, blobs, getkey(), steps=1)
    with pytest.raises(ValueError, match="learning_rate"):
        C.fit(model, v, blobs, getkey(), steps=1, learning_rate=float("inf"))
    with pytest.raises(ValueError, match="seed axis"):
        C.fit_seeds(model, v, blobs, jax.random.split(getkey(), 2), steps=1)


def test_python_loop_equals_scan(getkey):
    model = MV.small_cnn(8, 4, width=4, depth=1)
    v = jax.vmap(model.init)(jax.random.split(getkey(), 2))
    keys = jax.random.split(getkey(), 2)
    ticks = []
    a = C.fit_seeds(model, v, blobs, keys, steps=6, loop="scan")
    b = C.fit_seeds(model, v, blobs, keys, steps=6, loop="python", progress=ticks.append)
    assert len(ticks) == 6 and b.losses.shape == (2, 6)
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-4, atol=1e-5)
    for x, y in zip(jax.tree.leaves(a.variables), jax.tree.leaves(b.variables)):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-5)
