"""Peak memory and speed of the audio track's sampling and perturbation methods by the draws taken at once.

Each draw of a sampling method (a noisy copy for SmoothGrad and gradient SHAP, a path point for integrated
gradients, a coalition or window for the perturbation methods) is the whole batch of attributed clips x seeds,
vmapped, as ``chaosjax audio`` runs it (``tracks.audio.attribute_program``, the TCN at the tiny preset's shapes,
synthetic clips, untrained models: the cost does not depend on the weights). Every (method, draws at once) runs in
its own process, which reports its peak resident memory (``ru_maxrss``) and the warm seconds of one attribution
(the median of ``--repeats`` after a first call).

    python benchmarks/audio_memory.py                                  # 64 clips x 3 seeds (the defaults), ~6 min
    python benchmarks/audio_memory.py --methods gradient_shap --draws all,1
    python benchmarks/audio_memory.py --methods kernel_shap,occlusion --draws 16,4,1   # perturbation methods
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import time


def measure(method: str, draws: str, clips: int, seeds: int, repeats: int) -> dict:
    import jax

    from chaosjax.tracks import audio as A
    from _timing import median_seconds  # benchmarks/_timing.py

    config = A.AudioConfig(source="synthetic", models=("tcn",), conditions=("RBFP",), seeds=tuple(range(seeds)),
                           n_attr=clips, n_val=max(clips, 64), methods=(method,))
    channels = config.spec().channels
    samples = {  # draws of every clip: the most that can be taken at once
        "integrated_gradients": config.ig_steps, "smoothgrad": config.smoothgrad_samples,
        "gradient_shap": config.shap_samples, "kernel_shap": A.PERTURBATION_SAMPLES, "lime": A.PERTURBATION_SAMPLES,
        "shapley_sampling": A.SHAPLEY_PERMUTATIONS * (channels - 1) + 2, "occlusion": 7 * channels,
        "shapley_exact": 2 ** channels}[method]
    config = dataclasses.replace(config, attribution_batch_size=samples if draws == "all" else int(draws))
    cell = A.cell_data(config, "RBFP")
    model = A.build_model(config, "tcn")
    variables = jax.vmap(model.init)(jax.random.split(jax.random.key(0), seeds))
    keys = jax.random.split(jax.random.key(1), seeds)
    options = A.method_options(config, method)

    def once():
        jax.block_until_ready(A.attribute_program(model, variables, cell.clips, keys, cell.refs, method=method,
                                           options=options))

    start = time.perf_counter()
    once()
    first = time.perf_counter() - start
    warm = median_seconds(once, repeats)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"method": method, "draws": draws, "samples": samples, "clips": clips, "seeds": seeds,
            "first_s": round(first, 2), "warm_s": round(warm, 2), "peak_gb": round(peak_kib * 1024 / 1e9, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="gradient_shap,smoothgrad,integrated_gradients")
    parser.add_argument("--draws", default="all,4,1", help="draws at once: 'all' or counts, comma-separated")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # internal: measure (method, draws) and print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one, args.clips, args.seeds, args.repeats)))
        return
    print(f"{'method':<22} {'draws at once':>13} {'peak GB':>8} {'warm s':>7} {'first s':>8}")
    for method in args.methods.split(","):
        for draws in args.draws.split(","):
            out = subprocess.run([sys.executable, __file__, "--one", method, draws, "--clips", str(args.clips),
                                  "--seeds", str(args.seeds), "--repeats", str(args.repeats)],
                                 capture_output=True, text=True)
            if out.returncode:
                print(f"{method:<22} {draws:>13}  failed (exit {out.returncode}): {out.stderr.strip()[-300:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            label = f"{draws} of {r['samples']}" if draws == "all" else draws
            print(f"{method:<22} {label:>13} {r['peak_gb']:>8} {r['warm_s']:>7} {r['first_s']:>8}", flush=True)
    print(f"{args.clips} clips x {args.seeds} seeds, TCN, tiny preset shapes; peak = the process's resident maximum")


if __name__ == "__main__":
    main()
