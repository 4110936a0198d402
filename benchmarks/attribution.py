"""Attribution speed: chaosjax against PyTorch + Captum on the same weights, side by side.

The study's symbolic setting: a 3 x 100 GELU MLP on 110 features (10 predictive + 100 noise),
attributing 2,000 rows. Every method is timed in both libraries in one run; chaosjax's time is
the steady state of a jitted call (compile time reported apart), Captum's the same call repeated.

    python benchmarks/attribution.py            # needs the `compare` extra (torch, captum)
    python benchmarks/attribution.py --rows 200 --repeats 2   # a quick look
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
from _timing import median_seconds  # benchmarks/_timing.py


def torch_mlp(features, width, depth, seed):
    import torch

    torch.manual_seed(seed)
    layers, n_in = [], features
    for _ in range(depth):
        layers += [torch.nn.Linear(n_in, width), torch.nn.GELU()]
        n_in = width
    layers.append(torch.nn.Linear(n_in, 1))
    return torch.nn.Sequential(*layers).eval()


def jax_params(model):
    import torch

    return [
        (jnp.asarray(m.weight.detach().numpy().T), jnp.asarray(m.bias.detach().numpy()))
        for m in model
        if isinstance(m, torch.nn.Linear)
    ]


def jax_mlp(params, x):
    h = x
    for w, b in params[:-1]:
        h = jax.nn.gelu(h @ w + b[None], approximate=False)
    w, b = params[-1]
    return (h @ w + b[None])[:, 0]


def chaosjax_methods(ig_steps, sg_samples, shap_samples, batch_size):
    key = jax.random.key(0)
    chunk = {"batch_size": batch_size}
    return {
        "saliency": lambda f, x, refs: A.saliency(f, x),
        "input_x_gradient": lambda f, x, refs: A.input_x_gradient(f, x),
        "integrated_gradients": lambda f, x, refs: A.integrated_gradients(f, x, steps=ig_steps, **chunk),
        "smoothgrad": lambda f, x, refs: A.smoothgrad(f, x, key=key, samples=sg_samples, **chunk),
        "deeplift": lambda f, x, refs: A.deeplift(f, x),
        "gradient_shap": lambda f, x, refs: A.gradient_shap(
            f, x, key=key, baselines=refs, samples=shap_samples, **chunk
        ),
        "feature_ablation": lambda f, x, refs: A.feature_ablation(f, x, **chunk),
    }


def captum_methods(model, ig_steps, sg_samples, shap_samples, stdev):
    import captum.attr as ca

    return {
        "saliency": lambda x, refs: ca.Saliency(model).attribute(x, target=0, abs=True),
        "input_x_gradient": lambda x, refs: ca.InputXGradient(model).attribute(x, target=0),
        "integrated_gradients": lambda x, refs: ca.IntegratedGradients(model).attribute(
            x, target=0, n_steps=ig_steps, method="gausslegendre"
        ),
        "smoothgrad": lambda x, refs: ca.NoiseTunnel(ca.Saliency(model)).attribute(
            x, target=0, nt_type="smoothgrad", nt_samples=sg_samples, stdevs=stdev
        ),
        "deeplift": lambda x, refs: ca.DeepLift(model).attribute(x, target=0),
        "gradient_shap": lambda x, refs: ca.GradientShap(model).attribute(
            x, baselines=refs, target=0, n_samples=shap_samples
        ),
        "feature_ablation": lambda x, refs: ca.FeatureAblation(model).attribute(x, target=0),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--features", type=int, default=110)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--ig-steps", type=int, default=20)
    parser.add_argument("--sg-samples", type=int, default=50)
    parser.add_argument("--shap-samples", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--methods", default="all", help="comma-separated names, or all")
    parser.add_argument(
        "--batch-size", default="auto",
        help="chaosjax's draws per pass (path points, noisy copies, ablations): an integer, 'none' for all at "
             "once, or 'auto': 1 on a CPU (each pass then stays in cache), all at once on an accelerator",
    )
    args = parser.parse_args(argv)
    if args.batch_size == "auto":
        batch_size = 1 if jax.default_backend() == "cpu" else None
    else:
        batch_size = None if args.batch_size == "none" else int(args.batch_size)

    import torch

    model = torch_mlp(args.features, args.width, args.depth, seed=0)
    params = jax_params(model)
    rng = np.random.default_rng(0)
    x_np = np.clip(rng.normal(0, 0.33, (args.rows, args.features)), -1, 1).astype(np.float32)
    refs_np = np.clip(rng.normal(0, 0.33, (10, args.features)), -1, 1).astype(np.float32)
    x, refs = jnp.asarray(x_np), jnp.asarray(refs_np)
    xt, refs_t = torch.tensor(x_np), torch.tensor(refs_np)
    stdev = 0.15 * float(np.mean(x_np.max(1) - x_np.min(1)))  # Captum's absolute std of our relative 0.15

    ours = chaosjax_methods(args.ig_steps, args.sg_samples, args.shap_samples, batch_size)
    theirs = captum_methods(model, args.ig_steps, args.sg_samples, args.shap_samples, stdev)
    names = list(ours) if args.methods == "all" else args.methods.split(",")

    print(
        f"# attribution speed: {args.rows} rows x {args.features} features, {args.depth} x {args.width} GELU MLP\n"
        f"# jax {jax.__version__} on {jax.devices()[0].device_kind}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cpus; median of {args.repeats}; chaosjax batch_size={batch_size}"
    )
    print("| method | chaosjax (ms) | compile (s) | captum (ms) | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        fn = jax.jit(lambda p, x, r, name=name: ours[name](lambda z: jax_mlp(p, z), x, r))
        start = time.perf_counter()
        fn(params, x, refs).block_until_ready()
        compile_s = time.perf_counter() - start
        t_ours = median_seconds(lambda: fn(params, x, refs).block_until_ready(), args.repeats)
        theirs[name](xt, refs_t)  # warm-up
        t_theirs = median_seconds(lambda: theirs[name](xt, refs_t), args.repeats)
        print(
            f"| {name} | {t_ours * 1e3:.1f} | {compile_s:.2f} | {t_theirs * 1e3:.1f} | {t_theirs / t_ours:.1f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
