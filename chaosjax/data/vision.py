"""The vision track's generator: a small foreground pasted on a noisy canvas (docs/protocol.md, "Vision").

A sample is a pure function of `(key, index, condition)`:

* **foreground**: one image of the foreground bank, drawn by the sample's key, resized to
  `foreground x foreground` (bilinear) and, for a one-channel bank (the digits), colourised with a
  random ink and paper colour (one dark, one light, order random; each channel differs by >= 0.1);
* **background**: `RB` uniform integer pixels 0-255 per channel (the study's `randint(0, 256)`), or
  `SB` a random square crop of a bank photo (side uniform in `[crop_min, 1]` x the bank side, offset
  uniform, random horizontal flip), resized to the canvas (bilinear, antialiased);
* **position**: `FP` the top-left corner at `(c, c)` with `c = cell * (grid // 2)` (the centre cell of
  the `grid x grid` cells; (96, 96) at 224 / 32), `RP` each coordinate uniform in `[0, canvas - fg)`
  (the study's `randint(0, 192)`: not aligned to cells);
* pasted with `dynamic_update_slice`; the image is scaled to `[-1, 1]` as `(v - 0.5) / 0.5`.

The key of sample `i` is `fold_in(key, i)`: a dataset is a function of (seed, index) only, independent of
batch size, chunking or device. `VisionData.batch` vmaps `sample` over an index array, on device, with no
Python loop. The condition is a name (`"RBFP"`, ...) or its code (0-3, `CONDITIONS.index`), which may be
traced: one compiled program serves all four conditions (an unbatched traced code keeps the background
choice a real `lax.cond`, so only one background is computed).

Presets (`PRESETS`): `tiny` (canvas 56, foreground 8), `small` (112 / 16), `paper` (224 / 32); the grid
(7 x 7), the fixed position and the photo bank side (`16/7` x canvas) scale with the canvas.

Cost per sample: `O(canvas^2)` for the RB noise or `O(side * canvas^2)` for the photo resize (two
dense interpolation matrices), plus `O(fg^2)` for the foreground: about 1 ms per 224-px canvas on a
CPU core.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from chaosjax.data._conditions import CONDITIONS, condition_code  # shared with the audio track

__all__ = [
    "CONDITIONS",
    "PRESETS",
    "ComposedData",
    "Sample",
    "VisionData",
    "VisionSpec",
    "condition_code",
    "dataset",
    "grid_groups",
    "make_data",
    "preset",
]

#: name -> (canvas, foreground).
PRESETS = {"tiny": (56, 8), "small": (112, 16), "paper": (224, 32)}


@dataclasses.dataclass(frozen=True)
class VisionSpec:
    """Static geometry of the canvases (hashable: a static argument of jitted functions).

    Attributes:
      canvas: side of the square canvas in pixels.
      foreground: side of the square foreground (the true box).
      grid: cells per side of the feature-ablation grid; must divide `canvas`.
      crop_min: smallest SB crop side, as a fraction of the photo bank side.
      bank_side: side the photos are resized to once (`None`: `round(canvas * 16 / 7)`).
    """

    canvas: int = 224
    foreground: int = 32
    grid: int = 7
    crop_min: float = 1.0 / 3.0
    bank_side: int | None = None

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        for name in ("canvas", "foreground", "grid"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {v!r}")
        if self.foreground > self.canvas:
            raise ValueError(f"foreground: {self.foreground} px does not fit on a {self.canvas}-px canvas")
        if self.canvas % self.grid:
            raise ValueError(f"canvas: {self.canvas} px is not divisible by the {self.grid} x {self.grid} grid")
        if not 0.0 < self.crop_min <= 1.0:
            raise ValueError(f"crop_min: expected a fraction in (0, 1], got {self.crop_min!r}")
        if self.bank_side is not None and (isinstance(self.bank_side, bool) or self.bank_side < 8):
            raise ValueError(f"bank_side: expected an integer >= 8 or None, got {self.bank_side!r}")

    @property
    def cell(self) -> int:
        return self.canvas // self.grid

    @property
    def fixed_position(self) -> int:
        """Row (= column) of the FP top-left corner: the centre cell's corner (96 at 224, 24 at 56)."""
        return self.cell * (self.grid // 2)

    @property
    def photo_side(self) -> int:
        return self.bank_side if self.bank_side is not None else int(round(self.canvas * 16 / 7))


def preset(name: str | VisionSpec) -> VisionSpec:
    """The `VisionSpec` of a preset name (`tiny`, `small`, `paper`); a spec is returned unchanged."""
    if isinstance(name, VisionSpec):
        return name
    if name not in PRESETS:
        raise ValueError(f"preset: unknown {name!r}; expected one of {', '.join(PRESETS)}")
    canvas, fg = PRESETS[name]
    return VisionSpec(canvas=canvas, foreground=fg)


def grid_groups(spec: VisionSpec | str) -> np.ndarray:
    """Feature-ablation groups `(canvas, canvas, 3)`: label `r * grid + c` for the cell (r, c), all channels."""
    spec = preset(spec)
    cell_index = np.arange(spec.canvas) // spec.cell
    labels = cell_index[:, None] * spec.grid + cell_index[None, :]
    return np.repeat(labels[:, :, None], 3, axis=2).astype(np.int32)


class Sample(NamedTuple):
    """One sample (or a batch, with a leading axis on every field).

    image: float32 `(canvas, canvas, 3)` in [-1, 1]; label: the foreground class; background_label: the
    photo source / class (-1 for RB); box: int32 `(top, left, bottom, right)`, exclusive ends.
    """

    image: jax.Array
    label: jax.Array
    background_label: jax.Array
    box: jax.Array


def _colours(key):
    """Ink and paper colours: one dark (channels in [0, 0.45]), one light ([0.55, 1]), order random."""
    k1, k2, k3 = jax.random.split(key, 3)
    dark = jax.random.uniform(k1, (3,), minval=0.0, maxval=0.45)
    light = jax.random.uniform(k2, (3,), minval=0.55, maxval=1.0)
    swap = jax.random.bernoulli(k3)
    return jnp.where(swap, light, dark), jnp.where(swap, dark, light)


def _photo_crop(key, bank, canvas, crop_min):
    """A random square crop of a random bank photo, resized to the canvas; values in [0, 1]."""
    k_src, k_side, k_off, k_flip = jax.random.split(key, 4)
    side = bank.shape[1]
    src = jax.random.randint(k_src, (), 0, bank.shape[0])
    img = jnp.take(bank, src, axis=0).astype(jnp.float32) / 255.0
    crop = jax.random.uniform(k_side, (), minval=crop_min * side, maxval=float(side))
    offset = jax.random.uniform(k_off, (2,)) * (side - crop)
    scale = canvas / crop
    out = jax.image.scale_and_translate(
        img, (canvas, canvas, 3), (0, 1), jnp.stack([scale, scale]), -offset * scale,
        method="linear", antialias=True,
    )
    out = jnp.where(jax.random.bernoulli(k_flip), out[:, ::-1], out)
    return jnp.clip(out, 0.0, 1.0), src


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class VisionData:
    """A generator: foreground and background banks on device (pytree leaves) and the static `spec`.

    Build with `make_data` or `dataset`. Being a pytree, it is passed *into* jitted functions as an
    argument (not baked in as a constant), and `sample` / `batch` are pure.
    """

    fg_images: jax.Array  # uint8 (N, h, w, C), C in {1, 3}
    fg_labels: jax.Array  # int32 (N,)
    bg_images: jax.Array  # uint8 (S, side, side, 3)
    bg_labels: jax.Array  # int32 (S,)
    spec: VisionSpec = dataclasses.field(metadata=dict(static=True))

    @property
    def size(self) -> int | None:
        """Number of distinct samples (None: unbounded, samples are generated)."""
        return None

    def sample(self, key: jax.Array, index: Any, condition: Any) -> Sample:
        """Sample `index` of the dataset seeded by `key` under `condition` (a name or a 0-3 code)."""
        spec = self.spec
        code = condition_code(condition)
        k = jax.random.fold_in(key, index)
        k_fg, k_col, k_bg, k_pos = jax.random.split(k, 4)
        # Foreground.
        n = self.fg_images.shape[0]
        j = jax.random.randint(k_fg, (), 0, n)
        raw = jnp.take(self.fg_images, j, axis=0).astype(jnp.float32) / 255.0
        channels = raw.shape[-1]
        fg = jax.image.resize(raw, (spec.foreground, spec.foreground, channels), "linear")
        if channels == 1:
            ink, paper = _colours(k_col)
            fg = fg * ink[None, None, :] + (1.0 - fg) * paper[None, None, :]
        fg = jnp.clip(fg, 0.0, 1.0)
        label = jnp.take(self.fg_labels, j).astype(jnp.int32)

        # Background: RB noise or an SB photo crop. jnp.where on a static code folds at trace time.
        def noise(kb):
            bits = jax.random.randint(kb, (spec.canvas, spec.canvas, 3), 0, 256)
            return bits.astype(jnp.float32) / 255.0, jnp.asarray(-1, jnp.int32)

        def photo(kb):
            img, src = _photo_crop(kb, self.bg_images, spec.canvas, spec.crop_min)
            return img, jnp.take(self.bg_labels, src).astype(jnp.int32)

        if isinstance(code, int):
            bg, bg_label = (photo if code >= 2 else noise)(k_bg)
            random_pos = code % 2 == 1
        else:
            bg, bg_label = jax.lax.cond(code >= 2, photo, noise, k_bg)
            random_pos = code % 2 == 1
        # Position (row, col) of the top-left corner.
        rp = jax.random.randint(k_pos, (2,), 0, spec.canvas - spec.foreground) \
            if spec.canvas > spec.foreground else jnp.zeros((2,), jnp.int32)
        fp = jnp.full((2,), spec.fixed_position, jnp.int32)
        pos = jnp.where(random_pos, rp, fp).astype(jnp.int32)
        canvas = jax.lax.dynamic_update_slice(bg, fg, (pos[0], pos[1], jnp.zeros((), jnp.int32)))
        image = (canvas - 0.5) / 0.5
        box = jnp.concatenate([pos, pos + spec.foreground]).astype(jnp.int32)
        return Sample(image, label, bg_label, box)

    def batch(self, key: jax.Array, indices: jax.Array, condition: Any) -> Sample:
        """`sample` vmapped over `indices` (an int array): fields with a leading axis `len(indices)`."""
        code = condition_code(condition)
        return jax.vmap(lambda i: self.sample(key, i, code))(jnp.asarray(indices))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ComposedData:
    """Ready-made canvases (the published ChaosMining files) behind the same `sample` / `batch` interface.

    `sample(key, index, condition)` returns canvas `index % N`: the key and the condition are ignored (the
    condition is fixed by the folder the files came from).
    """

    images: jax.Array  # uint8 (N, H, W, 3)
    labels: jax.Array
    background_labels: jax.Array
    boxes: jax.Array
    spec: VisionSpec = dataclasses.field(metadata=dict(static=True))

    @property
    def size(self) -> int:
        return int(self.images.shape[0])

    def sample(self, key: jax.Array, index: Any, condition: Any) -> Sample:
        del key
        condition_code(condition)
        i = jnp.asarray(index) % self.images.shape[0]
        image = (jnp.take(self.images, i, axis=0).astype(jnp.float32) / 255.0 - 0.5) / 0.5
        return Sample(image, jnp.take(self.labels, i), jnp.take(self.background_labels, i), jnp.take(self.boxes, i, axis=0))

    def batch(self, key: jax.Array, indices: jax.Array, condition: Any) -> Sample:
        code = condition_code(condition)
        return jax.vmap(lambda i: self.sample(key, i, code))(jnp.asarray(indices))


def make_data(spec: VisionSpec | str, foregrounds, backgrounds) -> VisionData:
    """A `VisionData` from a `sources.Foregrounds` and a `sources.Backgrounds` (validated, put on device)."""
    spec = preset(spec)
    fg, fg_labels = np.asarray(foregrounds.images), np.asarray(foregrounds.labels)
    bg, bg_labels = np.asarray(backgrounds.images), np.asarray(backgrounds.labels)
    if fg.ndim != 4 or fg.shape[-1] not in (1, 3) or fg.shape[0] < 1:
        raise ValueError(f"foregrounds: expected images (N, h, w, 1 or 3), got shape {fg.shape}")
    if fg_labels.shape != (fg.shape[0],):
        raise ValueError(f"foregrounds: {fg.shape[0]} images but labels of shape {fg_labels.shape}")
    if bg.ndim != 4 or bg.shape[-1] != 3 or bg.shape[1] != bg.shape[2] or bg.shape[0] < 1:
        raise ValueError(f"backgrounds: expected square RGB images (S, side, side, 3), got shape {bg.shape}")
    if bg_labels.shape != (bg.shape[0],):
        raise ValueError(f"backgrounds: {bg.shape[0]} images but labels of shape {bg_labels.shape}")
    return VisionData(
        jnp.asarray(fg.astype(np.uint8)), jnp.asarray(fg_labels.astype(np.int32)),
        jnp.asarray(bg.astype(np.uint8)), jnp.asarray(bg_labels.astype(np.int32)), spec,
    )


def make_composed(composed, spec: VisionSpec | None = None) -> ComposedData:
    """A `ComposedData` from a `sources.Composed` (spec inferred from the canvas: foreground = canvas / 7)."""
    images = np.asarray(composed.images)
    if images.ndim != 4 or images.shape[1] != images.shape[2] or images.shape[-1] != 3:
        raise ValueError(f"composed: expected square RGB canvases (N, H, H, 3), got shape {images.shape}")
    if spec is None:
        fg = int(composed.boxes[0, 2] - composed.boxes[0, 0])
        spec = VisionSpec(canvas=images.shape[1], foreground=fg)
    if spec.canvas != images.shape[1]:
        raise ValueError(f"composed: canvases are {images.shape[1]} px, spec says {spec.canvas}")
    return ComposedData(jnp.asarray(images), jnp.asarray(composed.labels, jnp.int32),
                        jnp.asarray(composed.background_labels, jnp.int32), jnp.asarray(composed.boxes, jnp.int32),
                        spec)


def parse_source(text: str, flag: str, kinds: tuple[str, ...]) -> tuple[str, str | None]:
    """'digits' -> ('digits', None); 'cifar10:/data/c10' -> ('cifar10', '/data/c10'); checks the kind."""
    kind, sep, path = str(text).partition(":")
    if kind not in kinds:
        raise ValueError(f"{flag}: unknown source {kind!r}; expected one of {', '.join(kinds)}")
    embedded = kind in ("digits", "photos")
    if embedded and sep:
        raise ValueError(f"{flag}: {kind!r} is embedded and takes no path")
    if not embedded and not path:
        raise ValueError(f"{flag}: {kind!r} needs a local path, e.g. {kind}:/data/{kind}")
    return kind, (path or None)


FOREGROUND_SOURCES = ("digits", "cifar10", "chaosmining")
BACKGROUND_SOURCES = ("photos", "flowers102")


def dataset(spec: VisionSpec | str, split: str = "train", *, source: str = "digits",
            background: str = "photos", condition: str | None = None, limit: int | None = None):
    """The generator of one split from source strings (the CLI's `--source` and `--background`).

    `source`: `digits` (embedded), `cifar10:PATH` or `chaosmining:PATH` (ready-made canvases: PATH is the
    folder holding one folder per condition, `PATH/<condition>/<split>/metadata.csv`; `condition` picks it).
    `background`: `photos` (embedded) or `flowers102:PATH`. `limit` caps rows read by the loaders.
    """
    from chaosjax.data import sources

    spec = preset(spec)
    kind, path = parse_source(source, "source", FOREGROUND_SOURCES)
    if kind == "chaosmining":
        from pathlib import Path

        folder = Path(path)
        if condition is not None and (folder / condition).is_dir():
            folder = folder / condition
        return make_composed(sources.load_chaosmining(folder, split, foreground=spec.foreground, limit=limit), spec)
    bkind, bpath = parse_source(background, "background", BACKGROUND_SOURCES)
    fg = sources.digits(split) if kind == "digits" else sources.load_cifar10(path, split, limit=limit)
    if bkind == "photos":
        bg = sources.photos(split, side=spec.photo_side)
    else:
        bg = sources.load_flowers102(bpath, split, side=spec.photo_side, limit=limit)
    return make_data(spec, fg, bg)
