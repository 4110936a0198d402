"""Symbolic grid on a CPU: cells one at a time (`lax.map`, bit-identical in any chunk) against side by side
(`vmap`, whose rounding depends on the grid's size), timed in the same run.

`chaosjax.tracks.symbolic` computes a CPU grid one cell at a time so that a cell's numbers do not depend on its
chunk; this measures what that costs. Training: `fit_grid(group=1)` against `group="auto"` (cache-sized
vmapped groups); attribution: each method over the grid, `lax.map` against `vmap`. Compilation is excluded
(one warm-up call each); the median of `--repeats` calls, the two sides taking turns, is reported.

    python benchmarks/cell_by_cell.py                       # the study's model, n 2,500 and 10,000, 15 formulas
    python benchmarks/cell_by_cell.py --n 600 --epochs 50   # a quick look
    # `make run`'s training (1,000 epochs, n 10,000), one at a time against groups of 5 and 15, compiling included:
    python benchmarks/cell_by_cell.py --n 10000 --epochs 1000 --train-only --groups 1,5,15 --repeats 1 --no-warmup

With `--groups`, training is timed for each fixed group size (cells vmapped side by side per group, groups one
after another) against one at a time (group 1), and each group size's final losses are compared with group 1's
bit for bit (how many cells differ, and the largest relative difference).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
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
    parser.add_argument("--groups", default="", help="training group sizes to time against group 1 (comma-separated)")
    parser.add_argument("--no-warmup", action="store_true",
                        help="with --groups: time the first (compiling) call too, for long runs")
    parser.add_argument("--train-only", action="store_true", help="time training only, not the attribution methods")
    args = parser.parse_args()
    print(f"backend {jax.default_backend()}, {jax.device_count()} device(s); {args.formulas} formulas, "
          f"{args.epochs} epochs, the study's 3 x 100 GELU MLP, 100 noise columns")
    for n in (int(v) for v in args.n.split(",")):
        config = sym.SymbolicConfig(formulas=tuple(range(args.formulas)), n=n, epochs=args.epochs,
                                    methods=METHODS)
        cells = sym.cells_of(config)
        grid = sym.build_grid(config, cells)
        model = sym.model_of(config)
        params = jax.vmap(model.init)(jnp.stack([sym.cell_stream(c, 1) for c in cells]))
        keys = jnp.stack([sym.cell_stream(c, 2) for c in cells])

        def train(group):
            return lambda: jax.block_until_ready(
                fit_grid(model.apply, params, grid.x_train, grid.y_train, keys, epochs=args.epochs, group=group))

        if args.groups:
            _compare_groups(args, n, train, [int(v) for v in args.groups.split(",")])
        else:
            _time_rows(args, n, [("train", train("auto"), train(1))])
        if args.train_only:
            continue
        rows = []
        trained = train(1)()
        refs = grid.x_train[:, :64]
        attr_keys = jnp.stack([sym.cell_stream(c, 3) for c in cells])
        for method in METHODS:
            options = tuple(sorted(sym.method_options(config, method).items()))

            def attribute(one_at_a_time, options=options, method=method):
                return lambda: jax.block_until_ready(sym.attribute_program(
                    model.apply, trained.params, grid.x_test, refs, attr_keys, method=method, options=options,
                    cell_by_cell=one_at_a_time))

            rows.append((method, attribute(False), attribute(True)))
        _time_rows(args, n, rows)


def _time_rows(args, n, rows) -> None:
    print("| n | step | side by side (s) | one at a time (s) | ratio |")
    print("|---|---|---|---|---|")
    for step, side, alone in rows:
        side(), alone()  # compile
        # Interleaved, so that a change in the machine's load between them does not favour one.
        times = [(median_seconds(side, 1), median_seconds(alone, 1)) for _ in range(args.repeats)]
        a, b = (statistics.median(t) for t in zip(*times))
        print(f"| {n} | {step} | {a:.3f} | {b:.3f} | {b / a:.2f} |", flush=True)


def _compare_groups(args, n, train, groups) -> None:
    """Training time per group size (median of `--repeats`, the sizes taking turns; the first round compiles,
    and is timed only with `--no-warmup`) and whether each size's final losses equal group 1's bit for bit."""
    sizes = sorted(set(groups) | {1})
    programs = {g: train(g) for g in sizes}
    times, losses = {g: [] for g in sizes}, {}
    for round_ in range(args.repeats + (0 if args.no_warmup else 1)):
        for g in sizes:
            start = time.perf_counter()
            losses[g] = np.asarray(programs[g]().losses[:, -1])
            if round_ or args.no_warmup:
                times[g].append(time.perf_counter() - start)
    print(f"| n | group | training (s) | / group 1 | cells differing from group 1 | max relative difference |")
    print("|---|---|---|---|---|---|")
    base = statistics.median(times[1])
    for g in sizes:
        t = statistics.median(times[g])
        differ = int(np.sum(losses[g] != losses[1]))
        rel = float(np.max(np.abs(losses[g] - losses[1]) / np.abs(losses[1])))
        print(f"| {n} | {g} | {t:.2f} | {t / base:.2f} | {differ} of {len(losses[1])} | {rel:.1e} |", flush=True)
    print(flush=True)


if __name__ == "__main__":
    main()
