"""Vision classifiers of the benchmark (Flax NNX), trained from scratch, and their functional face.

Inputs are channels-last batches `(B, H, W, 3)` in [-1, 1]; outputs are logits `(B, num_classes)`.
Width and depth are parameters; the defaults follow the torchvision models the study trained.

* `SmallCNN`: `depth` blocks `conv3x3 -> BatchNorm -> ReLU -> maxpool2`, widths `width * 2^i`, global
  average pool, linear head. The cheap model of the tests and the tiny preset.
* `AlexNet`: AlexNet's layout scaled by `width` (64 as torchvision): conv11/4 (conv5/2 below 128 px)
  -> maxpool3/2 -> conv5 -> maxpool3/2 -> conv3 x 3 -> maxpool3/2 -> global average pool -> 2 hidden dense
  layers of `16 * width`, no dropout (attribution sees the eval-mode net anyway).
* `VGG`: VGG-13 (`[2, 2, 2, 2, 2]` conv3x3 + BatchNorm + ReLU per stage, maxpool2 between stages, widths
  `width * (1, 2, 4, 8, 8)`); `depth` stages (<= 5); global average pool; linear head.
* `ResNet`: ResNet-18 (`blocks=(2, 2, 2, 2)` basic blocks, widths `width * (1, 2, 4, 8)`), the ImageNet
  stem (conv7/2 + maxpool3/2) from 128 px up, a conv3/1 stem below (CIFAR style); global average pool.
* `ViT`: patch embedding (conv with kernel = stride = `patch`), a class token, learned position
  embeddings, `depth` pre-norm blocks (multi-head self-attention + GELU MLP), the class token's head.

Padding is explicit and symmetric everywhere (PyTorch's), so a torch model with the same weights
computes the same function (the speed benchmark relies on it).

Functional API (`MODELS[name](image_size, num_classes, **options) -> Functional`): `init(key) ->
variables`, a dict `{"params": nnx.State of nnx.Param, "batch_stats": nnx.State of everything else}`
(flax linen's convention: `chaosjax.classify` trains `"params"` and carries `"batch_stats"`), and
`apply(variables, x, *, train=False)`:
  - `train=False` -> logits; BatchNorm uses its running statistics (inference mode: what attribution sees);
  - `train=True` -> `(logits, new_batch_stats)`; BatchNorm normalises with the batch statistics and the
    running averages are updated with PyTorch's momentum 0.1.
Constructors are cached: equal arguments return the very same `Functional`, so jitted callers taking it as
a static argument never retrace.

Costs (forward, one 224 x 224 image, default widths): SmallCNN ~0.1 GFLOP, AlexNet ~0.7, VGG-13 ~11,
ResNet-18 ~1.8, ViT (patch 16, dim 192, depth 6) ~1.3.
"""

from __future__ import annotations

import numbers
from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from chaosjax.models._functional import Functional, cached_constructor, stateful_functional

__all__ = ["MODELS", "AlexNet", "ResNet", "SmallCNN", "VGG", "ViT", "alexnet", "resnet18", "small_cnn", "vgg13",
           "vision_functional", "vit"]

_he = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")  # torchvision's kaiming_normal_ for convs


def _conv(cin, cout, k, stride, pad, rngs, bias=False):
    return nnx.Conv(cin, cout, (k, k), strides=(stride, stride), padding=((pad, pad), (pad, pad)),
                    use_bias=bias, kernel_init=_he, rngs=rngs)


def _bn(c, rngs):
    # momentum 0.9 in flax = PyTorch's momentum 0.1; eps as PyTorch.
    return nnx.BatchNorm(c, momentum=0.9, epsilon=1e-5, rngs=rngs)


def _maxpool(x, k, stride, pad=0):
    return nnx.max_pool(x, (k, k), strides=(stride, stride), padding=((pad, pad), (pad, pad)))


def _gap(x):
    return jnp.mean(x, axis=(1, 2))


