"""RFE: a member pays for its own attribution method only (issue 14, item 12).

`chaosjax.rfe.eliminate` groups a grid's members by method when it builds the program (one `vmap` per method).
The earlier `lax.switch` over methods became a select under `vmap`: every member computed every method in
every round, so merely compiling feature ablation in made a saliency elimination ~14x slower (0.026 s -> 0.361 s
per run, measured when the issue was filed). Printed, per elimination run (median of the repeats, compiled
beforehand):

* saliency members, methods ("saliency",);
* the same members, methods ("saliency", "feature_ablation"), no member using feature ablation;
* a mixed grid, half saliency and half feature ablation, against the two one-method grids run apart.

    python benchmarks/rfe_methods.py               # CPU, about a minute
"""

from __future__ import annotations

import argparse

import jax
import numpy as np
from _timing import median_seconds

from chaosjax import rfe
from chaosjax.models import mlp


def problems(size: int, width: int, rows: int, seed: int = 0) -> rfe.Problem:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(size, 3 * rows, width)).astype(np.float32)
    y = (2 * x[..., 0] - x[..., 1]).astype(np.float32)
    a, b = slice(0, rows), slice(rows, 2 * rows)
    c = slice(2 * rows, 3 * rows)
    return rfe.Problem(x[:, a], y[:, a], x[:, b], y[:, b], x[:, c], y[:, c], np.ones((size, width), bool),
                       np.broadcast_to(np.arange(width) < 2, (size, width)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--width", type=int, default=32, help="features")
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    size = args.members
    grid = problems(size, args.width, args.rows)
    counts = rfe.pad_counts([rfe.keep_counts(args.width, 2, "halve")] * size)
    keys = jax.random.split(jax.random.key(0), size)
    model = mlp(args.width, depth=2, width=32)

    def timed(methods, ids):
        def go():
            jax.block_until_ready(rfe.eliminate(grid, counts, ids, keys, model=model, methods=methods,
                                                epochs=args.epochs, learning_rate=1e-2))
        go()  # compile
        return median_seconds(go, args.repeats) / size

    sal = timed(("saliency",), np.zeros(size, np.int32))
    with_fa = timed(("saliency", "feature_ablation"), np.zeros(size, np.int32))
    fa = timed(("feature_ablation",), np.zeros(size, np.int32))
    mixed = timed(("saliency", "feature_ablation"), np.arange(size, dtype=np.int32) % 2)
    print(f"backend {jax.default_backend()}; {size} members, {args.width} features, {args.rows} rows, "
          f"{args.epochs} epochs, rounds {len(counts[0])}; seconds per elimination run:")
    print(f"  saliency, methods (saliency,):                  {sal:.4f}")
    print(f"  saliency, methods (saliency, feature_ablation): {with_fa:.4f}  ({with_fa / sal:.2f}x)")
    print(f"  feature ablation alone:                         {fa:.4f}")
    print(f"  mixed half and half:                            {mixed:.4f}  "
          f"(the two apart, averaged: {(sal + fa) / 2:.4f})")


if __name__ == "__main__":
    main()
