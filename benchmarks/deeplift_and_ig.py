"""Measurements behind three protocol choices (docs/protocol.md): DeepLIFT's trace cost, how far DeepLIFT's
summation-to-delta is off through max-pooling, and how many integrated-gradients steps the scores need.

    python benchmarks/deeplift_and_ig.py                 # all three (the IG part trains 5 + 15 MLPs)
    python benchmarks/deeplift_and_ig.py --part trace    # or: maxpool, ig
    python benchmarks/deeplift_and_ig.py --part ig --epochs 300   # a quicker look

1. trace: operations the DeepLIFT interpreter evaluates, and seconds to trace, for chains `y <- y + sin(y)` of
   growing depth (each level reuses the previous value twice).
2. maxpool: |sum(attr) - (f(x) - f(b))| relative to |f(x) - f(b)| through ReLU + max-pool networks: a small
   conv net in chaosjax and in PyTorch + Captum (Captum's own convergence delta), and the vision track's
   small CNN (untrained), with the zero baseline and with a random baseline per sample.
3. ig: integrated gradients with 10, 20 and 50 Gauss-Legendre steps on trained MLPs: the study's RFE setting
   (formulas 10-14, 150 noise columns; does the ranking by mean |attribution| change?) and its symbolic
   setting (15 formulas, 100 noise columns; how much do functional precision and uniform score move? scored
   under `--protocols`, default corrected).
"""

from __future__ import annotations

import argparse
import importlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from chaosjax import attribution as A
from chaosjax import metrics

deeplift_module = importlib.import_module("chaosjax.attribution.deeplift")


# ------------------------------------------------------------------------------------------------ trace


def trace_cost(depths=(4, 8, 12, 16, 24, 32)) -> None:
    counter = {"n": 0}
    original = deeplift_module._bind

    def counting(eqn, values):
        counter["n"] += 1
        return original(eqn, values)

    deeplift_module._bind = counting
    try:
        print("| depth | operations evaluated | trace seconds |\n|---|---|---|")
        x = jnp.linspace(-1.0, 1.0, 6).reshape(2, 3)
        for depth in depths:
            def f(z, depth=depth):
                for _ in range(depth):
                    z = z + jnp.sin(z)
                return jnp.sum(z, axis=1)

            counter["n"] = 0
            start = time.perf_counter()
            jax.make_jaxpr(lambda z: A.deeplift(f, z))(x)
            print(f"| {depth} | {counter['n']} | {time.perf_counter() - start:.3f} |")
    finally:
        deeplift_module._bind = original


# ---------------------------------------------------------------------------------------------- maxpool


def _gap(attr, delta) -> str:
    """mean |sum(attr) - delta|, mean |delta| and their ratio, as table cells."""
    total = np.asarray(jnp.sum(attr.reshape(attr.shape[0], -1), axis=1))
    delta = np.asarray(delta)
    gap, scale = float(np.mean(np.abs(total - delta))), float(np.mean(np.abs(delta)))
    return f"{gap:.4f} | {scale:.4f} | {gap / scale:.3f}"


