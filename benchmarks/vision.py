"""Vision attribution speed: chaosjax against PyTorch + Captum on the same ResNet-18 weights, side by side.

The study's vision setting: a ResNet-18-style model on 224 x 224 canvases, attributed w.r.t. the predicted
class with Integrated Gradients (20 Gauss-Legendre steps, zero baseline) and Feature Ablation over the 7 x 7
grid of 32 x 32 patches (49 + 1 forward passes). Both libraries run the same function (the torch model is built
from the chaosjax weights and checked to give the same logits), on the same images (paper-preset SBRP
canvases). chaosjax's time is the steady state of a jitted call (compile time printed apart); Captum's is the
same call repeated. Images per second are reported for each, and their ratio.

    python benchmarks/vision.py                          # CPU: 4 images (needs the `compare` extra)
    python benchmarks/vision.py --images 2 --repeats 1   # a quick look
    python benchmarks/vision.py --gpu                    # accelerator: 64 images, chunks of 16, < 5 min
    python benchmarks/vision.py --gpu --cpu-test         # the GPU mode's code path, sized for a CPU

Options: --width (ResNet width, 64 = ResNet-18), --image-size, --ig-batch (path points per chunk),
--fa-batch (ablated copies per chunk), --no-captum.
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
from chaosjax.data import vision as V
from chaosjax.models import vision as MV
from _timing import median_seconds  # benchmarks/_timing.py


# ------------------------------------------------------------------------------------------ torch twin


def torch_resnet(variables, blocks, imagenet_stem, device):
    """A torch ResNet computing the same function as chaosjax's `ResNet` with these variables (eval mode)."""
    import torch
    from torch import nn

    p = variables["params"].to_pure_dict()
    s = variables["batch_stats"].to_pure_dict()

    def conv_w(k):
        return torch.tensor(np.asarray(k).transpose(3, 2, 0, 1).copy())

    def bn(pp, ss):
        c = np.asarray(pp["scale"]).shape[0]
        m = nn.BatchNorm2d(c, eps=1e-5)
        m.weight.data = torch.tensor(np.asarray(pp["scale"]))
        m.bias.data = torch.tensor(np.asarray(pp["bias"]))
        m.running_mean.data = torch.tensor(np.asarray(ss["mean"]))
        m.running_var.data = torch.tensor(np.asarray(ss["var"]))
        return m

    def conv(k, stride, pad):
        w = conv_w(k)
        m = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], stride=stride, padding=pad, bias=False)
        m.weight.data = w
        return m

    class Block(nn.Module):
        def __init__(self, pp, ss, stride):
            super().__init__()
            self.conv1, self.bn1 = conv(pp["conv1"]["kernel"], stride, 1), bn(pp["bn1"], ss["bn1"])
            self.conv2, self.bn2 = conv(pp["conv2"]["kernel"], 1, 1), bn(pp["bn2"], ss["bn2"])
            self.down = None
            if "down_conv" in pp:
                self.down = nn.Sequential(conv(pp["down_conv"]["kernel"], stride, 0), bn(pp["down_bn"], ss["down_bn"]))
            self.relu = nn.ReLU()

        def forward(self, x):
            h = self.relu(self.bn1(self.conv1(x)))
            h = self.bn2(self.conv2(h))
            return self.relu(h + (x if self.down is None else self.down(x)))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            k = p["stem"]["kernel"]
            self.stem = conv(k, 2 if imagenet_stem else 1, 3 if imagenet_stem else 1)
            self.stem_bn = bn(p["stem_bn"], s["stem_bn"])
            self.pool = nn.MaxPool2d(3, 2, 1) if imagenet_stem else nn.Identity()
            layers, i = [], 0
            for st, n in enumerate(blocks):
                for b in range(n):
                    layers.append(Block(p["layers"][i], s["layers"][i], 2 if (b == 0 and st > 0) else 1))
                    i += 1
            self.layers = nn.Sequential(*layers)
            w = np.asarray(p["head"]["kernel"])
            self.head = nn.Linear(w.shape[0], w.shape[1])
            self.head.weight.data = torch.tensor(w.T.copy())
            self.head.bias.data = torch.tensor(np.asarray(p["head"]["bias"]))
            self.relu = nn.ReLU()

        def forward(self, x):
            h = self.pool(self.relu(self.stem_bn(self.stem(x))))
            h = self.layers(h)
            return self.head(h.mean(dim=(2, 3)))

    return Net().eval().to(device)


