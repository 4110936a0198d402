"""The measured effect of the vision and audio `paper` switches (docs/protocol.md), side by side in one run.

vision: trains the tiny preset's small CNN on one condition, attributes the validation canvases with the study's
four methods, and scores the same maps three ways: the paper IoU as chaosjax now computes it (scipy's filter and
numpy's threshold, the study's own operations), the paper IoU as chaosjax computed it before (float32 shifted adds
on device, an XLA channel mean, `lax.top_k`: mirror ties broken), and the corrected IoU. Prints the mean of each
and the share of maps whose kept box differs between the two paper computations.

audio: trains one model per protocol on one condition (the TCN, or the Transformer, whose `paper` layout attends
across the batch) and scores the study's four methods under both protocols, then the paper protocol's parts one
at a time on the `paper` model: inference- against training-mode attribution, Captum's one-batch integrated
gradients against one model call per path point, DeepLIFT's own score against the study's (IG's numerator).

    python benchmarks/protocol_effects.py vision                 # ~10 min on 2 CPU cores
    python benchmarks/protocol_effects.py audio --model tcn      # ~10 min
    python benchmarks/protocol_effects.py audio --model transformer
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from chaosjax import attribution as A
from chaosjax import classify, metrics
from chaosjax.data import vision as V
from chaosjax.data.speech import WORDS
from chaosjax.models import audio as models
from chaosjax.tracks import audio as audio_track
from chaosjax.tracks import vision as vision_track

STUDY_METHODS = ("saliency", "integrated_gradients", "deeplift", "feature_ablation")


def _extent(mask):
    rows, cols = mask.any(axis=2), mask.any(axis=1)
    h, w = mask.shape[1], mask.shape[2]
    return np.stack([rows.argmax(1), h - 1 - rows[:, ::-1].argmax(1), cols.argmax(1), w - 1 - cols[:, ::-1].argmax(1)], 1)


def _device_float32_extent(maps, sigma, k):
    """The paper IoU's kept pixels as chaosjax computed them before: float32 shifted adds, then the channel mean
    and the (k+1)-th largest value on device."""
    s = jnp.mean(jnp.abs(metrics.gaussian_smooth(jnp.asarray(maps), sigma)), axis=-1)
    t = jax.lax.top_k(s.reshape(s.shape[0], -1), k + 1)[0][:, k]
    return _extent(np.asarray(s >= t[:, None, None]))


def _scipy_extent(maps, sigma, k):
    """The study's kept pixels: scipy's filter, numpy's channel mean and partition (what chaosjax's paper IoU runs)."""
    from scipy.ndimage import gaussian_filter

    s = np.abs(gaussian_filter(maps, sigma=sigma, axes=(1, 2))).mean(axis=-1)
    t = -np.partition(-s.reshape(s.shape[0], -1), k, axis=-1)[:, k]
    return _extent((s - t[:, None, None]) >= 0)


def _iou(extent, boxes, fg):
    r0, r1, c0, c1 = extent.T.astype(np.float64)
    ih = np.maximum(0, np.minimum(r1, boxes[:, 0] + fg) - np.maximum(r0, boxes[:, 0]))
    iw = np.maximum(0, np.minimum(c1, boxes[:, 1] + fg) - np.maximum(c0, boxes[:, 1]))
    inter = ih * iw
    return inter / ((r1 - r0) * (c1 - c0) + fg * fg - inter + 1e-13)


def vision(args) -> None:
    config = vision_track.VisionConfig(conditions=(args.condition,), epochs=args.epochs, val_size=args.val_size,
                                       methods=STUDY_METHODS)
    spec = config.spec
    t0 = time.perf_counter()
    trained = vision_track.train_cell(config, "cnn", args.condition)
    print(f"trained in {time.perf_counter() - t0:.0f} s")
    model = config.model("cnn")
    variables = jax.tree.map(lambda a: a[0], trained.variables)
    _, val = vision_track.datasets(config, args.condition)
    vs = val.batch(jax.random.key(11), jnp.arange(config.val_size), jnp.int32(V.CONDITIONS.index(args.condition)))
    acc = classify.evaluate(model, variables, vs.image, vs.label)
    sigma = metrics.DEFAULT_SIGMA * spec.canvas / 224
    k = spec.foreground ** 2
    boxes = np.asarray(vs.box)
    print(f"{args.condition}, tiny preset, small CNN, {args.epochs} epochs: top-1 {float(acc.top1):.3f}; "
          f"{config.val_size} validation canvases, sigma {sigma}")
    print("| method | paper IoU (scipy, now) | paper IoU (float32 on device, before) | maps whose box moved | "
          "corrected IoU |")
    print("|---|---|---|---|---|")
    apply = functools.partial(model.apply, variables)
    for method in STUDY_METHODS:
        kwargs = {"steps": 20} if method == "integrated_gradients" else {}
        if method == "feature_ablation":
            kwargs["groups"] = V.grid_groups(spec)

        @jax.jit
        def attribute(x):
            def one(xi):
                xb = xi[None]
                return A.METHODS[method](A.target(apply, jnp.argmax(apply(xb), axis=1)), xb, **kwargs)[0]
            return jax.lax.map(one, x, batch_size=32)

        maps = np.asarray(attribute(vs.image))
        now = np.asarray(metrics.localization_iou_per_sample(maps, boxes, foreground=spec.foreground, sigma=sigma))
        before_extent = _device_float32_extent(maps, sigma, k)
        before = _iou(before_extent, boxes, spec.foreground)
        moved = np.mean(np.any(before_extent != _scipy_extent(maps, sigma, k), axis=1))
        corrected = float(metrics.localization_iou(maps, boxes, foreground=spec.foreground, sigma=sigma,
                                                   protocol="corrected"))
        print(f"| {method} | {now.mean():.4f} | {before.mean():.4f} | {moved:.3f} | {corrected:.4f} |")


def audio(args) -> None:
    base = audio_track.AudioConfig(conditions=(args.condition,), models=(args.model,), methods=STUDY_METHODS,
                                   steps=args.steps, n_attr=args.n_attr, source=args.source)
    rows = {}
    for protocol in ("corrected", "paper"):
        config = dataclasses.replace(base, protocol=protocol)
        cell = audio_track.cell_data(config, args.condition)
        t0 = time.perf_counter()
        trained = audio_track.train_cell(config, args.model, args.condition, data=cell)
        frame = audio_track.attribute_cell(config, args.model, args.condition, trained, data=cell)
        print(f"{protocol}: trained and attributed in {time.perf_counter() - t0:.0f} s")
        rows[protocol] = {r["method"]: r for r in frame}
        if protocol == "paper":
            paper_parts(config, trained, cell)
    print(f"\n{args.condition}, {args.model}, {args.steps} steps, {args.n_attr} clips; channel mass (chance 0.1):")
    print("| method | corrected (accuracy %.3f) | paper (accuracy %.3f) |" % (
        rows["corrected"]["saliency"]["accuracy"], rows["paper"]["saliency"]["accuracy"]))
    print("|---|---|---|")
    for method in STUDY_METHODS:
        print(f"| {method} | {rows['corrected'][method]['channel_mass']:.4f} | "
              f"{rows['paper'][method]['channel_mass']:.4f} |")


def paper_parts(config, trained, cell) -> None:
    """Each part of the paper protocol alone, on the paper protocol's trained model (seed 0)."""
    name = config.models[0]
    options = {"attend": "batch"} if name == "transformer" else {}  # the paper layout
    model = models.MODELS[name](config.spec().channels, len(WORDS), **options)
    v = jax.tree.map(lambda a: a[0], trained.variables)
    clips, channel, b = cell.clips, cell.channel, config.batch_size
    n = clips.shape[0] // b * b
    batches = clips[:n].reshape((-1, b) + clips.shape[1:])

    def per_batch(fn):
        return np.concatenate([np.asarray(fn(xb)) for xb in batches])[None]

    def saliency(train):
        def fn(xb):
            apply = classify.logits_fn(model, v, train=train)
            return A.saliency(A.target(apply, jnp.argmax(apply(xb), axis=1)), xb)
        return per_batch(jax.jit(fn))

    def ig(pooled):
        def fn(xb):
            apply = classify.logits_fn(model, v, train=True)
            pred = jnp.argmax(apply(xb), axis=1)
            if pooled:
                return audio_track.pooled_integrated_gradients(apply, xb, pred, steps=config.ig_steps)
            return A.integrated_gradients(A.target(apply, pred), xb, steps=config.ig_steps)
        return per_batch(jax.jit(fn))

    def deeplift():
        def fn(xb):
            apply = classify.logits_fn(model, v, train=True)
            return A.deeplift(A.target(apply, jnp.argmax(apply(xb), axis=1)), xb)
        return per_batch(jax.jit(fn))

    ch = channel[:n]
    mass = functools.partial(audio_track.paper_channel_mass, channels=ch, batch_size=b)
    print("paper protocol's parts, one at a time (channel mass):")
    print(f"  saliency: inference mode {mass(saliency(False))[0]:.4f}, training mode {mass(saliency(True))[0]:.4f}")
    pooled, per_point = ig(True), ig(False)
    print(f"  integrated gradients in training mode: one batch of all path points (Captum) {mass(pooled)[0]:.4f}, "
          f"one model call per path point {mass(per_point)[0]:.4f}")
    dl = deeplift()
    print(f"  deeplift in training mode: its own score {mass(dl)[0]:.4f}, the study's (IG's numerator) "
          f"{mass(dl, numerator=pooled)[0]:.4f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="track", required=True)
    pv = sub.add_parser("vision")
    pv.add_argument("--condition", default="RBFP")
    pv.add_argument("--epochs", type=int, default=4)
    pv.add_argument("--val-size", type=int, default=256)
    pa = sub.add_parser("audio")
    pa.add_argument("--condition", default="RBFP")
    pa.add_argument("--model", default="tcn")
    pa.add_argument("--steps", type=int, default=1000)
    pa.add_argument("--n-attr", type=int, default=64)
    pa.add_argument("--source", default="espeak")
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}")
    {"vision": vision, "audio": audio}[args.track](args)


if __name__ == "__main__":
    main()
