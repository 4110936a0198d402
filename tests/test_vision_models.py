"""Vision models: shapes, BatchNorm modes, caching (no retrace), attribution (DeepLIFT) on each, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from chaosjax import attribution as A
from chaosjax.models import vision as MV

SMALL = {
    "cnn": dict(width=8, depth=2),
    "alexnet": dict(width=8),
    "vgg13": dict(width=4, depth=3),
    "resnet18": dict(width=4, blocks=(1, 1)),
    "vit": dict(patch=8, dim=16, depth=1, heads=2),
}


@pytest.mark.parametrize("name", list(SMALL))
def test_shapes_modes_and_deeplift(name, getkey):
    fn = MV.MODELS[name](32, 10, **SMALL[name])
    assert MV.MODELS[name](32, 10, **SMALL[name]) is fn  # cached: jitted callers do not retrace
    assert MV.MODELS[name](32, **SMALL[name]) is fn  # ... however the arguments are written
    assert MV.MODELS[name](image_size=np.int64(32), num_classes=10, **SMALL[name]) is fn
    v = fn.init(getkey())
    x = jax.random.normal(getkey(), (3, 32, 32, 3))
    logits = fn.apply(v, x)
    assert logits.shape == (3, 10) and bool(jnp.all(jnp.isfinite(logits)))
    train_logits, stats = fn.apply(v, x, train=True)
    assert train_logits.shape == (3, 10)
    has_bn = len(jax.tree.leaves(v["batch_stats"])) > 0
    assert has_bn == (name in ("cnn", "vgg13", "resnet18"))
    if has_bn:  # train mode moves the running statistics; inference mode is per sample (no batch coupling)
        moved = [float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(v["batch_stats"]))]
        assert max(moved) > 0
    np.testing.assert_allclose(fn.apply(v, x[:1]), logits[:1], rtol=1e-4, atol=1e-5)
    f = A.target(lambda z: fn.apply(v, z), jnp.argmax(logits, axis=1))
    attr = A.deeplift(f, x)
    assert attr.shape == x.shape and bool(jnp.all(jnp.isfinite(attr)))


def test_deeplift_completeness_on_relu_cnn(getkey):
    """Conv + BN(inference) + ReLU + average pooling, no max-pool: DeepLIFT sums to f(x) - f(0)."""
    fn = MV.resnet18(16, 10, width=4, blocks=(1,), stem="small")
    v = fn.init(getkey())
    x = jax.random.normal(getkey(), (2, 16, 16, 3))
    f = A.target(lambda z: fn.apply(v, z), jnp.array([1, 2]))
    attr = A.deeplift(f, x)
    np.testing.assert_allclose(attr.sum(axis=(1, 2, 3)), f(x) - f(jnp.zeros_like(x)), rtol=1e-3, atol=1e-4)


def test_imagenet_stem_at_224(getkey):
    fn = MV.resnet18(224, 10, width=4, blocks=(1,))
    v = fn.init(getkey())
    assert v["params"]["stem"]["kernel"].shape == (7, 7, 3, 4)
    assert fn.apply(v, jnp.zeros((1, 224, 224, 3))).shape == (1, 10)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: MV.vit(56, 10, patch=16), "patch"),
        (lambda: MV.small_cnn(56, 1), "num_classes"),
        (lambda: MV.small_cnn(56, 10, width=0), "width"),
        (lambda: MV.resnet18(56, 10, blocks=()), "blocks"),
        (lambda: MV.vgg13(56, 10, depth=9), "depth"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_input_shape(getkey):
    fn = MV.small_cnn(32, 10, width=4, depth=1)
    v = fn.init(getkey())
    with pytest.raises(ValueError, match="expected inputs"):
        fn.apply(v, jnp.zeros((1, 28, 28, 3)))
    with pytest.raises(TypeError, match="variables"):
        fn.apply(v["params"], jnp.zeros((1, 32, 32, 3)))
