"""The MLPerf Tiny MFCC front end (edgeship.audio): golden parity, streaming == batch, bad input."""
from __future__ import annotations

import wave

import numpy as np
import pytest

from edgeship import InputSpecError, audio


def _read_wav_int16(path):
    with wave.open(str(path)) as f:
        return np.frombuffer(f.readframes(f.getnframes()), np.int16)


@pytest.mark.shared
def test_golden_mfcc_parity(shared_dir):
    root = shared_dir / "data" / "kws01_parity"
    wavs = sorted((root / "wav").glob("*.wav"))
    assert len(wavs) == 50
    equal = total = 0
    for w in wavs:
        golden = np.fromfile(root / "mfcc" / (w.stem + ".bin"), np.int8).reshape(49, 10)
        ours = audio.quantize_truncate(audio.features(_read_wav_int16(w)))
        diff = np.abs(ours.astype(int) - golden)
        assert diff.max() <= 1, w.name
        equal += int((diff == 0).sum())
        total += diff.size
    assert equal / total >= 0.99, f"only {equal / total:.4f} of values equal the golden files"


def test_streaming_equals_batch_for_any_chunking():
    rng = np.random.default_rng(7)
    sig = (0.2 * rng.standard_normal(16000 * 4)).astype(np.float32)
    sig[20000:21000] = 0.9  # a loud burst moves the peak of some windows
    for hop in (320, 1600, 4800):
        stream = audio.StreamingFeatures(hop_samples=hop)
        got, i = [], 0
        while i < sig.size:
            n = int(rng.integers(1, 5000))
            got += stream.push(sig[i:i + n])
            i += n
        ends = list(range(16000, sig.size + 1, hop))
        assert [w.end_sample for w in got] == ends
        for w in got:
            batch = audio.features(sig[w.end_sample - 16000:w.end_sample])
            np.testing.assert_allclose(w.features, batch, atol=2e-5, rtol=0)


def test_short_clip_is_zero_padded_and_int_pcm_scaled():
    x = (np.sin(np.arange(8000) / 5.0) * 20000).astype(np.int16)
    padded = np.concatenate([x, np.zeros(8000, np.int16)]).astype(np.float32) / 32768
    np.testing.assert_allclose(audio.features(x), audio.features(padded), atol=1e-6)


@pytest.mark.parametrize("bad, words", [
    (np.zeros(0, np.float32), "empty"),
    (np.zeros(17000, np.float32), "at most 16000"),
    (np.array([0.1, np.nan] * 100, np.float32), "NaN"),
    (np.zeros((100, 2), np.float32), "mono"),
    (np.array(["a", "b"]), "numeric"),
])
def test_bad_audio_is_a_clear_error(bad, words):
    with pytest.raises(InputSpecError, match=words):
        audio.features(bad)


def test_silence_is_finite_and_spec_round_trips():
    f = audio.features(np.zeros(16000, np.float32))
    assert np.all(np.isfinite(f))
    log_mel = audio.FrontEndSpec(num_coefficients=None)
    assert audio.features(np.ones(16000, np.float32) * 0.1, log_mel).shape == (49, 40)
    assert audio.FrontEndSpec.from_dict(log_mel.to_dict()) == log_mel
    with pytest.raises(InputSpecError, match="multiple of the frame step"):
        audio.StreamingFeatures(hop_samples=1000)
    with pytest.raises(InputSpecError, match="unknown keys"):
        audio.FrontEndSpec.from_dict({"sample_rte": 16000})
