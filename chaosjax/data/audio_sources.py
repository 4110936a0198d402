"""Loaders for the audio track's real sources (a local path each; nothing is downloaded).

Host-side numpy and scipy, run once per process. Bad or missing input raises ValueError naming ``path`` (or
the offending file) before any decoding.

* `load_speech_commands(path, split)`: the Speech Commands v0.02 folder as extracted from its tarball:
  ``<path>/<word>/<speaker>_nohash_<n>.wav`` (16-bit mono, 16 kHz) plus ``validation_list.txt`` and
  ``testing_list.txt`` (paths relative to ``<path>``). As in the study, ``train`` is every clip of the 35
  words in neither list (84,843) and ``val`` the validation list (9,981). Clips are resampled when asked for
  8 kHz (``resample_poly(x, 1, 2)``), cut to ``length`` and right-padded with zeros. No level normalisation
  (the study applied none). Returns a `chaosjax.data.speech.WordBank` (speaker ids: the ``<speaker>`` hash in
  order of first appearance, sorted paths).
* `load_chaosmining_audio(path, split)`: the published ChaosMining audio files of one condition:
  ``<path>/<split>/metadata.csv`` with columns ``file_name, label, position`` and WAV files of shape
  ``(samples, channels)`` (the study wrote float64 ``(16000, 10)``). ``label`` may be a word or its index in
  the sorted word list. Returns `ComposedClips` ``(N, channels, samples)``.

Cost: I/O bound, ~0.1 ms per 1-s WAV plus the resample.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import NamedTuple

import numpy as np

from chaosjax.data.speech import WORDS, WordBank

__all__ = ["ComposedClips", "load_chaosmining_audio", "load_speech_commands"]


class ComposedClips(NamedTuple):
    """Ready-made multichannel clips: float32 ``(N, channels, samples)``, int32 labels and word channels."""

    clips: np.ndarray
    labels: np.ndarray
    channels: np.ndarray
    sample_rate: int


def _folder(path, what: str) -> Path:
    if path is None or str(path) == "":
        raise ValueError(f"path: {what} needs a local folder")
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ValueError(f"path: {what} folder {str(p)!r} does not exist or is not a directory")
    return p


def _check_limit(limit):
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ValueError(f"limit: expected an integer >= 1 or None, got {limit!r}")


def _read_wav(file: Path):
    from scipy.io import wavfile

    try:
        rate, data = wavfile.read(file)
    except (ValueError, OSError) as err:
        raise ValueError(f"path: {str(file)!r} is not a readable WAV file ({err})") from None
    return rate, data


def _as_float(data: np.ndarray) -> np.ndarray:
    if data.dtype == np.int16:
        return data.astype(np.float64) / 32768.0
    if data.dtype == np.int32:
        return data.astype(np.float64) / 2**31
    if data.dtype == np.uint8:
        return (data.astype(np.float64) - 128.0) / 128.0
    return data.astype(np.float64)


def load_speech_commands(path, split: str, *, sample_rate: int = 16000, length: int | None = None,
                         limit: int | None = None) -> WordBank:
    """Speech Commands v0.02 clips of `split` (``train`` or ``val``) as a `WordBank` (module docstring).

    `limit` keeps the first `limit` clips in sorted path order (for quick runs and tests).
    """
    if split not in ("train", "val"):
        raise ValueError(f"split: expected 'train' or 'val', got {split!r}")
    if sample_rate not in (8000, 16000) or isinstance(sample_rate, bool):
        raise ValueError(f"sample_rate: expected 8000 or 16000 Hz, got {sample_rate!r}")
    _check_limit(limit)
    root = _folder(path, "Speech Commands")
    lists = {}
    for name in ("validation_list.txt", "testing_list.txt"):
        f = root / name
        if not f.is_file():
            raise ValueError(f"path: {str(root)!r} is not a Speech Commands folder: {name} is missing")
        lists[name] = {line.strip() for line in f.read_text().splitlines() if line.strip()}
    held_out = lists["validation_list.txt"] | lists["testing_list.txt"]
    files = []
    for word in WORDS:
        folder = root / word
        if not folder.is_dir():
            continue
        for wav in sorted(folder.glob("*.wav")):
            rel = f"{word}/{wav.name}"
            if (rel in lists["validation_list.txt"]) if split == "val" else (rel not in held_out):
                files.append((rel, wav, WORDS.index(word)))
    if not files:
        raise ValueError(f"path: no {split} clips of the 35 words under {str(root)!r} (expected <word>/*.wav)")
    files = files[:limit] if limit else files
    length = sample_rate if length is None else int(length)
    clips = np.zeros((len(files), length), np.int16)
    labels = np.zeros(len(files), np.int32)
    lengths = np.zeros(len(files), np.int32)
    speaker_ids: dict[str, int] = {}
    speakers = np.zeros(len(files), np.int32)
    for i, (rel, wav, label) in enumerate(files):
        rate, data = _read_wav(wav)
        if rate != 16000 or data.ndim != 1:
            raise ValueError(f"path: {rel} must be mono 16 kHz, got {rate} Hz and shape {data.shape}")
        x = _as_float(data)
        if sample_rate == 8000:
            from scipy.signal import resample_poly

            x = resample_poly(x, 1, 2)
        x = np.clip(x[:length], -1.0, 1.0)
        clips[i, :x.size] = np.round(x * 32767.0).astype(np.int16)
        labels[i], lengths[i] = label, x.size
        speakers[i] = speaker_ids.setdefault(Path(rel).name.split("_")[0], len(speaker_ids))
    return WordBank(clips, labels, lengths, speakers, sample_rate)


def load_chaosmining_audio(path, split: str, *, limit: int | None = None) -> ComposedClips:
    """The published ChaosMining audio clips of one condition folder and `split` (module docstring)."""
    if split not in ("train", "val"):
        raise ValueError(f"split: expected 'train' or 'val', got {split!r}")
    _check_limit(limit)
    root = _folder(path, "ChaosMining audio")
    meta = root / split / "metadata.csv"
    if not meta.is_file():
        raise ValueError(f"path: {str(root)!r} is not a ChaosMining audio folder: {split}/metadata.csv is missing")
    with meta.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"file_name", "label", "position"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"path: {meta} lacks the columns {sorted(missing)} (has {reader.fieldnames})")
        rows = list(reader)
    if not rows:
        raise ValueError(f"path: {meta} has no rows")
    rows = rows[:limit] if limit else rows
    clips, labels, channels, rate0 = [], [], [], None
    for row in rows:
        label = row["label"].strip()
        if label.lstrip("-").isdigit():
            label = int(label)
        elif label in WORDS:
            label = WORDS.index(label)
        else:
            raise ValueError(f"path: {meta}: label {row['label']!r} is neither a word of the 35 nor an index")
        rate, data = _read_wav(root / split / row["file_name"])
        if data.ndim != 2:
            raise ValueError(f"path: {row['file_name']} must be a multichannel WAV (samples, channels), got "
                             f"shape {data.shape}")
        if rate0 is not None and (rate != rate0 or data.shape != clips[0].shape[::-1]):
            raise ValueError(f"path: {row['file_name']} has {rate} Hz and shape {data.shape}, unlike the first file")
        rate0 = rate
        position = int(row["position"])
        if not 0 <= position < data.shape[1] or not 0 <= label < len(WORDS):
            raise ValueError(f"path: {meta}: position {position} or label {label} out of range")
        clips.append(np.clip(_as_float(data).T, -1.0, 1.0).astype(np.float32))
        labels.append(label)
        channels.append(position)
    return ComposedClips(np.stack(clips), np.asarray(labels, np.int32), np.asarray(channels, np.int32), int(rate0))
