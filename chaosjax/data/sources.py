"""Image sources of the vision track: an embedded default and loaders for the study's real data.

Everything here is host-side numpy, run once per process; the per-sample work (resize, colour, crop,
paste) happens on device in `chaosjax.data.vision`. All arrays are `uint8` so banks stay small on device.

Embedded (no download; both ship inside installed wheels):

* `digits(split)`: the 1,797 handwritten digits of scikit-learn (8 x 8, 10 classes, UCI optdigits,
  CC BY 4.0), as a `Foregrounds` bank of shape `(N, 8, 8, 1)` (one channel: colourised per sample on
  device). Fixed split by index: a permutation with seed 0, the first 80% (1,438) train, the rest
  (359) validation.
* `photos(split, side)`: 19 photographs bundled with scikit-image (CC0 / public domain) and
  scikit-learn (`china.jpg`, `flower.jpg`, CC BY 2.0), centre-cropped to a square and resized once to
  `side x side`, as a `Backgrounds` bank `(S, side, side, 3)`. Split by source image (`PHOTO_SPLIT`):
  13 train, 6 validation, colour and grey photos in both. `background_label` is the source index.

Loaders (a local path each; bad or missing input raises `ValueError` naming `path` before any decoding):

* `load_cifar10(path, split)`: the python pickle batches (`data_batch_1..5`, `test_batch`); train is
  the five data batches (50,000), val the test batch (10,000), as in the study. `(N, 32, 32, 3)`.
* `load_flowers102(path, split, side)`: the Flowers-102 folder (`jpg/image_XXXXX.jpg`, `imagelabels.mat`,
  `setid.mat`); the study used the `trnid` split for train and `valid` for validation. Images are
  resized (aspect ratio not kept, as torchvision's `Resize((224, 224))` in the study) to `side`.
* `load_chaosmining(path, split)`: the published ChaosMining vision files, already composed canvases
  (`<path>/<split>/metadata.csv` + PNGs) with columns `file_name, foreground_label[, background_label],
  position_x, position_y` (`position_x` is the row). Returns `Composed` canvases with their boxes.

Cost: digits ~50 ms; photos ~1 s for 19 decodes + resizes (cached per `side`); loaders are I/O bound.
"""

from __future__ import annotations

import csv
import functools
import os
import pickle
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = [
    "DIGIT_CLASSES",
    "CIFAR10_CLASSES",
    "PHOTO_SPLIT",
    "SPLITS",
    "Backgrounds",
    "Composed",
    "Foregrounds",
    "digits",
    "load_chaosmining",
    "load_cifar10",
    "load_flowers102",
    "photos",
]

SPLITS = ("train", "val")
DIGIT_CLASSES = tuple(str(d) for d in range(10))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

#: Photo sources by split. (scikit-image's `motorcycle` is left out for its licence, `horse`/`logo`/`color`
#: /`chessboard`/`phantom` as synthetic, `microaneurysms` as too small.)
PHOTO_SPLIT = {
    "train": ("astronaut", "brick", "cell", "chelsea", "clock_motion", "grass", "hubble_deep_field", "ihc",
              "moon", "page", "retina", "flower", "text"),
    "val": ("camera", "coffee", "coins", "gravel", "rocket", "china"),
}
_SKIMAGE_FILES = {
    "astronaut": "astronaut.png", "brick": "brick.png", "camera": "camera.png", "cell": "cell.png",
    "chelsea": "chelsea.png", "clock_motion": "clock_motion.png", "coffee": "coffee.png", "coins": "coins.png",
    "grass": "grass.png", "gravel": "gravel.png", "hubble_deep_field": "hubble_deep_field.jpg", "ihc": "ihc.png",
    "moon": "moon.png", "page": "page.png", "retina": "retina.jpg", "rocket": "rocket.jpg", "text": "text.png",
}
_SKLEARN_FILES = {"china": "china.jpg", "flower": "flower.jpg"}


