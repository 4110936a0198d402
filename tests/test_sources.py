"""Loaders of the real sources, each on a small fixture written here in that source's own format."""

import csv
import pickle

import numpy as np
import pytest
from PIL import Image

from chaosjax.data import sources
from chaosjax.data import vision as V


def test_digits_split_is_fixed_and_disjoint():
    tr, va = sources.digits("train"), sources.digits("val")
    assert tr.images.shape == (1438, 8, 8, 1) and va.images.shape == (359, 8, 8, 1)
    assert tr.images.dtype == np.uint8 and tr.images.max() == 255
    np.testing.assert_array_equal(tr.images, sources.digits("train").images)
    assert set(tr.labels) == set(range(10)) == set(va.labels)


def test_photos_bank():
    bank = sources.photos("val", side=64)
    assert bank.images.shape == (len(sources.PHOTO_SPLIT["val"]), 64, 64, 3) and bank.images.dtype == np.uint8
    assert bank.images.std() > 20  # real photographs, not flat


def _write_cifar(root, n_per_batch=4):
    rng = np.random.default_rng(0)
    root.mkdir()
    truth = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, 10, n_per_batch))
        with open(root / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, fh)
        truth[name] = (data, labels)
    return truth


def test_cifar10_loader(tmp_path):
    truth = _write_cifar(tmp_path / "cifar-10-batches-py")
    tr = sources.load_cifar10(tmp_path, "train")  # the parent folder works too
    va = sources.load_cifar10(tmp_path / "cifar-10-batches-py", "val")
    assert tr.images.shape == (20, 32, 32, 3) and va.images.shape == (4, 32, 32, 3)
    data, labels = truth["test_batch"]
    # CIFAR stores three 32 x 32 planes R, G, B per row.
    np.testing.assert_array_equal(va.images[1, :, :, 0].ravel(), data[1, :1024])
    np.testing.assert_array_equal(va.images[1, :, :, 2].ravel(), data[1, 2048:])
    np.testing.assert_array_equal(va.labels, labels)
    assert sources.load_cifar10(tmp_path, "train", limit=6).images.shape[0] == 6
    # Plugged into the generator: RGB foregrounds, resized to the preset.
    d = V.make_data("tiny", tr, sources.photos("train", side=128))
    import jax

    s = d.sample(jax.random.key(0), 0, "RBFP")
    assert s.image.shape == (56, 56, 3)


def test_cifar10_bad_paths(tmp_path):
    with pytest.raises(ValueError, match="path"):
        sources.load_cifar10(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="missing data_batch_1"):
        sources.load_cifar10(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (bad / name).write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a CIFAR-10"):
        sources.load_cifar10(bad, "val")


def test_flowers102_loader(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(1)
    (tmp_path / "jpg").mkdir()
    for i in range(1, 9):
        Image.fromarray(rng.integers(0, 256, (30 + i, 40, 3), dtype=np.uint8)).save(tmp_path / "jpg" / f"image_{i:05d}.jpg")
    savemat(tmp_path / "imagelabels.mat", {"labels": np.array([[5, 5, 7, 7, 9, 9, 1, 1]])})
    savemat(tmp_path / "setid.mat", {"trnid": np.array([[1, 3, 5]]), "valid": np.array([[2, 4, 6, 8]]),
                                     "tstid": np.array([[7]])})
    tr = sources.load_flowers102(tmp_path, "train", side=24)
    va = sources.load_flowers102(tmp_path, "val", side=24)
    assert tr.images.shape == (3, 24, 24, 3) and va.images.shape == (4, 24, 24, 3)
    np.testing.assert_array_equal(tr.labels, [4, 6, 8])
    np.testing.assert_array_equal(va.labels, [4, 6, 8, 0])
    with pytest.raises(ValueError, match="path"):
        sources.load_flowers102(tmp_path / "jpg")  # a folder of the wrong shape: no jpg/ inside
    with pytest.raises(ValueError, match="path"):
        sources.load_flowers102(tmp_path / "imagelabels.mat")


def test_chaosmining_loader(tmp_path):
    rng = np.random.default_rng(2)
    split = tmp_path / "RBRP" / "val"
    split.mkdir(parents=True)
    rows = []
    for i in range(3):
        img = rng.integers(0, 256, (56, 56, 3), dtype=np.uint8)
        Image.fromarray(img).save(split / f"{i}.png")
        rows.append({"file_name": f"{i}.png", "foreground_label": i, "background_label": 10 + i,
                     "position_x": 3 * i, "position_y": 40 - i})
    with open(split / "metadata.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = sources.load_chaosmining(tmp_path / "RBRP", "val")
    assert out.images.shape == (3, 56, 56, 3)
    np.testing.assert_array_equal(out.boxes[2], [6, 38, 14, 46])  # position_x is the row; fg = 56 / 7
    np.testing.assert_array_equal(out.background_labels, [10, 11, 12])
    np.testing.assert_array_equal(np.asarray(Image.open(split / "1.png")), out.images[1])
    d = V.dataset("tiny", "val", source=f"chaosmining:{tmp_path}", condition="RBRP")
    import jax
    import jax.numpy as jnp

    s = d.batch(jax.random.key(0), jnp.arange(4), "RBRP")
    np.testing.assert_array_equal(np.asarray(s.box)[3], out.boxes[0])  # index wraps around the files
    with pytest.raises(ValueError, match="metadata.csv"):
        sources.load_chaosmining(tmp_path, "val")
    (split / "metadata.csv").write_text("name,label\nx.png,1\n")
    with pytest.raises(ValueError, match="lacks columns"):
        sources.load_chaosmining(tmp_path / "RBRP", "val")
