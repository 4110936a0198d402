"""Sweep throughput: cells per second of a symbolic grid on 1, 2 and 4 devices, and the full ablation.

CPU mode runs the same small sweep in fresh processes that see 1, 2 and 4 fake CPU devices
(`--xla_force_host_platform_device_count`): on a machine with few cores the fake devices share them,
so this shows the sharding overhead rather than a speed-up. GPU mode runs the study's whole symbolic
ablation — every axis of docs/protocol.md ("Symbolic") one at a time around the defaults, 15 formulas x 3
seeds each — as one `chaosjax.sweep` (`combine = "each"`: the default setting, listed on every axis,
runs once), and prints the planned cell count, the measured time and the XLA compilations.

    python benchmarks/scale.py                       # CPU: 1, 2, 4 fake devices
    python benchmarks/scale.py --mode gpu            # the full ablation on the visible accelerator
    python benchmarks/scale.py --mode gpu --plan     # only print the planned grid
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The study's ablation (docs/protocol.md, "Symbolic"), each axis swept with the others at their defaults: the sweep a
# user runs, `chaosjax sweep examples/ablation.toml`.
ABLATION_TOML = ROOT / "examples" / "ablation.toml"
ABLATION = {key: value for key, value in tomllib.loads(ABLATION_TOML.read_text())["symbolic"].items()
            if isinstance(value, list) and key != "methods"}
CPU_SWEEP = """
[sweep]
chunk_size = {chunk}

[symbolic]
formulas = "0-14"
seeds = [0]
noise = [{noise}]
n = {n}
epochs = {epochs}
methods = ["saliency", "integrated_gradients", "feature_ablation"]
"""


def cpu_mode(args) -> None:
    print(f"# {args.epochs} epochs, {args.n} rows, 15 formulas, chunks of {args.chunk} cells")
    print("| devices | cells | wall (s) | cells/s |")
    print("|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "sweep.toml"
        config.write_text(CPU_SWEEP.format(chunk=args.chunk, noise=args.noise, n=args.n, epochs=args.epochs))
        for devices in (1, 2, 4):
            env = {**os.environ, "PYTHONPATH": str(ROOT),
                   "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
            out = Path(tmp) / f"d{devices}"
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "chaosjax", "sweep", str(config), "--out", str(out), "--quiet"],
                           env=env, check=True, capture_output=True)
            wall = time.perf_counter() - start
            cells = json.loads((out / "config.json").read_text())["cells"]
            print(f"| {devices} | {cells} | {wall:.1f} | {cells / wall:.2f} |", flush=True)


def gpu_mode(args) -> None:
    from chaosjax import sweep

    description = sweep.load_toml(ABLATION_TOML)
    description["sweep"]["chunk_size"] = args.chunk
    table = description["symbolic"]
    table["epochs"] = args.epochs
    for axis in set(ABLATION) - set(args.axes):
        del table[axis]
    plan = sweep.plan(description)
    settings = len({c.setting for c in plan.chunks})
    listed = sum(len(ABLATION[a]) for a in args.axes)
    print(f"# symbolic ablation: {len(args.axes)} axes, {listed} settings of which {settings} distinct (the defaults "
          f"recur on every axis and run once), {plan.cells} cells (15 formulas x 3 seeds per setting; "
          f"{listed * 45} counting repeats), {args.epochs} epochs each")
    if args.plan:
        return
    import jax

    compiles = _count_compiles()
    print(f"# jax {jax.__version__} on {jax.devices()[0].device_kind} x {jax.local_device_count()}, "
          f"{args.workers} chunks in flight, one sweep")
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"#   [{time.perf_counter() - start:6.1f} s] {msg}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        sweep.run(description, Path(tmp) / "ablation", progress=False, workers=args.workers,
                  log=log if args.verbose else None)
    wall = time.perf_counter() - start
    print("| cells | settings | wall (s) | cells/s | XLA compiles | compiling (s, summed over threads) |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {plan.cells} | {settings} | {wall:.1f} | {plan.cells / wall:.2f} | {compiles['count']} | "
          f"{compiles['seconds']:.1f} |")
    target = f" ({'under' if wall < 600 else 'over'} the 10-minute target)" if len(args.axes) == len(ABLATION) else ""
    print(f"total: {wall:.1f} s{target}")


def _count_compiles() -> dict[str, float]:
    """A running count of XLA backend compilations and their summed seconds (JAX's monitoring events)."""
    import jax.monitoring

    totals = {"count": 0, "seconds": 0.0}

    def listener(event: str, seconds: float, **_) -> None:
        if event.endswith("backend_compile_duration"):
            totals["count"] += 1
            totals["seconds"] += seconds

    jax.monitoring.register_event_duration_secs_listener(listener)
    return totals


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="cpu", choices=("cpu", "gpu"))
    parser.add_argument("--epochs", type=int, default=None, help="default: 50 on CPU, 1000 (the study) on GPU")
    parser.add_argument("--n", type=int, default=2_000, help="rows (CPU mode)")
    parser.add_argument("--noise", type=int, default=100, help="noise columns (CPU mode)")
    parser.add_argument("--chunk", type=int, default=None, help="cells per chunk (default 8 on CPU, 45 on GPU)")
    parser.add_argument("--plan", action="store_true", help="GPU mode: print the grid and stop")
    parser.add_argument("--axes", default=",".join(ABLATION), help="GPU mode: the ablation axes to run")
    parser.add_argument("--verbose", action="store_true", help="GPU mode: print each chunk's train / attribute time")
    parser.add_argument("--workers", type=int, default=4,
                        help="GPU mode: chunks in flight at once (sweep.run's workers: compiles overlap)")
    args = parser.parse_args(argv)
    args.axes = [a.strip() for a in args.axes.split(",")]
    unknown = sorted(set(args.axes) - set(ABLATION))
    if unknown:
        parser.error(f"--axes: unknown axis {unknown[0]!r}; expected some of {', '.join(ABLATION)}")
    if args.mode == "cpu":
        args.epochs = args.epochs or 50
        args.chunk = args.chunk or 8
        cpu_mode(args)
    else:
        args.epochs = args.epochs or 1000
        args.chunk = args.chunk or 45
        gpu_mode(args)


if __name__ == "__main__":
    main()
