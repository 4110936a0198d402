"""Attribution speed: chaosjax against PyTorch + Captum on the same weights, side by side.

Gradient suite: the study's symbolic setting, a 3 x 100 GELU MLP on 110 features (10 predictive + 100
noise), attributing 2,000 rows. Perturbation suite: the same MLP (the methods that need groups get 10
blocks of 11 columns), and the small CNN of the vision track (3 x conv3x3-BN-ReLU-maxpool, GAP, linear) on
56-px canvases with its 7 x 7 grid of 8-px patches as groups. Every method is timed in both libraries in
one run, at equal samples; chaosjax's time is the steady state of a jitted call (compile time reported
apart), Captum's the same call repeated, with its best `perturbations_per_eval` of 1, 16 and 64 and
`show_progress=False`. Captum's LIME and KernelSHAP fit one model per row in a Python loop, so their
time is linear in the rows: they run on `--captum-rows` rows and are scaled up (marked `*`). The
FLOP-bound methods (occlusion, feature permutation) also report their FLOP/s against the machine's
float32 matmul rate.

    python benchmarks/attribution.py                      # both suites; needs the `compare` extra
    python benchmarks/attribution.py --suite perturbation --rows 500 --repeats 2   # a quick look
"""

from __future__ import annotations

import argparse
import math
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


# ------------------------------------------------------------------------------------ perturbation suite

PPE = (1, 16, 64)  # Captum's perturbations_per_eval: the best of these is reported


def torch_small_cnn(seed, width=16, depth=3, classes=10):
    """The vision track's SmallCNN (eval mode, random running statistics), taking NHWC canvases like chaosjax."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    chans = [3] + [width * 2**i for i in range(depth)]
    layers = []
    for cin, cout in zip(chans[:-1], chans[1:]):
        bn = nn.BatchNorm2d(cout, eps=1e-5)
        bn.running_mean.data = 0.1 * torch.randn(cout)
        bn.running_var.data = 0.5 + torch.rand(cout)
        bn.weight.data = 1 + 0.1 * torch.randn(cout)
        bn.bias.data = 0.1 * torch.randn(cout)
        layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), bn, nn.ReLU(), nn.MaxPool2d(2)]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(*layers)
            self.head = nn.Linear(chans[-1], classes)

        def forward(self, x):  # NHWC in, as the chaosjax model
            return self.head(self.body(x.permute(0, 3, 1, 2)).mean(dim=(2, 3)))

    return Net().eval()


def jax_cnn_params(model):
    import torch

    blocks = []
    for conv, bn in zip(model.body[0::4], model.body[1::4]):
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias - bn.running_mean * scale
        blocks.append(tuple(jnp.asarray(t.detach().numpy()) for t in
                            (conv.weight.permute(2, 3, 1, 0), scale, shift)))  # HWIO kernel, BN as scale/shift
    head = (jnp.asarray(model.head.weight.detach().numpy().T), jnp.asarray(model.head.bias.detach().numpy()))
    return blocks, head


def jax_cnn(params, x):
    blocks, (w, b) = params
    h = x
    for kernel, scale, shift in blocks:
        h = jax.lax.conv_general_dilated(h, kernel, (1, 1), ((1, 1), (1, 1)),
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        h = jax.nn.relu(h * scale[None, None, None] + shift[None, None, None])
        h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    return jnp.mean(h, axis=(1, 2)) @ w + b[None]


def cnn_flops(size, width=16, depth=3, classes=10):
    """Multiply-adds x 2 of one SmallCNN forward pass on one canvas (convolutions and head)."""
    flops, cin, side = 0, 3, size
    for i in range(depth):
        cout = width * 2**i
        flops += 2 * side * side * 9 * cin * cout
        cin, side = cout, side // 2
    return flops + 2 * cin * classes


def mlp_flops(features, width, depth):
    return 2 * (features * width + (depth - 1) * width * width + width)


def matmul_rate(n=2048, repeats=5):
    """The machine's float32 matmul rate (FLOP/s) as JAX reaches it: an n x n by n x n product."""
    a = jax.random.normal(jax.random.key(0), (n, n))
    mm = jax.jit(lambda a: a @ a)
    mm(a).block_until_ready()
    return 2 * n**3 / median_seconds(lambda: mm(a).block_until_ready(), repeats)


