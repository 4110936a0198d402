#!/usr/bin/env bash
# One pass of the accelerator checks, sized for a few minutes on one GPU. Run from the repository root on a
# machine whose python3 has jax (CUDA), flax, optax, orbax, torch and captum. Logs go to ${OUT:-.}/gpu-*.txt.
set -u
out=${OUT:-.}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import jax, flax, optax; print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__)"
step() { echo "=== $1"; shift; timeout "$@"; echo "=== exit $?"; }
# RFE, the study's setting: formulas 10-14, 150 noise columns, halving to m, 1,000 epochs per round.
step "rfe acceptance run" 240 python3 -m chaosjax rfe --formulas 10-14 --noise 150 --epochs 1000 \
  --baselines linear,tree --out "$out/rfe" --quiet 2>&1 | tee "$out/gpu-rfe.txt"
step "rfe speed" 200 python3 benchmarks/rfe.py --device gpu --epochs 1000 --formulas 10,11,12,13,14 2>&1 \
  | grep -v Warning | tee "$out/gpu-rfe-bench.txt"
step "full symbolic ablation" ${SCALE_SECONDS:-330} python3 benchmarks/scale.py --mode gpu --budget ${SCALE_BUDGET:-240} 2>&1 \
  | tee "$out/gpu-scale.txt"