def maxpool_gap(samples: int = 64) -> None:
    import torch
    from captum.attr import DeepLift

    rng = np.random.default_rng(0)
    print("| network | baseline | mean abs gap | mean abs f(x) - f(b) | gap / change | Captum: gap / change |\n"
          "|---|---|---|---|---|---|")
    torch.manual_seed(0)
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 4, 1)).eval()
    w = [jnp.asarray(p.detach().numpy()) for p in net.parameters()]
    dn = ("NCHW", "OIHW", "NCHW")

    def block(h, wk, bk):
        h = jax.lax.conv_general_dilated(h, wk, (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn)
        h = jax.nn.relu(h + bk[None, :, None, None])
        return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def f(x):
        h = block(block(x, w[0], w[1]), w[2], w[3])
        return (h.reshape(x.shape[0], -1) @ w[4].T + w[5][None])[:, 0]

    x = rng.normal(size=(samples, 3, 16, 16)).astype(np.float32)
    for name, b in (("zero", np.zeros_like(x)), ("random", rng.normal(size=x.shape).astype(np.float32))):
        ours = A.deeplift(f, jnp.asarray(x), baseline=jnp.asarray(b), rescale="captum")
        delta = f(jnp.asarray(x)) - f(jnp.asarray(b))
        theirs, conv = DeepLift(net).attribute(torch.tensor(x), baselines=torch.tensor(b), target=0,
                                               return_convergence_delta=True)
        captum_gap = float(np.mean(np.abs(conv.detach().numpy())) / np.mean(np.abs(np.asarray(delta))))
        print(f"| 2 x (conv3x3 + ReLU + maxpool2), 16 px | {name} | {_gap(ours, delta)} | {captum_gap:.3f} |")

    from chaosjax.models.vision import small_cnn

    model = small_cnn(32)
    variables = model.init(jax.random.key(0))
    logits = lambda z: model.apply(variables, z)  # noqa: E731
    images = jnp.asarray(rng.uniform(-1, 1, size=(samples, 32, 32, 3)).astype(np.float32))
    target = jnp.argmax(logits(images), axis=1)
    g = A.target(logits, target)
    for name, b in (("zero", jnp.zeros_like(images)),
                    ("random", jnp.asarray(rng.uniform(-1, 1, size=images.shape).astype(np.float32)))):
        attr = A.deeplift(g, images, baseline=b, rescale="captum")
        print(f"| vision small_cnn (untrained), 32 px | {name} | {_gap(attr, g(images) - g(b))} | - |")


# --------------------------------------------------------------------------------------------------- ig


def ig_steps(epochs: int, protocols: tuple[str, ...]) -> None:
    from chaosjax.tracks import symbolic as track

    def attrs(config):
        grid = track.build_grid(config, track.cells_of(config))
        trained = track.train_grid(config, grid)
        model = track.model_of(config)
        out = {}
        for steps in (10, 20, 50):
            out[steps] = [A.integrated_gradients(
                lambda z, g=g: model.apply(jax.tree.map(lambda a: a[g], trained.params), z)[:, 0],
                grid.x_test[g], steps=steps, batch_size=1) for g in range(len(grid.cells))]
        return grid, out

    # The study's RFE setting: does the ranking by mean |attribution| (what RFE drops by) change?
    config = track.SymbolicConfig(formulas=(10, 11, 12, 13, 14), noise_features=150, epochs=epochs)
    grid, out = attrs(config)
    print("RFE setting (formulas 10-14, 150 noise): IG with 10 or 20 steps against 50")
    print("| formula | max rel. diff of mean abs attr (10 vs 50) | (20 vs 50) | same ranking of all columns (10) |"
          " same halving rounds (10) |\n|---|---|---|---|---|")
    from chaosjax import rfe

    for g, cell in enumerate(grid.cells):
        valid = np.asarray(grid.mask[g])
        imp = {s: np.asarray(jnp.mean(jnp.abs(out[s][g]), axis=0))[valid] for s in out}
        rel = {s: np.max(np.abs(imp[s] - imp[50])) / np.max(imp[50]) for s in (10, 20)}
        same_rank = bool(np.array_equal(np.argsort(-imp[10], stable=True), np.argsort(-imp[50], stable=True)))
        counts = rfe.keep_counts(int(valid.sum()), int(grid.m[g]), "halve")
        same_rounds = all(set(np.argsort(-imp[10], stable=True)[:c]) == set(np.argsort(-imp[50], stable=True)[:c])
                          for c in counts[1:])
        print(f"| {cell.label} | {rel[10]:.2e} | {rel[20]:.2e} | {same_rank} | {same_rounds} |")

    # The symbolic setting: the two scores with 10, 20, 50 steps.
    for protocol in protocols:
        config = track.SymbolicConfig(epochs=epochs, protocol=protocol)
        grid, out = attrs(config)
        truth = track.ground_truths(grid, "integrated_gradients", protocol)
        print(f"\nsymbolic setting (15 formulas, 100 noise), protocol {protocol}: mean over formulas")
        print("| IG steps | functional precision | uniform score |\n|---|---|---|")
        for s in (10, 20, 50):
            fp = np.mean([float(metrics.functional_precision(out[s][g], int(grid.m[g]), valid=grid.mask[g]))
                          for g in range(len(grid.cells))])
            us = np.mean([float(metrics.uniform_score(out[s][g], truth[g], int(grid.m[g]), protocol=protocol,
                                                      valid=grid.mask[g])) for g in range(len(grid.cells))])
            print(f"| {s} | {fp:.5f} | {us:.5f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("trace", "maxpool", "ig", "all"), default="all")
    parser.add_argument("--epochs", type=int, default=1000, help="training epochs of the IG part's MLPs")
    parser.add_argument("--protocols", default="corrected",
                        help="scoring protocols of the IG part's symbolic setting (paper, corrected or both)")
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}\n")
    if args.part in ("trace", "all"):
        trace_cost()
        print()
    if args.part in ("maxpool", "all"):
        maxpool_gap()
        print()
    if args.part in ("ig", "all"):
        ig_steps(args.epochs, tuple(p.strip() for p in args.protocols.split(",") if p.strip()))


if __name__ == "__main__":
    main()
