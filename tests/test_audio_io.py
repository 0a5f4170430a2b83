"""edgeship.audio.read_audio on real files: both readers, resampling, and every kind of bad audio."""
from __future__ import annotations

import wave

import numpy as np
import pytest

from edgeship import InputSpecError, audio

sf = pytest.importorskip("soundfile")

SR = 16000


def _tone(seconds=1.0, sr=SR, hz=440.0, amp=0.5):
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _write_wave_pcm(path, x, sr=SR, width=2, channels=1):
    """Write integer PCM with the standard library (no soundfile involved)."""
    x = np.asarray(x, np.float64).reshape(-1, channels)
    if width == 1:
        raw = np.clip(np.round(x * 128 + 128), 0, 255).astype(np.uint8).tobytes()
    else:
        full = float(1 << (8 * width - 1))
        v = np.clip(np.round(x * full), -full, full - 1).astype(np.int64)
        raw = b"".join(int(s).to_bytes(width, "little", signed=True) for s in v.reshape(-1)) if width == 3 \
            else v.astype(f"<i{width}").tobytes()
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(sr)
        f.writeframes(raw)
    return path


@pytest.fixture(params=["soundfile", "wave"])
def reader(request, monkeypatch):
    """Run a test with soundfile, then again as if it were not installed (stdlib wave)."""
    if request.param == "wave":
        monkeypatch.setattr(audio, "_have_soundfile", lambda: False)
    return request.param


def test_pcm16_wav_reads_the_same_with_both_readers(tmp_path, reader):
    x = _tone()
    p = _write_wave_pcm(tmp_path / "a.wav", x)
    got = audio.read_audio(p)
    assert got.dtype == np.float32 and got.shape == (SR,)
    np.testing.assert_allclose(got, np.round(x * 32768) / 32768, atol=1e-7)


@pytest.mark.parametrize("width", [1, 3, 4])
def test_other_pcm_widths_match_soundfile(tmp_path, monkeypatch, width):
    p = _write_wave_pcm(tmp_path / f"w{width}.wav", _tone(0.25), width=width)
    ref = audio.read_audio(p)
    monkeypatch.setattr(audio, "_have_soundfile", lambda: False)
    np.testing.assert_allclose(audio.read_audio(p), ref, atol=1e-6)


def test_flac_and_float_wav_through_soundfile(tmp_path):
    x = _tone()
    sf.write(tmp_path / "a.flac", x, SR, subtype="PCM_16")
    sf.write(tmp_path / "f.wav", x, SR, subtype="FLOAT")
    np.testing.assert_allclose(audio.read_audio(tmp_path / "a.flac"), x, atol=1 / 32768)
    np.testing.assert_array_equal(audio.read_audio(tmp_path / "f.wav"), x)


def test_without_soundfile_float_wav_and_flac_say_what_to_install(tmp_path, monkeypatch):
    sf.write(tmp_path / "f.wav", _tone(), SR, subtype="FLOAT")
    sf.write(tmp_path / "a.flac", _tone(), SR, subtype="PCM_16")
    monkeypatch.setattr(audio, "_have_soundfile", lambda: False)
    for name in ("f.wav", "a.flac"):
        with pytest.raises(InputSpecError, match=r"edgeship\[audio\]"):
            audio.read_audio(tmp_path / name)


def test_wrong_sample_rate_is_an_error_naming_resample_or_is_resampled(tmp_path, reader):
    x = _tone(1.0, sr=44100, hz=1000)
    p = _write_wave_pcm(tmp_path / "cd.wav", x, sr=44100)
    with pytest.raises(InputSpecError, match=r"44100 Hz, expected 16000 Hz.*--resample"):
        audio.read_audio(p)
    y = audio.read_audio(p, resample=True)
    assert y.shape == (SR,)
    ref = _tone(1.0, hz=1000)
    np.testing.assert_allclose(y[200:-200], ref[200:-200], atol=2e-3)
    assert audio.read_audio(p, sample_rate=None).shape == (44100,)


def test_read_audio_rate_keeps_the_file_s_rate_and_checks_the_rest(tmp_path, reader):
    p = _write_wave_pcm(tmp_path / "cd.wav", _tone(0.25, sr=22050), sr=22050)
    x, sr = audio.read_audio_rate(p)
    assert sr == 22050 and x.dtype == np.float32
    np.testing.assert_array_equal(x, audio.read_audio(p, sample_rate=None))
    with pytest.raises(InputSpecError, match="no such audio file"):
        audio.read_audio_rate(tmp_path / "missing.wav")


def test_stereo_is_mixed_down_to_mono(tmp_path, reader):
    left = _tone(0.5)
    p = _write_wave_pcm(tmp_path / "st.wav", np.stack([left, np.zeros_like(left)], axis=1), channels=2)
    got = audio.read_audio(p)
    assert got.shape == left.shape
    np.testing.assert_allclose(got, np.round(left * 32768) / 32768 / 2, atol=1e-6)


def test_empty_file_is_an_error(tmp_path, reader):
    p = _write_wave_pcm(tmp_path / "empty.wav", np.zeros(0))
    with pytest.raises(InputSpecError, match="empty"):
        audio.read_audio(p)


