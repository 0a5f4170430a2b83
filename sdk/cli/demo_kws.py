"""The keyword-spotting half of ``edgeship demo``: report, listen on a stream, deploy.

Data: the real Speech Commands clips shipped in ``examples/keyword_spotting/sample_data``
(CC BY 4.0; speakers the zoo model never trained on; see that folder's README).

1. :func:`run_report`: the zoo's ``kws_dscnn_keras`` through :func:`edgeship.converters.report.build_report`
   with the clips' MFCC features as validation data and their labels, so every format's row
   carries its real top-1 accuracy on them. Calibration: seeded augmented copies of the same
   clips (time shift, gain, the shipped background recordings mixed in); calibration only sets
   the int8 value ranges.
2. :func:`build_stream` + :func:`run_listen`: a stream of keywords and unknown words at known
   times over the shipped ``_silence_`` background recordings, streamed through the app's
   ``listen --wav`` (a subprocess, exactly as a user runs it); :func:`score_listen` matches its
   events to the truth.
3. :func:`run_deploy`: the report's int8 TFLite through :func:`edgeship.targets.deploy.deploy`
   (what ``edgeship deploy`` does) for each device target: a local bundle folder per target.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
import wave
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..errors import EdgeshipError, InputSpecError

SR = 16000
ZOO_SOURCE = "kws_dscnn_keras"
DEPLOY_TARGETS = ("rpi4", "edgetpu", "android", "mcu")
STREAM_SPEAKERS = 3          # the first N sample speakers' keywords go into the stream
STREAM_GAP_S = 2.5           # one word every 2.5 s
STREAM_SNR_DB = 15.0         # each word's RMS over the background's
MATCH_TOLERANCE_S = 0.75     # a detection this close to a word's centre, with its label, finds it
SEED = 0


def sample_dir(repo: Path) -> Path:
    d = repo / "examples" / "keyword_spotting" / "sample_data"
    if not d.is_dir():
        raise InputSpecError(f"the demo's keyword clips are missing: expected {d} (run the demo from an edgeship "
                             f"source checkout: `make demo`)")
    return d


def load_clips(repo: Path):
    """The shipped clips: (list of Clip, [N, 16000] float32 audio, labels (int), label names)."""
    from edgeship import audio, models
    from edgeship.models import kws

    labels = list(models.entry(ZOO_SOURCE).labels)
    clips = kws.list_clips(sample_dir(repo), labels)
    wavs = np.stack([_one_second(audio.read_audio(c.path)) for c in clips])
    y = np.array([kws.label_index(c.label, labels) for c in clips], np.int64)
    return clips, wavs, y, labels


def _one_second(x: np.ndarray) -> np.ndarray:
    return np.pad(x, (0, max(0, SR - x.size)))[:SR].astype(np.float32)


def features(wavs: np.ndarray) -> np.ndarray:
    from edgeship.models import kws

    return kws.compute_features(list(wavs))


def calibration_audio(wavs: np.ndarray, noise: np.ndarray, copies: int = 2, seed: int = SEED) -> np.ndarray:
    """Seeded augmented copies of the clips: shift +-100 ms, gain -6..+6 dB, background at 5-25 dB SNR."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(copies):
        for x in wavs:
            y = np.roll(x, int(rng.integers(-1600, 1601))) * 10 ** (rng.uniform(-6, 6) / 20)
            n = noise[rng.integers(0, len(noise))]
            snr = rng.uniform(5, 25)
            rx, rn = _rms(y), _rms(n)
            if rx > 0 and rn > 0:
                y = y + n * (rx / rn) / 10 ** (snr / 20)
            out.append(np.clip(y, -1, 1).astype(np.float32))
    return np.stack(out)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def run_report(repo: Path, out: Path, wavs, y, clips, *, runs: int, progress=None) -> dict:
    """The zoo DS-CNN through ``build_report``: real top-1 accuracy of every format on the clips."""
    from edgeship import models
    from edgeship.converters.report import build_report

    noise = wavs[[i for i, c in enumerate(clips) if c.label == "_silence_"]]
    x_val = features(wavs)
    x_cal = features(calibration_audio(wavs, noise))
    res = build_report(str(models.path(ZOO_SOURCE)), out, calibration=x_cal, validation=x_val, labels=y,
                       targets="all", runs=runs, warmup=3, progress=progress, seed=SEED,
                       command=["edgeship", "demo"])
    return {"data": res.to_dict(), "paths": _paths(res.paths)}


