"""The audio track's generator: one spoken word among nine noise channels (docs/protocol.md, "Audio").

A sample is a pure function of ``(key, index, condition)``: a clip ``(channels, length)`` (the Conv1d
layout the models read), its word label and the channel that holds the word.

* **foreground**: one clip of the word bank, drawn uniformly by the sample's key (a bank is int16,
  right-padded with zeros: ``chaosjax.data.speech.WordBank``); with ``random_onset`` it is shifted by
  ``U{0 .. length - word_length}`` samples (off by default: the study right-pads only);
* **background**, every other channel: ``RB`` the study's ``clip(N(0, 1) * 0.25, -1, 1)``; ``SB`` a window of
  ``length`` samples at a uniform offset in a uniformly drawn *file* of a procedural rainforest soundscape
  (`soundscape_bank`), one file per channel. Each file is ``scape_seconds`` long and was divided by the 99th
  percentile of its own ``|amplitude|`` and clipped to [-1, 1]: the study normalised each 1-s crop of a
  60-s field recording by the whole recording's quantile, which is what this reproduces;
* **channel**: ``FP`` channel 0; ``RP`` uniform in ``{0 .. channels - 1}``;
* composition: ``clip[c] = word if c == channel else background[c]``.

The soundscape (`soundscape`, pure JAX) is a 1/f noise bed (gain U(0.05, 0.3) x its std), FM bird chirps
(6 a second; 30-250 ms sin^2 envelopes; 1.5-6 kHz start, sweeps up to +-3 kHz, plus a 2nd harmonic at 0.3)
and an amplitude-modulated insect buzz (3-7 kHz carrier, 20-80 Hz AM); frequencies are given at 16 kHz and
scale with ``sample_rate / 16000`` so that 8-kHz clips keep below Nyquist. Train and validation use disjoint
files (different keys).

The key of sample ``i`` is ``fold_in(key, i)``: a dataset is a function of (seed, index) only, independent of
batch size or device. `AudioData.batch` vmaps `sample` over indices. The condition is a name or its code
(0-3, ``CONDITIONS.index``), possibly traced (then the background choice is a ``lax.cond``).

Presets (`PRESETS`): ``tiny`` 8 kHz, 1 s, 64 train / 8 validation speakers, 32 soundscape files of 10 s (16
train speakers were too few: a logistic regression on the clean words' spectrograms reaches 0.45 on unseen
voices with 16, 0.63 with 64) and backgrounds at ``background_gain=0.2`` (-14 dB): at the protocol's level the
TCN stays at chance on RBRP, SBFP and SBRP within a CPU budget of 1,000 steps of 32 clips (the study trained on
84,843 clips); on SB, likely because the global max-pool over time follows the soundscape's loud chirps;
``small`` 16 kHz, 1 s, 40 / 8 speakers, 64 files of 10 s; ``paper`` 16 kHz, 1 s, 2,424 / 285 speakers (the
study's 84,843 / 9,981 clips), 128 files of 30 s. ``small`` and ``paper`` keep the protocol's background level
(``background_gain=1``); ``--background-gain`` overrides any preset's. Supported rates: `SAMPLE_RATES`.

Cost per sample: ``O(channels x length)`` (RB normals, or SB slices of the bank) plus one word: ~0.3 s per
128 x 10 x 16,000 batch on a CPU core. The soundscape bank is built once (`soundscape_bank`): ``files x
seconds x rate`` samples (~0.1 s per 10-s file on a CPU core); stored as int16.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from chaosjax.data._conditions import CONDITIONS, condition_code  # shared with the vision track
from chaosjax.data.speech import WORDS, WordBank

__all__ = [
    "CONDITIONS",
    "PRESETS",
    "SAMPLE_RATES",
    "AudioData",
    "AudioSpec",
    "ComposedAudio",
    "Sample",
    "channel_groups",
    "condition_code",
    "SOURCES",
    "check_source",
    "dataset",
    "make_composed",
    "make_data",
    "parse_source",
    "preset",
    "soundscape",
    "soundscape_bank",
    "synthetic_bank",
]

SAMPLE_RATES = (8000, 16000)
#: name -> settings: generator geometry (`AudioSpec`) and the word bank's speakers per split.
PRESETS = {
    "tiny": dict(sample_rate=8000, scape_files=32, scape_seconds=10, train_speakers=64, val_speakers=8,
                 background_gain=0.2),
    "small": dict(sample_rate=16000, scape_files=64, scape_seconds=10, train_speakers=40, val_speakers=8),
    "paper": dict(sample_rate=16000, scape_files=128, scape_seconds=30, train_speakers=2424, val_speakers=285),
}
_SCAPE_SEED = 20240618  # fixed: the soundscape files are part of the benchmark, not of a run's seed


@dataclasses.dataclass(frozen=True)
class AudioSpec:
    """Static geometry of the clips (hashable: a static argument of jitted functions).

    Attributes:
      sample_rate: Hz, one of `SAMPLE_RATES`.
      seconds: clip duration (length = ``round(seconds * sample_rate)``).
      channels: channels per clip (one holds the word).
      random_onset: shift the word to a random onset instead of right-padding it (the study: off).
      scape_files: soundscape files per split for SB.
      scape_seconds: duration of each soundscape file (the 99% quantile is taken over the whole file).
      background_gain: multiplies the background channels (RB noise and SB soundscape, after the study's
        clipping); 1.0 is the protocol, lower raises the word's signal-to-noise ratio.
    """

    sample_rate: int = 16000
    seconds: float = 1.0
    channels: int = 10
    random_onset: bool = False
    scape_files: int = 64
    scape_seconds: int = 10
    background_gain: float = 1.0

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        if isinstance(self.sample_rate, bool) or self.sample_rate not in SAMPLE_RATES:
            raise ValueError(f"sample_rate: {self.sample_rate!r} Hz is not supported; expected one of "
                             f"{', '.join(map(str, SAMPLE_RATES))}")
        if not (isinstance(self.seconds, (int, float)) and 0.1 <= self.seconds <= 10):
            raise ValueError(f"seconds: expected a duration in [0.1, 10], got {self.seconds!r}")
        for name in ("channels", "scape_files", "scape_seconds"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (2 if name == "channels" else 1):
                raise ValueError(f"{name}: expected an integer >= {2 if name == 'channels' else 1}, got {v!r}")
        gain = self.background_gain
        if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not 0 <= gain <= 1:
            raise ValueError(f"background_gain: expected a number in [0, 1], got {gain!r}")
        if self.scape_seconds < self.seconds:
            raise ValueError(f"scape_seconds: files of {self.scape_seconds} s are shorter than the "
                             f"{self.seconds}-s clips")

    @property
    def length(self) -> int:
        return int(round(self.seconds * self.sample_rate))


def preset(name: str | AudioSpec) -> AudioSpec:
    """The `AudioSpec` of a preset name (``tiny``, ``small``, ``paper``); a spec is returned unchanged."""
    if isinstance(name, AudioSpec):
        return name
    if name not in PRESETS:
        raise ValueError(f"preset: unknown {name!r}; expected one of {', '.join(PRESETS)}")
    p = PRESETS[name]
    return AudioSpec(sample_rate=p["sample_rate"], scape_files=p["scape_files"], scape_seconds=p["scape_seconds"],
                     background_gain=p.get("background_gain", 1.0))


def channel_groups(spec: AudioSpec | str) -> np.ndarray:
    """Feature-ablation groups ``(channels, length)``: every sample of channel ``c`` is labelled ``c``."""
    spec = preset(spec)
    return np.repeat(np.arange(spec.channels, dtype=np.int32)[:, None], spec.length, axis=1)


class Sample(NamedTuple):
    """One sample (or a batch, with a leading axis on every field).

    clip: float32 ``(channels, length)`` in [-1, 1]; label: the word index into ``WORDS``; channel: the
    channel holding the word.
    """

    clip: jax.Array
    label: jax.Array
    channel: jax.Array


# ---------------------------------------------------------------------------------------------- soundscape


def soundscape(key: jax.Array, length: int, sample_rate: int, *, chirps_per_second: float = 6.0) -> jax.Array:
    """One procedural rainforest recording ``(length,)`` (module docstring), *not* normalised.

    ``x = bed + sum_k a_k env_k(t) (sin phi_k(t) + 0.3 sin 2 phi_k(t)) + b (0.5 + 0.5 sin 2 pi f_m t)
    sin 2 pi f_c t`` with ``bed = irfft(z / sqrt(f))`` (1/f power) scaled to std U(0.05, 0.3), and a linear FM
    chirp phase ``phi_k = 2 pi (f0 (t - t_k) + df / (2 d) (t - t_k)^2)``.
    Cost: ``O(length log length)`` for the bed plus ``O(chirps x 0.25 s x sample_rate)`` for the chirps.
    """
    scale = sample_rate / 16000.0
    n_chirps = max(1, int(round(chirps_per_second * length / sample_rate)))
    ks = jax.random.split(key, 11)
    t = jnp.arange(length, dtype=jnp.float32) / sample_rate
    half = length // 2 + 1
    spec = jax.random.normal(ks[0], (half,)) + 1j * jax.random.normal(ks[1], (half,))
    f = jnp.fft.rfftfreq(length, 1.0 / sample_rate).at[0].set(1.0)
    bed = jnp.fft.irfft(spec / jnp.sqrt(f), n=length).astype(jnp.float32)
    bed = bed / (jnp.std(bed) + 1e-12) * jax.random.uniform(ks[2], (), minval=0.05, maxval=0.3)
    dur_total = length / sample_rate
    on = jax.random.uniform(ks[3], (n_chirps, 1), maxval=dur_total * 0.98)
    dur = jax.random.uniform(ks[4], (n_chirps, 1), minval=0.03, maxval=0.25)
    nyq = sample_rate / 2
    f0 = jax.random.uniform(ks[5], (n_chirps, 1), minval=1500 * scale, maxval=6000 * scale)
    # Keep the sweep's end (and the chirp's 2nd harmonic, mostly) below Nyquist.
    df = jnp.clip(f0 + jax.random.uniform(ks[6], (n_chirps, 1), minval=-3000 * scale, maxval=3000 * scale),
                  0.05 * nyq, 0.95 * nyq) - f0
    amp = jax.random.uniform(ks[7], (n_chirps, 1))
    # Each chirp lives in a window of at most 0.25 s: compute it there and scatter-add it into the
    # recording (O(chirps x window) instead of O(chirps x length)).
    window = int(np.ceil(0.25 * sample_rate)) + 1
    start = jnp.floor(on * sample_rate).astype(jnp.int32)  # (n_chirps, 1)
    idx = start + jnp.arange(window)[None, :]
    rel = idx.astype(jnp.float32) / sample_rate - on
    tt = rel / dur
    env = jnp.where((tt >= 0) & (tt <= 1), jnp.sin(jnp.pi * jnp.clip(tt, 0.0, 1.0)) ** 2, 0.0)
    phase = 2 * jnp.pi * (f0 * rel + 0.5 * df / dur * rel**2)
    local = amp * env * (jnp.sin(phase) + 0.3 * jnp.sin(2 * phase))
    chirps = jnp.zeros((length + window,), jnp.float32).at[idx.reshape(-1)].add(local.reshape(-1))[:length]
    fc = jax.random.uniform(ks[8], (), minval=3000 * scale, maxval=7000 * scale)
    fm = jax.random.uniform(ks[9], (), minval=20.0, maxval=80.0)
    buzz = jax.random.uniform(ks[10], (), maxval=0.3)
    insects = buzz * (0.5 + 0.5 * jnp.sin(2 * jnp.pi * fm * t)) * jnp.sin(2 * jnp.pi * fc * t)
    return bed + chirps + insects


@functools.partial(jax.jit, static_argnames=("files", "length", "sample_rate"))
def _scape_files(key, *, files, length, sample_rate):
    def one(k):
        x = soundscape(k, length, sample_rate)
        q = jnp.quantile(jnp.abs(x), 0.99)  # over the whole file, as the study did per recording
        return jnp.round(jnp.clip(x / q, -1.0, 1.0) * 32767.0).astype(jnp.int16)

    return jax.lax.map(one, jax.random.split(key, files))


def soundscape_bank(spec: AudioSpec | str, split: str) -> jax.Array:
    """The SB files of `split`: int16 ``(scape_files, scape_seconds * sample_rate)`` (value / 32767 in [-1, 1]).

    Deterministic (a fixed key per split; train and validation disjoint). One file at a time (``lax.map``),
    so memory is one file's chirp matrix (``6 x seconds x length`` floats).
    """
    spec = preset(spec)
    if split not in ("train", "val"):
        raise ValueError(f"split: expected 'train' or 'val', got {split!r}")
    key = jax.random.fold_in(jax.random.key(_SCAPE_SEED), 0 if split == "train" else 1)
    return _scape_files(key, files=spec.scape_files, length=spec.scape_seconds * spec.sample_rate,
                        sample_rate=spec.sample_rate)


# ------------------------------------------------------------------------------------------- synthetic words


def synthetic_bank(spec: AudioSpec | str, split: str, *, per_class: int = 8, classes: int = len(WORDS),
                   seed: int = 0) -> WordBank:
    """A test and smoke-run foreground: ``classes x per_class`` synthetic "words" (tones), no eSpeak needed.

    Class ``c`` is a harmonic tone (partials 1, 2, 3 at 1, 0.5, 0.25) whose fundamental glides from
    ``f_c = 120 * 2^(c / 12)`` Hz to ``f_c * (1 + 0.2 * ((-1)^c))`` over the tone; each clip draws a pitch
    jitter of +-3% (half a semitone), a duration U(0.25, 0.7) s, a sin^2 envelope and a peak level U(0.3, 0.9).
    Learnable, not trivial under noise. Validation clips use another seed stream.
    Cost: ``O(classes x per_class x length)``, milliseconds.
    """
    spec = preset(spec)
    if split not in ("train", "val"):
        raise ValueError(f"split: expected 'train' or 'val', got {split!r}")
    for name, v in (("per_class", per_class), ("classes", classes)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {v!r}")
    rng = np.random.default_rng([seed, 7, 0 if split == "train" else 1])
    sr, length = spec.sample_rate, spec.length
    n = classes * per_class
    labels = np.repeat(np.arange(classes, dtype=np.int32), per_class)
    clips = np.zeros((n, length), np.int16)
    lengths = np.zeros(n, np.int32)
    for i, c in enumerate(labels):
        dur = min(length, int(rng.uniform(0.25, 0.7) * sr))
        t = np.arange(dur) / sr
        f0 = 120.0 * 2 ** (c / 12) * (1 + rng.uniform(-0.03, 0.03))
        glide = 1 + 0.2 * (-1) ** c * t / t[-1]
        phase = 2 * np.pi * np.cumsum(f0 * glide) / sr
        x = (np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(3 * phase)) * np.sin(np.pi * t / t[-1]) ** 2
        x = x / np.abs(x).max() * rng.uniform(0.3, 0.9)
        clips[i, :dur] = np.round(x * 32767).astype(np.int16)
        lengths[i] = dur
    first = 0 if split == "train" else 1_000_000
    return WordBank(clips, labels, lengths, np.full(n, first, np.int32), sr)


# ------------------------------------------------------------------------------------------------ generator


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class AudioData:
    """A generator: the word bank and the soundscape files on device (pytree leaves) and the static `spec`.

    Build with `make_data`. Being a pytree, it is passed *into* jitted functions as an argument (not baked
    in as a constant); `sample` and `batch` are pure.
    """

    words: jax.Array  # int16 (N, length), right-padded
    labels: jax.Array  # int32 (N,)
    lengths: jax.Array  # int32 (N,)
    scapes: jax.Array  # int16 (files, file_length)
    spec: AudioSpec = dataclasses.field(metadata=dict(static=True))

    @property
    def size(self) -> int | None:
        """Number of distinct samples (None: unbounded, samples are generated)."""
        return None

    def sample(self, key: jax.Array, index: Any, condition: Any) -> Sample:
        """Sample `index` of the dataset seeded by `key` under `condition` (a name or a 0-3 code)."""
        spec = self.spec
        code = condition_code(condition)
        k_fg, k_on, k_bg, k_pos = jax.random.split(jax.random.fold_in(key, index), 4)
        j = jax.random.randint(k_fg, (), 0, self.words.shape[0])
        word = jnp.take(self.words, j, axis=0).astype(jnp.float32) / 32767.0
        if spec.random_onset:
            # Right-padded, so a roll by at most (length - word length) keeps the word whole.
            room = spec.length - jnp.take(self.lengths, j) + 1
            word = jnp.roll(word, jax.random.randint(k_on, (), 0, jnp.maximum(room, 1)))
        label = jnp.take(self.labels, j).astype(jnp.int32)
        C, L = spec.channels, spec.length

        def noise(kb):
            return jnp.clip(jax.random.normal(kb, (C, L)) * 0.25, -1.0, 1.0)

        def scape(kb):
            k_file, k_off = jax.random.split(kb)
            files = jax.random.randint(k_file, (C,), 0, self.scapes.shape[0])
            offsets = jax.random.randint(k_off, (C,), 0, self.scapes.shape[1] - L + 1)
            cut = jax.vmap(lambda f, o: jax.lax.dynamic_slice(jnp.take(self.scapes, f, axis=0), (o,), (L,)))
            return cut(files, offsets).astype(jnp.float32) / 32767.0

        if isinstance(code, int):
            background = (scape if code >= 2 else noise)(k_bg)
        else:
            background = jax.lax.cond(code >= 2, scape, noise, k_bg)
        random_pos = code % 2 == 1
        channel = jnp.where(random_pos, jax.random.randint(k_pos, (), 0, C), 0).astype(jnp.int32)
        if spec.background_gain != 1:
            background = background * jnp.float32(spec.background_gain)
        clip = jnp.where((jnp.arange(C) == channel)[:, None], word[None, :], background)
        return Sample(clip, label, channel)

    def batch(self, key: jax.Array, indices: jax.Array, condition: Any) -> Sample:
        """`sample` vmapped over `indices` (an int array): fields with a leading axis ``len(indices)``."""
        code = condition_code(condition)
        return jax.vmap(lambda i: self.sample(key, i, code))(jnp.asarray(indices))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ComposedAudio:
    """Ready-made clips (the published ChaosMining audio files) behind the same `sample` / `batch` interface.

    ``sample(key, index, condition)`` returns clip ``index % N``; the key and the condition are ignored (the
    folder the files came from fixes the condition).
    """

    clips: jax.Array  # float32 (N, channels, length)
    labels: jax.Array
    channels: jax.Array
    spec: AudioSpec = dataclasses.field(metadata=dict(static=True))

    @property
    def size(self) -> int:
        return int(self.clips.shape[0])

    def sample(self, key: jax.Array, index: Any, condition: Any) -> Sample:
        del key
        condition_code(condition)
        i = jnp.asarray(index) % self.clips.shape[0]
        return Sample(jnp.take(self.clips, i, axis=0), jnp.take(self.labels, i), jnp.take(self.channels, i))

    def batch(self, key: jax.Array, indices: jax.Array, condition: Any) -> Sample:
        code = condition_code(condition)
        return jax.vmap(lambda i: self.sample(key, i, code))(jnp.asarray(indices))


def make_data(spec: AudioSpec | str, bank: WordBank, split: str = "train", *, scapes: Any = None) -> AudioData:
    """An `AudioData` from a `WordBank` (validated) and the split's soundscape files (built when None)."""
    spec = preset(spec)
    clips, labels, lengths = np.asarray(bank.clips), np.asarray(bank.labels), np.asarray(bank.lengths)
    if bank.sample_rate != spec.sample_rate:
        raise ValueError(f"bank: words at {bank.sample_rate} Hz, but the clips are {spec.sample_rate} Hz")
    if clips.ndim != 2 or clips.shape[0] < 1 or clips.shape[1] != spec.length:
        raise ValueError(f"bank: expected clips (N, {spec.length}), got shape {clips.shape}")
    if labels.shape != (clips.shape[0],) or lengths.shape != (clips.shape[0],):
        raise ValueError(f"bank: {clips.shape[0]} clips but labels {labels.shape} and lengths {lengths.shape}")
    if labels.min() < 0 or labels.max() >= len(WORDS):
        raise ValueError(f"bank: labels must index the {len(WORDS)} words, got range [{labels.min()}, {labels.max()}]")
    if clips.dtype != np.int16:
        if np.abs(clips).max() > 1.0:
            raise ValueError("bank: float clips must lie in [-1, 1]")
        clips = np.round(clips * 32767.0).astype(np.int16)
    scapes = soundscape_bank(spec, split) if scapes is None else jnp.asarray(scapes, jnp.int16)
    return AudioData(jnp.asarray(clips), jnp.asarray(labels, jnp.int32), jnp.asarray(lengths, jnp.int32),
                     scapes, spec)


