#!/usr/bin/env bash
# One pass of the accelerator checks, sized to fit about eight and a half minutes on one GPU. Run from the repository root on
# a machine whose python3 has jax (CUDA), flax, optax, orbax, torch and captum. Logs go to ${OUT:-.}/gpu-*.txt.
set -u
out=${OUT:-.}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import jax, flax, optax, torch; print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'torch', torch.__version__)"
step() { local name=$1 limit=$2 log=$3; shift 3; echo "=== $name"; timeout "$limit" "$@" 2>&1 | grep -v Warning | tee "$out/$log"; echo "=== $name: exit ${PIPESTATUS[0]}"; }
# RFE speed, all four methods: the study's loop in PyTorch + Captum against chaosjax, one formula, then the grid.
step "rfe speed" 140 gpu-rfe-bench.txt python3 benchmarks/rfe.py --device gpu --epochs 1000
# RFE, the study's setting: formulas 10-14, 150 noise columns, halving to m, 1,000 epochs per round, 3 seeds.
step "rfe acceptance run" 180 gpu-rfe.txt python3 -m chaosjax rfe --formulas 10-14 --noise 150 --epochs 1000 \
  --seeds 0-2 --baselines linear,tree --out "$out/rfe" --quiet
step "audio speed" 50 gpu-audio.txt python3 benchmarks/audio.py --gpu
step "symbolic ablation" 90 gpu-scale.txt python3 benchmarks/scale.py --mode gpu --budget 45 --verbose \
  --axes lr,noise,n,depth,width,dropout,optimizer,label_noise
