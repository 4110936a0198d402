"""The audio generator, the soundscape, the synthetic word bank and the channel metrics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from chaosjax import metrics
from chaosjax.data import audio
from chaosjax.data.speech import WORDS

# A small geometry: 8 kHz, 0.25-s clips, 4 soundscape files of 2 s (the generator code path of every preset).
SPEC = audio.AudioSpec(sample_rate=8000, seconds=0.25, scape_files=4, scape_seconds=2)


@pytest.fixture(scope="module")
def data():
    bank = audio.synthetic_bank(SPEC, "train", per_class=2)
    return audio.make_data(SPEC, bank, "train")


def test_presets_and_bad_input():
    assert audio.preset("tiny").sample_rate == 8000 and audio.preset("tiny").length == 8000
    assert audio.preset("paper").length == 16000 and audio.preset("paper").channels == 10
    with pytest.raises(ValueError, match="sample_rate"):
        audio.AudioSpec(sample_rate=22050)
    with pytest.raises(ValueError, match="preset"):
        audio.preset("huge")
    with pytest.raises(ValueError, match="condition"):
        audio.condition_code("RBXP")
    with pytest.raises(ValueError, match="source"):
        audio.parse_source("flite")
    with pytest.raises(ValueError, match="needs a local path"):
        audio.parse_source("speechcommands")
    with pytest.raises(ValueError, match="does not exist"):
        audio.check_source("speechcommands:/no/such/folder")


def test_deterministic_per_seed_and_index(data, getkey):
    key = getkey()
    batch = jax.jit(lambda k: data.batch(k, jnp.arange(6), "SBRP"))(key)
    one = data.sample(key, 4, "SBRP")
    np.testing.assert_array_equal(np.asarray(batch.clip[4]), np.asarray(one.clip))
    assert int(batch.label[4]) == int(one.label) and int(batch.channel[4]) == int(one.channel)
    again = data.batch(key, jnp.arange(6), "SBRP")
    np.testing.assert_array_equal(np.asarray(batch.clip), np.asarray(again.clip))
    assert not np.array_equal(np.asarray(batch.clip[0]), np.asarray(batch.clip[1]))
    other = data.batch(getkey(), jnp.arange(6), "SBRP")
    assert not np.array_equal(np.asarray(batch.clip), np.asarray(other.clip))
    # A traced condition code gives the same samples as the name.
    traced = jax.jit(lambda k, c: data.batch(k, jnp.arange(6), c))(key, jnp.int32(3))
    np.testing.assert_allclose(np.asarray(traced.clip), np.asarray(batch.clip), atol=1e-6)


def test_word_channel_holds_the_word(data, getkey):
    s = data.batch(getkey(), jnp.arange(8), "RBRP")
    clip, ch, label = np.asarray(s.clip), np.asarray(s.channel), np.asarray(s.label)
    words = np.asarray(data.words).astype(np.float32) / 32767
    for i in range(8):
        matches = [j for j in range(words.shape[0]) if np.allclose(words[j], clip[i, ch[i]])]
        assert matches and all(int(np.asarray(data.labels)[j]) == label[i] for j in matches)
        others = np.delete(clip[i], ch[i], axis=0)
        assert not any(np.allclose(o, clip[i, ch[i]]) for o in others)


@pytest.mark.parametrize("condition", ["RBRP", "SBRP"])
def test_background_gain_scales_only_the_background(data, getkey, condition):
    import dataclasses

    key = getkey()
    full = data.batch(key, jnp.arange(6), condition)
    quiet = dataclasses.replace(data, spec=dataclasses.replace(SPEC, background_gain=0.25)).batch(
        key, jnp.arange(6), condition)
    np.testing.assert_array_equal(np.asarray(quiet.channel), np.asarray(full.channel))
    np.testing.assert_array_equal(np.asarray(quiet.label), np.asarray(full.label))
    word = np.arange(SPEC.channels)[None, :] == np.asarray(full.channel)[:, None]  # (6, C)
    clip, ref = np.asarray(quiet.clip), np.asarray(full.clip)
    np.testing.assert_array_equal(clip[word], ref[word])
    np.testing.assert_allclose(clip[~word], 0.25 * ref[~word], rtol=1e-6)
    assert np.abs(ref[~word]).max() > 0.1
    for bad in (-0.1, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match="background_gain"):
            audio.AudioSpec(background_gain=bad)


def test_fp_channel_zero_and_rp_uniform(data, getkey):
    channels = jax.jit(lambda k, c: data.batch(k, jnp.arange(3000), c).channel)
    key = getkey()
    assert np.all(np.asarray(channels(key, jnp.int32(0))) == 0)
    assert np.all(np.asarray(channels(key, jnp.int32(2))) == 0)
    rp = np.asarray(channels(key, jnp.int32(1)))
    counts = np.bincount(rp, minlength=10)
    chi2 = float(((counts - 300.0) ** 2 / 300.0).sum())
    assert counts.size == 10 and chi2 < 27.9  # chi^2(9) at p = 0.001
    assert np.array_equal(rp, np.asarray(channels(key, jnp.int32(3))))  # same key -> same channels in RP and SBRP


def _lag1(x):
    x = x - x.mean(-1, keepdims=True)
    return (x[..., 1:] * x[..., :-1]).sum(-1) / (x * x).sum(-1)


def test_sb_differs_from_rb_and_between_channels(data, getkey):
    key = getkey()
    rb = np.asarray(data.batch(key, jnp.arange(16), "RBFP").clip)[:, 1:]
    sb = np.asarray(data.batch(key, jnp.arange(16), "SBFP").clip)[:, 1:]
    assert np.all(np.abs(sb) <= 1.0) and np.all(np.abs(rb) <= 1.0)
    # RB: white, std 0.25 clipped; SB: 1/f bed and chirps, strongly correlated from sample to sample.
    assert abs(float(_lag1(rb).mean())) < 0.02 and abs(float(rb.std()) - 0.25) < 0.01
    assert float(_lag1(sb).mean()) > 0.3
    for i in range(4):
        flat = sb[i].reshape(9, -1)
        assert len({row.tobytes() for row in flat}) == 9


def test_soundscape_bank_normalised_per_file():
    bank = np.asarray(audio.soundscape_bank(SPEC, "train")).astype(np.float64) / 32767
    assert bank.shape == (4, 2 * 8000)
    q = np.quantile(np.abs(bank), 0.99, axis=1)
    np.testing.assert_allclose(q, 1.0, atol=1e-3)  # the 99th percentile of |x| over each whole file
    val = np.asarray(audio.soundscape_bank(SPEC, "val"))
    assert not np.array_equal(val, np.asarray(audio.soundscape_bank(SPEC, "train")))


def test_synthetic_bank():
    bank = audio.synthetic_bank(SPEC, "train", per_class=3)
    assert bank.clips.shape == (3 * len(WORDS), SPEC.length) and bank.clips.dtype == np.int16
    assert np.array_equal(np.bincount(bank.labels), np.full(len(WORDS), 3))
    assert np.all(bank.lengths <= SPEC.length) and np.all(bank.lengths > 0)
    peaks = np.abs(bank.clips.astype(np.float64)).max(1) / 32767
    assert np.all((peaks > 0.29) & (peaks < 0.91))
    assert np.all(bank.clips[np.arange(bank.clips.shape[1])[None, :] >= bank.lengths[:, None]] == 0)  # right-padded
    val = audio.synthetic_bank(SPEC, "val", per_class=3)
    assert not np.array_equal(val.clips, bank.clips)
    with pytest.raises(ValueError, match="bank"):
        audio.make_data(audio.AudioSpec(sample_rate=16000, scape_files=1, scape_seconds=1), bank)


def test_channel_groups():
    groups = audio.channel_groups(SPEC)
    assert groups.shape == (10, SPEC.length) and np.all(groups == np.arange(10)[:, None])


def test_channel_metrics():
    n, c, length = 3, 10, 5
    channels = jnp.array([0, 3, 9])
    onehot = jnp.zeros((n, c, length)).at[jnp.arange(n), channels].set(-2.0)
    assert float(metrics.channel_mass(onehot, channels)) == pytest.approx(1.0)
    assert float(metrics.channel_hit(onehot, channels)) == pytest.approx(1.0)
    const = jnp.ones((n, c, length))
    assert float(metrics.channel_mass(const, channels)) == pytest.approx(0.1)
    assert float(metrics.channel_hit(const, channels)) == pytest.approx(0.1)  # ties: expected hit 1/10
    zeros = jnp.zeros((n, c, length))
    assert float(metrics.channel_mass(zeros, channels)) == pytest.approx(0.1)
    assert float(metrics.channel_hit(zeros, channels)) == pytest.approx(0.1)
    # Mass uses mean |a| over time: channel 0 holds 3 of 3 + 1 + ... units.
    a = jnp.ones((1, c, length)).at[0, 0].set(3.0)
    assert float(metrics.channel_mass(a, jnp.array([0]))) == pytest.approx(3 / 12)
    assert float(metrics.channel_hit(a, jnp.array([1]))) == 0.0
    with pytest.raises(ValueError, match="attr"):
        metrics.channel_mass(jnp.zeros((3, 10)), channels)
    with pytest.raises(ValueError, match="channels"):
        metrics.channel_mass(onehot, jnp.zeros((2,), jnp.int32))