def make_composed(composed, spec: AudioSpec | None = None) -> ComposedAudio:
    """A `ComposedAudio` from `chaosjax.data.audio_sources.ComposedClips` (spec inferred from the clips)."""
    clips = np.asarray(composed.clips, np.float32)
    if clips.ndim != 3:
        raise ValueError(f"composed: expected clips (N, channels, samples), got shape {clips.shape}")
    if spec is None:
        spec = AudioSpec(sample_rate=int(composed.sample_rate), seconds=clips.shape[2] / composed.sample_rate,
                         channels=clips.shape[1], scape_seconds=max(10, int(np.ceil(clips.shape[2] / composed.sample_rate))))
    if (spec.channels, spec.length) != clips.shape[1:]:
        raise ValueError(f"composed: clips are {clips.shape[1:]} (channels, samples), the spec says "
                         f"({spec.channels}, {spec.length})")
    return ComposedAudio(jnp.asarray(clips), jnp.asarray(composed.labels, jnp.int32),
                         jnp.asarray(composed.channels, jnp.int32), spec)


#: Foreground sources: embedded (`espeak`, `synthetic`) or a local path (`speechcommands:PATH`, `chaosmining:PATH`).
SOURCES = ("espeak", "synthetic", "speechcommands", "chaosmining")


