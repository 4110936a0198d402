"""A command-line run with JAX's persistent compilation cache off, cold (an empty cache) and warm (the cache the
cold run filled), end to end in fresh processes, taking turns; optionally side by side with the study's own code.

    python benchmarks/compile_cache.py                      # formula 14, 1,000 epochs, four methods
    python benchmarks/compile_cache.py --epochs 200 --repeats 5
    python benchmarks/compile_cache.py --study-repo ~/src/ChaosMining    # and the study's script, same protocol

Each round runs `python -m chaosjax symbolic ...` three times: with `--no-compile-cache`, with `CHAOSJAX_CACHE`
pointing at a new empty directory (cold), and again on that directory (warm). Reported: the median wall and
CPU time of each, and each against the uncached run. The results must not change: the script checks that all
three write the same `results.csv` (timing columns aside).

With `--study-repo PATH` (a local checkout of the study's repository, github.com/geshijoker/ChaosMining), each
round also runs the study's functional-precision script, `examples/train_eval_simulation_topk.py`, on the same
formulas (rows of the study's own `formula.csv`) with the same protocol: 100 noise columns, label noise 0.01,
Adam at 1e-3, the same epochs, and the same four methods (saliency, IG with 10 steps, DeepLIFT, feature ablation).
That script also builds its ground truths with sympy and logs to TensorBoard, as the study ran it; it runs
without `--debug` (which turns on autograd's anomaly detection) unless `--study-debug` is given. It needs torch,
captum, sympy, scikit-learn, tqdm, pandas and `pip install ptflops torchinfo tensorboard`; its `data_utils`
imports torchaudio for the audio track only, so where torchaudio is not installed an empty stand-in module is put
on its path (the symbolic script never calls it).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from chaosjax._parse import parse_formulas

TIMING = ["seconds", "train_seconds", "attr_run_seconds", "attr_peak_bytes"]
STUDY_SCRIPT = Path("examples") / "train_eval_simulation_topk.py"
STUDY_DEPENDENCIES = ("torch", "captum", "sympy", "sklearn", "tqdm", "pandas", "ptflops", "torchinfo",
                      "tensorboard")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formulas", default="14")
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--methods", default="saliency,integrated_gradients,deeplift,feature_ablation")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--study-repo", type=Path, default=None,
                        help="a local checkout of the study's repository: also time its own script")
    parser.add_argument("--study-debug", action="store_true",
                        help="run the study's script with --debug, as its docstring's example command does")
    args = parser.parse_args()
    run = ["symbolic", "--formulas", args.formulas, "--epochs", str(args.epochs), "--methods", args.methods,
           "--quiet", "--overwrite"]
    env = {k: v for k, v in os.environ.items() if k not in ("CHAOSJAX_NO_COMPILE_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    kinds = ("off", "cold", "warm") + (("study",) if args.study_repo else ())
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        study = _study_command(args, scratch, env) if args.study_repo else None
        for r in range(args.repeats):
            cache = scratch / f"cache{r}"
            for kind in kinds:
                if kind == "study":
                    command, cwd, run_env = [*study[0], "-e", str(scratch / f"study{r}")], args.study_repo, study[1]
                else:
                    flags = ["--no-compile-cache"] if kind == "off" else []
                    command = [sys.executable, "-m", "chaosjax", *flags, *run, "--out", str(scratch / f"{kind}{r}")]
                    cwd, run_env = None, {**env, **({} if kind == "off" else {"CHAOSJAX_CACHE": str(cache)})}
                used, start = _children_cpu(), time.perf_counter()
                done = subprocess.run(command, cwd=cwd, env=run_env, capture_output=True, text=True)
                if done.returncode:
                    sys.exit(f"{kind} run failed ({' '.join(command)}):\n{done.stderr[-3000:]}")
                times[kind].append(time.perf_counter() - start)
                cpu[kind].append(_children_cpu() - used)
        entries = sum(1 for _ in (scratch / "cache0" / "jax").iterdir())
        size = sum(p.stat().st_size for p in (scratch / "cache0" / "jax").iterdir()) / 2**20
        tables = {kind: pd.read_csv(scratch / f"{kind}0" / "results.csv").drop(columns=TIMING)
                  for kind in ("off", "cold", "warm")}
        for kind in ("cold", "warm"):
            pd.testing.assert_frame_equal(tables[kind], tables["off"])
    off = statistics.median(times["off"])
    print(f"chaosjax symbolic --formulas {args.formulas} --epochs {args.epochs} --methods {args.methods}: "
          f"median of {args.repeats}, end to end (python start, imports, compile, run, write)")
    if study:
        print(f"study: {' '.join(study[0][1:])}" + (f" (stand-in torchaudio: {study[2]})" if study[2] else ""))
    cpu_off = statistics.median(cpu["off"])
    print("| run | wall (s) | / off | CPU time (s) | / off |")
    print("|---|---|---|---|---|")
    for kind in kinds:
        t, c = statistics.median(times[kind]), statistics.median(cpu[kind])
        print(f"| {kind} | {t:.2f} | {t / off:.2f} | {c:.2f} | {c / cpu_off:.2f} |")
    if study:
        theirs = statistics.median(times["study"])
        print("\nthe study's code against chaosjax (medians of wall time): " + ", ".join(
            f"{kind} {theirs / statistics.median(times[kind]):.1f}x" for kind in ("off", "cold", "warm")))
        print("per round (study / cold, study / warm): " + ", ".join(
            f"{s / c:.1f}x / {s / w:.1f}x" for s, c, w in zip(times["study"], times["cold"], times["warm"])))
    print(f"\ncache after one run: {entries} programs, {size:.1f} MiB; results identical off, cold and warm")


def _study_command(args, scratch: Path, env: dict[str, str]) -> tuple[list[str], dict[str, str], str]:
    """The study's script on the benchmark's formulas: (command without its experiment directory, environment,
    the stand-in torchaudio's directory or '')."""
    repo = args.study_repo.expanduser().resolve()
    script = repo / STUDY_SCRIPT
    if not script.is_file():
        sys.exit(f"--study-repo: {script} not found (expected a checkout of github.com/geshijoker/ChaosMining)")
    missing = [name for name in STUDY_DEPENDENCIES if importlib.util.find_spec(name) is None]
    if missing:
        sys.exit(f"--study-repo: the study's script needs {', '.join(missing)} "
                 "(pip install torch captum sympy scikit-learn tqdm pandas ptflops torchinfo tensorboard)")
    with open(repo / "data" / "symbolic_simulation" / "formula.csv", newline="") as f:
        rows = list(csv.reader(f))
    indices = parse_formulas(args.formulas)
    if not all(isinstance(i, int) and 0 <= i < len(rows) for i in indices):
        sys.exit(f"--study-repo: --formulas must be indices 0-{len(rows) - 1} of the study's formula.csv")
    formulas = scratch / "study_formulas.csv"
    with open(formulas, "w", newline="") as f:
        csv.writer(f).writerows(rows[i] for i in indices)
    path = [str(repo)]
    stand_in = ""
    if importlib.util.find_spec("torchaudio") is None:
        stand_in = str(scratch / "stand_in")
        (scratch / "stand_in" / "torchaudio").mkdir(parents=True)
        (scratch / "stand_in" / "torchaudio" / "__init__.py").write_text("")
        (scratch / "stand_in" / "torchaudio" / "transforms.py").write_text("MelSpectrogram = None\n")
        path.append(stand_in)
    run_env = {**env, "PYTHONPATH": os.pathsep.join(path + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    command = [sys.executable, str(STUDY_SCRIPT), "-d", str(formulas), "-n", "benchmark", "-s", "1111",
               "--num_noises", "100", "--ny_var", "0.01", "--optimizer", "Adam", "--learning_rate", "0.001",
               "--num_epochs", str(args.epochs), "--deterministic", *(["--debug"] if args.study_debug else [])]
    return command, run_env, stand_in


def _children_cpu() -> float:
    """User + system seconds of the finished child processes (less sensitive than wall time to a shared machine's
    load)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
