"""Symbolic grid on a CPU: cells one at a time (`lax.map`, bit-identical in any chunk) against side by side
(`vmap`, whose rounding depends on the grid's size), timed in the same run.

`chaosjax.tracks.symbolic` computes a CPU grid one cell at a time so that a cell's numbers do not depend on its
chunk; this measures what that costs. Training: `fit_grid(group=1)` against `group="auto"` (cache-sized
vmapped groups); attribution: each method over the grid, `lax.map` against `vmap`. Compilation is excluded
(one warm-up call each); the median of `--repeats` calls, the two sides taking turns, is reported.

    python benchmarks/cell_by_cell.py                       # the study's model, n 2,500 and 10,000, 15 formulas
    python benchmarks/cell_by_cell.py --n 600 --epochs 50   # a quick look
"""

from __future__ import annotations

import argparse
import statistics

import jax
import jax.numpy as jnp
from _timing import median_seconds

from chaosjax.train import fit_grid
from chaosjax.tracks import symbolic as sym

METHODS = ("saliency", "integrated_gradients", "deeplift", "feature_ablation")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="2500,10000", help="rows per table (comma-separated)")
    parser.add_argument("--formulas", type=int, default=15)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"backend {jax.default_backend()}, {jax.device_count()} device(s); {args.formulas} formulas, "
          f"{args.epochs} epochs, the study's 3 x 100 GELU MLP, 100 noise columns")
    print("| n | step | side by side (s) | one at a time (s) | ratio |")
    print("|---|---|---|---|---|")
    for n in (int(v) for v in args.n.split(",")):
        config = sym.SymbolicConfig(formulas=tuple(range(args.formulas)), n=n, epochs=args.epochs,
                                    methods=METHODS)
        cells = sym.cells_of(config)
        grid = sym.build_grid(config, cells)
        model = sym.model_of(config)
        params = jax.vmap(model.init)(jnp.stack([sym._stream(c, 1) for c in cells]))
        keys = jnp.stack([sym._stream(c, 2) for c in cells])

        def train(group):
            return lambda: jax.block_until_ready(
                fit_grid(model.apply, params, grid.x_train, grid.y_train, keys, epochs=args.epochs, group=group))

        rows = [("train", train("auto"), train(1))]
        trained = train(1)()
        refs = grid.x_train[:, :64]
        attr_keys = jnp.stack([sym._stream(c, 3) for c in cells])
        for method in METHODS:
            options = tuple(sorted(sym._method_options(config, method).items()))

            def attribute(one_at_a_time, options=options, method=method):
                return lambda: jax.block_until_ready(sym._attribute_grid(
                    model.apply, trained.params, grid.x_test, refs, attr_keys, method=method, options=options,
                    cell_by_cell=one_at_a_time))

            rows.append((method, attribute(False), attribute(True)))
        for step, side, alone in rows:
            side(), alone()  # compile
            # Interleaved, so that a change in the machine's load between them does not favour one.
            times = [(median_seconds(side, 1), median_seconds(alone, 1)) for _ in range(args.repeats)]
            a, b = (statistics.median(t) for t in zip(*times))
            print(f"| {n} | {step} | {a:.3f} | {b:.3f} | {b / a:.2f} |", flush=True)


if __name__ == "__main__":
    main()