# ----------------------------------------------------------------------------------------------- main


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gpu", action="store_true", help="accelerator sizes (64 images, chunked, < 5 minutes)")
    ap.add_argument("--cpu-test", action="store_true", help="with --gpu: run that code path at CPU sizes")
    ap.add_argument("--images", type=int, default=None)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--ig-steps", type=int, default=20)
    ap.add_argument("--ig-batch", type=int, default=None, help="IG path points per chunk (both libraries)")
    ap.add_argument("--fa-batch", type=int, default=None, help="ablated copies per chunk (both libraries)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--no-captum", action="store_true")
    args = ap.parse_args(argv)

    gpu = args.gpu and not args.cpu_test
    n = args.images or (64 if gpu else 4 if not args.gpu else 2)
    repeats = args.repeats or (3 if gpu else 2)
    ig_batch = args.ig_batch or (10 if args.gpu else 1)  # CPU: one path point at a time stays in cache
    fa_batch = args.fa_batch or (25 if args.gpu else 7)
    size = args.image_size
    spec = V.preset("paper") if size == 224 else V.VisionSpec(canvas=size, foreground=size // 7)
    blocks = (2, 2, 2, 2)

    print(f"jax {jax.__version__} on {jax.default_backend()} ({jax.devices()[0].device_kind}); "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    model = MV.resnet18(size, 10, width=args.width, blocks=blocks)
    variables = model.init(jax.random.key(0))
    data = V.dataset(spec, "val")
    x = data.batch(jax.random.key(1), jnp.arange(n), "SBRP").image
    logits = model.apply(variables, x)
    pred = jnp.argmax(logits, axis=1)
    groups = V.grid_groups(spec)
    f = A.target(lambda z: model.apply(variables, z), pred)

    ig = jax.jit(lambda z: A.integrated_gradients(f, z, steps=args.ig_steps, batch_size=ig_batch))
    fa = jax.jit(lambda z: A.feature_ablation(f, z, groups=groups, batch_size=fa_batch))
    results = {}
    for name, fn in (("integrated_gradients", ig), ("feature_ablation", fa)):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(x))
        compile_s = time.perf_counter() - start
        t = median_seconds(lambda fn=fn: jax.block_until_ready(fn(x)), repeats)
        results[name] = {"jax_s": t, "compile_s": compile_s, "jax_attr": np.asarray(out)}

    if not args.no_captum:
        import captum.attr as ca
        import torch

        device = "cuda" if (gpu and torch.cuda.is_available()) else "cpu"
        torch.set_num_threads(os.cpu_count() or 1)
        net = torch_resnet(variables, blocks, size >= 128, device)
        xt = torch.tensor(np.asarray(x).transpose(0, 3, 1, 2).copy(), device=device)
        with torch.no_grad():
            tl = net(xt).cpu().numpy()
        print(f"same function: max |logit difference| = {np.abs(tl - np.asarray(logits)).max():.2e}")
        target = torch.tensor(np.asarray(pred), device=device)
        mask = torch.tensor(groups[:, :, 0], device=device)[None, None].expand(1, 3, size, size)
        captum = {
            "integrated_gradients": lambda: ca.IntegratedGradients(net).attribute(
                xt, baselines=0.0, target=target, n_steps=args.ig_steps, method="gausslegendre",
                internal_batch_size=n * ig_batch),
            "feature_ablation": lambda: ca.FeatureAblation(net).attribute(
                xt, baselines=0.0, target=target, feature_mask=mask, perturbations_per_eval=fa_batch),
        }
        for name, fn in captum.items():
            out = fn()  # warm-up (and the attribution to compare)
            if device == "cuda":
                torch.cuda.synchronize()

            def timed(fn=fn):
                fn()
                if device == "cuda":
                    torch.cuda.synchronize()

            results[name]["captum_s"] = median_seconds(timed, repeats)
            ta = out.detach().cpu().numpy().transpose(0, 2, 3, 1)
            ja = results[name]["jax_attr"]
            results[name]["rel_err"] = float(np.abs(ta - ja).max() / (np.abs(ta).max() + 1e-12))

    print(f"\nResNet-18 (width {args.width}) at {size} x {size}, {n} images, IG {args.ig_steps} steps "
          f"(chunks of {ig_batch}), feature ablation 7 x 7 (chunks of {fa_batch}), median of {repeats}")
    print("| method | chaosjax img/s | captum img/s | speed-up | compile s | max rel. diff |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        jips = n / r["jax_s"]
        if "captum_s" in r:
            cips = n / r["captum_s"]
            print(f"| {name} | {jips:.2f} | {cips:.2f} | {jips / cips:.2f}x | {r['compile_s']:.1f} | {r['rel_err']:.1e} |")
        else:
            print(f"| {name} | {jips:.2f} | - | - | {r['compile_s']:.1f} | - |")
    return results


if __name__ == "__main__":
    main()
