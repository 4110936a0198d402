"""Proxy-metric speed: chaosjax against Quantus 0.6 on the same canvases, weights and attributions, side by side.

The vision track's tiny preset: 256 canvases (56 x 56 x 3, SBRP: digits on photos), the small CNN of the track
(`chaosjax.models.vision.small_cnn`, random weights: speed does not depend on training) and a torch twin computing
the same logits (checked). Attributions: saliency (signed, per feature).

* Pixel flipping (deletion, MoRF): features (pixel channels) removed `--features-per-step` at a time to the
  baseline 0, the whole curve. Quantus: `PixelFlipping(features_in_step=...)` on the same attributions (channels
  first); it asserts the step divides the size of its attributions, so a step of whole RGB pixels (3k, against
  56 * 56 = 3136) cannot be set, hence single features. The curves are compared.
* ROAD (MoRF, noisy linear imputation, Quantus's 50 percentages 1, 3, ..., 99). Quantus's `ROAD` indexes the pixels
  of a flattened `C x H x W` image and fails on three channels, so its side runs the loop of its `evaluate_batch`
  with its own `noisy_linear_imputation` on each canvas (which handles channels) and the same torch model:
  Quantus's cost, minus its bookkeeping. `--road-images` canvases on Quantus's side (per-image cost is constant:
  it solves one sparse system per image and percentage), scaled to the batch; chaosjax runs the whole batch.

chaosjax's time is the steady state of the jitted call (compile time printed apart); Quantus's one call.

    python benchmarks/proxies.py                      # CPU, the full comparison (a few minutes)
    python benchmarks/proxies.py --images 32 --road-images 4   # a quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from chaosjax import attribution as A
from chaosjax import proxies as P
from chaosjax.data import vision as V
from chaosjax.models import vision as MV
from _timing import median_seconds  # benchmarks/_timing.py


def torch_small_cnn(variables):
    """A torch SmallCNN computing the same function as chaosjax's (eval mode, channels-first input)."""
    import torch
    from torch import nn

    p = variables["params"].to_pure_dict()
    s = variables["batch_stats"].to_pure_dict()
    layers = []
    for i in sorted(p["convs"]):
        k = np.asarray(p["convs"][i]["kernel"])  # HWIO
        conv = nn.Conv2d(k.shape[2], k.shape[3], 3, padding=1, bias=False)
        conv.weight.data = torch.tensor(k.transpose(3, 2, 0, 1).copy())
        bn = nn.BatchNorm2d(k.shape[3], eps=1e-5)
        bn.weight.data = torch.tensor(np.asarray(p["norms"][i]["scale"]))
        bn.bias.data = torch.tensor(np.asarray(p["norms"][i]["bias"]))
        bn.running_mean.data = torch.tensor(np.asarray(s["norms"][i]["mean"]))
        bn.running_var.data = torch.tensor(np.asarray(s["norms"][i]["var"]))
        layers += [conv, bn, nn.ReLU(), nn.MaxPool2d(2, 2)]  # the map stays >= 2 px on 56-px canvases
    head = nn.Linear(*np.asarray(p["head"]["kernel"]).shape)
    head.weight.data = torch.tensor(np.asarray(p["head"]["kernel"]).T.copy())
    head.bias.data = torch.tensor(np.asarray(p["head"]["bias"]))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), head]
    return nn.Sequential(*layers).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--road-images", type=int, default=16, help="canvases Quantus's ROAD loop runs (scaled)")
    parser.add_argument("--features-per-step", type=int, default=64, help="must divide 56 * 56 * 3 = 9408")
    parser.add_argument("--chunk", type=int, default=16, help="chaosjax: curve points / percentages at once")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import quantus
    import torch
    from quantus.functions.perturb_func import noisy_linear_imputation

    spec = V.preset("tiny")
    n, side = args.images, spec.canvas
    data = V.dataset(spec, "val")
    canvases = data.batch(jax.random.key(0), jnp.arange(n), "SBRP")
    x = canvases.image  # (n, 56, 56, 3) in [-1, 1]
    model = MV.small_cnn(side, 10)
    variables = model.init(jax.random.key(1))
    apply_fn = jax.jit(lambda z: model.apply(variables, z))
    logits = apply_fn(x)
    y = jnp.argmax(logits, axis=1)
    f = A.target(apply_fn, y)
    tmodel = torch_small_cnn(variables)
    x_cf = np.asarray(x).transpose(0, 3, 1, 2).copy()
    with torch.no_grad():
        gap = np.abs(tmodel(torch.tensor(x_cf)).numpy() - np.asarray(logits)).max()
    a_full = A.saliency(f, x, absolute=False)
    a_pix = np.asarray(jnp.sum(a_full, axis=-1))  # (n, 56, 56): one score per pixel, for ROAD
    print(f"jax {jax.__version__} ({jax.default_backend()}), torch {torch.__version__}, quantus "
          f"{quantus.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"{n} canvases {side} x {side} x 3 (tiny SBRP), small CNN; torch twin's max logit gap {gap:.2e}")

    # ---- pixel flipping
    step = args.features_per_step

    def ours_pf():
        return P.deletion_curve(f, x, a_full, features_per_step=step,
                                batch_size=args.chunk).block_until_ready()

    start = time.perf_counter()
    curve = ours_pf()
    compile_pf = time.perf_counter() - start
    t_ours_pf = median_seconds(ours_pf, args.repeats)
    metric = quantus.PixelFlipping(features_in_step=step, perturb_baseline=0.0, normalise=False,
                                   disable_warnings=True)
    start = time.perf_counter()
    theirs = np.asarray(metric(model=tmodel, x_batch=x_cf, y_batch=np.asarray(y),
                               a_batch=np.asarray(a_full).transpose(0, 3, 1, 2).copy(),
                               channel_first=True, softmax=False, device="cpu", batch_size=n))
    t_q_pf = time.perf_counter() - start
    diff = np.abs(np.asarray(curve)[:, 1:] - theirs).max()
    print(f"\npixel flipping ({curve.shape[1] - 1} steps of {step} features, {n} canvases): max curve gap {diff:.2e}")
    print(f"  chaosjax {t_ours_pf:8.2f} s (compile {compile_pf:.1f} s)   Quantus {t_q_pf:8.2f} s   "
          f"ratio {t_q_pf / t_ours_pf:6.1f}x")
    # The floor on each side: the curve's forward passes of the batch alone (what no implementation avoids).
    points = curve.shape[1]
    t_fwd = median_seconds(lambda: apply_fn(x).block_until_ready(), args.repeats)
    with torch.no_grad():
        x_torch = torch.tensor(x_cf)
        t_fwd_torch = median_seconds(lambda: tmodel(x_torch), args.repeats)
    print(f"  floor: {points} forward passes of the batch: chaosjax {points * t_fwd:.2f} s "
          f"({t_fwd * 1e3:.1f} ms each; the curve took {t_ours_pf / (points * t_fwd):.0%} of that), torch "
          f"{points * t_fwd_torch:.2f} s ({t_fwd_torch * 1e3:.1f} ms each; Quantus's curve took "
          f"{t_q_pf - points * t_fwd_torch:+.2f} s more); the most a curve at chaosjax's floor could gain: "
          f"{t_q_pf / (points * t_fwd):.1f}x")

    # ---- ROAD
    pct = P.ROAD_PERCENTAGES
    key = jax.random.key(2)

    def ours_road():
        return P.road_curve(f, x, jnp.asarray(a_pix), key=key, percentages=pct, batch_size=args.chunk
                            ).block_until_ready()

    start = time.perf_counter()
    ours_road()
    compile_road = time.perf_counter() - start
    t_ours_road = median_seconds(ours_road, args.repeats)

    m = min(args.road_images, n)
    order = np.argsort(-a_pix.reshape(n, -1), axis=1)
    start = time.perf_counter()
    for p in pct:  # Quantus ROAD.evaluate_batch's loop, with its imputation, on m canvases
        k = int(side * side * p / 100)
        perturbed = np.stack([noisy_linear_imputation(x_cf[i], order[i, :k], noise=0.01) for i in range(m)])
        with torch.no_grad():
            pred = tmodel(torch.tensor(perturbed.astype(np.float32))).numpy().argmax(-1)
        _ = pred == np.asarray(y[:m])
    t_q_road = (time.perf_counter() - start) * n / m
    print(f"\nROAD ({len(pct)} percentages, {n} canvases; Quantus timed on {m}, scaled x{n / m:.0f})")
    print(f"  chaosjax {t_ours_road:8.2f} s (compile {compile_road:.1f} s)   Quantus {t_q_road:8.2f} s   "
          f"ratio {t_q_road / t_ours_road:6.1f}x")


if __name__ == "__main__":
    main()
