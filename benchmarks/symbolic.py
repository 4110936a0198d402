"""Symbolic track end to end: the study's PyTorch + Captum protocol against chaosjax, side by side.

Both sides get the same tables (chaosjax's generator) and the same protocol: per formula a 3 x 100
GELU MLP trained full-batch with Adam, then Saliency, Integrated Gradients (Gauss-Legendre),
DeepLIFT and Feature Ablation on the test split. PyTorch trains and attributes one formula at a time,
as the study's code does; chaosjax trains every formula in one compiled grid and attributes each
method over the grid in one program. End-to-end wall times (training and the four methods: what both
sides do) include chaosjax's compilation, and are also given without it (the training and attribution programs
run again once compiled: what a command-line rerun with a warm compilation cache approaches;
`benchmarks/compile_cache.py` measures the real cache); chaosjax's scoring against the exact ground truth is
timed apart, since the peer computes none.

It also measures the training program's arithmetic rate: FLOPs from XLA's `cost_analysis()` of the
compiled grid, divided by the training time without compilation, against the machine's dense f32
matmul rate measured in the same run.

    python benchmarks/symbolic.py                      # 15 formulas, 200 epochs (about 10 minutes on 2 cores)
    python benchmarks/symbolic.py --formulas 0,6,9 --epochs 50     # a quick look
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from chaosjax import train
from chaosjax._parse import parse_formulas
from chaosjax.tracks import symbolic as sym

METHODS = ("saliency", "integrated_gradients", "deeplift", "feature_ablation")


def matmul_rate(size: int = 2048, repeats: int = 10) -> float:
    """Dense f32 matmul FLOP/s of this machine through XLA (the best of a few timed runs)."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    mm = jax.jit(lambda a, b: a @ b)
    mm(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        mm(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def torch_protocol(grid: sym.Grid, config: sym.SymbolicConfig) -> dict[str, float]:
    """The study's loop: per formula, train in PyTorch, attribute with Captum. Returns seconds per phase."""
    import captum.attr as ca
    import torch

    seconds = {"train": 0.0, **{m: 0.0 for m in METHODS}}
    width = grid.x_train.shape[-1]
    for g, cell in enumerate(grid.cells):
        torch.manual_seed(cell.seed)
        layers, n_in = [], width
        for _ in range(config.depth):
            layers += [torch.nn.Linear(n_in, config.width), torch.nn.GELU()]
            n_in = config.width
        model = torch.nn.Sequential(*layers, torch.nn.Linear(n_in, 1))
        x = torch.tensor(np.asarray(grid.x_train[g]))
        y = torch.tensor(np.asarray(grid.y_train[g]))[:, None]
        x_test = torch.tensor(np.asarray(grid.x_test[g]))
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        start = time.perf_counter()
        for _ in range(config.epochs):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
        seconds["train"] += time.perf_counter() - start
        model.eval()
        calls = {
            "saliency": lambda: ca.Saliency(model).attribute(x_test, target=0, abs=True),
            "integrated_gradients": lambda: ca.IntegratedGradients(model).attribute(
                x_test, target=0, n_steps=config.ig_steps, method="gausslegendre"),
            "deeplift": lambda: ca.DeepLift(model).attribute(x_test, target=0),
            "feature_ablation": lambda: ca.FeatureAblation(model).attribute(x_test, target=0),
        }
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            seconds[name] += time.perf_counter() - start
    return seconds


def chaosjax_protocol(grid: sym.Grid, config: sym.SymbolicConfig) -> tuple[dict[str, float], float]:
    """The same in chaosjax: one training program for the grid, one program per method.

    Returns seconds per phase (compilation included) and the training program's FLOPs."""
    seconds = {}
    start = time.perf_counter()
    trained = sym.train_grid(config, grid)
    seconds["train"] = time.perf_counter() - start
    # What the peer does: the four methods on every formula's test rows (compilation included).
    model = sym.model_of(config)
    refs = grid.x_train[:, :64]
    keys = jnp.stack([sym.cell_stream(c, 3) for c in grid.cells])

    def attribute_all(suffix=""):
        start = time.perf_counter()
        for method in METHODS:
            options = tuple(sorted(sym.method_options(config, method).items()))
            per_method = time.perf_counter()
            jax.block_until_ready(sym.attribute_program(model.apply, trained.params, grid.x_test, refs, keys,
                                                      method=method, options=options))
            seconds[method + suffix] = time.perf_counter() - per_method
        seconds["attribution" + suffix] = time.perf_counter() - start

    attribute_all()
    attribute_all("_steady")  # the programs compiled: what a warm compilation cache approaches
    # What the peer does not: the exact ground truth of each method and the scores (the track's full path,
    # attribution programs already compiled).
    start = time.perf_counter()
    sym.attribute_grid(config, grid, trained)
    seconds["attribute_and_score"] = time.perf_counter() - start

    # XLA's cost analysis counts a loop body once, so count one training step of the whole grid (forward,
    # backward and Adam update, vmapped) and multiply by the number of steps.
    model = sym.model_of(config)
    params = jax.vmap(model.init)(jnp.stack([sym.cell_stream(c, 1) for c in grid.cells]))
    tx = train.make_optimizer(config.optimizer, config.learning_rate)

    def step(p, state, x, y):
        loss, grads = jax.value_and_grad(lambda q: jnp.mean((model.apply(q, x)[:, 0] - y) ** 2))(p)
        updates, state = tx.update(grads, state, p)
        return jax.tree.map(jnp.add, p, updates), state, loss

    states = jax.vmap(tx.init)(params)
    compiled = jax.jit(jax.vmap(step)).lower(params, states, grid.x_train, grid.y_train).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", float("nan"))) * config.epochs
    # Steady-state training time (the program is compiled now) for the FLOP rate.
    start = time.perf_counter()
    sym.train_grid(config, grid)
    seconds["train_steady"] = time.perf_counter() - start
    return seconds, flops


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formulas", default="0-14")
    parser.add_argument("--noise", type=int, default=100)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--ig-steps", type=int, default=10)
    parser.add_argument("--skip-torch", action="store_true", help="chaosjax only (e.g. on a machine without torch)")
    args = parser.parse_args(argv)

    config = sym.SymbolicConfig(formulas=parse_formulas(args.formulas), noise_features=args.noise, n=args.n,
                                epochs=args.epochs, ig_steps=args.ig_steps, methods=METHODS)
    config.validate()
    grid = sym.build_grid(config, sym.cells_of(config))
    peak = matmul_rate()
    ours, flops = chaosjax_protocol(grid, config)
    total_ours = ours["train"] + ours["attribution"]
    print(f"# symbolic protocol: {len(grid.cells)} formulas, {args.n} rows, {args.noise} noise columns, "
          f"{config.depth} x {config.width} GELU, {args.epochs} full-batch epochs, IG {args.ig_steps} steps")
    print(f"# jax {jax.__version__} on {jax.devices()[0].device_kind}; {platform.machine()}")
    print(f"machine dense f32 matmul (XLA, 2048^3): {peak / 1e9:.1f} GFLOP/s")
    rate = flops / ours["train_steady"]
    print(f"chaosjax training: {flops / 1e12:.2f} TFLOP in {ours['train_steady']:.1f} s = {rate / 1e9:.1f} GFLOP/s "
          f"= {100 * rate / peak:.0f}% of the matmul rate")
    if args.skip_torch:
        print(f"chaosjax end to end: {total_ours:.1f} s (train {ours['train']:.1f}, attribution "
              f"{ours['attribution']:.1f}); compilation excluded: "
              f"{ours['train_steady'] + ours['attribution_steady']:.1f} s")
        return
    import torch

    theirs = torch_protocol(grid, config)
    total_theirs = sum(theirs.values())
    attr_theirs = total_theirs - theirs["train"]
    print(f"# torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print("| phase | PyTorch + Captum (s) | chaosjax (s) | speed-up |")
    print("|---|---:|---:|---:|")
    print(f"| training | {theirs['train']:.1f} | {ours['train']:.1f} | {theirs['train'] / ours['train']:.1f}x |")
    print(f"| attribution (4 methods) | {attr_theirs:.1f} | {ours['attribution']:.1f} | "
          f"{attr_theirs / ours['attribution']:.1f}x |")
    for method in METHODS:
        print(f"| - {method} | {theirs[method]:.1f} | {ours[method]:.1f} | {theirs[method] / ours[method]:.1f}x |")
    print(f"| end to end | {total_theirs:.1f} | {total_ours:.1f} | {total_theirs / total_ours:.1f}x |")
    steady = ours["train_steady"] + ours["attribution_steady"]
    print(f"| end to end, chaosjax's compilation excluded | {total_theirs:.1f} | {steady:.1f} | "
          f"{total_theirs / steady:.1f}x |")
    print(f"chaosjax's own scoring on top (ground truth of each method, metrics, attribution again): "
          f"{ours['attribute_and_score']:.1f} s; the peer computes none of it")


if __name__ == "__main__":
    main()
