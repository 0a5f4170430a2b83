"""Acceptance: edgeship's front end + edgeship's int8 conversion reproduce the MLPerf reference pipeline
on the 50 kws01 parity clips.

The reference pipeline: golden features (the reference front end, quantized to int8 by
truncation) -> the shipped reference int8 model. Measured here (see the printout):

- A. the shipped int8 model fed by edgeship's front end from the wavs, quantized the way the
  reference quantizes (truncation, :func:`edgeship.audio.quantize_truncate`), classifies the 50
  clips as it does with the golden features: at most one clip different (this is the front end
  reproduced end to end; quantizing the same features by rounding flips 5 borderline clips);
- B. the reference float SavedModel converted to int8 by ``edgeship.converters.convert``
  (calibrated on edgeship features of 120 real Speech Commands dev clips, 10 per class, never
  one of the kws01 clips) and fed by edgeship's front end differs from the reference pipeline on
  at most one clip more than the reference's own float SavedModel does. That floor is 6 of 50
  because the shipped SavedModel is **not the network the shipped int8 model was quantized
  from**: its first convolution, converted, is uncorrelated with the int8 model's (checked
  below; 0.01-0.07 for the layers measured by hand), while the shipped
  ``kws_ref_model_float32.tflite`` matches it (r > 0.999) and classifies 49 of the 50 clips as
  the int8 model does. So the int8 model's own source is that float file
  (float activations, some weights stored as int8: a dynamic-range file);
- C. that float .tflite converted to int8 by edgeship (replayed with TF ops,
  :mod:`edgeship.converters.tflite_graph`; the same 120 calibration clips) differs from the
  reference pipeline on at most two clips more than the float file does (floor 1): the rest is
  calibration data, which MLPerf took from the Speech Commands validation split (not here);
- D. the same conversion with ``ranges_from`` the shipped int8 model (its activation ranges;
  the weights are still quantized by edgeship from the float file) differs on at most one clip:
  the criterion as the issue states it;
- and the converted models are at least as accurate on the 50 clips as the reference pipeline.

About 10 s on this machine (TensorFlow import and four conversions), hence ``slow``.
"""
from __future__ import annotations

import numpy as np
import pytest

import edgeship
from edgeship import audio, models

LABELS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "_silence_", "_unknown_")


