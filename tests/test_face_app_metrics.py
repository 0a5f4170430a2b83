"""LFW pairs reading, verification metrics, threshold calibration and the shipped-threshold rules (no models)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgeship.errors import InputSpecError, ModelFormatError
from examples.face_unlock import evaluate as ev
from examples.face_unlock.engine import decide, threshold_for


def test_read_pairs_view2_and_plain(tmp_path):
    p = tmp_path / "pairs.txt"
    p.write_text("2\t1\nA\t1\t2\nB\t1\tC\t3\nD\t2\t4\nE\t1\tF\t1\n")
    ps = ev.read_pairs(p)
    assert [(x.same, x.fold) for x in ps] == [(True, 0), (False, 0), (True, 1), (False, 1)]
    assert ps[1].a == ("B", 1) and ps[1].b == ("C", 3)
    p.write_text("A\t1\t2\nB\t1\tC\t3\n")
    assert len(ev.read_pairs(p)) == 2
    assert ev.image_path("/x", ("Ada_L", 7)).as_posix() == "/x/Ada_L/Ada_L_0007.jpg"


@pytest.mark.parametrize("text, match", [
    ("", "empty"),
    ("1\t2\nA\t1\t2\n", "header says 1 folds"),
    ("A\t1\nB\t1\tC\t2\n", "line 1"),
    ("1\t1\nA\t1\t2\nB\tx\tC\t2\n", "line 3"),
])
def test_read_pairs_errors(tmp_path, text, match):
    p = tmp_path / "p.txt"
    p.write_text(text)
    with pytest.raises(InputSpecError, match=match):
        ev.read_pairs(p)


def test_read_pairs_missing_and_binary(tmp_path):
    with pytest.raises(InputSpecError, match="no such file"):
        ev.read_pairs(tmp_path / "nope.txt")
    b = tmp_path / "b.txt"
    b.write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(InputSpecError, match="could not read"):
        ev.read_pairs(b)


def _brute(d, s):
    best = 0.0
    for t in np.concatenate([[-1.0], np.unique(d[np.isfinite(d)])]):
        best = max(best, float(np.mean((d <= t) == s)))
    return best


def test_metrics_against_brute_force():
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = int(rng.integers(4, 300))
        s = rng.random(n) < 0.5
        s[0], s[1] = True, False
        d = np.where(s, rng.normal(0.4, 0.1, n), rng.normal(0.7, 0.1, n)).round(2)  # ties on purpose
        d[rng.random(n) < 0.05] = np.inf
        m = ev.verification_metrics(d, s, 0.55)
        assert m["best_accuracy"] == pytest.approx(_brute(d, s))
        assert m["accuracy_at_shipped_threshold"] == pytest.approx(np.mean((d <= 0.55) == s))
        assert m["n_pairs"] == n and m["n_pairs_without_face"] == int(np.isinf(d).sum())
        # the FAR-target threshold accepts at most floor(1e-3 * n_imp) impostors and is the largest such
        t = m["threshold_at_far_target"]
        imp, gen = d[~s], d[s]
        assert np.sum(imp <= t) <= math.floor(1e-3 * imp.size)
        assert m["tar_at_far_1e-3"] == pytest.approx(np.mean(gen <= t))
        k = math.floor(1e-3 * imp.size)
        nxt = np.sort(imp)[k]
        assert not np.any((gen > t) & (gen < nxt))  # no genuine pair left out that could be accepted
        assert 0 <= m["auc"] <= 1


def test_metrics_errors():
    with pytest.raises(InputSpecError, match="one distance per pair"):
        ev.verification_metrics(np.array([0.1, 0.2]), np.array([True]), 0.5)
    with pytest.raises(InputSpecError, match="NaN"):
        ev.verification_metrics(np.array([np.nan, 0.2]), np.array([True, False]), 0.5)
    with pytest.raises(InputSpecError, match="genuine and impostor"):
        ev.threshold_at_far(np.array([]), np.array([1.0]))


def test_pair_distances_no_face_is_inf():
    e = {("a", 1): np.zeros(128), ("a", 2): np.ones(128) * 0.1, ("b", 1): None}
    ps = [ev.Pair(("a", 1), ("a", 2), True, 0), ev.Pair(("a", 1), ("b", 1), False, 0)]
    d = ev.pair_distances(ps, e)
    assert d[0] == pytest.approx(math.sqrt(128) * 0.1) and d[1] == math.inf


def test_calibration_pairs_never_use_evaluated_pairs():
    people = {"A": [1, 2, 3], "B": [1, 2], "C": [1]}
    exclude = [ev.Pair(("A", 1), ("A", 2), True, 0), ev.Pair(("B", 2), ("A", 3), False, 0)]
    cal = ev.calibration_pairs(people, exclude, n_impostor=100, seed=1)
    keys = {frozenset((p.a, p.b)) for p in cal}
    assert not keys & {frozenset((p.a, p.b)) for p in exclude}
    gen = [p for p in cal if p.same]
    assert {frozenset((p.a, p.b)) for p in gen} == {frozenset({("A", 1), ("A", 3)}), frozenset({("A", 2), ("A", 3)}),
                                                    frozenset({("B", 1), ("B", 2)})}
    imp = [p for p in cal if not p.same]
    assert all(p.a[0] != p.b[0] for p in imp) and len(imp) == len({frozenset((p.a, p.b)) for p in imp})
    assert cal == ev.calibration_pairs(people, exclude, n_impostor=100, seed=1)  # seeded


def test_roc_plot(tmp_path):
    pytest.importorskip("matplotlib")
    far, tar, _ = ev.roc_curve(np.array([0.1, 0.5, 0.4, 0.9]), np.array([True, True, False, False]))
    p = ev.plot_roc({"x": (far, tar)}, tmp_path / "roc.png", marks={"t": (0.5, 0.5)})
    assert p.read_bytes()[:4] == b"\x89PNG"


def test_threshold_rules(tmp_path):
    f = tmp_path / "threshold.json"
    f.write_text(json.dumps({"models": {"int8": {"threshold": 0.45, "model_sha256": "aa"},
                                        "fp32": {"threshold": 0.47, "model_sha256": "bb"}}}))
    t = threshold_for("int8", "aa", path=f)
    assert (t.value, t.source, t.warning) == (0.45, "shipped:int8", None)
    t = threshold_for("int8", "zz", path=f)
    assert t.value == 0.45 and "differs" in t.warning
    t = threshold_for("/some/model.tflite", "bb", path=f)  # a PATH whose hash matches a calibrated model
    assert (t.value, t.source, t.warning) == (0.47, "shipped:fp32", None)
    t = threshold_for("/some/other.tflite", "cc", path=f)
    assert t.value == 0.47 and "not calibrated" in t.warning
    assert threshold_for("int8", "aa", 0.5, path=f).source == "user"
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(InputSpecError, match="positive --threshold"):
            threshold_for("int8", "aa", bad, path=f)
    with pytest.raises(ModelFormatError, match="no shipped threshold"):
        threshold_for("int8", "aa", path=tmp_path / "none.json")
    f.write_text("{broken")
    with pytest.raises(ModelFormatError, match="damaged"):
        threshold_for("int8", "aa", path=f)


def test_decide_nearest_template():
    t = {"ada": np.stack([np.zeros(128), np.ones(128)]).astype(np.float32), "bob": np.full((1, 128), 0.5, np.float32)}
    r = decide(t, np.full(128, 0.98, np.float32), 0.3)
    assert r["unlocked"] and r["user"] == "ada" and r["score"] == pytest.approx(math.sqrt(128) * 0.02, rel=1e-5)
    r = decide(t, np.full(128, 0.75, np.float32), 0.3)
    assert not r["unlocked"] and r["reason"] == "below threshold" and r["user"] is None
    assert decide({}, np.zeros(128, np.float32), 0.3)["unlocked"] is False


def test_shipped_threshold_file_records_how_it_was_chosen():
    from examples.face_unlock.engine import THRESHOLD_FILE, load_thresholds

    doc = load_thresholds()
    assert doc, f"{THRESHOLD_FILE} is missing; run bench/face_eval.py --write-threshold"
    assert doc["far_target"] == 1e-3 and "pairs_dev.txt" in doc["method"] and "none of them" in doc["method"]
    for fmt in ("int8", "fp32"):
        e = doc["models"][fmt]
        assert 0.2 < e["threshold"] < 0.8
        assert len(e["model_sha256"]) == 64 and e["data"]["folds"] == [7, 8]
        assert e["far_on_calibration"] <= 1e-3 and e["calibration_pairs"]["impostor"] >= 100_000
    assert "int8_calibration" in doc["models"]["int8"]