def _paths(paths: dict) -> dict:
    out = {k: str(v) for k, v in paths.items() if k != "plots" and v is not None}
    out["plots"] = {k: str(v) for k, v in (paths.get("plots") or {}).items()}
    return out


# ------------------------------------------------------------------------------ listen

def _centre(x: np.ndarray) -> float:
    """Energy centroid of a clip in seconds (where the word is, roughly)."""
    e = np.square(x.astype(np.float64))
    return float((np.arange(x.size) * e).sum() / max(e.sum(), 1e-12)) / SR


def build_stream(clips, wavs: np.ndarray, labels: Sequence[str], path: Path, seed: int = SEED) -> dict:
    """Write a WAV stream of the first speakers' keywords + unknown words over real background noise.

    The background is the shipped ``_silence_`` recordings, tiled; each word is scaled to
    :data:`STREAM_SNR_DB` over it. Returns the truth: every word's label, speaker and centre time.
    """
    from edgeship._io import atomic_write_bytes

    speakers = sorted({c.speaker for c in clips if not c.speaker.startswith("file:")})[:STREAM_SPEAKERS]
    words = [i for i, c in enumerate(clips) if c.speaker in speakers]
    rng = np.random.default_rng(seed)
    words = [words[i] for i in rng.permutation(len(words))]
    noise_clips = [wavs[i] for i, c in enumerate(clips) if c.label == "_silence_"]
    if not words or not noise_clips:
        raise InputSpecError("the demo's sample folder must hold keyword clips and _silence_ recordings")
    total = int((1.5 + STREAM_GAP_S * len(words) + 1.5) * SR)
    bg = np.concatenate([n / max(_rms(n), 1e-6) for n in noise_clips])
    bg = np.tile(bg, total // bg.size + 1)[:total] * 0.01          # background at -40 dBFS RMS
    stream = bg.astype(np.float64)
    truth = []
    for k, i in enumerate(words):
        start = int((1.5 + STREAM_GAP_S * k) * SR)
        x = wavs[i].astype(np.float64)
        x = x * (0.01 * 10 ** (STREAM_SNR_DB / 20)) / max(_rms(x), 1e-9)
        stream[start:start + SR] += x
        c = clips[i]
        truth.append({"label": c.label, "word": c.word, "speaker": c.speaker, "file": Path(c.path).name,
                      "time_s": round(start / SR + _centre(x), 3), "keyword": not c.label.startswith("_")})
    peak = np.max(np.abs(stream))
    if peak > 0.99:
        stream *= 0.99 / peak
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((stream * 32767).round().astype("<i2").tobytes())
    atomic_write_bytes(path, buf.getvalue())
    return {"wav": str(path), "seconds": round(total / SR, 2), "speakers": speakers, "snr_db": STREAM_SNR_DB,
            "words": truth}


def app_command(repo: Path, app: str, *args: str) -> List[str]:
    return [sys.executable, "-m", f"examples.{app}", *args]


def run_app(repo: Path, cmd: List[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run an example app from the repository root (as its README shows); stderr is kept for errors."""
    try:
        return subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise EdgeshipError(f"{' '.join(cmd[2:])} did not finish in {timeout:.0f} s") from exc


def run_listen(repo: Path, wav: Path) -> dict:
    """``python -m examples.keyword_spotting listen --wav WAV --json``: its start/keyword/end objects."""
    cmd = app_command(repo, "keyword_spotting", "listen", "--wav", str(wav), "--json")
    p = run_app(repo, cmd)
    lines = [json.loads(ln) for ln in p.stdout.splitlines() if ln.strip().startswith("{")]
    if p.returncode != 0 or not lines:
        raise EdgeshipError(f"listen failed (exit {p.returncode}): {(p.stderr or p.stdout)[-1500:]}")
    return {"command": ["python", *cmd[1:]], "start": lines[0],
            "events": [ln for ln in lines if ln.get("event") == "keyword"],
            "end": next((ln for ln in lines if ln.get("event") == "end"), None)}


def score_listen(truth: List[dict], events: List[dict], tol: float = MATCH_TOLERANCE_S) -> dict:
    """Match detections to the words: found (right label within ``tol``), missed, false alarms."""
    used = set()
    rows = []
    for t in truth:
        hit = None
        for j, e in enumerate(events):
            if j not in used and abs(e["time_s"] - t["time_s"]) <= tol and e["label"] == t["label"]:
                hit = j
                break
        if hit is not None:
            used.add(hit)
        rows.append({**t, "detected": hit is not None,
                     "detection_s": events[hit]["time_s"] if hit is not None else None})
    false = [e for j, e in enumerate(events) if j not in used]
    kw = [r for r in rows if r["keyword"]]
    found = [r for r in kw if r["detected"]]
    errs = [abs(r["detection_s"] - r["time_s"]) for r in found]
    return {"keywords": len(kw), "found": len(found), "missed": [f"{r['label']} ({r['speaker']}, {r['time_s']:.1f} s)"
                                                                 for r in kw if not r["detected"]],
            "false_alarms": [f"{e['label']} at {e['time_s']:.1f} s" for e in false],
            "unknown_words": len(rows) - len(kw),
            "timing_error_s": {"mean": round(float(np.mean(errs)), 3), "max": round(float(np.max(errs)), 3)} if errs else None,
            "tolerance_s": tol, "words": rows}


# ------------------------------------------------------------------------------ deploy

def run_deploy(model: Path, out: Path, labels: Sequence[str], targets: Sequence[str] = DEPLOY_TARGETS) -> List[dict]:
    """``edgeship deploy MODEL --target T -o out/T`` for each target (local folder; no device here)."""
    from edgeship import models
    from edgeship.errors import IncompatibleTargetError
    from edgeship.targets.deploy import deploy

    prep = models.entry(ZOO_SOURCE).preprocessing
    rows = []
    for t in targets:
        try:
            r = deploy(model, t, out / t, labels=list(labels), preprocessing=dict(prep) if prep else None,
                       overwrite=True)
        except IncompatibleTargetError as exc:
            rows.append({"target": t, "deployed": False, "reason": str(exc)})
            continue
        check = (json.loads((r.bundle_dir / "manifest.json").read_text()).get("extra") or {}).get("check") or {}
        rows.append({"target": t, "deployed": True, "bundle": str(r.bundle_dir),
                     "files": sorted(str(p.relative_to(r.bundle_dir)) for p in r.bundle_dir.rglob("*") if p.is_file()),
                     "run_command": r.run_command, "estimate": estimate_text(check.get("estimate")),
                     "placement": check.get("placement_counts"), "memory": check.get("memory"),
                     "notes": list(check.get("notes") or [])})
    return rows


def estimate_text(e) -> Optional[str]:
    """One line from a target's latency estimate (rpi: one figure; mcu: one per board)."""
    if not isinstance(e, dict):
        return None
    if isinstance(e.get("latency_ms"), (int, float)):
        return f"~{e['latency_ms']:.2f} ms estimated ({e.get('low_ms', 0):.2f}-{e.get('high_ms', 0):.2f})"
    boards = e.get("latency_ms") or []
    if boards and isinstance(boards, list):
        b = boards[0]
        return f"~{b['ms']:.0f} ms estimated on {b['board']} ({b['low_ms']:.0f}-{b['high_ms']:.0f})"
    return None


def int8_model(report: dict, out: Path) -> Optional[Path]:
    """The report's int8 TFLite file (passed parity), as an absolute path."""
    for f in report["formats"]:
        if f["format"] == "tflite-int8" and f["status"] == "ok" and f.get("file"):
            return out / f["file"]
    return None


def kws_files_note() -> str:
    return ("Speech Commands v0.02 clips (Warden 2018, CC BY 4.0, "
            "https://creativecommons.org/licenses/by/4.0/): examples/keyword_spotting/sample_data/README.md")


__all__ = ["load_clips", "run_report", "build_stream", "run_listen", "score_listen", "run_deploy", "int8_model",
           "DEPLOY_TARGETS"]
