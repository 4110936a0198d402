"""A command-line run with JAX's persistent compilation cache off, cold (an empty cache) and warm (the cache the
cold run filled), end to end in fresh processes, the three taking turns.

    python benchmarks/compile_cache.py                      # formula 14, 1,000 epochs, four methods
    python benchmarks/compile_cache.py --epochs 200 --repeats 5

Each round runs `python -m chaosjax symbolic ...` three times: with `--no-compile-cache`, with `CHAOSJAX_CACHE`
pointing at a new empty directory (cold), and again on that directory (warm). Reported: the median wall and
CPU time of each, and the warm and cold runs against the uncached one. The results must not change: the script checks
that all three write the same `results.csv` (timing columns aside).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

TIMING = ["seconds", "train_seconds", "attr_run_seconds", "attr_peak_bytes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formulas", default="14")
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--methods", default="saliency,integrated_gradients,deeplift,feature_ablation")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    run = ["symbolic", "--formulas", args.formulas, "--epochs", str(args.epochs), "--methods", args.methods,
           "--quiet", "--overwrite"]
    env = {k: v for k, v in os.environ.items() if k not in ("CHAOSJAX_NO_COMPILE_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    times: dict[str, list[float]] = {"off": [], "cold": [], "warm": []}
    cpu: dict[str, list[float]] = {kind: [] for kind in times}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for r in range(args.repeats):
            cache = scratch / f"cache{r}"
            for kind, flags, cache_env in (("off", ["--no-compile-cache"], {}),
                                           ("cold", [], {"CHAOSJAX_CACHE": str(cache)}),
                                           ("warm", [], {"CHAOSJAX_CACHE": str(cache)})):
                out = scratch / f"{kind}{r}"
                used, start = _children_cpu(), time.perf_counter()
                subprocess.run([sys.executable, "-m", "chaosjax", *flags, *run, "--out", str(out)],
                               env={**env, **cache_env}, check=True, capture_output=True)
                times[kind].append(time.perf_counter() - start)
                cpu[kind].append(_children_cpu() - used)
        entries = sum(1 for _ in (scratch / "cache0" / "jax").iterdir())
        size = sum(p.stat().st_size for p in (scratch / "cache0" / "jax").iterdir()) / 2**20
        tables = {kind: pd.read_csv(scratch / f"{kind}0" / "results.csv").drop(columns=TIMING)
                  for kind in times}
        for kind in ("cold", "warm"):
            pd.testing.assert_frame_equal(tables[kind], tables["off"])
    off = statistics.median(times["off"])
    print(f"chaosjax symbolic --formulas {args.formulas} --epochs {args.epochs} --methods {args.methods}: "
          f"median of {args.repeats}, end to end (python start, imports, compile, run, write)")
    cpu_off = statistics.median(cpu["off"])
    print("| compilation cache | wall (s) | / off | CPU time (s) | / off |")
    print("|---|---|---|---|---|")
    for kind in times:
        t, c = statistics.median(times[kind]), statistics.median(cpu[kind])
        print(f"| {kind} | {t:.2f} | {t / off:.2f} | {c:.2f} | {c / cpu_off:.2f} |")
    print(f"\ncache after one run: {entries} programs, {size:.1f} MiB; results identical in all three")


def _children_cpu() -> float:
    """User + system seconds of the finished child processes (less sensitive than wall time to a shared machine's
    load)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
