"""Localisation metrics on constructed attribution maps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from chaosjax import metrics as M


def _indicator(h, fg, boxes):
    m = np.zeros((len(boxes), h, h, 3), np.float32)
    for i, (t, l, b, r) in enumerate(boxes):
        m[i, t:b, l:r] = 1.0
    return jnp.asarray(m)


def test_gaussian_smooth_matches_scipy():
    from scipy.ndimage import gaussian_filter

    a = np.random.default_rng(0).normal(size=(2, 20, 24, 3)).astype(np.float32)
    np.testing.assert_allclose(M.gaussian_smooth(jnp.asarray(a), 1.7), gaussian_filter(a, (0, 1.7, 1.7, 0)), atol=1e-5)


def test_box_indicator_tiny_scale():
    """Tiny preset (56 / 8, sigma scaled to 1.5): corrected IoU is exactly 1, at FP and at RP positions."""
    boxes = np.array([[24, 24, 32, 32], [3, 40, 11, 48], [40, 3, 48, 11]])
    m = _indicator(56, 8, boxes)
    iou = M.localization_iou_per_sample(m, boxes, foreground=8, sigma=1.5, protocol="corrected")
    np.testing.assert_allclose(iou, 1.0)
    np.testing.assert_allclose(M.localization_iou_per_sample(m, boxes, foreground=8, sigma=0.0, protocol="corrected"), 1.0)
    paper = M.localization_iou_per_sample(m, boxes, foreground=8, sigma=1.5, protocol="paper")
    assert np.all(np.asarray(paper) < 1.0) and np.all(np.asarray(paper) > 0.5)


def test_box_indicator_paper_scale_ceiling():
    """The study's setting (224 / 32, sigma 6): the paper IoU of the perfect map sits at its ceiling, 0.940."""
    boxes = np.array([[96, 96, 128, 128]])
    m = _indicator(224, 32, boxes)
    paper = float(M.localization_iou(m, boxes, foreground=32, sigma=6.0, protocol="paper"))
    assert paper == pytest.approx(M.paper_iou_ceiling(32), abs=1e-6) and paper == pytest.approx(0.9403, abs=1e-4)
    assert float(M.localization_iou(m, boxes, foreground=32, sigma=0.0, protocol="corrected")) == 1.0
    # Signed maps: paper smooths before |.|, so a box of +1 / -1 halves cancels in the middle and worsens.
    signed = m.at[:, 96:128, 96:112].multiply(-1.0)
    assert float(M.localization_iou(signed, boxes, foreground=32, sigma=6.0, protocol="corrected")) > \
        float(M.localization_iou(signed, boxes, foreground=32, sigma=6.0, protocol="paper"))


def test_mass_outside_scores_zero():
    boxes = np.array([[24, 24, 32, 32], [0, 0, 8, 8]])
    m = np.zeros((2, 56, 56, 3), np.float32)
    m[0, 0:8, 0:8] = 1.0  # far from the box
    m[1, 40:48, 40:48] = -2.0
    for proto in ("paper", "corrected"):
        np.testing.assert_allclose(M.localization_iou_per_sample(m, boxes, foreground=8, sigma=1.5, protocol=proto), 0.0)
    np.testing.assert_allclose(M.mass_in_box_per_sample(m, boxes), 0.0)
    np.testing.assert_allclose(M.pointing_game_per_sample(m, boxes), 0.0)


def test_mass_and_pointing(getkey):
    boxes = np.array([[24, 24, 32, 32]] * 2)
    m = _indicator(56, 8, boxes)
    np.testing.assert_allclose(M.mass_in_box(m, boxes), 1.0)
    np.testing.assert_allclose(M.pointing_game(m, boxes), 1.0)
    half = m + 1.0 / 48.0  # mass spread evenly outside too
    inside, outside = 64 * (1 + 1 / 48), (56 * 56 - 64) / 48
    np.testing.assert_allclose(M.mass_in_box(half, boxes), inside / (inside + outside), atol=1e-5)
    noise = jax.random.normal(getkey(), (400, 56, 56, 3))
    many = np.repeat(boxes[:1], 400, axis=0)
    assert abs(float(M.mass_in_box(noise, many)) - 1 / 49) < 0.003  # chance is the area share
    assert float(M.pointing_game(noise, many)) < 0.08


def test_jit_and_vmap_over_methods():
    boxes = np.array([[24, 24, 32, 32]])
    maps = jnp.stack([_indicator(56, 8, boxes), jnp.ones((1, 56, 56, 3))])
    f = jax.jit(jax.vmap(lambda a: M.localization_iou(a, boxes, foreground=8, sigma=1.5, protocol="corrected")))
    out = np.asarray(f(maps))
    assert out[0] == 1.0 and out[1] < 0.2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(attr=np.zeros((2, 56, 56)), boxes=np.zeros((2, 4), int), foreground=8), "attr"),
        (dict(attr=np.zeros((2, 56, 56, 3)), boxes=np.zeros((3, 4), int), foreground=8), "boxes"),
        (dict(attr=np.zeros((2, 56, 56, 3)), boxes=np.zeros((2, 4), int), foreground=80), "foreground"),
        (dict(attr=np.zeros((2, 56, 56, 3)), boxes=np.zeros((2, 4), int), foreground=8, protocol="x"), "protocol"),
        (dict(attr=np.zeros((2, 56, 56, 3)), boxes=np.zeros((2, 4), int), foreground=8, sigma=-1.0), "sigma"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        M.localization_iou(**kwargs)
