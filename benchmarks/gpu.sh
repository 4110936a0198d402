#!/usr/bin/env bash
# The accelerator checks, one group per call, each sized to fit one ten-minute device command on one GPU:
#
#   bash benchmarks/gpu.sh checks     # RFE speed and acceptance run, audio speed (about 8 minutes)
#   bash benchmarks/gpu.sh ablation   # the full symbolic ablation (1,305 distinct cells) within 560 s
#
# Run from the repository root on a machine whose python3 has jax (CUDA), flax, optax, orbax, torch and captum
# (python3 -m pip install --no-deps captum-*.whl where it is missing). Logs go to ${OUT:-.}/gpu-*.txt.
set -u
out=${OUT:-.}
group=${1:-checks}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import jax, flax, optax, torch; print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'torch', torch.__version__)"
step() { local name=$1 limit=$2 log=$3; shift 3; echo "=== $name"; timeout "$limit" "$@" 2>&1 | grep -v Warning | tee "$out/$log"; echo "=== $name: exit ${PIPESTATUS[0]}"; }
case $group in
checks)
  # RFE speed, all four methods: the study's loop in PyTorch + Captum against chaosjax, one formula, then the grid.
  step "rfe speed" 140 gpu-rfe-bench.txt python3 benchmarks/rfe.py --device gpu --epochs 1000
  # RFE, the study's setting: formulas 10-14, 150 noise columns, halving to m, 1,000 epochs per round, 3 seeds.
  step "rfe acceptance run" 180 gpu-rfe.txt python3 -m chaosjax rfe --formulas 10-14 --noise 150 --epochs 1000 \
    --seeds 0-2 --baselines linear,tree --out "$out/rfe" --quiet
  step "audio speed" 90 gpu-audio.txt python3 benchmarks/audio.py --gpu
  ;;
ablation)
  # Every axis of the study's ablation as one sweep (combine = "each": 29 distinct settings), 15 formulas x 3
  # seeds per setting, 4 chunks in flight so that the settings' compilations overlap; per-chunk times printed.
  step "symbolic ablation" 560 gpu-scale.txt python3 benchmarks/scale.py --mode gpu --verbose --workers 4
  ;;
*)
  echo "usage: bash benchmarks/gpu.sh [checks|ablation]" >&2
  exit 2
  ;;
esac
