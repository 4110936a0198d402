"""Training on a CPU against the matmul rate: the symbolic grid's training program, its FLOPs, a breakdown of
one step, and what XLA compiled, side by side in one run.

The symbolic track trains its default grid (15 formulas, 8,000 training rows of 110 columns, the study's 3 x 100
GELU MLP, full-batch Adam, MSE) with `fit_grid(group=1)` on a CPU: one cell after another (a `lax.map`-like scan
of size-1 vmaps), so every cell runs the very same program (`chaosjax.tracks.symbolic._cell_by_cell`). This
script times that program on `--cells` cells (each the same work) and reports:

* FLOPs from XLA's `cost_analysis()` of one compiled training step of one cell (forward, backward, Adam; a loop
  body is counted once, so the step is compiled on its own and multiplied by epochs x cells), checked against
  the count of the compiled `fit_grid` program itself (its loop body, one step);
* in every round, side by side: the machine's dense f32 matmul rate (`benchmarks/symbolic.py`'s
  `matmul_rate`, 2048^3), the rate of the step's own dots (the twelve contractions of one step, shapes as in
  training, one program) and the training rate; the training share of each is the median over rounds of the
  per-round ratio (the machine is shared: a ratio taken within a round cancels most of the load);
* side by side with it, a candidate that the profile suggested and that was not adopted: the exact GELU with its
  derivative rematerialised (`gelu_rematerialised`: the forward pass stores no Phi(x), the backward pass
  recomputes it; bit-identical results, checked here), timed in the same rounds (wall and CPU time);
* a breakdown of one step into separately compiled parts: forward dots, backward input-gradient dots,
  backward weight-gradient dots (also in two other layouts: `h.T` materialised first, and `(g.T @ h).T`),
  the exact GELU (forward, and forward + backward; also rematerialised) against
  the tanh GELU, the loss and its gradient, and the Adam update (medians of `--calls` calls taken round robin,
  so that every part sees the same load; the parts run alone, so they do not add up exactly to the fused step);
* what XLA made of the step: every contraction of the compiled program with its shape and operand layout
  (plain `dot`, or a YNNPACK fusion), the elementwise fusions of 8,000-row arrays (which hold `erf`,
  `exp`), and copies or transposes of 8,000-row arrays (none expected). `--dump DIR` writes the optimized HLO.

    python benchmarks/train_profile.py                              # 3 cells x 30 epochs, 15 rounds (~3 min)
    python benchmarks/train_profile.py --rounds 3 --calls 5         # a quicker look
    python benchmarks/train_profile.py --groups 1,15 --cells 15     # also the grid 15 side by side (vmapped)
    python benchmarks/train_profile.py --dump runs/train_profile    # and the optimized HLO text
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib
import os
import platform
import re
import statistics
import time

import jax
import jax.numpy as jnp
import optax
from symbolic import matmul_rate

from chaosjax import train
from chaosjax.models.mlp import _INV_SQRT_2PI, _norm_cdf, gelu_exact

mlp_module = importlib.import_module("chaosjax.models.mlp")  # the module (chaosjax.models.mlp is also a function)
from chaosjax.tracks import symbolic as sym


def flops_of(compiled) -> float:
    """FLOPs of a compiled program from `cost_analysis()`: a dict in recent JAX, a list of one dict per
    program in older versions (and `None` where the backend has no cost model)."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    return float(cost.get("flops", float("nan"))) if cost else float("nan")


def _run_blocking(fn, args):
    return jax.block_until_ready(fn(*args))