def _first_conv(path) -> np.ndarray:
    """The dequantized [64, 10, 4, 1] int8 kernel of the DS-CNN's first convolution."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    for d in it.get_tensor_details():
        if tuple(d["shape"]) == (64, 10, 4, 1) and d["dtype"] == np.int8:
            scales = d["quantization_parameters"]["scales"].reshape(-1, 1, 1, 1)
            return it.get_tensor(d["index"]).astype(np.float32) * scales
    raise AssertionError(f"no int8 first convolution in {path}")


@pytest.mark.slow
@pytest.mark.shared
def test_our_front_end_and_conversion_reproduce_the_reference_pipeline(shared_dir, tmp_path):
    from edgeship.converters import convert
    from edgeship.converters.sources import load_source

    sm = shared_dir / "models" / "mlperf_tiny_kws" / "saved_model"
    if not sm.is_dir():
        pytest.skip(f"MLPerf Tiny KWS SavedModel not found at {sm}")
    par = shared_dir / "data" / "kws01_parity"
    rows = [ln.split(",") for ln in (par / "y_labels.csv").read_text().splitlines() if ln.strip()]
    names = [r[0].strip() for r in rows]
    truth = np.array([int(r[2]) for r in rows])
    feats = np.stack([audio.features(audio.read_audio(par / "wav" / n.replace(".bin", ".wav"))) for n in names])
    golden_q = np.stack([np.fromfile(par / "mfcc" / n, np.int8).reshape(49, 10) for n in names])
    golden = ((golden_q.astype(np.float32) - 83) * 0.5847)[..., None]

    reference = edgeship.load(models.fetch("mlperf_kws_int8", mirror=str(shared_dir / "models")))
    assert reference.inputs[0].quantization.scale[0] == pytest.approx(0.5847, abs=1e-5)
    raw = lambda m, q: np.array([m.run_raw([q[i][None, ..., None]])[0].argmax() for i in range(len(q))])
    pred_ref = raw(reference, golden_q)
    pred_ref_ours = raw(reference, audio.quantize_truncate(feats))
    pred_ref_rounded = reference.predict(feats[..., None]).argmax(axis=1)

    src = load_source(sm)
    pred_float = src.run({src.inputs[0].name: golden})[0].argmax(axis=1)
    floor = int((pred_float != pred_ref).sum())

    dev = shared_dir / "data" / "speech_commands_dev"
    parity_audio = {audio.read_audio(par / "wav" / n.replace(".bin", ".wav")).tobytes() for n in names}
    picked = []
    for label in LABELS:  # 10 per class, never one of the kws01 clips (some of them are dev clips too)
        clips = (audio.read_audio(f) for f in sorted((dev / label).glob("*.flac")))
        picked += [c for c in clips if c.tobytes() not in parity_audio][:10]
    cal = np.stack([audio.features(c) for c in picked])[..., None]

    def converted(source, name, **kw):
        res = convert(source, to="tflite", quantize="int8", calibration=cal, validation=feats[..., None],
                      labels=truth, out=tmp_path / name, **kw)
        rec = res.outputs[0]
        assert rec.shipped and rec.parity["passed"], rec.parity["failures"]
        assert not res.validation.get("shared_with_calibration")
        m = edgeship.load(rec.path)
        assert m.inputs[0].dtype == "int8"
        return m, rec

    conv_sm, rec_sm = converted(sm, "kws_int8.tflite")
    pred_conv = conv_sm.predict(feats[..., None]).argmax(axis=1)

    f32_path = shared_dir / "models" / "mlperf_tiny_kws" / "kws_ref_model_float32.tflite"
    f32 = edgeship.load(f32_path)
    pred_f32 = f32.predict(golden).argmax(axis=1)
    floor_f32 = int((pred_f32 != pred_ref).sum())
    ref_path = shared_dir / "models" / "mlperf_tiny_kws" / "kws_ref_model.tflite"
    conv_f32, _ = converted(f32_path, "kws_f32_int8.tflite")
    conv_rr, rec_rr = converted(f32_path, "kws_ranges_int8.tflite", ranges_from=ref_path)
    assert conv_rr.inputs[0].quantization.scale[0] == pytest.approx(0.5847, abs=1e-4)
    assert conv_rr.inputs[0].quantization.zero_point[0] == 83
    assert any("activation ranges from" in n for n in rec_rr.notes)
    truncated = lambda m: raw(m, audio.quantize_truncate(feats, m.inputs[0].quantization.scale[0],
                                                          m.inputs[0].quantization.zero_point[0]))
    pred_c, pred_d = truncated(conv_f32), truncated(conv_rr)

    a = int((pred_ref_ours != pred_ref).sum())
    b = int((pred_conv != pred_ref).sum())
    c = int((pred_c != pred_ref).sum())
    d = int((pred_d != pred_ref).sum())
    print(f"\nreference pipeline (golden features -> shipped int8): {np.mean(pred_ref == truth):.0%} on kws01"
          f"\nA shipped int8 <- edgeship front end (truncated like the reference): {a} of 50 differ"
          f" (rounded instead: {int((pred_ref_rounded != pred_ref).sum())})"
          f"\nB SavedModel -> edgeship int8 <- edgeship front end: {b} of 50 differ, accuracy "
          f"{np.mean(pred_conv == truth):.0%}; floor (the SavedModel vs the shipped int8): {floor}; "
          f"the SavedModel vs the float .tflite: {int((pred_float != pred_f32).sum())} differ"
          f"\n  convert parity vs the float SavedModel: top-1 agreement {rec_sm.parity['top1_agreement']:.0%}"
          f"\nC float .tflite -> edgeship int8 (own calibration) <- edgeship front end: {c} of 50 differ, "
          f"accuracy {np.mean(pred_c == truth):.0%}; floor (the float .tflite vs the shipped int8): {floor_f32}"
          f"\nD the same with ranges_from the shipped int8: {d} of 50 differ, accuracy {np.mean(pred_d == truth):.0%}")
    # the SavedModel is another training run: its first convolution has nothing in common with the
    # shipped int8 model's, while the float .tflite's (quantized by edgeship) is the same
    ref_w = _first_conv(ref_path)
    r_sm = np.corrcoef(_first_conv(rec_sm.path).ravel(), ref_w.ravel())[0, 1]
    r_rr = np.corrcoef(_first_conv(rec_rr.path).ravel(), ref_w.ravel())[0, 1]
    print(f"first convolution vs the shipped int8 model: r = {r_sm:.3f} (SavedModel), {r_rr:.4f} (float .tflite)")
    assert abs(r_sm) < 0.3
    assert r_rr > 0.999
    assert a <= 1
    assert b <= floor + 1
    assert c <= floor_f32 + 2
    assert d <= 1
    for pred in (pred_conv, pred_c, pred_d):
        assert np.mean(pred == truth) >= np.mean(pred_ref == truth)