class Foregrounds(NamedTuple):
    """A foreground bank: `images` uint8 `(N, h, w, C)` with `C` 1 (grey, colourised on device) or 3 (RGB),
    `labels` int32 `(N,)`, `classes` the class names."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]


class Backgrounds(NamedTuple):
    """A background bank: `images` uint8 `(S, side, side, 3)`, `labels` int32 `(S,)` (source / class id)."""

    images: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]


class Composed(NamedTuple):
    """Ready-made canvases: `images` uint8 `(N, H, W, 3)`, `labels`, `background_labels` (-1 when absent),
    `boxes` int32 `(N, 4)` as `(top, left, bottom, right)` with exclusive ends."""

    images: np.ndarray
    labels: np.ndarray
    background_labels: np.ndarray
    boxes: np.ndarray


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    return split


def _check_dir(path, what: str) -> Path:
    p = Path(os.fspath(path)).expanduser()
    if not p.exists():
        raise ValueError(f"path: {what} directory {str(p)!r} does not exist")
    if not p.is_dir():
        raise ValueError(f"path: {what} expects a directory, got the file {str(p)!r}")
    return p


def _check_limit(limit) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ValueError(f"limit: expected an integer >= 1 or None, got {limit!r}")
    return int(limit)


# ---------------------------------------------------------------------------------------------- embedded


@functools.lru_cache(maxsize=None)
def _digits_all() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    # Values are ink counts 0..16; scale to the full uint8 range (16 -> 255).
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return images, d.target.astype(np.int32)


def digits(split: str = "train", *, val_fraction: float = 0.2) -> Foregrounds:
    """The scikit-learn digits, `(N, 8, 8, 1)` uint8, fixed split by index (permutation with seed 0)."""
    _check_split(split)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction: expected a fraction in (0, 1), got {val_fraction!r}")
    images, labels = _digits_all()
    order = np.random.default_rng(0).permutation(len(labels))
    n_train = len(labels) - int(round(len(labels) * val_fraction))
    idx = np.sort(order[:n_train] if split == "train" else order[n_train:])
    return Foregrounds(images[idx], labels[idx], DIGIT_CLASSES)


def _square_resize(img: np.ndarray, side: int) -> np.ndarray:
    """Centre-crop to a square and resize to `side` (bilinear, antialiased); greys become RGB."""
    from PIL import Image

    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    img = img[..., :3]
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    pil = Image.fromarray(np.ascontiguousarray(img[top:top + s, left:left + s]))
    return np.asarray(pil.resize((side, side), Image.BILINEAR), dtype=np.uint8)


@functools.lru_cache(maxsize=None)
def _photo(name: str, side: int) -> np.ndarray:
    from PIL import Image

    if name in _SKLEARN_FILES:
        import sklearn.datasets

        folder = Path(sklearn.datasets.__file__).parent / "images"
        path = folder / _SKLEARN_FILES[name]
    else:
        try:
            import skimage.data
        except ImportError:  # pragma: no cover - scikit-image is a dependency
            raise ValueError("background: the 'photos' bank needs scikit-image (pip install scikit-image)") from None
        path = Path(skimage.data.__file__).parent / _SKIMAGE_FILES[name]
    with Image.open(path) as im:
        arr = np.asarray(im)
    return _square_resize(arr, side)


def photos(split: str = "train", *, side: int = 256) -> Backgrounds:
    """The bundled photographs of `split`, each centre-cropped and resized to `(side, side, 3)` uint8.

    Labels are indices into `PHOTO_SPLIT["train"] + PHOTO_SPLIT["val"]`, so they are unique across splits.
    """
    _check_split(split)
    if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or side < 8:
        raise ValueError(f"side: expected an integer >= 8, got {side!r}")
    names = PHOTO_SPLIT[split]
    offset = 0 if split == "train" else len(PHOTO_SPLIT["train"])
    images = np.stack([_photo(n, int(side)) for n in names])
    return Backgrounds(images, np.arange(offset, offset + len(names), dtype=np.int32), names)


# ------------------------------------------------------------------------------------------------ loaders


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh, encoding="bytes")
    except Exception as err:  # noqa: BLE001 - any decoding failure means a wrong format
        raise ValueError(f"path: {str(path)!r} is not a CIFAR-10 python pickle batch ({err})") from None


def load_cifar10(path, split: str = "train", *, limit: int | None = None) -> Foregrounds:
    """CIFAR-10 from its python pickle batches (`cifar-10-batches-py`): `(N, 32, 32, 3)` uint8.

    `path` is the folder holding `data_batch_1..5` and `test_batch` (or its parent). Train: the five
    data batches; val: the test batch. `limit` keeps the first rows only.
    """
    _check_split(split)
    limit = _check_limit(limit)
    root = _check_dir(path, "CIFAR-10")
    if not (root / "test_batch").exists() and (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    files = [root / f"data_batch_{i}" for i in range(1, 6)] if split == "train" else [root / "test_batch"]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ValueError(f"path: {str(root)!r} is not a CIFAR-10 python folder: missing {', '.join(missing)}")
    images, labels = [], []
    for f in files:
        batch = _unpickle(f)
        if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
            raise ValueError(f"path: {str(f)!r} is not a CIFAR-10 batch (no b'data'/b'labels' entries)")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3072:
            raise ValueError(f"path: {str(f)!r}: expected data of shape (n, 3072), got {data.shape}")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # CHW planes -> HWC
        labels.append(np.asarray(batch[b"labels"], dtype=np.int32))
        if limit is not None and sum(len(l) for l in labels) >= limit:
            break
    images_np, labels_np = np.concatenate(images)[:limit], np.concatenate(labels)[:limit]
    if labels_np.size and (labels_np.min() < 0 or labels_np.max() > 9):
        raise ValueError(f"path: CIFAR-10 labels must lie in 0-9, got {labels_np.min()}-{labels_np.max()}")
    return Foregrounds(images_np, labels_np, CIFAR10_CLASSES)


def load_flowers102(path, split: str = "train", *, side: int = 256, limit: int | None = None) -> Backgrounds:
    """Flowers-102 backgrounds: `(S, side, side, 3)` uint8, labels the flower class 0-101.

    `path` holds `jpg/image_XXXXX.jpg` (1-based ids), `imagelabels.mat` (`labels`, 1-based) and `setid.mat`
    (`trnid`, `valid`, `tstid`); torchvision's `flowers-102/` subfolder is found too. Without the .mat files
    every image is used with label 0, split by id (every fifth id to val). Images are resized to
    `side x side` without keeping the aspect ratio, as the study did.
    """
    from PIL import Image

    _check_split(split)
    limit = _check_limit(limit)
    root = _check_dir(path, "Flowers-102")
    if not (root / "jpg").is_dir() and (root / "flowers-102" / "jpg").is_dir():
        root = root / "flowers-102"
    jpg = root / "jpg"
    if not jpg.is_dir():
        raise ValueError(f"path: {str(root)!r} is not a Flowers-102 folder: no 'jpg/' subfolder")
    files = sorted(jpg.glob("image_*.jpg"))
    if not files:
        raise ValueError(f"path: {str(jpg)!r} holds no image_XXXXX.jpg files")
    ids_present = {int(f.stem.split("_")[1]): f for f in files}
    if (root / "setid.mat").is_file() and (root / "imagelabels.mat").is_file():
        from scipy.io import loadmat

        try:
            setid = loadmat(root / "setid.mat")
            all_labels = np.asarray(loadmat(root / "imagelabels.mat")["labels"]).ravel().astype(np.int32) - 1
            ids = np.asarray(setid["trnid" if split == "train" else "valid"]).ravel().astype(int)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"path: Flowers-102 .mat files in {str(root)!r} are unreadable ({err})") from None
        labels = np.array([all_labels[i - 1] for i in ids], np.int32)
    else:
        ids = np.array(sorted(ids_present))
        keep = (ids % 5 == 0) if split == "val" else (ids % 5 != 0)
        ids = ids[keep]
        labels = np.zeros(len(ids), np.int32)
    missing = [i for i in ids if i not in ids_present]
    if missing:
        raise ValueError(f"path: {len(missing)} Flowers-102 images of split {split!r} are missing, e.g. id {missing[0]}")
    if limit is not None:
        ids, labels = ids[:limit], labels[:limit]
    out = np.empty((len(ids), side, side, 3), np.uint8)
    for n, i in enumerate(ids):
        try:
            with Image.open(ids_present[int(i)]) as im:
                out[n] = np.asarray(im.convert("RGB").resize((side, side), Image.BILINEAR))
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"path: {str(ids_present[int(i)])!r} is not a readable image ({err})") from None
    return Backgrounds(out, labels, tuple(f"image_{int(i):05d}" for i in ids))


def load_chaosmining(path, split: str = "train", *, foreground: int | None = None,
                     limit: int | None = None) -> Composed:
    """The published ChaosMining vision canvases of one condition folder.

    `path` is a condition folder holding `<split>/metadata.csv` and the PNGs it names (or the split
    folder itself). `foreground` is the foreground side (default: canvas side / 7, i.e. 32 at 224).
    Boxes are `(row, col, row + fg, col + fg)`; the study's `position_x` is the row.
    """
    from PIL import Image

    _check_split(split)
    limit = _check_limit(limit)
    root = _check_dir(path, "ChaosMining")
    folder = root / split if (root / split / "metadata.csv").is_file() else root
    meta = folder / "metadata.csv"
    if not meta.is_file():
        raise ValueError(f"path: {str(root)!r} is not a ChaosMining vision folder: no {split}/metadata.csv")
    with open(meta, newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"file_name", "foreground_label", "position_x", "position_y"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise ValueError(f"path: {str(meta)!r} lacks columns {sorted(need - set(reader.fieldnames or ()))}")
        rows = list(reader)[:limit]
    if not rows:
        raise ValueError(f"path: {str(meta)!r} has no rows")
    images = []
    for r in rows:
        f = folder / r["file_name"]
        if not f.is_file():
            raise ValueError(f"path: image {r['file_name']!r} named in {str(meta)!r} is missing")
        with Image.open(f) as im:
            images.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
    shapes = {a.shape for a in images}
    if len(shapes) != 1:
        raise ValueError(f"path: ChaosMining images differ in size: {sorted(shapes)}")
    stack = np.stack(images)
    fg = stack.shape[1] // 7 if foreground is None else int(foreground)
    pos = np.array([[int(r["position_x"]), int(r["position_y"])] for r in rows], np.int32)
    boxes = np.concatenate([pos, pos + fg], axis=1).astype(np.int32)
    bg = np.array([int(r["background_label"]) if r.get("background_label") not in (None, "") else -1 for r in rows],
                  np.int32)
    labels = np.array([int(r["foreground_label"]) for r in rows], np.int32)
    return Composed(stack, labels, bg, boxes)
