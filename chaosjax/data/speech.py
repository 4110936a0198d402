"""The audio track's word bank: the study's 35 words spoken by many synthetic speakers (eSpeak NG).

Host-side numpy and ctypes, run once per process (the per-sample mixing happens on device in
`chaosjax.data.audio`). This module imports no JAX, so the builder processes start fast.

The engine is eSpeak NG 1.52 as shipped inside the `espeakng-loader` wheel (library and voice data in the
wheel; an optional extra: ``pip install 'chaosjax[audio]'``). It is called through ctypes.

Speakers
--------
A speaker is ``(dialect, variant, rate, pitch, pitch_range)``: one of 8 English dialects x eSpeak's voice
variants (m1-m8, f1-f5, klatt, whisper, croak and ~90 named ones), a rate in [110, 230] words per minute,
a pitch in [20, 80] and a pitch range in [20, 90], all drawn from ``numpy.random.default_rng(seed)``. The
(dialect, variant) *voices* are shuffled once and cut in two pools, 90% train and 10% validation, so train
and validation speakers are disjoint in timbre, not only in prosody (Speech Commands' split is speaker
disjoint too). Speaker ``i`` of a split takes voice ``pool[i % len(pool)]`` with its own prosody.

Clips
-----
Each (speaker, word): synthesise at 22,050 Hz (int16), resample to the target rate with
``scipy.signal.resample_poly`` (16 kHz: 320/441; 8 kHz: 160/441), trim leading and trailing samples with
``|x| <= 1e-3``, peak-normalise to a level drawn from U(0.3, 0.9) (``default_rng([seed, speaker, word])``)
and right-pad with zeros to ``length`` (the study's Speech Commands clips are right-padded too). A word
longer than ``length`` is synthesised again 30% faster (at most three times; then cut with a 10-ms fade),
so every word fits the clip; ``WordBank.refits`` counts those retries.

Bit reproducibility
-------------------
The library keeps static state (it uses libc ``rand()``) that nothing resets: the same call repeated in one
process gives different samples, but a *fresh* process making the same ordered sequence of calls gives the
same bytes. So the builder never synthesises in the calling process: speakers are cut in fixed chunks of
`CHUNK_SPEAKERS`, and every chunk is built, in a fixed order, in a fresh spawned process
(``ProcessPoolExecutor(max_tasks_per_child=1)``). The bytes then depend on the engine version and the
settings only, not on the number of workers nor on what the caller did before. Banks are cached under
``$CHAOSJAX_CACHE`` (default ``$XDG_CACHE_HOME/chaosjax`` or ``~/.cache/chaosjax``) in ``speech/<key>.npz``,
keyed by the engine and builder versions and every setting.

Cost: ~1.5 ms per clip on a CPU core plus ~0.5 s to start each builder process; 35 words x 20 speakers
(700 clips) take ~2 s, the paper's ~95k clips ~2.7 min on one core (~15 s on 16). Memory: int16, ``2 *
length`` bytes per clip (95k clips at 16 kHz: 3 GB).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import hashlib
import importlib.util
import json
import multiprocessing
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from chaosjax._cache import cache_dir  # noqa: F401 -- public here too (the speech cache's root)

__all__ = [
    "CHUNK_SPEAKERS",
    "DIALECTS",
    "SPLITS",
    "WORDS",
    "EspeakUnavailable",
    "Speaker",
    "WordBank",
    "cache_dir",
    "engine_version",
    "espeak_available",
    "espeak_bank",
    "speakers",
    "synthesize",
]

#: The 35 Speech Commands v0.02 words, sorted; a label is the index in this tuple.
WORDS = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go", "happy",
    "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven", "sheila", "six", "stop",
    "three", "tree", "two", "up", "visual", "wow", "yes", "zero",
)
SPLITS = ("train", "val")
DIALECTS = ("en", "en-us", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc")
#: Speakers per builder process (fixed: it is part of what makes the bytes reproducible).
CHUNK_SPEAKERS = 32
_BUILDER_VERSION = 1
_NATIVE_RATE = 22050
_RESAMPLE = {16000: (320, 441), 8000: (160, 441)}
_INSTALL_HINT = ("install the optional extra: pip install 'chaosjax[audio]' (it brings espeakng-loader==0.2.4, "
                 "eSpeak NG's library and voices in one wheel), or use the synthetic source (--source synthetic)")


class EspeakUnavailable(ImportError, ValueError):
    """eSpeak NG (the `espeakng-loader` package) is not installed. A ValueError too, so the CLI reports it
    in one line."""


class Speaker(NamedTuple):
    dialect: str
    variant: str
    rate: int
    pitch: int
    pitch_range: int

    @property
    def voice(self) -> str:
        return f"{self.dialect}+{self.variant}"


class WordBank(NamedTuple):
    """Word clips of one split, host-side.

    clips: int16 ``(N, length)``, right-padded with zeros (value / 32767 is the waveform in [-1, 1]);
    labels: int32 ``(N,)`` indices into `WORDS`; lengths: int32 ``(N,)`` samples before padding;
    speakers: int32 ``(N,)`` speaker ids (disjoint between splits); sample_rate: Hz; refits: words that
    had to be synthesised faster to fit (0 for loaders).
    """

    clips: np.ndarray
    labels: np.ndarray
    lengths: np.ndarray
    speakers: np.ndarray
    sample_rate: int
    refits: int = 0


def espeak_available() -> bool:
    """True when the `espeakng-loader` package (eSpeak NG's library and data) is importable."""
    return importlib.util.find_spec("espeakng_loader") is not None


def _require_espeak():
    if not espeak_available():
        raise EspeakUnavailable(f"source: the 'espeak' word bank needs eSpeak NG, which is not installed; "
                                f"{_INSTALL_HINT}")
    import espeakng_loader

    return espeakng_loader


def engine_version() -> str:
    """``espeakng-loader <version>`` plus the library's own version string (part of the cache key)."""
    loader = _require_espeak()
    from importlib.metadata import version

    lib = ctypes.CDLL(loader.get_library_path())
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    return f"espeakng-loader {version('espeakng-loader')}; libespeak-ng {lib.espeak_Info(None).decode()}"


def _variants() -> tuple[str, ...]:
    loader = _require_espeak()
    folder = Path(loader.get_data_path()) / "voices" / "!v"
    # Names with spaces do not survive the '<dialect>+<variant>' syntax.
    return tuple(sorted(p.name for p in folder.iterdir() if p.is_file() and " " not in p.name))


def speakers(split: str, count: int, *, seed: int = 0, variants: tuple[str, ...] | None = None) -> list[Speaker]:
    """The first `count` speakers of `split` (module docstring); a pure function of its arguments."""
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    variants = _variants() if variants is None else tuple(variants)
    voices = [(d, v) for d in DIALECTS for v in variants]
    order = np.random.default_rng([seed, 0]).permutation(len(voices))
    n_val = max(1, len(voices) // 10)
    pool = [voices[i] for i in (order[:len(voices) - n_val] if split == "train" else order[len(voices) - n_val:])]
    rng = np.random.default_rng([seed, 1 if split == "train" else 2])
    out = []
    for i in range(count):
        rate, pitch, rng_range = int(rng.integers(110, 231)), int(rng.integers(20, 81)), int(rng.integers(20, 91))
        d, v = pool[i % len(pool)]
        out.append(Speaker(d, v, rate, pitch, rng_range))
    return out


# ------------------------------------------------------------------------------ the engine (builder side)

_AUDIO_OUTPUT_SYNCHRONOUS, _CHARS_AUTO = 2, 0
_RATE, _PITCH, _RANGE = 1, 3, 4
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_engine: dict = {}


def _init_engine():
    if _engine:
        return _engine
    loader = _require_espeak()
    lib = ctypes.CDLL(loader.get_library_path())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    buffer: list[np.ndarray] = []

    @_CALLBACK
    def callback(wav, n, events):
        if n > 0 and wav:
            buffer.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, loader.get_data_path().encode(), 0)
    if rate != _NATIVE_RATE:
        raise RuntimeError(f"eSpeak NG initialised at {rate} Hz, expected {_NATIVE_RATE}")
    lib.espeak_SetSynthCallback(callback)
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    _engine.update(lib=lib, buffer=buffer, callback=callback)
    return _engine


def synthesize(text: str, speaker: Speaker, *, rate_scale: float = 1.0) -> np.ndarray:
    """Raw eSpeak NG output for `text` as int16 at 22,050 Hz. Not reproducible call by call within one
    process (module docstring): banks are built by `espeak_bank` in fresh processes."""
    eng = _init_engine()
    lib, buffer = eng["lib"], eng["buffer"]
    buffer.clear()
    if lib.espeak_SetVoiceByName(speaker.voice.encode()) != 0:
        raise ValueError(f"speaker: eSpeak NG has no voice {speaker.voice!r}")
    lib.espeak_SetParameter(_RATE, int(round(speaker.rate * rate_scale)), 0)
    lib.espeak_SetParameter(_PITCH, speaker.pitch, 0)
    lib.espeak_SetParameter(_RANGE, speaker.pitch_range, 0)
    data = text.encode() + b"\0"
    if lib.espeak_Synth(data, len(data), 0, 0, 0, _CHARS_AUTO, None, None) != 0:
        raise RuntimeError(f"eSpeak NG failed on {text!r} with {speaker}")
    lib.espeak_Synchronize()
    return np.concatenate(buffer) if buffer else np.zeros(0, np.int16)


def _clip(word: str, speaker: Speaker, sample_rate: int, length: int) -> tuple[np.ndarray, int]:
    """One word, resampled and trimmed (float64, unnormalised), and the number of refits it needed."""
    from scipy.signal import resample_poly

    up, down = _RESAMPLE[sample_rate]
    scale = 1.0
    for refit in range(4):
        x = resample_poly(synthesize(word, speaker, rate_scale=scale).astype(np.float64) / 32768.0, up, down)
        loud = np.flatnonzero(np.abs(x) > 1e-3)
        x = x[loud[0]:loud[-1] + 1] if loud.size else x[:0]
        if x.size <= length:
            return x, refit
        scale *= 1.3
    fade = min(length, sample_rate // 100)
    x = x[:length].copy()
    x[length - fade:] *= np.linspace(1.0, 0.0, fade)
    return x, refit


def _build_chunk(job: tuple) -> tuple[np.ndarray, np.ndarray, int]:
    """Runs in a fresh process: every word of every speaker of one chunk, speaker-major, word-minor."""
    speaker_list, first_id, sample_rate, length, seed = job
    clips = np.zeros((len(speaker_list) * len(WORDS), length), np.int16)
    lengths = np.zeros(len(clips), np.int32)
    refits = 0
    for s, speaker in enumerate(speaker_list):
        for w, word in enumerate(WORDS):
            x, refit = _clip(word, Speaker(*speaker), sample_rate, length)
            refits += refit
            level = np.random.default_rng([seed, first_id + s, w]).uniform(0.3, 0.9)
            peak = np.abs(x).max() if x.size else 1.0
            i = s * len(WORDS) + w
            clips[i, :x.size] = np.round(x / peak * level * 32767.0).astype(np.int16)
            lengths[i] = x.size
    return clips, lengths, refits


def _check_rate(sample_rate) -> int:
    if isinstance(sample_rate, bool) or sample_rate not in _RESAMPLE:
        raise ValueError(f"sample_rate: expected one of {sorted(_RESAMPLE)} Hz, got {sample_rate!r}")
    return int(sample_rate)


def espeak_bank(split: str, *, sample_rate: int = 16000, speakers_count: int = 20, seed: int = 0,
                length: int | None = None, cache: bool = True, workers: int | None = None) -> WordBank:
    """The eSpeak NG word bank of `split`: ``speakers_count x 35`` clips, speaker-major.

    Args:
      split: ``"train"`` or ``"val"`` (disjoint voices, module docstring).
      sample_rate: 8,000 or 16,000 Hz.
      speakers_count: speakers in this split.
      seed: draws the voices' split, prosody and levels.
      length: clip length in samples (default one second, ``sample_rate``).
      cache: read and write ``cache_dir()/speech/<key>.npz``.
      workers: builder processes (default ``min(chunks, cpu count)``); does not change the bytes.

    Raises `EspeakUnavailable` (a ValueError) with the install command when eSpeak NG is missing, and
    ValueError for bad settings, before any synthesis.
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    sample_rate = _check_rate(sample_rate)
    length = sample_rate if length is None else length
    for name, value in (("speakers_count", speakers_count), ("length", length)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected an integer >= 0, got {seed!r}")
    version = engine_version()
    spk = speakers(split, speakers_count, seed=seed)
    key_text = json.dumps({"engine": version, "builder": _BUILDER_VERSION, "words": WORDS, "split": split,
                           "speakers": [list(s) for s in spk], "sample_rate": sample_rate, "length": length,
                           "seed": seed, "chunk": CHUNK_SPEAKERS})
    key = hashlib.sha256(key_text.encode()).hexdigest()[:24]
    path = cache_dir() / "speech" / f"{split}-{sample_rate}-{speakers_count}-{key}.npz"
    if cache and path.exists():
        with np.load(path) as f:
            return WordBank(f["clips"], f["labels"], f["lengths"], f["speakers"], sample_rate, int(f["refits"]))

    first = 0 if split == "train" else 1_000_000  # speaker ids: disjoint between splits
    jobs = [([tuple(s) for s in spk[i:i + CHUNK_SPEAKERS]], first + i, sample_rate, length, seed)
            for i in range(0, len(spk), CHUNK_SPEAKERS)]
    workers = min(len(jobs), os.cpu_count() or 1) if workers is None else max(1, int(workers))
    # Fresh (spawned) processes, one per chunk: the only way to get the same bytes every time.
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                max_tasks_per_child=1) as pool:
        parts = list(pool.map(_build_chunk, jobs))
    clips = np.concatenate([p[0] for p in parts])
    lengths = np.concatenate([p[1] for p in parts])
    labels = np.tile(np.arange(len(WORDS), dtype=np.int32), len(spk))
    speaker_ids = np.repeat(np.arange(first, first + len(spk), dtype=np.int32), len(WORDS))
    bank = WordBank(clips, labels, lengths, speaker_ids, sample_rate, sum(p[2] for p in parts))
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez(tmp, clips=clips, labels=labels, lengths=lengths, speakers=speaker_ids, refits=bank.refits)
        os.replace(tmp, path)
    return bank