def _check_pos_int(name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")


def _check_input(x, image_size, model):
    if x.ndim != 4 or x.shape[1] != image_size or x.shape[2] != image_size or x.shape[3] != 3:
        raise ValueError(f"{model}: expected inputs (B, {image_size}, {image_size}, 3), got shape {x.shape}")


class SmallCNN(nnx.Module):
    """`depth` blocks conv3x3 -> BN -> ReLU -> maxpool2 (while the map is >= 2 px), GAP, linear head."""

    def __init__(self, image_size: int, num_classes: int = 10, *, width: int = 16, depth: int = 3,
                 rngs: nnx.Rngs):
        self.image_size = image_size
        chans = [3] + [width * 2**i for i in range(depth)]
        self.convs = nnx.List([_conv(a, b, 3, 1, 1, rngs) for a, b in zip(chans[:-1], chans[1:])])
        self.norms = nnx.List([_bn(b, rngs) for b in chans[1:]])
        self.head = nnx.Linear(chans[-1], num_classes, rngs=rngs)

    def __call__(self, x, train: bool = False):
        _check_input(x, self.image_size, "SmallCNN")
        h = x
        for conv, norm in zip(self.convs, self.norms):
            h = jax.nn.relu(norm(conv(h), use_running_average=not train))
            if h.shape[1] >= 2:
                h = _maxpool(h, 2, 2)
        return self.head(_gap(h))


class AlexNet(nnx.Module):
    """AlexNet's five convolutions and three pools, widths scaled by `width / 64`, GAP, two hidden dense layers."""

    def __init__(self, image_size: int, num_classes: int = 10, *, width: int = 64, hidden: int | None = None,
                 rngs: nnx.Rngs):
        self.image_size = image_size
        w = width
        big = image_size >= 128
        self.c1 = _conv(3, w, 11 if big else 5, 4 if big else 2, 2, rngs, bias=True)
        self.c2 = _conv(w, 3 * w, 5, 1, 2, rngs, bias=True)
        self.c3 = _conv(3 * w, 6 * w, 3, 1, 1, rngs, bias=True)
        self.c4 = _conv(6 * w, 4 * w, 3, 1, 1, rngs, bias=True)
        self.c5 = _conv(4 * w, 4 * w, 3, 1, 1, rngs, bias=True)
        hidden = hidden or 16 * w
        self.fc1 = nnx.Linear(4 * w, hidden, rngs=rngs)
        self.fc2 = nnx.Linear(hidden, hidden, rngs=rngs)
        self.head = nnx.Linear(hidden, num_classes, rngs=rngs)

    def __call__(self, x, train: bool = False):
        _check_input(x, self.image_size, "AlexNet")
        relu = jax.nn.relu
        h = relu(self.c1(x))
        h = _maxpool(h, 3, 2) if h.shape[1] >= 3 else h
        h = relu(self.c2(h))
        h = _maxpool(h, 3, 2) if h.shape[1] >= 3 else h
        h = relu(self.c5(relu(self.c4(relu(self.c3(h))))))
        h = _maxpool(h, 3, 2) if h.shape[1] >= 3 else h
        h = relu(self.fc2(relu(self.fc1(_gap(h)))))
        return self.head(h)


class VGG(nnx.Module):
    """VGG-13 with BatchNorm: stages of `per_stage` conv3x3-BN-ReLU, maxpool2 between, GAP, linear head."""

    def __init__(self, image_size: int, num_classes: int = 10, *, width: int = 64, depth: int = 5,
                 per_stage: int = 2, rngs: nnx.Rngs):
        self.image_size = image_size
        mult = (1, 2, 4, 8, 8, 8, 8)
        convs, norms, cin = [], [], 3
        for s in range(depth):
            cout = width * mult[min(s, len(mult) - 1)]
            for _ in range(per_stage):
                convs.append(_conv(cin, cout, 3, 1, 1, rngs))
                norms.append(_bn(cout, rngs))
                cin = cout
        self.per_stage = per_stage
        self.convs, self.norms = nnx.List(convs), nnx.List(norms)
        self.head = nnx.Linear(cin, num_classes, rngs=rngs)

    def __call__(self, x, train: bool = False):
        _check_input(x, self.image_size, "VGG")
        h = x
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            h = jax.nn.relu(norm(conv(h), use_running_average=not train))
            if (i + 1) % self.per_stage == 0 and h.shape[1] >= 2:
                h = _maxpool(h, 2, 2)
        return self.head(_gap(h))


class _BasicBlock(nnx.Module):
    def __init__(self, cin, cout, stride, rngs):
        self.conv1 = _conv(cin, cout, 3, stride, 1, rngs)
        self.bn1 = _bn(cout, rngs)
        self.conv2 = _conv(cout, cout, 3, 1, 1, rngs)
        self.bn2 = _bn(cout, rngs)
        self.has_down = stride != 1 or cin != cout
        if self.has_down:
            self.down_conv = _conv(cin, cout, 1, stride, 0, rngs)
            self.down_bn = _bn(cout, rngs)

    def __call__(self, x, train):
        ura = not train
        h = jax.nn.relu(self.bn1(self.conv1(x), use_running_average=ura))
        h = self.bn2(self.conv2(h), use_running_average=ura)
        skip = self.down_bn(self.down_conv(x), use_running_average=ura) if self.has_down else x
        return jax.nn.relu(h + skip)


class ResNet(nnx.Module):
    """ResNet with basic blocks (ResNet-18: `blocks=(2, 2, 2, 2)`), widths `width * 2^stage`.

    Stem: `"imagenet"` (conv7/2 + BN + ReLU + maxpool3/2, torchvision's) or `"small"` (conv3/1 + BN + ReLU);
    `"auto"` picks the ImageNet stem from 128 px up.
    """

    def __init__(self, image_size: int, num_classes: int = 10, *, width: int = 64, blocks=(2, 2, 2, 2),
                 stem: str = "auto", rngs: nnx.Rngs):
        self.image_size = image_size
        if stem not in ("auto", "imagenet", "small"):
            raise ValueError(f"stem: expected 'auto', 'imagenet' or 'small', got {stem!r}")
        self.imagenet_stem = stem == "imagenet" or (stem == "auto" and image_size >= 128)
        self.stem = _conv(3, width, 7, 2, 3, rngs) if self.imagenet_stem else _conv(3, width, 3, 1, 1, rngs)
        self.stem_bn = _bn(width, rngs)
        layers, cin = [], width
        for s, n in enumerate(blocks):
            cout = width * 2**s
            for b in range(n):
                layers.append(_BasicBlock(cin, cout, 2 if (b == 0 and s > 0) else 1, rngs))
                cin = cout
        self.layers = nnx.List(layers)
        self.head = nnx.Linear(cin, num_classes, rngs=rngs)

    def __call__(self, x, train: bool = False):
        _check_input(x, self.image_size, "ResNet")
        h = jax.nn.relu(self.stem_bn(self.stem(x), use_running_average=not train))
        if self.imagenet_stem:
            h = _maxpool(h, 3, 2, 1)
        for block in self.layers:
            h = block(h, train)
        return self.head(_gap(h))


class _EncoderBlock(nnx.Module):
    def __init__(self, dim, heads, mlp_ratio, rngs):
        self.ln1 = nnx.LayerNorm(dim, epsilon=1e-6, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(heads, dim, decode=False, keep_rngs=False, rngs=rngs)
        self.ln2 = nnx.LayerNorm(dim, epsilon=1e-6, rngs=rngs)
        self.fc1 = nnx.Linear(dim, dim * mlp_ratio, rngs=rngs)
        self.fc2 = nnx.Linear(dim * mlp_ratio, dim, rngs=rngs)

    def __call__(self, h):
        h = h + self.attn(self.ln1(h), deterministic=True)
        return h + self.fc2(jax.nn.gelu(self.fc1(self.ln2(h)), approximate=False))


class ViT(nnx.Module):
    """Vision transformer: `patch x patch` patches, a class token, `depth` pre-norm encoder blocks."""

    def __init__(self, image_size: int, num_classes: int = 10, *, patch: int = 16, dim: int = 192, depth: int = 6,
                 heads: int = 3, mlp_ratio: int = 4, rngs: nnx.Rngs):
        if image_size % patch:
            raise ValueError(f"patch: {patch} does not divide the image size {image_size}")
        if dim % heads:
            raise ValueError(f"heads: {heads} does not divide dim {dim}")
        self.image_size = image_size
        self.embed = nnx.Conv(3, dim, (patch, patch), strides=(patch, patch), padding="VALID", rngs=rngs)
        tokens = (image_size // patch) ** 2 + 1
        init = nnx.initializers.normal(0.02)
        self.cls = nnx.Param(init(rngs.params(), (1, 1, dim)))
        self.pos = nnx.Param(init(rngs.params(), (1, tokens, dim)))
        self.blocks = nnx.List([_EncoderBlock(dim, heads, mlp_ratio, rngs) for _ in range(depth)])
        self.ln = nnx.LayerNorm(dim, epsilon=1e-6, rngs=rngs)
        self.head = nnx.Linear(dim, num_classes, rngs=rngs)

    def __call__(self, x, train: bool = False):
        _check_input(x, self.image_size, "ViT")
        p = self.embed(x)
        b = p.shape[0]
        h = p.reshape(b, -1, p.shape[-1])
        cls = jnp.broadcast_to(self.cls[...], (b, 1, h.shape[-1]))
        h = jnp.concatenate([cls, h], axis=1) + self.pos[...]
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln(h[:, 0]))


# --------------------------------------------------------------------------------------------- functional


vision_functional = stateful_functional  # the shared BatchNorm-aware functional face


def _checked(image_size, num_classes):
    _check_pos_int("image_size", image_size, 8)
    _check_pos_int("num_classes", num_classes, 2)


@cached_constructor
def small_cnn(image_size: int, num_classes: int = 10, *, width: int = 16, depth: int = 3) -> Functional:
    """Functional `SmallCNN` (cached by arguments)."""
    _checked(image_size, num_classes)
    _check_pos_int("width", width)
    _check_pos_int("depth", depth)
    return vision_functional(lambda rngs: SmallCNN(image_size, num_classes, width=width, depth=depth, rngs=rngs))


@cached_constructor
def alexnet(image_size: int, num_classes: int = 10, *, width: int = 64) -> Functional:
    """Functional `AlexNet` (cached by arguments)."""
    _checked(image_size, num_classes)
    _check_pos_int("width", width)
    return vision_functional(lambda rngs: AlexNet(image_size, num_classes, width=width, rngs=rngs))


@cached_constructor
def vgg13(image_size: int, num_classes: int = 10, *, width: int = 64, depth: int = 5) -> Functional:
    """Functional `VGG` (VGG-13 with BatchNorm; cached by arguments)."""
    _checked(image_size, num_classes)
    _check_pos_int("width", width)
    if not 1 <= depth <= 7:
        raise ValueError(f"depth: expected 1-7 stages, got {depth!r}")
    return vision_functional(lambda rngs: VGG(image_size, num_classes, width=width, depth=depth, rngs=rngs))


@cached_constructor
def resnet18(image_size: int, num_classes: int = 10, *, width: int = 64, blocks: tuple[int, ...] = (2, 2, 2, 2),
             stem: str = "auto") -> Functional:
    """Functional `ResNet` (ResNet-18 by default; `blocks` sets the depth; cached by arguments)."""
    _checked(image_size, num_classes)
    _check_pos_int("width", width)
    blocks = tuple(blocks)
    if not blocks or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in blocks):
        raise ValueError(f"blocks: expected positive integers per stage, got {blocks!r}")
    return vision_functional(lambda rngs: ResNet(image_size, num_classes, width=width, blocks=blocks, stem=stem,
                                                 rngs=rngs))


@cached_constructor
def vit(image_size: int, num_classes: int = 10, *, patch: int = 16, dim: int = 192, depth: int = 6, heads: int = 3,
        mlp_ratio: int = 4) -> Functional:
    """Functional `ViT` (cached by arguments); `patch` must divide `image_size`."""
    _checked(image_size, num_classes)
    for name, v in (("patch", patch), ("dim", dim), ("depth", depth), ("heads", heads), ("mlp_ratio", mlp_ratio)):
        _check_pos_int(name, v)
    if image_size % patch:
        raise ValueError(f"patch: {patch} does not divide the image size {image_size}")
    if dim % heads:
        raise ValueError(f"heads: {heads} does not divide dim {dim}")
    return vision_functional(lambda rngs: ViT(image_size, num_classes, patch=patch, dim=dim, depth=depth,
                                              heads=heads, mlp_ratio=mlp_ratio, rngs=rngs))


#: name -> constructor `(image_size, num_classes, **options) -> Functional`.
MODELS: dict[str, Callable[..., Functional]] = {
    "cnn": small_cnn,
    "alexnet": alexnet,
    "vgg13": vgg13,
    "resnet18": resnet18,
    "vit": vit,
}
