"""Helpers for the keyword-spotting tests: streams of real clips placed in real noise."""
from __future__ import annotations

import numpy as np

SR = 16000
SHIFTS_S = (-0.2, -0.1, 0.0, 0.1, 0.2)


def word_centre(x: np.ndarray) -> float:
    """Centre of the speech in a clip: first to last 10 ms frame within 20 dB of the loudest, in s."""
    fr = x[: x.size // 160 * 160].reshape(-1, 160)
    e = np.sqrt((fr ** 2).mean(axis=1))
    on = np.flatnonzero(e >= 0.1 * e.max())
    return (on[0] + on[-1] + 1) / 2 * 160 / SR


def place_recognisable(detector, sig: np.ndarray, start: int, label: str, files, used=(), min_posterior=0.95):
    """Add onto ``sig`` at ``start`` the first clip of ``files`` (not in ``used``) that ``detector``'s model
    recognises as ``label`` with at least ``min_posterior`` in every 1 s window shifted by
    -200..+200 ms around it, in the noise it gets there. Returns (file, true time in s).

    This fixes, by a rule independent of the detector's settings, clips the model itself handles
    well, so a test measures the streaming detector and not the model's accuracy.
    """
    from edgeship import audio

    for f in files:
        if f in used:
            continue
        x = audio.read_audio(f)
        trial = sig.copy()
        trial[start:start + x.size] += x
        ok = True
        for shift in SHIFTS_S:
            a = start + int(shift * SR)
            if a < 0 or a + SR > trial.size:
                continue
            p = detector.classify(trial[a:a + SR])
            if detector.labels[int(np.argmax(p))] != label or p.max() < min_posterior:
                ok = False
                break
        if ok:
            sig[start:start + x.size] += x
            return f, start / SR + word_centre(x)
    raise AssertionError(f"no clip of {label!r} is recognised reliably by the model")


KEYWORDS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes")
LABELS = (*KEYWORDS, "_silence_", "_unknown_")


def zoo_accuracy_on(generate, per_word: int) -> float:
    """Share of ``generate([(keyword, seed), ...])``'s clips (``per_word`` of each keyword) that the
    zoo model, trained on real clips only, classifies as the keyword spoken: how close a synthetic
    voice is to real speech."""
    import edgeship
    from edgeship import audio, models

    m = edgeship.load(models.fetch("kws_dscnn_int8"))
    clips = generate([(w, s) for w in KEYWORDS for s in range(per_word)])
    feats = np.stack([audio.features(c) for c in clips])[..., None]
    pred = m.predict(feats).argmax(axis=1)
    truth = np.array([LABELS.index(w) for w in KEYWORDS for _ in range(per_word)])
    return float(np.mean(pred == truth))


def fake_program(path, script: str) -> str:
    """Write ``script`` (with its ``#!`` line) to ``path`` as an executable; returns the path (a
    stand-in for a system program such as Festival)."""
    import stat
    from pathlib import Path

    path = Path(path)
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def forget_festival(monkeypatch) -> None:
    """Make Festival be looked up afresh (no remembered program or voices, no $EDGESHIP_FESTIVAL)."""
    from edgeship.models import speech_festival

    monkeypatch.setattr(speech_festival, "_FACTS", {})
    monkeypatch.delenv("EDGESHIP_FESTIVAL", raising=False)
