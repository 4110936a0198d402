"""The vision generator: determinism per (seed, index), positions, backgrounds, labels, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from chaosjax.data import sources
from chaosjax.data import vision as V


@pytest.fixture(scope="module")
def data():
    return V.dataset("tiny", "train")


@pytest.fixture(scope="module")
def batch_fn():
    return jax.jit(lambda d, k, i, c: d.batch(k, i, c))


def test_presets_scale_grid_and_fixed_position():
    assert V.preset("paper").fixed_position == 96 and V.preset("paper").cell == 32
    assert V.preset("tiny").fixed_position == 24 and V.preset("small").fixed_position == 48
    g = V.grid_groups("tiny")
    assert g.shape == (56, 56, 3) and len(np.unique(g)) == 49
    assert np.all(g[24:32, 24:32] == 24)  # the FP box is exactly the centre cell


def test_deterministic_per_seed_and_index(data, batch_fn):
    key = jax.random.key(3)
    a = batch_fn(data, key, jnp.arange(8), 3)
    b = batch_fn(data, key, jnp.arange(4, 12), 3)  # other batch composition, same indices 4..7
    for fa, fb in zip(a, b):
        np.testing.assert_array_equal(np.asarray(fa)[4:8], np.asarray(fb)[:4])
    single = data.sample(key, 5, "SBRP")
    np.testing.assert_allclose(single.image, a.image[5], atol=1e-4)  # eager vs jit rounding
    c = batch_fn(data, jax.random.key(4), jnp.arange(8), 3)
    assert not np.allclose(a.image, c.image)


def test_positions_backgrounds_and_labels(data, batch_fn):
    key, n = jax.random.key(0), 512
    spec = data.spec
    for code, name in enumerate(V.CONDITIONS):
        s = batch_fn(data, key, jnp.arange(n), code)
        boxes, bg = np.asarray(s.box), np.asarray(s.background_label)
        assert s.image.shape == (n, 56, 56, 3) and float(s.image.min()) >= -1 and float(s.image.max()) <= 1
        np.testing.assert_array_equal(boxes[:, 2:] - boxes[:, :2], 8)
        if name.endswith("FP"):
            assert np.all(boxes[:, :2] == spec.fixed_position)
        else:  # uniform over [0, canvas - fg): both ends reached, many distinct values, not cell-aligned
            assert boxes[:, :2].min() == 0 and boxes[:, :2].max() == 56 - 8 - 1
            assert len(np.unique(boxes[:, 0])) == 48 and np.mean(boxes[:, 0] % 8 != 0) > 0.5
            assert abs(boxes[:, :2].mean() - 23.5) < 2.5
        if name.startswith("SB"):
            assert len(np.unique(bg)) == len(sources.PHOTO_SPLIT["train"])  # structured backgrounds vary
            outside = np.asarray(s.image)[:, :8, :8]
            assert np.std(outside.mean(axis=(1, 2, 3))) > 0.1
        else:
            assert np.all(bg == -1)
        # The label is the foreground's: same key/index -> same digit regardless of condition.
        if code:
            np.testing.assert_array_equal(np.asarray(s.label), labels0)
        else:
            labels0 = np.asarray(s.label)
            assert set(labels0) == set(range(10))


def test_foreground_is_pasted_at_the_box(data):
    """The foreground pixels are the bank digit, colourised: inside the box the image has two colours' mix."""
    key = jax.random.key(1)
    s = data.sample(key, 0, "RBRP")
    fg_idx = jax.random.randint(jax.random.split(jax.random.fold_in(key, 0), 4)[0], (), 0, data.fg_images.shape[0])
    digit = np.asarray(data.fg_images[fg_idx, ..., 0], np.float64) / 255
    t, l, b, r = np.asarray(s.box)
    patch = (np.asarray(s.image)[t:b, l:r] + 1) / 2
    # Each channel of the patch is an affine function of the digit's ink (ink * m + paper * (1 - m)).
    for ch in range(3):
        coef = np.polyfit(digit.ravel(), patch[..., ch].ravel(), 1)
        np.testing.assert_allclose(np.polyval(coef, digit), patch[..., ch], atol=1e-5)
        assert abs(coef[0]) >= 0.1  # contrast between ink and paper
    assert int(s.label) == int(data.fg_labels[fg_idx])


def test_train_and_val_use_disjoint_banks():
    tr, va = V.dataset("tiny", "train"), V.dataset("tiny", "val")
    assert set(np.asarray(tr.bg_labels)).isdisjoint(set(np.asarray(va.bg_labels)))
    assert tr.fg_images.shape[0] + va.fg_images.shape[0] == 1797


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: V.preset("huge"), "preset"),
        (lambda: V.VisionSpec(canvas=56, foreground=64), "foreground"),
        (lambda: V.VisionSpec(canvas=50, foreground=8), "canvas"),
        (lambda: V.condition_code("RBXX"), "condition"),
        (lambda: V.condition_code(7), "condition"),
        (lambda: V.dataset("tiny", source="mnist"), "source"),
        (lambda: V.dataset("tiny", background="flowers102"), "background"),
        (lambda: V.dataset("tiny", source="cifar10:/no/such/dir"), "path"),
    ],
)
def test_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_one_compile_serves_all_conditions(data):
    traces = []

    @jax.jit
    def gen(d, k, c):
        traces.append(1)
        return d.batch(k, jnp.arange(4), c)

    for code in range(4):
        gen(data, jax.random.key(0), jnp.int32(code))
    assert len(traces) == 1