def parse_source(text: str) -> tuple[str, str | None]:
    """``'espeak'`` -> ``('espeak', None)``; ``'speechcommands:/data/sc'`` -> ``('speechcommands', '/data/sc')``."""
    kind, sep, path = str(text).partition(":")
    if kind not in SOURCES:
        raise ValueError(f"source: unknown {kind!r}; expected one of {', '.join(SOURCES)} "
                         f"(speechcommands and chaosmining take a path: speechcommands:/data/speech_commands)")
    embedded = kind in ("espeak", "synthetic")
    if embedded and sep:
        raise ValueError(f"source: {kind!r} is embedded and takes no path")
    if not embedded and not path:
        raise ValueError(f"source: {kind!r} needs a local path, e.g. {kind}:/data/{kind}")
    return kind, (path or None)


def check_source(source: str) -> tuple[str, str | None]:
    """`parse_source` plus cheap availability checks (eSpeak installed, the folder exists), before any work."""
    kind, path = parse_source(source)
    if kind == "espeak":
        from chaosjax.data import speech

        speech._require_espeak()
    elif path is not None:
        from pathlib import Path

        if not Path(path).expanduser().is_dir():
            raise ValueError(f"source: path {path!r} does not exist or is not a directory")
    return kind, path


def dataset(spec: AudioSpec | str, split: str = "train", *, source: str = "espeak", condition: str | None = None,
            speakers: int | None = None, per_class: int | None = None, seed: int = 0, limit: int | None = None,
            scapes: Any = None):
    """The generator of one split from a source string (the CLI's ``--source``).

    ``espeak``: the eSpeak NG bank (`chaosjax.data.speech.espeak_bank`) with `speakers` speakers (default: the
    preset's train / validation counts, else 20 / 4); ``synthetic``: `synthetic_bank` (a test and smoke-run
    source) with `per_class` clips per class (default 8); ``speechcommands:PATH``: the Speech Commands folder;
    ``chaosmining:PATH``: ready-made clips, PATH holding ``<condition>/<split>/metadata.csv`` (or
    ``<split>/metadata.csv`` directly). `limit` caps the clips read by the loaders.
    """
    name = spec if isinstance(spec, str) else None
    spec = preset(spec)
    kind, path = check_source(source)
    if split not in ("train", "val"):
        raise ValueError(f"split: expected 'train' or 'val', got {split!r}")
    if kind == "chaosmining":
        from pathlib import Path

        from chaosjax.data import audio_sources

        folder = Path(path).expanduser()
        if condition is not None and (folder / condition).is_dir():
            folder = folder / condition
        return make_composed(audio_sources.load_chaosmining_audio(folder, split, limit=limit), spec)
    if kind == "espeak":
        from chaosjax.data import speech

        if speakers is None:
            p = PRESETS.get(name or "", {"train_speakers": 20, "val_speakers": 4})
            speakers = p["train_speakers" if split == "train" else "val_speakers"]
        bank = speech.espeak_bank(split, sample_rate=spec.sample_rate, speakers_count=speakers, seed=seed,
                                  length=spec.length)
    elif kind == "synthetic":
        bank = synthetic_bank(spec, split, per_class=per_class or 8, seed=seed)
    else:
        from chaosjax.data import audio_sources

        bank = audio_sources.load_speech_commands(path, split, sample_rate=spec.sample_rate, length=spec.length,
                                                  limit=limit)
    return make_data(spec, bank, split, scapes=scapes)