def _best_seconds(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def step_parts(model, params, x, y, width: int) -> tuple[dict[str, tuple], tuple]:
    """One step's parts as separately jitted functions with their arguments and FLOPs (of the dots), per step of
    one cell; and the whole step (forward, backward, Adam) with its arguments, for its FLOP count."""
    p = jax.tree.map(lambda a: a[0], params)
    named = [(jax.tree_util.keystr(path), leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(p)]
    kernels = [leaf for name, leaf in sorted(named, key=lambda kv: ("head" in kv[0], kv[0])) if "kernel" in name]
    n = x.shape[0]
    keys = jax.random.split(jax.random.key(7), 8)
    h = [jax.random.normal(k, (n, width), jnp.float32) for k in keys[:4]]  # activations / gradients
    g_out = jax.random.normal(keys[4], (n, 1), jnp.float32)
    w1, w2, w3, w4 = kernels  # (110, 100), (100, 100), (100, 100), (100, 1)
    bias = jax.random.normal(keys[5], (width,), jnp.float32)

    def forward_dots(x, h1, h2, h3):
        return x @ w1, h1 @ w2, h2 @ w3, h3 @ w4

    def input_grad_dots(g4, g3, g2):
        return g4 @ w4.T, g3 @ w3.T, g2 @ w2.T

    def weight_grad_dots(x, h1, h2, h3, g1, g2, g3, g4):
        return x.T @ g1, h1.T @ g2, h2.T @ g3, h3.T @ g4

    def weight_grad_dots_transposed(x, h1, h2, h3, g1, g2, g3, g4):
        # the activations transposed into (features, rows) first, as a (K-minor) forward-dot layout; the barrier
        # keeps XLA from folding the transpose back into the dot
        return tuple(jax.lax.optimization_barrier(a.T) @ b for a, b in ((x, g1), (h1, g2), (h2, g3), (h3, g4)))

    def weight_grad_dots_swapped(x, h1, h2, h3, g1, g2, g3, g4):
        return tuple((b.T @ a).T for a, b in ((x, g1), (h1, g2), (h2, g3), (h3, g4)))

    def gelu_forward(z0, z1, z2):
        return [gelu_exact(z + bias) for z in (z0, z1, z2)]

    def gelu_both(act):
        def f(z0, z1, z2, g):
            out, vjp = jax.vjp(lambda *zs: [act(z + bias) for z in zs], z0, z1, z2)
            return out, vjp([g, g, g])
        return f

    def loss_and_grad(pred):
        return jax.value_and_grad(lambda q: jnp.mean(jnp.square(q[:, 0] - y)))(pred)

    tx = optax.adam(1e-3)
    state = tx.init(p)

    def adam(grads, state, p):
        updates, state = tx.update(grads, state, p)
        return optax.apply_updates(p, updates), state

    def step(p, state, x, y):
        loss, grads = jax.value_and_grad(lambda q: jnp.mean(jnp.square(model.apply(q, x)[:, 0] - y)))(p)
        updates, state = tx.update(grads, state, p)
        return optax.apply_updates(p, updates), state, loss

    dot_flops = 2 * n * (w1.size + w2.size + w3.size + w4.size)
    return {
        "forward dots": (forward_dots, (x, h[0], h[1], h[2]), dot_flops),
        "input-gradient dots": (input_grad_dots, (g_out, h[0], h[1]), 2 * n * (w2.size + w3.size + w4.size)),
        "weight-gradient dots": (weight_grad_dots, (x, h[0], h[1], h[2], h[3], h[0], h[1], g_out), dot_flops),
        "weight-gradient dots, h.T first": (weight_grad_dots_transposed, (x, h[0], h[1], h[2], h[3], h[0], h[1], g_out),
                                            dot_flops),
        "weight-gradient dots, (g.T@h).T": (weight_grad_dots_swapped, (x, h[0], h[1], h[2], h[3], h[0], h[1], g_out),
                                            dot_flops),
        "exact GELU forward (x3)": (gelu_forward, (h[0], h[1], h[2]), None),
        "exact GELU fwd+bwd (x3)": (gelu_both(gelu_exact), (h[0], h[1], h[2], h[3]), None),
        "exact GELU fwd+bwd, remat (x3)": (gelu_both(gelu_rematerialised), (h[0], h[1], h[2], h[3]), None),
        "tanh GELU fwd+bwd (x3)": (gelu_both(lambda z: jax.nn.gelu(z, approximate=True)), (h[0], h[1], h[2], h[3]),
                                   None),
        "loss + its gradient": (loss_and_grad, (g_out,), None),
        "Adam update": (adam, (p, state, p), None),
    }, (step, (p, state, x, y))


#: Breakdown rows shown for comparison, not part of the step's sum.
NOT_IN_SUM = ("weight-gradient dots, h.T first", "weight-gradient dots, (g.T@h).T", "exact GELU forward (x3)",
              "exact GELU fwd+bwd, remat (x3)", "tanh GELU fwd+bwd (x3)")


def all_dots(parts) -> tuple:
    """The twelve contractions of one step (forward, input gradients, weight gradients) as one program."""
    fwd, a_fwd, _ = parts["forward dots"]
    inp, a_inp, _ = parts["input-gradient dots"]
    wgt, a_wgt, _ = parts["weight-gradient dots"]
    flops = sum(parts[k][2] for k in ("forward dots", "input-gradient dots", "weight-gradient dots"))
    return jax.jit(lambda a, b, c: (fwd(*a), inp(*b), wgt(*c))), (a_fwd, a_inp, a_wgt), flops


def _gelu_remat_tangent(x, t):
    pdf = jnp.exp(-0.5 * x * x) * _INV_SQRT_2PI
    return (_norm_cdf(x) + x * pdf) * t


_gelu_remat_tangent_checkpointed = jax.checkpoint(_gelu_remat_tangent)


@jax.custom_jvp
def gelu_rematerialised(x):
    """A candidate, measured here and not adopted: chaosjax's exact GELU with its derivative rematerialised
    (`jax.checkpoint` inside the jvp rule), so that the backward pass keeps only `x` and recomputes Phi(x) next
    to phi(x), and the forward pass is one loop per layer (bias, erf, product) instead of one storing Phi(x) and
    one reading it back. The same operations on the same values: the same numbers bit for bit."""
    return x * _norm_cdf(x)


@gelu_rematerialised.defjvp
def _gelu_rematerialised_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return x * _norm_cdf(x), _gelu_remat_tangent_checkpointed(x, t)


def _candidate_call(args, params, grid, keys, statics):
    """`fit_grid(group=1)` of the default model with `gelu_rematerialised` in place of the exact GELU: a fresh model
    (not the cached one) traced while `ACTIVATIONS["gelu"]` names the candidate, then put back."""
    config = sym.SymbolicConfig(n=args.n, epochs=args.epochs)
    fresh = mlp_module._mlp_cached.__wrapped__(sym.grid_width(config), 1, config.depth, config.width, "gelu", 0.0,
                                               False)

    def call():
        return jax.block_until_ready(train.fit_grid(fresh.apply, params, grid.x_train, grid.y_train, keys,
                                                    epochs=args.epochs, group=1))

    saved = mlp_module.ACTIVATIONS["gelu"]
    mlp_module.ACTIVATIONS["gelu"] = gelu_rematerialised
    try:
        candidate = call()  # traced and compiled now, with the candidate
        lowered = train._fit_grid_jit.lower(fresh.apply, params, grid.x_train, grid.y_train, keys,
                                            jnp.asarray(config.learning_rate, jnp.float32), data_axis=0, lr_axis=None,
                                            group=1, snapshot_every=0, **statics)
    finally:
        mlp_module.ACTIVATIONS["gelu"] = saved
    ours = train.fit_grid(sym.model_of(config).apply, params, grid.x_train, grid.y_train, keys, epochs=args.epochs,
                          group=1)
    same = all(bool(jnp.array_equal(a, b)) for a, b in zip(jax.tree.leaves(candidate), jax.tree.leaves(ours)))
    print(f"rematerialised GELU against chaosjax's, {args.epochs} epochs x {len(keys)} cells: trained params and "
          f"losses {'identical bit for bit' if same else 'DIFFERENT'}")
    return call, lowered.compile()


# ------------------------------------------------------------------------------------------------- the HLO


def hlo_summary(text: str, rows: int) -> list[str]:
    """What the training step (the loop body holding most of the program's `rows`-row work) is made of: its
    contractions with operand shapes and dimensions, its fusions of `rows`-row arrays with what they compute
    (dot, erf, exponential, reduce, transpose), and its copies or transposes of `rows`-row arrays."""
    bodies, name = {}, None
    for line in text.splitlines():
        m = re.match(r"^(?:ENTRY )?%?([\w.\-]+) \(", line)
        if m and line.rstrip().endswith("{"):
            name, bodies[name] = m.group(1), []
        elif name is not None:
            bodies[name].append(line)
    inst = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (\w+\[[\d,]*\])(?:\{[\d,]*\})? (\w[\w\-]*)\((.*)")
    found = {}
    for comp, lines in bodies.items():
        dots, counts = [], collections.Counter()
        for line in lines:
            m = inst.match(line)
            if not m:
                continue
            _, shape, op, rest = m.groups()
            big = str(rows) in shape
            contraction = None
            if op == "dot":
                contraction = (shape, rest, lines, "dot")
            elif op == "fusion":
                called = re.search(r"calls=%([\w.\-]+)", rest)
                kind = re.search(r'"kind":"(\w+)"', rest) or re.search(r"kind=(\w+)", rest)
                body = bodies.get(called.group(1), []) if called else []
                joined = "\n".join(body)
                holds = [p for p in ("dot", "erf", "exponential", "reduce", "transpose") if f" {p}(" in joined]
                if "dot" in holds:
                    dot_line = next(b for b in body if " dot(" in b)
                    contraction = (inst.match(dot_line).group(2), inst.match(dot_line).group(4), body, kind.group(1))
                elif big:
                    counts[f"{kind.group(1)} fusion {shape}: {'+'.join(holds) or 'elementwise'}"] += 1
            elif op in ("copy", "transpose") and big:
                counts[f"{op} {shape}"] += 1
            if contraction:
                shape, rest, scope, how = contraction
                dims = " ".join(re.findall(r"(?:lhs|rhs)_(?:batch|contracting)_dims=\{[\d,]*\}", rest))
                dots.append(f"{how:>13s}: {shape} = {_operand_shapes(scope, rest)} {dims}")
        if dots or counts:
            found[comp] = (dots, counts)
    if not found:
        return ["  (no contractions found)"]
    step = max(found, key=lambda c: len(found[c][0]) + sum(found[c][1].values()))
    dots, counts = found[step]
    out = [f"  the step (loop body %{step}): {len(dots)} contractions"] + [f"    {d}" for d in dots]
    out += [f"    {n} x {what}" for what, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    if not any(k.startswith(("copy", "transpose")) for k in counts):
        out.append(f"    no copy or transpose of a {rows}-row array")
    elsewhere = collections.Counter()
    for comp, (d, c) in found.items():
        if comp != step:
            elsewhere.update(c)
            elsewhere["contractions"] += len(d)
    if elsewhere:
        out.append("  outside the step (once per call, or fused bodies): "
                   + ", ".join(f"{n} x {w}" for w, n in sorted(elsewhere.items())))
    return out


def _operand_shapes(lines, rest) -> str:
    """The shapes of a dot's operands, looked up among the instructions of its computation."""
    names = re.findall(r"%([\w.\-]+)", rest.split(")")[0])
    shapes = []  # a fusion's parameters are looked up the same way
    for n in names:
        for line in lines:
            m = re.match(rf"^\s*(?:ROOT )?%{re.escape(n)} = (\w+\[[\d,]*\])", line)
            if m:
                shapes.append(m.group(1))
                break
    return " x ".join(shapes) or "?"


# ----------------------------------------------------------------------------------------------------- main


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=3, help="cells trained per timed call (each the same work)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs per timed call (short: the rounds interleave)")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15, help="rounds of matmul / dots / training, side by side")
    parser.add_argument("--calls", type=int, default=30, help="calls per part of the breakdown")
    parser.add_argument("--groups", default="1", help="fit_grid group sizes to time (the track's CPU choice: 1)")
    parser.add_argument("--no-candidate", action="store_true",
                        help="skip the side-by-side run of the rematerialised GELU (a candidate, not adopted)")
    parser.add_argument("--dump", default="", help="a folder to write the optimized HLO of each program into")
    args = parser.parse_args(argv)

    config = sym.SymbolicConfig(n=args.n, epochs=args.epochs)  # the default grid's shapes (width 110)
    cells = sym.cells_of(config)[: args.cells]
    grid = sym.build_grid(config, cells)
    model = sym.model_of(config)
    params = sym.init_cells(config, cells)
    keys = jnp.stack([sym.cell_stream(c, 2) for c in cells])
    x0, y0 = grid.x_train[0], grid.y_train[0]
    rows, columns = x0.shape
    print(f"# {len(cells)} cells of the default symbolic grid: {rows} x {columns} training rows, "
          f"{config.depth} x {config.width} exact-GELU MLP, full-batch {config.optimizer}, {args.epochs} epochs")
    print(f"# jax {jax.__version__} on {jax.devices()[0].device_kind} ({os.cpu_count()} CPUs, {platform.machine()}); "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")

    parts, (step_fn, step_args) = step_parts(model, params, x0, y0, config.width)
    step_flops = flops_of(jax.jit(step_fn).lower(*step_args).compile())
    statics = train._check_statics(config.optimizer, None, args.epochs, None, "mse", False, False, rows)
    lr = jnp.asarray(config.learning_rate, jnp.float32)
    programs = {}
    for group in (int(g) for g in args.groups.split(",")):
        compiled = train._fit_grid_jit.lower(model.apply, params, grid.x_train, grid.y_train, keys, lr, data_axis=0,
                                             lr_axis=None, group=None if group >= len(cells) else group,
                                             snapshot_every=0, **statics).compile()
        programs[group] = compiled
        if args.dump:
            os.makedirs(args.dump, exist_ok=True)
            with open(os.path.join(args.dump, f"fit_grid_group{group}.hlo.txt"), "w") as f:
                f.write(compiled.as_text())
    total_flops = step_flops * args.epochs * len(cells)
    print(f"FLOPs (cost_analysis): one step of one cell {step_flops / 1e9:.4f} GFLOP; the fit_grid program, its "
          f"loop body counted once: {', '.join(f'group {g} {flops_of(c) / 1e9:.4f}' for g, c in programs.items())}"
          f" GFLOP; timed: {total_flops / 1e12:.3f} TFLOP per call")

    dots, dot_args, dot_flops = all_dots(parts)
    dots(*dot_args)

    def fit_call(group):
        return lambda: jax.block_until_ready(train.fit_grid(model.apply, params, grid.x_train, grid.y_train, keys,
                                                            epochs=args.epochs, group=group))

    calls = {f"group={g}": fit_call(g) for g in programs}
    if not args.no_candidate:
        name = "group=1, GELU rematerialised (candidate)"
        calls[name], programs[name] = _candidate_call(args, params, grid, keys, statics)
    for call in calls.values():
        call()  # compiled above for the cost analysis; this call fills the public entry point's cache
    per_round = collections.defaultdict(list)
    first = next(iter(calls))
    for _ in range(args.rounds):
        peak = matmul_rate(repeats=3)
        dot_rate = dot_flops / _best_seconds(lambda: jax.block_until_ready(dots(*dot_args)), 5)
        per_round["peak"].append(peak)
        per_round["dots"].append(dot_rate)
        for name, call in calls.items():
            start, cpu = time.perf_counter(), time.process_time()
            call()
            rate = total_flops / (time.perf_counter() - start)
            per_round[f"{name} cpu"].append(time.process_time() - cpu)
            per_round[f"{name} cpu / first"].append(per_round[f"{name} cpu"][-1] / per_round[f"{first} cpu"][-1])
            per_round[name].append(rate)
            per_round[f"{name} / peak"].append(rate / peak)
            per_round[f"{name} / dots"].append(rate / dot_rate)
            per_round[f"{name} / first"].append(rate / per_round[next(iter(calls))][-1])
    med = {k: statistics.median(v) for k, v in per_round.items()}
    print(f"\n## rates, median of {args.rounds} rounds (each round: matmul, the step's dots, training, in turn)")
    print(f"dense f32 matmul 2048^3 (benchmarks/symbolic.py matmul_rate): {med['peak'] / 1e9:7.1f} GFLOP/s")
    print(f"the step's 12 dots alone, one program:                      {med['dots'] / 1e9:7.1f} GFLOP/s "
          f"({100 * dot_flops / step_flops:.0f}% of the step's FLOPs)")
    for name in calls:
        relative = "" if name == first else (f"; wall time x{1 / med[f'{name} / first']:.3f} of {first}'s, CPU time "
                                             f"(all threads) x{med[f'{name} cpu / first']:.3f}")
        print(f"training, fit_grid {name}: {med[name] / 1e9:.1f} GFLOP/s = {100 * med[f'{name} / peak']:.0f}% of "
              f"the matmul rate (per round {[round(100 * r) for r in per_round[f'{name} / peak']]}), "
              f"{100 * med[f'{name} / dots']:.0f}% of the dots' rate, "
              f"{1e3 * total_flops / med[name] / (args.epochs * len(cells)):.2f} ms per step{relative}")

    print(f"\n## one step of one cell, part by part (median of {args.calls} calls, each part compiled alone)")
    step_ms = 1e3 * step_flops / med[first]
    print(f"{'part':32s} {'ms':>7s} {'share':>6s} {'GFLOP/s':>8s}")
    runners = {}
    for name, (fn, fargs, _) in parts.items():
        runners[name] = functools.partial(_run_blocking, jax.jit(fn), fargs)
        runners[name]()  # compile
    samples = collections.defaultdict(list)
    for _ in range(args.calls):  # round robin: every part sees the same load, call by call
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - start)
    timed = {name: statistics.median(v) for name, v in samples.items()}
    total = sum(v for k, v in timed.items() if k not in NOT_IN_SUM)
    for name, seconds in timed.items():
        flops = parts[name][2]
        rate = f"{flops / seconds / 1e9:8.1f}" if flops else ""
        share = "" if name in NOT_IN_SUM else f"{100 * seconds / total:5.0f}%"
        print(f"{name:32s} {1e3 * seconds:7.3f} {share:>6s} {rate}")
    reference = jax.jit(parts["weight-gradient dots"][0])(*parts["weight-gradient dots"][1])
    for name in ("weight-gradient dots, h.T first", "weight-gradient dots, (g.T@h).T"):
        fn, fargs, _ = parts[name]
        same = all(bool(jnp.array_equal(a, b)) for a, b in zip(jax.jit(fn)(*fargs), reference))
        print(f"  ({name}: {'the same bits as' if same else 'rounds differently from'} the training layout)")
    print(f"{'sum of the parts':32s} {1e3 * total:7.3f}")
    print(f"{'the step inside training':32s} {step_ms:7.3f} {'':6s} {step_flops / step_ms / 1e6:8.1f}")

    for g, compiled in programs.items():
        print(f"\n## the compiled fit_grid program, {g if isinstance(g, str) else f'group={g}'}")
        print("\n".join(hlo_summary(compiled.as_text(), rows)))


if __name__ == "__main__":
    main()