def perturbation_cases(args, batch_size):
    """(setting, method, chaosjax fn(params, x, key), captum fn(x, ppe), evaluations, captum rows) per case."""
    import captum.attr as ca
    import torch

    key = jax.random.key(0)
    chunk = {"batch_size": batch_size}
    cases = []
    # The symbolic MLP: 10 column blocks where a method needs groups.
    mlp = torch_mlp(args.features, args.width, args.depth, seed=0)
    mlp_p = jax_params(mlp)
    blocks = np.arange(args.features) * 10 // args.features
    blocks_t = torch.tensor(blocks)[None]
    g_mlp = 10
    P, S = args.permutations, args.samples
    m_cases = {
        "occlusion": (lambda f, x: A.occlusion(f, x, window=1, **chunk),
                      lambda m, x, ppe: ca.Occlusion(m).attribute(x, sliding_window_shapes=(1,), target=0,
                                                                  perturbations_per_eval=ppe),
                      args.features + 1, None),
        "feature_permutation": (lambda f, x: A.feature_permutation(f, x, key=key, **chunk),
                                lambda m, x, ppe: ca.FeaturePermutation(m).attribute(x, target=0,
                                                                                     perturbations_per_eval=ppe),
                                args.features + 1, None),
        "shapley_sampling": (lambda f, x: A.shapley_sampling(f, x, key=key, permutations=P, groups=blocks, **chunk),
                             lambda m, x, ppe: ca.ShapleyValueSampling(m).attribute(
                                 x, target=0, feature_mask=blocks_t, n_samples=P, perturbations_per_eval=ppe),
                             P * (g_mlp - 1) + 2, None),
        "kernel_shap": (lambda f, x: A.kernel_shap(f, x, key=key, samples=S, groups=blocks, **chunk),
                        lambda m, x, ppe: ca.KernelShap(m).attribute(
                            x, target=0, feature_mask=blocks_t, n_samples=S, perturbations_per_eval=ppe),
                        S + 2, args.captum_rows),
        "lime": (lambda f, x: A.lime(f, x, key=key, samples=S, groups=blocks, **chunk),
                 lambda m, x, ppe: ca.Lime(m).attribute(x, target=0, feature_mask=blocks_t, n_samples=S,
                                                        perturbations_per_eval=ppe),
                 S, args.captum_rows),
    }
    rng = np.random.default_rng(0)
    x_mlp = np.clip(rng.normal(0, 0.33, (args.rows, args.features)), -1, 1).astype(np.float32)
    for name, (ours, theirs, evals, rows) in m_cases.items():
        cases.append(("mlp", name, (lambda p, x, ours=ours: ours(lambda z: jax_mlp(p, z), x)), mlp_p, x_mlp,
                      (lambda x, ppe, theirs=theirs: theirs(mlp, x, ppe)), evals,
                      mlp_flops(args.features, args.width, args.depth), rows))
    # The small CNN on 56-px canvases, the 7 x 7 grid of 8-px patches as groups.
    cnn = torch_small_cnn(seed=0)
    cnn_p = jax_cnn_params(cnn)
    size, cell = 56, 8
    probe = np.random.default_rng(1).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
    np.testing.assert_allclose(jax_cnn(cnn_p, jnp.asarray(probe)), cnn(torch.tensor(probe)).detach().numpy(),
                               rtol=1e-4, atol=1e-4)  # the two libraries run the same function
    idx = np.arange(size) // cell
    patches = np.repeat((idx[:, None] * (size // cell) + idx[None, :])[:, :, None], 3, axis=2)
    patches_t = torch.tensor(patches)[None]
    g_cnn = (size // cell) ** 2
    positions = (math.ceil((size - cell) / (cell // 2)) + 1) ** 2
    c_cases = {
        "occlusion": (lambda f, x: A.occlusion(f, x, window=(cell, cell, 3), strides=(cell // 2, cell // 2, 3),
                                               **chunk),
                      lambda m, x, ppe: ca.Occlusion(m).attribute(
                          x, sliding_window_shapes=(cell, cell, 3), strides=(cell // 2, cell // 2, 3), target=0,
                          perturbations_per_eval=ppe),
                      positions + 1, None),
        "feature_permutation": (lambda f, x: A.feature_permutation(f, x, key=key, groups=patches, **chunk),
                                lambda m, x, ppe: ca.FeaturePermutation(m).attribute(
                                    x, target=0, feature_mask=patches_t, perturbations_per_eval=ppe),
                                g_cnn + 1, None),
        "shapley_sampling": (lambda f, x: A.shapley_sampling(f, x, key=key, permutations=P, groups=patches,
                                                             **chunk),
                             lambda m, x, ppe: ca.ShapleyValueSampling(m).attribute(
                                 x, target=0, feature_mask=patches_t, n_samples=P, perturbations_per_eval=ppe),
                             P * (g_cnn - 1) + 2, None),
        "kernel_shap": (lambda f, x: A.kernel_shap(f, x, key=key, samples=S, groups=patches, **chunk),
                        lambda m, x, ppe: ca.KernelShap(m).attribute(
                            x, target=0, feature_mask=patches_t, n_samples=S, perturbations_per_eval=ppe),
                        S + 2, args.captum_rows),
        "lime": (lambda f, x: A.lime(f, x, key=key, samples=S, groups=patches, **chunk),
                 lambda m, x, ppe: ca.Lime(m).attribute(x, target=0, feature_mask=patches_t, n_samples=S,
                                                        perturbations_per_eval=ppe),
                 S, args.captum_rows),
        "guided_backprop": (lambda f, x: A.guided_backprop(f, x),
                            lambda m, x, ppe: ca.GuidedBackprop(m).attribute(x, target=0), None, None),
        "deeplift_shap": (lambda f, x: A.deeplift_shap(f, x, baselines=jnp.zeros((10, size, size, 3)) + 0.1,
                                                       **chunk),
                          lambda m, x, ppe: ca.DeepLiftShap(m).attribute(
                              x, baselines=torch.zeros(10, size, size, 3) + 0.1, target=0), None, None),
    }
    x_cnn = rng.uniform(-1, 1, (args.images, size, size, 3)).astype(np.float32)
    for name, (ours, theirs, evals, rows) in c_cases.items():
        cases.append(("cnn", name, (lambda p, x, ours=ours: ours(lambda z: jax_cnn(p, z)[:, 0], x)), cnn_p, x_cnn,
                      (lambda x, ppe, theirs=theirs: theirs(cnn, x, ppe)), evals, cnn_flops(size), rows))
    return cases


def run_perturbation_suite(args, batch_size):
    import warnings

    import torch

    warnings.filterwarnings("ignore")  # Captum's per-row and hook warnings would bury the table

    rate = matmul_rate()
    print(
        f"\n# perturbation methods at equal samples: the {args.depth} x {args.width} GELU MLP on {args.rows} rows x "
        f"{args.features} features (10 column blocks where grouped), and the small CNN on {args.images} 56-px "
        f"canvases (49 patches of 8 px); {args.permutations} permutations, {args.samples} samples\n"
        f"# jax {jax.__version__} on {jax.devices()[0].device_kind}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); median of {args.repeats}; chaosjax batch_size={batch_size}; "
        f"float32 matmul rate {rate / 1e9:.1f} GFLOP/s; * Captum on {args.captum_rows} rows, scaled to all"
    )
    print("| model | method | chaosjax (ms) | compile (s) | captum (ms) | best ppe | speed-up | chaosjax GFLOP/s "
          "(% of matmul) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    names = None if args.methods == "all" else set(args.methods.split(","))
    for setting, name, ours, params, x_np, theirs, evals, flops, captum_rows in perturbation_cases(args, batch_size):
        if names is not None and name not in names:
            continue
        x = jnp.asarray(x_np)
        fn = jax.jit(ours)
        start = time.perf_counter()
        fn(params, x).block_until_ready()
        compile_s = time.perf_counter() - start
        t_ours = median_seconds(lambda: fn(params, x).block_until_ready(), args.repeats)
        rows = x_np.shape[0] if captum_rows is None else min(captum_rows, x_np.shape[0])
        xt = torch.tensor(x_np[:rows])
        best, best_ppe = math.inf, None
        for ppe in PPE if evals is not None else (1,):
            theirs(xt, ppe)  # warm-up
            t = median_seconds(lambda: theirs(xt, ppe), 1 if rows < x_np.shape[0] else args.repeats)
            if t < best:
                best, best_ppe = t, ppe
        t_theirs = best * x_np.shape[0] / rows
        star = "*" if rows < x_np.shape[0] else ""
        rate_cell = ""
        if evals is not None and name in ("occlusion", "feature_permutation"):
            achieved = evals * x_np.shape[0] * flops / t_ours
            rate_cell = f"{achieved / 1e9:.1f} ({100 * achieved / rate:.0f}%)"
        ppe_cell = best_ppe if evals is not None else "-"
        print(f"| {setting} | {name} | {t_ours * 1e3:.1f} | {compile_s:.2f} | {t_theirs * 1e3:.1f}{star} | "
              f"{ppe_cell} | {t_theirs / t_ours:.1f}x | {rate_cell} |", flush=True)


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
    parser.add_argument("--suite", default="all", choices=("all", "gradients", "perturbation"))
    parser.add_argument("--images", type=int, default=64, help="canvases of the CNN (perturbation suite)")
    parser.add_argument("--permutations", type=int, default=10, help="shapley_sampling orders (both libraries)")
    parser.add_argument("--samples", type=int, default=200, help="kernel_shap and lime coalitions (both)")
    parser.add_argument("--captum-rows", type=int, default=50,
                        help="rows (canvases) Captum's per-row LIME and KernelSHAP loops run on before scaling")
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

    if args.suite == "perturbation":
        run_perturbation_suite(args, batch_size)
        return
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
    names = list(ours) if args.methods == "all" else [n for n in args.methods.split(",") if n in ours]

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
    if args.suite == "all":
        run_perturbation_suite(args, batch_size)


if __name__ == "__main__":
    main()