def test_short_clip_is_returned_as_is_and_zero_padded_by_features(tmp_path, reader):
    x = _tone(0.1)
    got = audio.read_audio(_write_wave_pcm(tmp_path / "short.wav", x))
    assert got.shape == (1600,)
    padded = np.concatenate([got, np.zeros(SR - got.size, np.float32)])
    np.testing.assert_array_equal(audio.features(got), audio.features(padded))


def test_truncated_header_is_an_error(tmp_path, reader):
    good = _write_wave_pcm(tmp_path / "a.wav", _tone()).read_bytes()
    p = tmp_path / "cut.wav"
    p.write_bytes(good[:30])
    with pytest.raises(InputSpecError, match="not a readable"):
        audio.read_audio(p)


def test_non_audio_bytes_and_missing_file_are_errors(tmp_path, reader):
    p = tmp_path / "notes.wav"
    p.write_bytes(b"these are not the samples you are looking for\n" * 20)
    with pytest.raises(InputSpecError, match="not a readable"):
        audio.read_audio(p)
    rnd = tmp_path / "noise.flac"
    rnd.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InputSpecError, match="not a readable"):
        audio.read_audio(rnd)
    with pytest.raises(InputSpecError, match="no such audio file"):
        audio.read_audio(tmp_path / "absent.wav")


def test_nan_in_float_wav_is_an_error(tmp_path):
    x = _tone()
    x[100:110] = np.nan
    sf.write(tmp_path / "nan.wav", x, SR, subtype="FLOAT")
    with pytest.raises(InputSpecError, match="10 of 16000 samples are NaN"):
        audio.read_audio(tmp_path / "nan.wav")


def test_resample_rejects_bad_rates():
    with pytest.raises(InputSpecError, match="positive integer"):
        audio.resample(np.zeros(10), 0, 16000)


def test_data_cut_short_returns_the_samples_that_are_there(tmp_path, reader):
    good = _write_wave_pcm(tmp_path / "a.wav", _tone()).read_bytes()
    p = tmp_path / "cut.wav"
    p.write_bytes(good[:1001])   # 44-byte header + 957 bytes = 478 whole int16 samples
    assert audio.read_audio(p).shape == (478,)


def _blocks(p, n, **kw):
    return list(audio.read_audio_blocks(p, n, **kw))


@pytest.mark.parametrize("block", [1, 997, 16000, 1 << 20])
def test_blocks_equal_the_whole_file_with_both_readers(tmp_path, reader, block):
    """read_audio_blocks is read_audio in pieces: stereo mixed down, data cut short, any block size."""
    x = _tone(1.3)
    st = _write_wave_pcm(tmp_path / "st.wav", np.stack([x, -0.5 * x], axis=1), channels=2)
    good = _write_wave_pcm(tmp_path / "a.wav", x).read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(good[:1001])
    for p in (st, cut):
        parts = _blocks(p, block)
        assert all(b.dtype == np.float32 and b.ndim == 1 for b in parts)
        assert all(b.size == block for b in parts[:-1]) and 0 < parts[-1].size <= block
        np.testing.assert_array_equal(np.concatenate(parts), audio.read_audio(p))


def test_blocks_of_flac_and_float_wav(tmp_path):
    x = _tone(2.1)
    sf.write(tmp_path / "a.flac", x, SR, subtype="PCM_16")
    sf.write(tmp_path / "f.wav", x, SR, subtype="FLOAT")
    for name in ("a.flac", "f.wav"):
        np.testing.assert_array_equal(np.concatenate(_blocks(tmp_path / name, 1600)),
                                      audio.read_audio(tmp_path / name))


def test_blocks_refuse_before_the_first_block_and_say_where_damage_is(tmp_path, reader):
    p = _write_wave_pcm(tmp_path / "cd.wav", _tone(0.25, sr=44100), sr=44100)
    with pytest.raises(InputSpecError, match=r"44100 Hz, expected 16000 Hz"):
        audio.read_audio_blocks(p, 1600)   # at the call, not at the first block
    assert sum(b.size for b in audio.read_audio_blocks(p, 1600, sample_rate=None)) == 11025
    resampled = _blocks(p, 1600, resample=True)
    assert [b.size for b in resampled] == [1600, 1600, 800]
    np.testing.assert_array_equal(np.concatenate(resampled), audio.read_audio(p, resample=True))
    with pytest.raises(InputSpecError, match="no such audio file"):
        audio.read_audio_blocks(tmp_path / "absent.wav", 1600)
    bad = tmp_path / "notes.wav"
    bad.write_bytes(b"not audio at all\n" * 50)
    with pytest.raises(InputSpecError, match="not a readable"):
        audio.read_audio_blocks(bad, 1600)
    with pytest.raises(InputSpecError, match="at least 1"):
        audio.read_audio_blocks(p, 0)
    empty = _write_wave_pcm(tmp_path / "empty.wav", np.zeros(0))
    with pytest.raises(InputSpecError, match="empty"):
        _blocks(empty, 1600)


def test_blocks_stop_at_nan_with_its_time(tmp_path):
    x = _tone(3.0)
    x[40000:40010] = np.nan
    sf.write(tmp_path / "nan.wav", x, SR, subtype="FLOAT")
    it = audio.read_audio_blocks(tmp_path / "nan.wav", 16000)
    assert next(it).size == 16000 and next(it).size == 16000
    with pytest.raises(InputSpecError, match=r"NaN or inf samples from 2\.500 s on"):
        next(it)
