"""``listen`` from live inputs, without a microphone: a stand-in ``sounddevice`` module plays real
clips through the same callback PortAudio would call, and ``--stdin`` reads them as raw PCM from
a pipe, so the live loops are tested on real audio.

Each live path must give the events the file path gives for the same samples; overflowed blocks
are counted and reported; a microphone that stops delivering is an error (exit 2), not a hang;
a WAV file piped to ``--stdin`` is an error, not noise.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import types
import wave
from pathlib import Path

import numpy as np
import pytest

from examples.keyword_spotting import listen
from examples.keyword_spotting.__main__ import main

SAMPLES = Path(__file__).resolve().parent.parent / "examples" / "keyword_spotting" / "sample_data"


def _speech() -> np.ndarray:
    """Real clips of the shipped sample data with quiet gaps: 0.5 s, yes, 1 s, no, 1 s, stop, 1 s."""
    from edgeship.audio import read_audio

    gap = lambda s: np.zeros(int(s * 16000), np.float32)  # noqa: E731
    parts = [gap(0.5)]
    for word in ("yes", "no", "stop"):
        parts += [read_audio(SAMPLES / word / "0cb74144_nohash_0.flac"), gap(1.0)]
    return np.concatenate(parts)


def _fake_sounddevice(audio: np.ndarray, *, overflow_blocks=(), deliver_blocks=None) -> types.ModuleType:
    """A ``sounddevice`` stand-in whose input stream calls back with ``audio`` in blocks.

    ``overflow_blocks``: block numbers flagged as input overflow. ``deliver_blocks``: stop
    delivering after that many blocks (an unplugged microphone)."""
    sd = types.ModuleType("sounddevice")
    sd.opened = []

    def query_devices(kind=None):
        return {"name": "stand-in microphone", "max_input_channels": 1}

    class Flags:
        def __init__(self, overflow: bool):
            self.input_overflow = overflow

    class InputStream:
        def __init__(self, samplerate, channels, dtype, blocksize, callback):
            assert (samplerate, channels, dtype) == (16000, 1, "float32")
            self.blocksize, self.callback = blocksize, callback
            self.stopped, self.closed = threading.Event(), False
            sd.opened.append(self)

        def _play(self):
            n = audio.size // self.blocksize
            if deliver_blocks is not None:
                n = min(n, deliver_blocks)
            for i in range(n):
                if self.stopped.is_set():
                    return
                block = audio[i * self.blocksize:(i + 1) * self.blocksize].reshape(-1, 1)
                self.callback(block, self.blocksize, None, Flags(i in overflow_blocks))
            self.stopped.wait()   # a live stream never ends by itself

        def start(self):
            self.thread = threading.Thread(target=self._play, daemon=True)
            self.thread.start()

        def stop(self):
            self.stopped.set()

        def close(self):
            self.closed = True

    sd.query_devices, sd.InputStream = query_devices, InputStream
    return sd


def _json_lines(text: str) -> list:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _wav(path: Path) -> np.ndarray:
    """Write the speech as a 16-bit WAV; return its int16 samples."""
    pcm = np.round(_speech() * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    return pcm


def test_microphone_gives_the_events_of_the_same_samples_from_a_file(monkeypatch, tmp_path, capsys):
    wav = tmp_path / "speech.wav"
    audio = _wav(wav).astype(np.float32) / 32768   # the samples the file holds, as soundfile reads them
    assert main(["listen", "--wav", str(wav), "--json"]) == 0
    from_file = _json_lines(capsys.readouterr().out)

    sd = _fake_sounddevice(audio, overflow_blocks=(7, 20))
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    seconds = audio.size / 16000
    assert main(["listen", "--seconds", str(seconds), "--json"]) == 0
    live = _json_lines(capsys.readouterr().out)

    assert live[0]["event"] == "start" and live[0]["source"] == "microphone"
    assert {k: v for k, v in live[0].items() if k != "source"} == \
        {k: v for k, v in from_file[0].items() if k != "source"}
    events = [e for e in live if e.get("event") == "keyword"]
    assert events == [e for e in from_file if e.get("event") == "keyword"]
    assert [e["label"] for e in events] == ["yes", "no", "stop"], events
    end = live[-1]
    assert end["event"] == "end" and end["input_overflows"] == 2
    assert end["audio_s"] == pytest.approx(seconds, abs=0.1) and end["windows"] == from_file[-1]["windows"]
    assert "input_overflows" not in from_file[-1]
    assert sd.opened[0].stopped.is_set() and sd.opened[0].closed


def test_microphone_overflows_are_reported_in_text_mode(monkeypatch, capsys):
    audio = _speech()
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice(audio, overflow_blocks=(3,)))
    assert main(["listen", "--seconds", "2"]) == 0
    err = capsys.readouterr().err
    assert "listening for down, go, left" in err and "(microphone); Ctrl-C to stop" in err
    assert "the microphone input overflowed 1 time(s)" in err


def test_a_microphone_that_stops_delivering_is_an_error_not_a_hang(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice(_speech(), deliver_blocks=12))
    monkeypatch.setattr(listen, "MIC_STALL_S", 0.3)
    assert main(["listen", "--json"]) == 2
    lines = _json_lines(capsys.readouterr().out)
    assert lines[0]["event"] == "start"
    assert lines[-1]["ok"] is False and lines[-1]["error"]["type"] == "TargetError"
    assert "delivered no audio for 0.4 s" in lines[-1]["error"]["message"]


def test_no_microphone_prints_only_the_error(monkeypatch, capsys):
    sd = types.ModuleType("sounddevice")

    def query_devices(kind=None):
        raise ValueError("No input device matching ''")

    sd.query_devices = query_devices
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    assert main(["listen", "--json"]) == 2
    lines = _json_lines(capsys.readouterr().out)
    assert len(lines) == 1 and lines[0]["ok"] is False
    assert "no microphone found" in lines[0]["error"]["message"] and "--wav" in lines[0]["error"]["message"]


def _listen_stdin(data: bytes, *args: str) -> subprocess.CompletedProcess:
    repo = Path(__file__).resolve().parent.parent
    return subprocess.run([sys.executable, "-m", "examples.keyword_spotting", "listen", "--stdin", *args],
                          input=data, capture_output=True, timeout=300, cwd=repo,
                          env=dict(os.environ, PYTHONPATH=str(repo)))


def test_stdin_raw_pcm_gives_the_events_of_the_same_file(tmp_path, capsys):
    wav = tmp_path / "speech.wav"
    pcm = _wav(wav)
    assert main(["listen", "--wav", str(wav), "--json"]) == 0
    from_file = _json_lines(capsys.readouterr().out)
    # a dangling half sample at the end (a writer killed mid-sample) is dropped with a warning
    res = _listen_stdin(pcm.tobytes() + b"\x01", "--json")
    assert res.returncode == 0, res.stderr.decode()
    piped = _json_lines(res.stdout.decode())
    assert piped[0]["source"] == "stdin (raw s16le mono 16000 Hz)"
    events = [e for e in piped if e.get("event") == "keyword"]
    assert events == [e for e in from_file if e.get("event") == "keyword"]
    assert [e["label"] for e in events] == ["yes", "no", "stop"], events
    assert piped[-1]["windows"] == from_file[-1]["windows"] and "input_overflows" not in piped[-1]
    assert "half a 16-bit sample" in res.stderr.decode()
    # --seconds stops early, in text mode
    res = _listen_stdin(pcm.tobytes(), "--seconds", "1.5")
    assert res.returncode == 0 and "detection(s) in 1.5 s of audio" in res.stderr.decode(), res.stderr.decode()


def test_stdin_refuses_a_wav_file_and_two_sources(tmp_path):
    wav = tmp_path / "speech.wav"
    _wav(wav)
    res = _listen_stdin(wav.read_bytes(), "--json")
    assert res.returncode == 2
    lines = _json_lines(res.stdout.decode())
    assert len(lines) == 1 and lines[0]["error"]["type"] == "InputSpecError"
    assert "holds a WAV/FLAC file" in lines[0]["error"]["message"] and "--wav FILE" in lines[0]["error"]["message"]
    res = _listen_stdin(b"", "--wav", str(wav))
    assert res.returncode == 2 and "give one audio source" in res.stderr.decode()
    # an empty pipe: no audio, no detection, a clean end
    res = _listen_stdin(b"", "--json")
    assert res.returncode == 0
    end = _json_lines(res.stdout.decode())[-1]
    assert end["event"] == "end" and end["audio_s"] == 0 and end["detections"] == 0
    res = _listen_stdin(b"")
    assert res.returncode == 0 and "0 detection(s) in 0.0 s of audio (no audio came in)" in res.stderr.decode()


def test_wav_is_read_block_by_block_and_damage_is_reported_where_it_is(monkeypatch, tmp_path, capsys):
    """listen --wav never holds a whole recording (a night's audio fits on a Pi): the file is read
    in chunks; NaN further in ends the run with an error naming the time, after the events before it."""
    sf = pytest.importorskip("soundfile")
    from edgeship import audio

    x = np.concatenate([_speech(), np.zeros(16000, np.float32)])
    sf.write(tmp_path / "f.wav", x, 16000, subtype="FLOAT")
    assert main(["listen", "--wav", str(tmp_path / "f.wav"), "--json"]) == 0
    whole = _json_lines(capsys.readouterr().out)

    def no_whole_file(*a, **k):
        raise AssertionError("listen read the whole file")

    monkeypatch.setattr(audio, "read_audio", no_whole_file)
    monkeypatch.setattr(audio, "read_audio_rate", no_whole_file)
    assert main(["listen", "--wav", str(tmp_path / "f.wav"), "--json", "--chunk-ms", "30"]) == 0
    assert _json_lines(capsys.readouterr().out)[1:-1] == whole[1:-1]   # the keyword events

    nan_at = x.size - 8000   # in the last second, after the three words
    x[nan_at:nan_at + 5] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    assert main(["listen", "--wav", str(tmp_path / "nan.wav"), "--json"]) == 2
    lines = _json_lines(capsys.readouterr().out)
    assert [l["label"] for l in lines if l.get("event") == "keyword"] == ["yes", "no", "stop"]
    assert lines[-1]["ok"] is False
    assert f"NaN or inf samples from {nan_at / 16000:.3f} s on" in lines[-1]["error"]["message"]


def test_listen_memory_bench_small(tmp_path):
    """bench/listen_memory.py on 6 minutes: each command gives the same results both ways, and
    reading block by block peaks lower than reading the whole file."""
    repo = Path(__file__).resolve().parent.parent
    out = tmp_path / "mem.json"
    res = subprocess.run([sys.executable, str(repo / "bench" / "listen_memory.py"), "--hours", "0.1", "--out",
                          str(out)], capture_output=True, text=True, timeout=600, cwd=repo)
    assert res.returncode == 0, res.stdout + res.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["passed"] and r["listen"]["same_results"] and r["false-alarms"]["same_results"]
    assert r["listen"]["blocks"]["windows"] == 3591 and r["false-alarms"]["blocks"]["hours"] == 0.1
    for c in ("listen", "false-alarms"):
        assert r[c]["blocks"]["peak_rss_mb"] < r[c]["whole_file"]["peak_rss_mb"]


def test_false_alarms_reads_recordings_block_by_block(monkeypatch, tmp_path, capsys):
    """false-alarms on long recordings: block by block, the events and hours of the whole signal."""
    from edgeship import audio
    from edgeship.kws import KeywordDetector

    x = np.concatenate([_speech(), np.zeros(5000, np.float32), _speech()])
    pcm = np.round(x * 32767).astype("<i2")
    with wave.open(str(tmp_path / "talk.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    det = KeywordDetector("kws_dscnn_int8")
    whole = det.events(*det.window_posteriors(pcm.astype(np.float32) / 32768))
    assert [e.label for e in whole] == ["yes", "no", "stop"] * 2

    def no_whole_file(*a, **k):
        raise AssertionError("false-alarms read the whole recording")

    monkeypatch.setattr(audio, "read_audio", no_whole_file)
    assert main(["false-alarms", "--audio", str(tmp_path), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["hours"] == round(x.size / 16000 / 3600, 4) and r["false_accepts"] == 6
    assert [e["label"] for e in r["events"]] == [e.label for e in whole]
    assert [e["time_s"] for e in r["events"]] == pytest.approx([e.time_s for e in whole], abs=1e-3)


def test_the_readme_snippet_runs_as_written(monkeypatch, tmp_path, capsys):
    """The app README's "In your own app" code, run on a real clip stream."""
    import re

    readme = (Path(__file__).resolve().parent.parent / "examples" / "keyword_spotting" / "README.md").read_text()
    section = readme.split("## In your own app", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    _wav(tmp_path / "talk.wav")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README snippet", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert "'_unknown_']" in out[0] and "DetectorConfig(threshold=0.95" in out[0]
    assert [line.split()[2] for line in out[1:]] == ["yes", "no", "stop"], out
