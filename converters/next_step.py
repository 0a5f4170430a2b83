"""The concrete next step after a rejected conversion, chosen from what was measured.

A rejection ends with one step the user can run, and the figures that support it
(:func:`suggest`), in this order:

1. the source's output never changes -> check the model is trained and the inputs are in range
   (cosine is meaningless for a constant output);
2. parity ran on random inputs -> check on real data first (random inputs can saturate a real
   model and reject a file that is fine on real inputs);
3. int8 calibrated on very few samples -> calibrate with more (real) samples;
4. int8 whose per-layer debug run puts most of the error on a few layers (not already tried by the
   accuracy-budget fix) -> keep those layers in float, with the ``--keep-float`` flags;
5. int8 where int16x8 was measured and passes -> use ``--quantize int16x8`` (measured figures);
6. otherwise the best-supported of the above, or for float outputs the other format.

Every other applicable step is listed in ``alternatives``.

Example:
    >>> s = suggest("tflite", "int8", failures=["cosine 0.9 < 0.98"], cal_count=8)
    >>> s["kind"], s["text"].split(":")[0]
    ('more-calibration', 'calibrate with more representative data')
"""
from __future__ import annotations

from typing import List, Optional, Sequence

from edgeship.converters.data_checks import CONSTANT_ADVICE

MIN_CALIBRATION = 50      # fewer calibration samples than this is the first suspect of an int8 rejection
CONCENTRATED = 0.5        # the top <= 3 layers carry at least this share of the summed per-layer error


def _keep_float_candidates(layers: Sequence[dict], tried: Sequence[str]) -> Optional[dict]:
    """The fewest worst layers (at most 3) that carry >= CONCENTRATED of the summed error, if not tried."""
    errs = [(r["layer"], float(r["rel_error"])) for r in layers if float(r.get("rel_error", 0)) > 0]
    total = sum(e for _, e in errs)
    if not errs or total <= 0:
        return None
    acc, picked = 0.0, []
    for name, e in errs[:3]:
        picked.append(name)
        acc += e
        if acc / total >= CONCENTRATED:
            break
    share = acc / total
    return {"layers": picked, "share": share, "tried": set(picked) <= set(tried), "n": len(errs)}


def suggest(fmt: str, quant: str, *, failures: Sequence[str], constant: Sequence[str] = (),
            random_inputs: Optional[str] = None, cal_count: Optional[int] = None,
            layers: Optional[Sequence[dict]] = None, tried_float: Sequence[str] = (),
            int16x8: Optional[dict] = None) -> dict:
    """The next step for a rejected output and the evidence for it (see the module doc).

    Args:
        fmt, quant: the rejected output's format and quantization ("tflite", "int8").
        failures: the parity failures.
        constant: messages of source outputs that never change (data_checks.constant_outputs).
        random_inputs: the description of the random validation inputs, when no data was given.
        cal_count: number of calibration samples used (calibrated quantization only).
        layers: the per-layer error ranking (worst first), rows with ``layer`` and ``rel_error``.
        tried_float: layer names the accuracy-budget fix already kept in float without success.
        int16x8: measured parity of an int16x8 conversion: ``{"passed", "cosine", "top1_agreement"}``.

    Returns:
        ``{"kind", "text", "evidence", "command_flags", "alternatives": [text, ...]}``.
    """
    steps: List[dict] = []
    if constant:
        steps.append({"kind": "check-source", "text": f"check the source model: {CONSTANT_ADVICE}",
                      "evidence": "; ".join(constant), "command_flags": []})
    if random_inputs:
        steps.append({"kind": "real-data",
                      "text": "check on real data before changing the conversion: give --validation DATA (or "
                              "--calibration DATA, part of which is held out for the check)",
                      "evidence": f"parity ran on {random_inputs}; random inputs can drive a real model out of "
                                  f"its operating range", "command_flags": ["--validation", "DATA"]})
    int8 = quant == "int8"
    if int8 and cal_count is not None and cal_count < MIN_CALIBRATION:
        steps.append({"kind": "more-calibration",
                      "text": f"calibrate with more representative data: only {cal_count} calibration samples "
                              f"were given (use a few hundred real inputs)",
                      "evidence": f"{cal_count} samples set every int8 activation range",
                      "command_flags": ["--calibration", "DATA"]})
    cand = _keep_float_candidates(layers, tried_float) if (int8 and layers) else None
    keep_step = None
    if cand is not None:
        flags = [a for n in cand["layers"] for a in ("--keep-float", n)]
        keep_step = {"kind": "keep-float",
                     "text": f"keep layer(s) {', '.join(cand['layers'])} in float ({' '.join(flags)}): the "
                             f"per-layer debug run shows they carry {cand['share']:.0%} of the summed "
                             f"quantization error of {cand['n']} layers",
                     "evidence": f"top {len(cand['layers'])} of {cand['n']} ranked layers = {cand['share']:.0%} "
                                 f"of the error", "command_flags": flags, "keep_float": cand["layers"]}
        if cand["share"] >= CONCENTRATED and not cand["tried"]:
            steps.append(keep_step)
            keep_step = None
    if int8 and int16x8 is not None:
        figs = f"measured cosine {int16x8['cosine']:.5f}" + (
            f", top-1 agreement {int16x8['top1_agreement']:.1%}" if int16x8.get("top1_agreement") is not None else "")
        if int16x8.get("passed"):
            steps.append({"kind": "int16x8", "text": f"use --quantize int16x8 (16-bit activations, 8-bit weights): "
                                                     f"{figs} on the same validation data, within its tolerance",
                          "evidence": figs, "command_flags": ["--quantize", "int16x8"]})
        else:
            steps.append({"kind": "float", "text": f"keep this model in float (--quantize fp16, or fp32): even "
                                                   f"int16x8 misses its tolerance ({figs})",
                          "evidence": figs, "command_flags": ["--quantize", "fp16"]})
    if keep_step is not None:   # spread error, or layers already tried: still worth listing
        keep_step["text"] += (" (already tried by the accuracy-budget fix without meeting the budget)"
                              if cand["tried"] else " (the error is spread: this may not be enough)")
        steps.append(keep_step)
    if not steps:
        if int8:
            steps.append({"kind": "more-calibration", "text": "calibrate with more representative data, or run "
                                                              "--debug-layers to see which layers lose precision",
                          "evidence": "; ".join(failures), "command_flags": ["--debug-layers"]})
        elif quant == "fp16":
            steps.append({"kind": "float", "text": "use fp32 (leave out --quantize): fp16 rounding is too coarse "
                                                   "for this model's values", "evidence": "; ".join(failures),
                          "command_flags": []})
        else:
            other = "onnx" if fmt == "tflite" else "tflite"
            steps.append({"kind": "other-format",
                          "text": f"the {fmt} converter changed the model's results: convert with --to {other} and "
                                  f"compare, and loosen --tolerance only if these differences are acceptable",
                          "evidence": "; ".join(failures), "command_flags": ["--to", other]})
    best = dict(steps[0])
    best["alternatives"] = [s["text"] for s in steps[1:]]
    return best


__all__ = ["suggest", "MIN_CALIBRATION"]
