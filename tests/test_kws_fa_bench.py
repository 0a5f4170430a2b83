"""bench/kws_false_alarms.py's mixing and scoring helpers: the SNR each word gets and the recall by SNR band.

The bench's figures (README, model card) rest on these; the full bench takes minutes and runs on its own.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fa():
    spec = importlib.util.spec_from_file_location("kws_false_alarms", REPO / "bench" / "kws_false_alarms.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _word(rng, seconds=0.6, level=0.3):
    """A 1 s clip: a tone burst of ``seconds`` in the middle, faint hiss elsewhere."""
    x = rng.normal(0, 1e-4, 16000).astype(np.float32)
    n = int(seconds * 16000)
    s = (16000 - n) // 2
    x[s:s + n] += level * np.sin(2 * np.pi * 440 * np.arange(n) / 16000).astype(np.float32)
    return x, level ** 2 / 2   # the tone's power


def test_speech_power_counts_only_the_word(fa):
    x, p = _word(np.random.default_rng(0))
    assert fa.speech_power(x) == pytest.approx(p, rel=0.02)
    assert fa.word_centre(x) == pytest.approx(0.5, abs=0.011)


@pytest.mark.parametrize("snr", [-5.0, 0.0, 12.5, 30.0])
def test_add_word_reaches_the_drawn_snr(fa, snr):
    rng = np.random.default_rng(1)
    bed = rng.normal(0, 0.05, 48000).astype(np.float32)
    x, p = _word(rng)
    noise = bed[16000:32000].astype(np.float64)
    mixed = bed.copy()
    got = fa.add_word(mixed, 16000, x, rng, snr_db=(snr, snr))
    assert got == pytest.approx(snr, abs=1e-6)
    added = mixed[16000:32000] - bed[16000:32000]     # what was added, measured independently
    g2 = np.mean(added[6400:9600].astype(np.float64) ** 2) / p   # the tone's gain^2, from its middle
    assert 10 * np.log10(p * g2 / np.mean(noise ** 2)) == pytest.approx(snr, abs=0.1)
    assert np.array_equal(mixed[:16000], bed[:16000]) and np.array_equal(mixed[32000:], bed[32000:])


def test_add_word_at_a_gain_reports_its_snr(fa):
    rng = np.random.default_rng(2)
    bed = np.full(16000, 0.01, np.float32)              # noise power 1e-4
    x, p = _word(rng, level=0.1)                        # 5e-3: 17 dB
    got = fa.add_word(bed, 0, x, np.random.default_rng(3), gain_db=(0, 0))
    assert got == pytest.approx(10 * np.log10(fa.speech_power(x) / 1e-4), abs=1e-3)
    assert got == pytest.approx(17.0, abs=0.2)


class _Events:
    """Stands in for a KeywordDetector: ``events`` returns the given events, whatever the posteriors."""

    def __init__(self, events):
        self._events = events

    def events(self, ends, post, config=None):
        return self._events


def test_score_recall_by_snr_band(fa):
    from edgeship.kws import Detection

    truth = [("yes", 1.5, -3.0, False), ("no", 3.5, 5.0, False), ("up", 5.5, 15.0, False),
             ("go", 7.5, 25.0, False), ("on", 9.5, 35.0, True)]
    events = [Detection(label="yes", time_s=1.7, confidence=0.9, emitted_s=0.0),   # hit
              Detection(label="up", time_s=3.5, confidence=0.9, emitted_s=0.0),    # wrong label: a miss and an extra event
              Detection(label="up", time_s=6.2, confidence=0.9, emitted_s=0.0),    # 0.7 s late: a miss
              Detection(label="go", time_s=7.0, confidence=0.9, emitted_s=0.0),    # hit (0.5 s early)
              Detection(label="on", time_s=9.4, confidence=0.9, emitted_s=0.0)]    # hit
    half = {"non_keyword": [np.zeros(3600 * 16000 // 100, np.float32)], "non_keyword_post": [(None, None)],
            "keyword_post": (None, None), "truth": truth}
    r = fa.score(_Events(events), None, half)
    assert r["recall"] == pytest.approx(3 / 5) and r["keyword_stream_extra_events"] == 2
    assert r["false_accepts"] == 5 and r["fa_per_hour"] == pytest.approx(500)
    assert r["recall_by_snr"] == {"< 0 dB": {"keywords": 1, "recall": 1.0},
                                  "0-10 dB": {"keywords": 1, "recall": 0.0},
                                  "10-20 dB": {"keywords": 1, "recall": 0.0},
                                  ">= 20 dB": {"keywords": 2, "recall": 1.0}}


def test_best_in_hindsight_takes_the_top_recall_under_each_limit(fa):
    grid = [{"config": {"threshold": t}, "eval": {"fa_per_hour": f, "recall": r}}
            for t, f, r in [(0.5, 40.0, 0.9), (0.8, 9.0, 0.8), (0.9, 3.0, 0.7), (0.95, 3.0, 0.72), (0.99, 2.0, 0.72)]]
    c = fa.best_in_hindsight(grid, limits=[1, 3, 10, 30])
    assert c["<= 1 / h"] is None
    assert c["<= 3 / h"] == {"recall": 0.72, "fa_per_hour": 2.0, "config": {"threshold": 0.99}}   # fewer FA on a tie
    assert c["<= 10 / h"]["config"] == {"threshold": 0.8} and c["<= 30 / h"]["recall"] == 0.8


def test_separability_threshold_and_the_unknown_words_reaching_it(fa):
    labels = ["_silence_", "_unknown_", "yes", "no"]
    ends = 1.0 + np.arange(300) / 10             # window centres 0.5 .. 30.4 s
    post = np.zeros((300, 4))
    post[:, 0] = 1.0
    truth, peaks = [], [0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    for i, v in enumerate(peaks):                  # keyword i at 2 + 2.5 i s, its peak window 0.3 s late
        t = 2.0 + 2.5 * i
        label = labels[2 + i % 2]
        truth.append(fa.Truth(label, t, 20.0, False))
        post[int(round((t + 0.3 + 0.5 - 1.0) * 10)), [0, 2 + i % 2]] = [1 - v, v]
    # a window 0.7 s after keyword 0 with a higher score is outside the tolerance: not its peak
    post[int(round((2.7 + 0.5 - 1.0) * 10)), [0, 2]] = [0.0, 1.0]
    nk_ends = 1.0 + np.arange(100) / 10
    nk = np.zeros((100, 4))
    nk[:, 1] = 1.0
    for t, v, col in [(2.0, 0.25, 2), (4.0, 0.15, 3), (6.0, 0.2, 3), (8.0, 0.9, 1)]:   # the last: "_unknown_" itself
        nk[int(round((t + 0.5 - 1.0) * 10)), [1, col]] = [1 - v, v] if col != 1 else [v, 0.0]
    half = {"keyword_post": (ends, post), "truth": truth, "non_keyword_post": [(nk_ends, nk), (nk_ends, nk)],
            "unknown_at": [[(0, 2.0), (1, 4.0), (2, 6.0), (3, 8.0)], [(0, 2.0), (4, 4.0), (2, 6.0), (3, 8.0)]],
            "unknown_clips": 6}
    assert fa.peak_near(ends, post, 2.0, [2]) == pytest.approx(0.95)
    r = fa.separability(labels, half, recall=0.9)
    # 9 of the 10 keywords reach 0.2; the words at 2.0 s (0.25) and 6.0 s (0.2) reach it in both streams
    assert r == {"keyword_recall": 0.9, "threshold": 0.2, "unknown_words": 8, "unknown_words_reaching": 4,
                 "unknown_clips": 6, "unknown_clips_reaching": 2}
    assert fa.separability(labels, half, recall=1.0)["threshold"] == pytest.approx(0.1)
    assert fa.separability(labels, half, recall=0.5)["threshold"] == pytest.approx(0.6)


@pytest.mark.parametrize("bad", ["30:10", "abc", "5", "1:nan"])
def test_bad_snr_range_exits_2(bad):
    r = subprocess.run([sys.executable, str(REPO / "bench" / "kws_false_alarms.py"), "--snr", bad],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--snr: expected LO:HI" in r.stderr


def test_zoo_detector_settings_are_the_bench_choices():
    """Each zoo entry's ``detector`` is what the bench chose for that very file (its results JSON)."""
    import json
    import re

    from edgeship import kws, models

    recorded = {n: e for n, e in models.REGISTRY.items() if e.detector}
    assert {"kws_dscnn_int8", "mlperf_kws_int8"} <= set(recorded)
    for name, e in recorded.items():
        path = re.search(r"bench/results/\S+\.json", e.detector["source"])
        assert path, f"{name}: its setting names no bench result"
        r = json.loads((REPO / path.group(0)).read_text())
        assert r["model_sha256"] == e.sha256, f"{name}: {path.group(0)} measured another file"
        chosen = kws.DetectorConfig.from_dict(r["chosen_on_tune"]["config"])
        assert kws.DetectorConfig.from_dict(e.detector, name) == chosen, f"{name}: re-run the bench or update it"
        assert r["eval_with_app_default"]["config"] == chosen.to_dict()
        assert r["recorded_setting_is_chosen"] is True
