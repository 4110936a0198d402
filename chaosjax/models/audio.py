"""The audio track's models (Flax NNX): the study's shared stem, then an RNN, LSTM, TCN or Transformer.

Every model reads clips ``(B, C, L)`` (channels first, the study's Conv1d layout) and returns logits ``(B, classes)``:

* **stem** (the study's): Conv1d ``C -> 60``, kernel 80, stride 16, no padding; BatchNorm; ReLU; MaxPool 4. A clip
  of ``L`` samples becomes ``T = floor((floor((L - 80) / 16) + 1) / 4)`` frames of 60 features (1 s at 16 kHz:
  ``T = 249``; at 8 kHz: 124).
* **body**:
  - ``rnn``: Elman RNN, ``h_t = tanh(W_ih x_t + W_hh h_{t-1} + b)`` (PyTorch's ``nn.RNN``), ``layers`` x ``hidden``;
  - ``lstm``: LSTM with PyTorch's gate order (i, f, g, o) and fused weights, ``layers`` x ``hidden``;
  - ``tcn``: three residual blocks of two dilated ``k = 3`` convolutions (BatchNorm, ReLU), widths 60/120/120,
    dilations 1/2/4, "same" padding; a 1x1 convolution on the skip path where the width changes;
  - ``transformer``: sinusoidal positions, then ``depth`` (3) post-norm encoder layers (PyTorch's
    ``nn.TransformerEncoderLayer`` with ``norm_first=False``, ReLU feed-forward of width ``ff``), ``d = 60``, 6
    heads. Attention runs **over time within each clip** (``attend="time"``, the default). ``attend="batch"`` is
    the study's layout (docs/protocol.md, "Audio"): its ``nn.TransformerEncoderLayer`` left ``batch_first=False``
    and was fed ``(B, T, 60)``, so at every time step the ``B`` clips of a batch attend to each other (samples
    interact), without positional encodings (the study adds none).
  The recurrences are one ``lax.scan`` over time each, with the input projection of all steps done before it
  as one matrix product.
* **head**: global max-pool over time, then a linear layer. Both max-pools are ``lax.reduce_window``
  (``_max_pool_time``: its gradient is exact under ``jit``, where ``jnp.max``'s is not).

Weights are laid out so that a PyTorch module maps onto them by transposes only (``benchmarks/audio.py``):
``Conv1d.kernel = weight.transpose(2, 1, 0)``, ``nnx.Linear.kernel = weight.T``, fused LSTM ``w_ih = weight_ih_l0.T`` (gates i, f, g, o) and ``b = b_ih + b_hh``,
attention ``qkv.kernel = in_proj_weight.T``.

Functional face (as ``chaosjax.models.vision``): ``init(key) -> {"params", "batch_stats"}``;
``apply(variables, x)`` -> logits in inference mode (BatchNorm on running statistics: what attribution sees
under the ``corrected`` protocol); ``apply(variables, x, train=True)`` -> ``(logits, new_batch_stats)``
(BatchNorm on the batch's statistics, PyTorch's momentum 0.1: what the study's attribution saw). In inference
mode samples never interact (tested), except in the ``attend="batch"`` Transformer. Constructors are cached: equal
arguments give the same `Functional`, so jitted callers that take it as a static argument do not retrace.

Costs (forward, one 1-s clip at 16 kHz, 10 channels, default sizes): stem ~0.19 GFLOP (dominant for every body),
TCN ~0.03, LSTM (hidden 120) ~0.04, RNN ~0.01, Transformer ~0.03 GFLOP; the recurrences add ``T`` sequential
steps.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from chaosjax.models._functional import Functional, cached_constructor, stateful_functional

__all__ = ["ATTEND", "BODIES", "MODELS", "AudioModel", "Conv1d", "Stem", "audio_functional", "frames", "lstm", "rnn", "tcn", "transformer"]

STEM_WIDTH, STEM_KERNEL, STEM_STRIDE, STEM_POOL = 60, 80, 16, 4


def frames(length: int) -> int:
    """Frames after the stem for a clip of ``length`` samples: ``floor((floor((L - 80) / 16) + 1) / 4)``."""
    return ((length - STEM_KERNEL) // STEM_STRIDE + 1) // STEM_POOL


def _bn(c, rngs):
    # momentum 0.9 in flax = PyTorch's momentum 0.1; eps as PyTorch.
    return nnx.BatchNorm(c, momentum=0.9, epsilon=1e-5, rngs=rngs)


def _uniform(scale):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


class Conv1d(nnx.Module):
    """1-D convolution ``(B, T, C_in) -> (B, T', C_out)`` written as matrix products, not ``lax.conv``.

    ``y[b, t] = bias + sum_k x[b, t * stride + k * dilation - pad] @ kernel[k]`` (zero padding ``pad`` on both
    sides; kernel ``(K, C_in, C_out)``, as ``nnx.Conv`` and PyTorch's ``weight.transpose(2, 1, 0)``). Why: inside
    a ``lax.scan`` (the training loop of ``chaosjax.classify``) XLA:CPU lowers the weight gradient of a strided
    ``lax.conv`` to a slow loop, ~100x slower than outside it (6 s against 0.06 s per step for the stem on a
    batch of 32 1-s clips); matrix products are fast everywhere. A kernel that is a multiple of the stride (the
    stem: 80 = 5 x 16) is gathered as ``K / stride`` shifted blocks and contracted in one product; otherwise one
    product per tap. Cost: ``2 B T' K C_in C_out`` FLOPs, as a convolution.
    """

    def __init__(self, cin: int, cout: int, kernel: int, *, stride: int = 1, dilation: int = 1, pad: int = 0,
                 rngs: nnx.Rngs):
        scale = 1.0 / math.sqrt(cin * kernel)  # PyTorch's default (kaiming_uniform with a = sqrt(5))
        self.kernel = nnx.Param(_uniform(scale)(rngs.params(), (kernel, cin, cout)))
        self.bias = nnx.Param(_uniform(scale)(rngs.params(), (cout,)))
        self.size, self.stride, self.dilation, self.pad = kernel, stride, dilation, pad

    def __call__(self, x):
        if self.pad:
            x = jnp.pad(x, ((0, 0), (self.pad, self.pad), (0, 0)))
        b, n, c = x.shape
        k, s, d = self.size, self.stride, self.dilation
        t = (n - d * (k - 1) - 1) // s + 1
        w = self.kernel[...]
        if d == 1 and k % s == 0:
            blocks = x[:, :(t + k // s - 1) * s].reshape(b, t + k // s - 1, s, c)
            cols = jnp.concatenate([blocks[:, i:i + t] for i in range(k // s)], axis=2)  # (B, T', K, C_in)
            y = jnp.einsum("btkc,kco->bto", cols, w)
        else:
            y = sum(jnp.einsum("btc,co->bto", x[:, j * d: j * d + s * (t - 1) + 1: s], w[j]) for j in range(k))
        return y + self.bias[...][None, None, :]


class Stem(nnx.Module):
    """Conv1d(C -> 60, k 80, s 16) + BatchNorm + ReLU + MaxPool(4): ``(B, C, L) -> (B, T, 60)``."""

    def __init__(self, channels: int, *, rngs: nnx.Rngs):
        self.conv = Conv1d(channels, STEM_WIDTH, STEM_KERNEL, stride=STEM_STRIDE, rngs=rngs)
        self.norm = _bn(STEM_WIDTH, rngs)

    def __call__(self, x, train: bool = False):
        h = self.conv(jnp.swapaxes(x, 1, 2))  # channels-last inside the model
        h = jax.nn.relu(self.norm(h, use_running_average=not train))
        return _max_pool_time(h, STEM_POOL)


def _max_pool_time(h: jax.Array, window: int) -> jax.Array:
    """Max over non-overlapping windows of ``window`` frames: ``(B, T, C) -> (B, T // window, C)`` (trailing frames
    dropped, as PyTorch's ``MaxPool1d``).

    ``lax.reduce_window``, not ``jnp.max`` over a reshape: ``jnp.max``'s gradient finds the maximum by comparing the
    operand with the output for equality, and under ``jit`` XLA may recompute the operand in another fusion with
    different rounding, so the comparison fails and the window's gradient is lost (measured: up to 40% of a
    training-mode saliency map). ``reduce_window``'s gradient selects inside one operation and goes to a single
    maximum per window, as PyTorch's does.
    """
    return jax.lax.reduce_window(h, np.array(-np.inf, h.dtype), jax.lax.max, (1, window, 1), (1, window, 1),
                                 "VALID")


class _Recurrent(nnx.Module):
    """One RNN or LSTM layer over ``(B, T, F) -> (B, T, H)``, PyTorch's equations and initialisation."""

    def __init__(self, features: int, hidden: int, lstm: bool, *, rngs: nnx.Rngs):
        gates = 4 if lstm else 1
        init = _uniform(1.0 / math.sqrt(hidden))
        self.lstm, self.hidden = lstm, hidden
        self.w_ih = nnx.Param(init(rngs.params(), (features, gates * hidden)))
        self.w_hh = nnx.Param(init(rngs.params(), (hidden, gates * hidden)))
        self.b = nnx.Param(init(rngs.params(), (gates * hidden,)) + init(rngs.params(), (gates * hidden,)))

    def __call__(self, x):
        b, H = x.shape[0], self.hidden
        xw = jnp.einsum("btf,fg->tbg", x, self.w_ih[...]) + self.b[...][None, None, :]  # all steps' inputs at once
        w_hh = self.w_hh[...]

        if self.lstm:
            def step(carry, xt):
                h, c = carry
                z = xt + h @ w_hh
                i, f, g, o = (z[:, k * H:(k + 1) * H] for k in range(4))
                c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
                h = jax.nn.sigmoid(o) * jnp.tanh(c)
                return (h, c), h

            zeros = jnp.zeros((b, H), x.dtype)
            _, hs = jax.lax.scan(step, (zeros, zeros), xw)
        else:
            def step(h, xt):
                h = jnp.tanh(xt + h @ w_hh)
                return h, h

            _, hs = jax.lax.scan(step, jnp.zeros((b, H), x.dtype), xw)
        return jnp.swapaxes(hs, 0, 1)


class _TCNBlock(nnx.Module):
    def __init__(self, cin, cout, dilation, *, rngs):
        conv = functools.partial(Conv1d, kernel=3, dilation=dilation, pad=dilation, rngs=rngs)
        self.conv1, self.bn1 = conv(cin, cout), _bn(cout, rngs)
        self.conv2, self.bn2 = conv(cout, cout), _bn(cout, rngs)
        self.skip = Conv1d(cin, cout, 1, rngs=rngs) if cin != cout else None

    def __call__(self, x, train):
        ura = not train
        h = jax.nn.relu(self.bn1(self.conv1(x), use_running_average=ura))
        h = self.bn2(self.conv2(h), use_running_average=ura)
        return jax.nn.relu(h + (self.skip(x) if self.skip is not None else x))


def _sinusoid(t: int, d: int) -> jax.Array:
    pos = jnp.arange(t, dtype=jnp.float32)[:, None]
    div = jnp.exp(jnp.arange(0, d, 2, dtype=jnp.float32) * (-math.log(10000.0) / d))[None, :]
    pe = jnp.zeros((t, d), jnp.float32)
    pe = pe.at[:, 0::2].set(jnp.sin(pos * div))
    return pe.at[:, 1::2].set(jnp.cos(pos * div)[:, : d // 2])


class _EncoderLayer(nnx.Module):
    """Post-norm encoder layer: ``x = LN(x + MHA(x)); x = LN(x + W2 relu(W1 x))`` on ``(B, T, d)``, attention over
    time (``attend="time"``) or, the study's layout, over the batch at each time step (``attend="batch"``)."""

    def __init__(self, d, heads, ff, *, attend="time", rngs):
        self.heads, self.attend = heads, attend
        self.qkv = nnx.Linear(d, 3 * d, rngs=rngs)
        self.out = nnx.Linear(d, d, rngs=rngs)
        self.ln1 = nnx.LayerNorm(d, epsilon=1e-5, rngs=rngs)
        self.fc1 = nnx.Linear(d, ff, rngs=rngs)
        self.fc2 = nnx.Linear(ff, d, rngs=rngs)
        self.ln2 = nnx.LayerNorm(d, epsilon=1e-5, rngs=rngs)

    def __call__(self, x):
        if self.attend == "batch":  # PyTorch's batch_first=False reading of (B, T, d): sequence B, batch T
            return jnp.swapaxes(self._layer(jnp.swapaxes(x, 0, 1)), 0, 1)
        return self._layer(x)

    def _layer(self, x):  # attention over axis 1 of (N, S, d); everything else is per token
        b, t, d = x.shape
        dh = d // self.heads
        q, k, v = jnp.split(self.qkv(x).reshape(b, t, 3, self.heads, dh), 3, axis=2)
        q, k, v = q[:, :, 0], k[:, :, 0], v[:, :, 0]  # (B, T, heads, dh)
        att = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(dh), axis=-1)
        a = jnp.einsum("bhqk,bkhd->bqhd", att, v).reshape(b, t, d)
        x = self.ln1(x + self.out(a))
        return self.ln2(x + self.fc2(jax.nn.relu(self.fc1(x))))


BODIES = ("rnn", "lstm", "tcn", "transformer")
ATTEND = ("time", "batch")


class AudioModel(nnx.Module):
    """Stem, one of `BODIES`, global max-pool over time, linear head (module docstring)."""

    def __init__(self, body: str, channels: int = 10, num_classes: int = 35, *, hidden: int = 120, layers: int = 1,
                 widths: tuple[int, ...] = (60, 120, 120), depth: int = 3, heads: int = 6, ff: int = 240,
                 attend: str = "time", rngs: nnx.Rngs):
        if body not in BODIES:
            raise ValueError(f"model: unknown {body!r}; expected one of {', '.join(BODIES)}")
        if attend not in ATTEND:
            raise ValueError(f"attend: expected one of {', '.join(ATTEND)}, got {attend!r}")
        self.body, self.channels, self.attend = body, channels, attend
        self.stem = Stem(channels, rngs=rngs)
        if body in ("rnn", "lstm"):
            sizes = [STEM_WIDTH] + [hidden] * layers
            self.layers = nnx.List([_Recurrent(a, b, body == "lstm", rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
            out = hidden
        elif body == "tcn":
            sizes = [STEM_WIDTH] + list(widths)
            self.layers = nnx.List([_TCNBlock(a, b, 2**i, rngs=rngs) for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))])
            out = sizes[-1]
        else:
            if STEM_WIDTH % heads:
                raise ValueError(f"heads: {heads} does not divide the model width {STEM_WIDTH}")
            self.layers = nnx.List([_EncoderLayer(STEM_WIDTH, heads, ff, attend=attend, rngs=rngs)
                                    for _ in range(depth)])
            out = STEM_WIDTH
        self.head = nnx.Linear(out, num_classes, rngs=rngs)

    def __call__(self, x, train: bool = False):
        if x.ndim != 3 or x.shape[1] != self.channels:
            raise ValueError(f"{self.body}: expected clips (B, {self.channels}, L), got shape {x.shape}")
        if frames(x.shape[2]) < 1:
            raise ValueError(f"{self.body}: clips of {x.shape[2]} samples are too short for the stem (need >= "
                             f"{STEM_KERNEL + STEM_STRIDE * (STEM_POOL - 1)})")
        h = self.stem(x, train)
        if self.body == "transformer" and self.attend == "time":
            h = h + _sinusoid(h.shape[1], h.shape[2])[None]
        for layer in self.layers:
            h = layer(h, train) if self.body == "tcn" else layer(h)
        return self.head(_max_pool_time(h, h.shape[1])[:, 0])  # global max over time


# --------------------------------------------------------------------------------------------- functional


audio_functional = stateful_functional  # the shared BatchNorm-aware functional face


def _check_pos_int(name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")


def _checked(channels, num_classes):
    _check_pos_int("channels", channels)
    _check_pos_int("num_classes", num_classes, 2)


@cached_constructor
def rnn(channels: int = 10, num_classes: int = 35, *, hidden: int = 120, layers: int = 1) -> Functional:
    """Functional stem + Elman RNN (cached by arguments)."""
    _checked(channels, num_classes)
    _check_pos_int("hidden", hidden)
    _check_pos_int("layers", layers)
    return audio_functional(lambda rngs: AudioModel("rnn", channels, num_classes, hidden=hidden, layers=layers,
                                                    rngs=rngs))


@cached_constructor
def lstm(channels: int = 10, num_classes: int = 35, *, hidden: int = 120, layers: int = 1) -> Functional:
    """Functional stem + LSTM (cached by arguments)."""
    _checked(channels, num_classes)
    _check_pos_int("hidden", hidden)
    _check_pos_int("layers", layers)
    return audio_functional(lambda rngs: AudioModel("lstm", channels, num_classes, hidden=hidden, layers=layers,
                                                    rngs=rngs))


@cached_constructor
def tcn(channels: int = 10, num_classes: int = 35, *, widths: tuple[int, ...] = (60, 120, 120)) -> Functional:
    """Functional stem + TCN (cached by arguments)."""
    _checked(channels, num_classes)
    widths = tuple(widths)
    if not widths:
        raise ValueError("widths: expected at least one block width")
    for w in widths:
        _check_pos_int("widths", w)
    return audio_functional(lambda rngs: AudioModel("tcn", channels, num_classes, widths=widths, rngs=rngs))


@cached_constructor
def transformer(channels: int = 10, num_classes: int = 35, *, depth: int = 3, heads: int = 6,
                ff: int = 240, attend: str = "time") -> Functional:
    """Functional stem + Transformer encoder (cached by arguments); `heads` must divide 60.

    ``attend="time"``: attention over time within each clip, with sinusoidal positions. ``attend="batch"``: the
    study's layout, attention across the clips of a batch at each time step, no positions (module docstring);
    the parameters have the same structure, so one set of weights runs in either layout.
    """
    _checked(channels, num_classes)
    if attend not in ATTEND:
        raise ValueError(f"attend: expected one of {', '.join(ATTEND)}, got {attend!r}")
    for name, v in (("depth", depth), ("heads", heads), ("ff", ff)):
        _check_pos_int(name, v)
    if STEM_WIDTH % heads:
        raise ValueError(f"heads: {heads} does not divide the model width {STEM_WIDTH}")
    return audio_functional(lambda rngs: AudioModel("transformer", channels, num_classes, depth=depth, heads=heads,
                                                    ff=ff, attend=attend, rngs=rngs))


#: name -> constructor ``(channels, num_classes, **options) -> Functional``.
MODELS: dict[str, Callable[..., Functional]] = {"rnn": rnn, "lstm": lstm, "tcn": tcn, "transformer": transformer}
