"""Audio attribution speed: chaosjax against PyTorch + Captum on the same weights, side by side.

Integrated gradients (10 Gauss-Legendre steps, zero baseline, w.r.t. the predicted class) on the audio track's
Transformer and LSTM (stem + body + max-pool + head, inference mode). The PyTorch models are built from
``torch.nn`` parts (``Conv1d``, ``BatchNorm1d``, ``LSTM``, ``TransformerEncoderLayer``) and receive chaosjax's
weights, and their logits are checked against chaosjax's before timing. Both libraries evaluate one
integration step over the whole batch at a time (chaosjax ``batch_size=1``, Captum ``internal_batch_size=clips``).
chaosjax's time is the steady state of a jitted call (compile time reported apart); Captum's the same call
repeated. Prints clips per second for each and the ratio.

    python benchmarks/audio.py                       # CPU: 8-kHz clips, a few of them
    python benchmarks/audio.py --clips 8 --repeats 1 # a quick look
    python benchmarks/audio.py --gpu                 # GPU sizing: 16-kHz clips, 256 per batch (~5 minutes)
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from chaosjax import attribution as A
from chaosjax.models import audio as M
from _timing import median_seconds  # benchmarks/_timing.py


def torch_model(body: str, variables, channels: int, classes: int):
    """The PyTorch twin of ``chaosjax.models.audio.<body>()`` with the same weights (eval mode)."""
    import torch
    from torch import nn

    p = jax.tree.map(lambda a: torch.tensor(np.asarray(a)), variables["params"].to_pure_dict())
    s = jax.tree.map(lambda a: torch.tensor(np.asarray(a)), variables["batch_stats"].to_pure_dict())

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(channels, 60, 80, stride=16)
            self.bn = nn.BatchNorm1d(60, eps=1e-5)
            if body == "lstm":
                self.rnn = nn.LSTM(60, p["layers"][0]["w_hh"].shape[0], batch_first=True)
            else:
                self.enc = nn.ModuleList([nn.TransformerEncoderLayer(60, 6, dim_feedforward=240, dropout=0.0,
                                                                     batch_first=True) for _ in p["layers"]])
            self.head = nn.Linear(p["head"]["kernel"].shape[0], classes)

        def forward(self, x):
            h = torch.relu(self.bn(self.conv(x)))
            h = nn.functional.max_pool1d(h, 4).transpose(1, 2)  # (B, T, 60)
            if body == "lstm":
                h = self.rnn(h)[0]
            else:
                t, d = h.shape[1], h.shape[2]
                pos = torch.arange(t, dtype=torch.float32)[:, None]
                div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))[None]
                pe = torch.zeros(t, d)
                pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
                h = h + pe[None].to(h.device)  # built on the CPU; the twin may run on a GPU
                for layer in self.enc:
                    h = layer(h)
            return self.head(h.max(dim=1).values)

    m = Twin()
    with torch.no_grad():
        m.conv.weight.copy_(p["stem"]["conv"]["kernel"].permute(2, 1, 0))
        m.conv.bias.copy_(p["stem"]["conv"]["bias"])
        m.bn.weight.copy_(p["stem"]["norm"]["scale"])
        m.bn.bias.copy_(p["stem"]["norm"]["bias"])
        m.bn.running_mean.copy_(s["stem"]["norm"]["mean"])
        m.bn.running_var.copy_(s["stem"]["norm"]["var"])
        if body == "lstm":
            layer = p["layers"][0]
            m.rnn.weight_ih_l0.copy_(layer["w_ih"].T)
            m.rnn.weight_hh_l0.copy_(layer["w_hh"].T)
            m.rnn.bias_ih_l0.copy_(layer["b"])
            m.rnn.bias_hh_l0.zero_()
        else:
            for tl, jl in zip(m.enc, [p["layers"][i] for i in sorted(p["layers"])]):
                tl.self_attn.in_proj_weight.copy_(jl["qkv"]["kernel"].T)
                tl.self_attn.in_proj_bias.copy_(jl["qkv"]["bias"])
                tl.self_attn.out_proj.weight.copy_(jl["out"]["kernel"].T)
                tl.self_attn.out_proj.bias.copy_(jl["out"]["bias"])
                tl.linear1.weight.copy_(jl["fc1"]["kernel"].T)
                tl.linear1.bias.copy_(jl["fc1"]["bias"])
                tl.linear2.weight.copy_(jl["fc2"]["kernel"].T)
                tl.linear2.bias.copy_(jl["fc2"]["bias"])
                for tn, jn in ((tl.norm1, jl["ln1"]), (tl.norm2, jl["ln2"])):
                    tn.weight.copy_(jn["scale"])
                    tn.bias.copy_(jn["bias"])
        m.head.weight.copy_(p["head"]["kernel"].T)
        m.head.bias.copy_(p["head"]["bias"])
    return m.eval()


def bench(body: str, args, device: str) -> dict:
    import torch
    from captum.attr import IntegratedGradients

    model = M.MODELS[body](10, 35)
    variables = model.init(jax.random.key(0))
    # Non-trivial running statistics, as after training.
    variables["batch_stats"] = jax.tree.map(lambda a: a + 0.1, variables["batch_stats"])
    x = jax.random.normal(jax.random.key(1), (args.clips, 10, args.sample_rate)) * 0.25
    twin = torch_model(body, variables, 10, 35).to(device)
    xt = torch.tensor(np.asarray(x), device=device)
    with torch.no_grad():
        ref = twin(xt).cpu().numpy()
    logits = np.asarray(model.apply(variables, x))
    err = float(np.abs(ref - logits).max())
    assert err < 1e-3 * max(1.0, float(np.abs(ref).max())), f"{body}: torch twin differs by {err}"
    pred = jnp.argmax(jnp.asarray(logits), axis=1)

    @jax.jit
    def ig(v, x, pred):
        f = A.target(lambda z: model.apply(v, z), pred)
        return A.integrated_gradients(f, x, steps=args.steps, batch_size=1)

    start = time.perf_counter()
    jax.block_until_ready(ig(variables, x, pred))
    compile_s = time.perf_counter() - start
    jax_s = median_seconds(lambda: jax.block_until_ready(ig(variables, x, pred)), args.repeats)

    captum = IntegratedGradients(twin)
    target = torch.tensor(np.asarray(pred), device=device)

    # cuDNN's RNN has no backward pass in eval mode; Captum users on a GPU turn cuDNN off for it.
    use_cudnn = not (device == "cuda" and body in ("lstm", "rnn"))

    def run_captum():
        with torch.backends.cudnn.flags(enabled=use_cudnn):
            out = captum.attribute(xt, baselines=0.0, target=target, n_steps=args.steps, method="gausslegendre",
                                   internal_batch_size=args.clips)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    run_captum()  # warm-up
    torch_s = median_seconds(run_captum, args.repeats)
    a_jax = np.asarray(ig(variables, x, pred))
    a_torch = run_captum().detach().cpu().numpy()
    rel = float(np.abs(a_jax - a_torch).max() / (np.abs(a_torch).max() + 1e-12))
    return {"model": body, "jax_clips_per_s": args.clips / jax_s, "captum_clips_per_s": args.clips / torch_s,
            "ratio": torch_s / jax_s, "compile_s": compile_s, "max_rel_diff": rel, "logit_diff": err}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--sample-rate", type=int, default=8000, help="clip length in samples (1 s)")
    parser.add_argument("--steps", type=int, default=10, help="integrated-gradients steps")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="transformer,lstm")
    parser.add_argument("--gpu", action="store_true", help="GPU sizing: 16-kHz clips, 256 per batch, 5 repeats")
    args = parser.parse_args(argv)
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.gpu:
        args.clips, args.sample_rate, args.repeats = 256, 16000, 5
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"jax {jax.__version__} ({jax.default_backend()}), torch {torch.__version__} ({device}), "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; {args.clips} clips x 10 channels x "
          f"{args.sample_rate} samples, IG {args.steps} steps")
    print("| model | chaosjax clips/s | Captum clips/s | speed-up | compile s | max rel. diff |")
    print("|---|---|---|---|---|---|")
    for body in args.models.split(","):
        r = bench(body.strip(), args, device)
        print(f"| {r['model']} | {r['jax_clips_per_s']:.1f} | {r['captum_clips_per_s']:.1f} | {r['ratio']:.2f}x | "
              f"{r['compile_s']:.1f} | {r['max_rel_diff']:.1e} |")


if __name__ == "__main__":
    main()
