"""The eSpeak NG word bank (skipped without the `audio` extra) and the loaders of real audio sources."""

import hashlib

import numpy as np
import pytest
from scipy.io import wavfile

from chaosjax.data import audio, audio_sources, speech

needs_espeak = pytest.mark.skipif(
    not speech.espeak_available(),
    reason="eSpeak NG is not installed: pip install 'chaosjax[audio]' (espeakng-loader==0.2.4)",
)


@needs_espeak
def test_bank_is_bit_reproducible_fits_and_speakers_are_disjoint(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSJAX_CACHE", str(tmp_path))
    # Each build runs in fresh processes, so synthesising something else in between changes nothing.
    first = speech.espeak_bank("train", sample_rate=8000, speakers_count=2, cache=False)
    speech.espeak_bank("val", sample_rate=8000, speakers_count=1, cache=False)
    second = speech.espeak_bank("train", sample_rate=8000, speakers_count=2, cache=False)
    digest = hashlib.md5(first.clips.tobytes()).hexdigest()
    assert digest == hashlib.md5(second.clips.tobytes()).hexdigest()
    assert first.clips.shape == (2 * 35, 8000) and first.clips.dtype == np.int16
    assert np.array_equal(first.labels, np.tile(np.arange(35), 2))
    # Every word fits the 1-s clip, with room: trimmed lengths between 0.1 s and 1 s, zero padding after.
    assert np.all(first.lengths <= 8000) and np.all(first.lengths > 800)
    pad = np.arange(8000)[None, :] >= first.lengths[:, None]
    assert np.all(first.clips[pad] == 0)
    peaks = np.abs(first.clips.astype(np.float64)).max(1) / 32767
    assert np.all((peaks > 0.29) & (peaks < 0.91))
    # The cache returns the same bytes.
    cached = speech.espeak_bank("train", sample_rate=8000, speakers_count=2)
    again = speech.espeak_bank("train", sample_rate=8000, speakers_count=2)
    assert np.array_equal(cached.clips, first.clips) and np.array_equal(again.clips, first.clips)
    assert list((tmp_path / "speech").glob("train-8000-2-*.npz"))


@needs_espeak
def test_speakers_disjoint_between_splits():
    train = speech.speakers("train", 300)
    val = speech.speakers("val", 60)
    assert not {(s.dialect, s.variant) for s in train} & {(s.dialect, s.variant) for s in val}
    assert speech.speakers("train", 5) == train[:5]  # a prefix: more speakers keep the first ones
    assert all(110 <= s.rate <= 230 and 20 <= s.pitch <= 80 for s in train)


def test_missing_espeak_says_how_to_install(monkeypatch):
    monkeypatch.setattr(speech, "espeak_available", lambda: False)
    with pytest.raises(ValueError, match=r"pip install 'chaosjax\[audio\]'"):
        audio.check_source("espeak")
    with pytest.raises(speech.EspeakUnavailable):
        speech.espeak_bank("train", sample_rate=8000, speakers_count=1)


def test_bank_settings_checked_before_work():
    with pytest.raises(ValueError, match="sample_rate"):
        speech.espeak_bank("train", sample_rate=44100)
    with pytest.raises(ValueError, match="split"):
        speech.espeak_bank("test")


def _speech_commands(root, words=("yes", "no", "bed"), per_word=3):
    for w in words:
        (root / w).mkdir(parents=True)
        for i in range(per_word):
            n = 4000 + 1000 * i
            x = (np.sin(np.arange(n) / 5.0) * 10000).astype(np.int16)
            wavfile.write(root / w / f"spk{i}_nohash_0.wav", 16000, x)
    (root / "_background_noise_").mkdir()
    (root / "validation_list.txt").write_text("yes/spk2_nohash_0.wav\nno/spk2_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("bed/spk2_nohash_0.wav\n")


def test_load_speech_commands(tmp_path):
    _speech_commands(tmp_path)
    train = audio_sources.load_speech_commands(tmp_path, "train")
    val = audio_sources.load_speech_commands(tmp_path, "val")
    assert train.clips.shape == (6, 16000) and val.clips.shape == (2, 16000)
    words = speech.WORDS
    assert sorted(set(train.labels)) == sorted(words.index(w) for w in ("yes", "no", "bed"))
    assert set(val.labels) == {words.index("yes"), words.index("no")}
    assert set(train.lengths) == {4000, 5000} and np.all(train.clips[:, 5000:] == 0)
    low = audio_sources.load_speech_commands(tmp_path, "val", sample_rate=8000)
    assert low.clips.shape == (2, 8000) and set(low.lengths) == {3000}
    gen = audio.make_data(audio.AudioSpec(sample_rate=8000, scape_files=1, scape_seconds=1), low, "val")
    assert gen.words.shape == (2, 8000)


def test_loaders_reject_missing_or_malformed(tmp_path):
    with pytest.raises(ValueError, match="path"):
        audio_sources.load_speech_commands(tmp_path / "nope", "train")
    with pytest.raises(ValueError, match="validation_list.txt is missing"):
        audio_sources.load_speech_commands(tmp_path, "train")
    (tmp_path / "validation_list.txt").write_text("")
    (tmp_path / "testing_list.txt").write_text("")
    with pytest.raises(ValueError, match="no train clips"):
        audio_sources.load_speech_commands(tmp_path, "train")
    (tmp_path / "yes").mkdir()
    (tmp_path / "yes" / "bad_nohash_0.wav").write_text("not a wav")
    with pytest.raises(ValueError, match="not a readable WAV"):
        audio_sources.load_speech_commands(tmp_path, "train")
    with pytest.raises(ValueError, match="metadata.csv is missing"):
        audio_sources.load_chaosmining_audio(tmp_path, "train")


def test_load_chaosmining_audio(tmp_path):
    split = tmp_path / "RBRP" / "val"
    split.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = ["file_name,label,position"]
    for i, (label, pos) in enumerate([("yes", 3), ("7", 0), ("zero", 9)]):
        wavfile.write(split / f"{i}.wav", 8000, rng.uniform(-1, 1, (800, 10)))  # float64 (samples, channels)
        rows.append(f"{i}.wav,{label},{pos}")
    (split / "metadata.csv").write_text("\n".join(rows) + "\n")
    clips = audio_sources.load_chaosmining_audio(tmp_path / "RBRP", "val")
    assert clips.clips.shape == (3, 10, 800) and clips.sample_rate == 8000
    assert list(clips.labels) == [speech.WORDS.index("yes"), 7, speech.WORDS.index("zero")]
    assert list(clips.channels) == [3, 0, 9]
    gen = audio.dataset(audio.AudioSpec(sample_rate=8000, seconds=0.1, scape_files=1, scape_seconds=1), "val",
                        source=f"chaosmining:{tmp_path}", condition="RBRP")
    s = gen.batch(None, np.arange(4), "RBRP")
    assert s.clip.shape == (4, 10, 800) and int(s.channel[3]) == 3  # index 3 wraps to clip 0
    (split / "metadata.csv").write_text("file,label\n0.wav,yes\n")
    with pytest.raises(ValueError, match="lacks the columns"):
        audio_sources.load_chaosmining_audio(tmp_path / "RBRP", "val")
