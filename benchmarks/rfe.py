"""RFEwNA speed: the study's PyTorch + Captum loop against chaosjax's compiled eliminations.

The study's loop, for one formula and each attribution method: every round slices the kept columns,
trains a fresh MLP for `epochs` full-batch Adam steps, attributes the ranking rows with Captum,
ranks by mean |attribution| and drops half. chaosjax runs the same eliminations (same data, schedule,
network and training) as one program: every round a masked retraining inside a `lax.scan`, the
methods side by side in one `vmap`.

Printed: both times for one formula (all methods), the ratio, and the whole grid (formulas 10-14 x
methods) in chaosjax against the peer's one-formula time times the number of formulas.

    python benchmarks/rfe.py --epochs 200                 # CPU, a few minutes
    python benchmarks/rfe.py --device gpu --epochs 1000   # the study's setting on an accelerator
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from chaosjax import rfe
from chaosjax.tracks import rfe as track

METHODS = ("saliency", "integrated_gradients", "deeplift", "feature_ablation")


def torch_rfe(problem: rfe.Problem, counts, method: str, epochs: int, lr: float, device: str, seed: int) -> float:
    """The study's loop for one method; returns seconds."""
    import captum.attr as ca
    import torch

    dev = torch.device("cuda" if device == "gpu" else "cpu")
    x_train = torch.tensor(np.asarray(problem.x_train), device=dev)
    y_train = torch.tensor(np.asarray(problem.y_train), device=dev)[:, None]
    x_rank = torch.tensor(np.asarray(problem.x_rank), device=dev)
    kept = np.flatnonzero(np.asarray(problem.valid))
    torch.manual_seed(seed)
    start = time.perf_counter()
    for r in range(len(counts)):
        cols = torch.tensor(kept, device=dev)
        model = torch.nn.Sequential(
            torch.nn.Linear(len(kept), 100), torch.nn.GELU(), torch.nn.Linear(100, 100), torch.nn.GELU(),
            torch.nn.Linear(100, 100), torch.nn.GELU(), torch.nn.Linear(100, 1),
        ).to(dev)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        xs = x_train[:, cols]
        for _ in range(epochs):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(xs), y_train).backward()
            optimizer.step()
        if r == len(counts) - 1:
            break  # the last round trains the final model only
        model.eval()
        xr = x_rank[:, cols]
        explainer = {
            "saliency": lambda: ca.Saliency(model).attribute(xr, target=0, abs=True),
            "integrated_gradients": lambda: ca.IntegratedGradients(model).attribute(xr, target=0, n_steps=10),
            "deeplift": lambda: ca.DeepLift(model).attribute(xr, target=0),
            "feature_ablation": lambda: ca.FeatureAblation(model).attribute(xr, target=0),
        }[method]
        importance = explainer().abs().mean(0).detach().cpu().numpy()
        order = np.argsort(-importance, kind="stable")[: counts[r + 1]]
        kept = kept[np.sort(order)]
    if device == "gpu":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def chaosjax_rfe(problems: list[rfe.Problem], counts_list, epochs: int, lr: float) -> float:
    members = [(p, c, mi) for p, c in zip(problems, counts_list) for mi in range(len(METHODS))]
    grid = track.stack_problems([p for p, _, _ in members])
    counts = rfe.pad_counts([c for _, c, _ in members])
    from chaosjax.models import mlp

    model = mlp(grid.x_train.shape[-1], depth=3, width=100)
    options = {"integrated_gradients": {"steps": 10}}  # draws chunked by rfe.draw_batch_size()
    start = time.perf_counter()
    records = rfe.eliminate(grid, counts, [mi for *_, mi in members], jax.random.split(jax.random.key(0), len(members)),
                            model=model, methods=METHODS, epochs=epochs, learning_rate=lr, method_options=options)
    jax.block_until_ready(records)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formulas", default="10,11,12,13,14")
    parser.add_argument("--noise", type=int, default=150)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="cpu", choices=("cpu", "gpu"), help="where PyTorch runs")
    args = parser.parse_args(argv)

    formulas = tuple(int(f) for f in args.formulas.split(","))
    config = track.RFEConfig(formulas=formulas, noise_features=args.noise, n=args.n, protocol="corrected")
    datasets = track.load_datasets(config, seed=0)
    problems = [d.problem for d in datasets]
    counts = [rfe.keep_counts(int(np.sum(d.problem.valid)), d.k, "halve") for d in datasets]
    print(f"# RFE: formulas {formulas}, {args.noise} noise columns, {args.n} rows, halving to m, "
          f"{args.epochs} epochs per round, methods {', '.join(METHODS)}")
    print(f"# jax {jax.__version__} on {jax.devices()[0].device_kind}")

    one = chaosjax_rfe(problems[:1], counts[:1], args.epochs, args.lr)
    one_again = chaosjax_rfe(problems[:1], counts[:1], args.epochs, args.lr)
    theirs = sum(torch_rfe(problems[0], counts[0], m, args.epochs, args.lr, args.device, seed=0) for m in METHODS)
    print("| run | PyTorch + Captum (s) | chaosjax (s) | speed-up |")
    print("|---|---:|---:|---:|")
    print(f"| formula {formulas[0]}, {len(METHODS)} methods (compile included) | {theirs:.1f} | {one:.1f} | "
          f"{theirs / one:.1f}x |")
    print(f"| formula {formulas[0]}, {len(METHODS)} methods (compiled) | {theirs:.1f} | {one_again:.1f} | "
          f"{theirs / one_again:.1f}x |")
    if len(problems) > 1:
        grid = chaosjax_rfe(problems, counts, args.epochs, args.lr)
        extrapolated = theirs * len(problems)
        print(f"| formulas {args.formulas} x {len(METHODS)} methods (peer extrapolated) | {extrapolated:.1f} | "
              f"{grid:.1f} | {extrapolated / grid:.1f}x |")


if __name__ == "__main__":
    main()
