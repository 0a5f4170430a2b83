"""Parse a dlib DNN file (``dlib::serialize(net)``) into a flat list of layers, in pure Python.

dlib writes a network as nested records, outermost first: the loss layer, then one wrapper per
layer (``add_layer`` version 2, ``add_tag_layer`` / ``add_skip_layer`` version 1) whose
*subnetwork is written before its own details*. So the file reads: the loss details, a run of
wrapper version numbers from the output down to the input, the input layer, then each
layer's details from the input up to the output. This module reads that structure with
:class:`edgeship.dlib_serial.DlibReader` and returns the layers in input-to-output order.

Facts about the records (from dlib's ``dnn/core.h``, ``layers.h``, ``input.h``, ``loss.h``):

* ``add_layer`` (v2) trails its details with three bools and three tensors (``x_grad``,
  ``cached_output``, ``params_grad``); the one on top of the input layer (v2/v3) has the input
  layer first, then the details, three bools, ``x_grad``, ``cached_output``, ``grad_final`` and
  (v3) ``_sample_expansion_factor``.
* Tag and skip layers carry nothing but a version (1) and *not their id*: which tag an
  ``add_prev`` or ``skip`` layer refers to is part of the C++ type, not of the file. Such
  layers come back as kind ``"tag_or_skip"``; :mod:`edgeship.converters.dlib` resolves them
  against the known architecture.
* ``con_4``/``con_5``/``con_6``: params tensor (filters then biases), num_filters, nr, nc,
  stride_y, stride_x, padding_y, padding_x, filter and bias alias-tensor headers, four
  learning-rate/decay multipliers, then ``use_bias`` (v5+) and ``use_relu`` (v6).
* ``fc_2``/``fc_3``: num_outputs, num_inputs, params (weights ``num_inputs x num_outputs``
  then biases), the two alias headers, bias mode (0: with bias, 1: no bias), four multipliers,
  ``use_bias`` (v3).
* ``affine_``/``affine_2``: params (gamma then beta), gamma and beta alias headers, mode
  (0: fc, 1: conv), ``disabled`` (v2). ``bn_con2``/``bn_fc2`` (batch norm, converted by dlib
  into an affine layer on load) are read too.
* ``max_pool_2``/``avg_pool_2``: nr, nc, stride_y, stride_x, padding_y, padding_x (nr = nc
  = 0: the whole plane).
* ``relu_``/``relu_2`` (``disabled``), ``add_prev_`` (nothing).
* Inputs: ``input_rgb_image_sized`` (mean red/green/blue, rows, cols),
  ``input_rgb_image_pyramid``/``...2`` (means, then pyramid padding and outer padding in v2;
  10 and 11 before).
* Losses: ``loss_metric_``/``loss_metric_2`` (margin, distance threshold), ``loss_mmod_``
  (``mmod_options`` v1–v4: detector windows, loss weights, IoU thresholds of the
  non-max-suppression and ignore tests, ...).

Example:
    >>> from edgeship.dlib_serial import encode_string
    >>> parse_dlib_net(b"", name="empty.dat")
    Traceback (most recent call last):
    ...
    edgeship.errors.ModelFormatError: empty.dat: the file is empty; expected a dlib DNN file (dlib::serialize of a network)
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

import numpy as np

from edgeship.dlib_serial import DlibReader
from edgeship.errors import ModelFormatError

__all__ = ["DlibLayer", "DlibNet", "parse_dlib_net"]


@dataclass
class DlibLayer:
    """One layer of a dlib network.

    Attributes:
        kind: ``"con"``, ``"fc"``, ``"affine"``, ``"relu"``, ``"max_pool"``, ``"avg_pool"``,
            ``"add_prev"`` or ``"tag_or_skip"``.
        tag: the record tag as written (``"con_4"``...).
        attrs: the layer's scalar settings (filters, kernel, strides, paddings...).
        weights: numpy arrays (``filters`` as ``(n, k, nr, nc)``, ``biases``, ``gamma``,
            ``beta``, ``weights`` as ``(num_inputs, num_outputs)``).
    """

    kind: str
    tag: str = ""
    attrs: Dict[str, Any] = field(default_factory=dict)
    weights: Dict[str, np.ndarray] = field(default_factory=dict)

    def describe(self) -> str:
        a = ", ".join(f"{k}={v}" for k, v in self.attrs.items())
        return f"{self.kind}({a})" if a else self.kind


@dataclass
class DlibNet:
    """A parsed dlib network: loss, input and the layers from input to output."""

    loss: Dict[str, Any]
    input: Dict[str, Any]
    layers: List[DlibLayer]
    name: str = ""

    def summary(self) -> List[str]:
        """One line per layer, input first."""
        return [f"input {self.input['kind']}"] + [l.describe() for l in self.layers] + [f"loss {self.loss['kind']}"]


# ------------------------------------------------------------------------------------------ loss

def _read_loss(r: DlibReader) -> Dict[str, Any]:
    tag = r.read_string("a loss layer tag")
    if tag in ("loss_metric_", "loss_metric_2"):
        if tag == "loss_metric_":
            return {"kind": "metric", "tag": tag, "margin": 0.1, "dist_thresh": 0.75}
        return {"kind": "metric", "tag": tag, "margin": r.read_float("the metric loss margin"),
                "dist_thresh": r.read_float("the metric loss distance threshold")}
    if tag == "loss_mmod_":
        return _read_mmod_options(r)
    raise r.error(f"expected a supported loss layer ('loss_metric_2' or 'loss_mmod_'), found {tag!r}",
                  r.pos - len(tag.encode()) - 1)


def _read_mmod_options(r: DlibReader) -> Dict[str, Any]:
    v = r.read_version((1, 2, 3, 4), "an mmod_options version")
    windows = []
    if v == 1:
        windows.append({"width": r.read_uint(), "height": r.read_uint(), "label": ""})
    else:
        n = r.read_size(3, "the number of detector windows")
        for _ in range(n):
            wv = r.read_version((1, 2), "a detector window version")
            w = {"width": r.read_uint(what="a detector window width"),
                 "height": r.read_uint(what="a detector window height"), "label": ""}
            if wv == 2:
                w["label"] = r.read_string("a detector window label")
            windows.append(w)
    out: Dict[str, Any] = {"kind": "mmod", "tag": "loss_mmod_", "options_version": v, "detector_windows": windows}
    out["loss_per_false_alarm"] = r.read_float()
    out["loss_per_missed_target"] = r.read_float()
    out["truth_match_iou_threshold"] = r.read_float()
    out["nms_iou_thresh"] = r.read_float()
    out["nms_percent_covered_thresh"] = r.read_float()
    out["ignore_iou_thresh"] = r.read_float()
    out["ignore_percent_covered_thresh"] = r.read_float()
    out["assume_image_pyramid"] = True
    if v >= 3:
        out["assume_image_pyramid"] = bool(r.read_uint(1, "assume_image_pyramid"))
    out["use_bounding_box_regression"], out["bbr_lambda"] = False, 100.0
    if v >= 4:
        out["use_bounding_box_regression"] = r.read_bool("use_bounding_box_regression")
        out["bbr_lambda"] = r.read_float("bbr_lambda")
    if not windows:
        raise r.error("the MMOD loss has no detector windows")
    return out


# ------------------------------------------------------------------------------------------ input

_INPUT_TAGS = ("input_rgb_image_sized", "input_rgb_image_pyramid", "input_rgb_image_pyramid2")


def _read_input(r: DlibReader) -> Dict[str, Any]:
    tag = r.expect_string(_INPUT_TAGS, "an input layer tag")
    means = [r.read_float(f"the input layer's mean {c}") for c in ("red", "green", "blue")]
    out: Dict[str, Any] = {"tag": tag, "mean_rgb": means}
    if tag == "input_rgb_image_sized":
        out.update(kind="rgb_sized", rows=r.read_uint(what="input rows"), cols=r.read_uint(what="input columns"))
        if not (0 < out["rows"] < 100000 and 0 < out["cols"] < 100000):
            raise r.error(f"input size {out['rows']}x{out['cols']} is not plausible")
    else:
        out["kind"] = "rgb_pyramid"
        if tag == "input_rgb_image_pyramid2":
            out["pyramid_padding"] = r.read_uint(what="the pyramid padding")
            out["pyramid_outer_padding"] = r.read_uint(what="the pyramid outer padding")
        else:
            out["pyramid_padding"], out["pyramid_outer_padding"] = 10, 11
    return out


# ------------------------------------------------------------------------------------------ layers

def _alias(r: DlibReader, what: str) -> tuple:
    r.read_version(1, what + " (alias tensor) version")
    dims = tuple(r.read_int(True, 8, what + " dimension") for _ in range(4))
    if any(d < 0 for d in dims):
        raise r.error(f"{what} has a negative dimension {dims}")
    return dims


def _mults(r: DlibReader, n: int = 4) -> None:
    for _ in range(n):
        r.read_float("a learning-rate or weight-decay multiplier")


def _read_con(r: DlibReader, tag: str) -> DlibLayer:
    start = r.pos
    params = r.read_tensor("the con layer's parameters").reshape(-1)
    a = {"filters": r.read_int(what="num_filters"), "nr": r.read_int(what="kernel rows"),
         "nc": r.read_int(what="kernel cols"), "stride_y": r.read_int(True, 4, "stride_y"),
         "stride_x": r.read_int(True, 4, "stride_x"), "padding_y": r.read_int(True, 4, "padding_y"),
         "padding_x": r.read_int(True, 4, "padding_x")}
    fdims = _alias(r, "the con filters")
    bdims = _alias(r, "the con biases")
    _mults(r)
    use_bias = True
    if tag in ("con_5", "con_6"):
        use_bias = r.read_bool("con use_bias")
    if tag == "con_6":
        a["use_relu"] = r.read_bool("con use_relu")
    nf, k, nr, nc = fdims
    if nf != a["filters"] or nr != a["nr"] or nc != a["nc"] or min(nf, k, nr, nc) <= 0:
        raise r.error(f"con layer: filter shape {fdims} does not match num_filters={a['filters']}, "
                      f"kernel {a['nr']}x{a['nc']}", start)
    if a["stride_y"] <= 0 or a["stride_x"] <= 0 or a["padding_y"] < 0 or a["padding_x"] < 0:
        raise r.error(f"con layer: bad strides/paddings {a}", start)
    nfw = nf * k * nr * nc
    nb = int(np.prod(bdims))
    if params.size not in (nfw, nfw + nb) or (params.size == nfw + nb and nb != nf):
        raise r.error(f"con layer: {params.size} parameters, expected {nfw} filter weights"
                      f"{'' if not use_bias else f' + {nf} biases'}", start)
    a["in_channels"] = k
    w = {"filters": params[:nfw].reshape(nf, k, nr, nc)}
    if params.size == nfw + nb and use_bias:
        w["biases"] = params[nfw:nfw + nf].copy()
    return DlibLayer("con", tag, a, w)


def _read_fc(r: DlibReader, tag: str) -> DlibLayer:
    start = r.pos
    nout = r.read_uint(what="fc num_outputs")
    nin = r.read_uint(what="fc num_inputs")
    params = r.read_tensor("the fc layer's parameters").reshape(-1)
    _alias(r, "the fc weights")
    _alias(r, "the fc biases")
    mode = r.read_int(True, 4, "the fc bias mode")
    _mults(r)
    use_bias = True
    if tag == "fc_3":
        use_bias = r.read_bool("fc use_bias")
    if mode not in (0, 1):
        raise r.error(f"fc layer: bias mode {mode}, expected 0 (with bias) or 1 (no bias)", start)
    has_bias = mode == 0 and use_bias
    need = nin * nout + (nout if mode == 0 else 0)
    if params.size != need or nin <= 0 or nout <= 0:
        raise r.error(f"fc layer: {params.size} parameters, expected {need} for {nin} inputs x {nout} outputs"
                      f"{' + biases' if mode == 0 else ''}", start)
    w = {"weights": params[:nin * nout].reshape(nin, nout)}
    if has_bias:
        w["biases"] = params[nin * nout:].copy()
    return DlibLayer("fc", tag, {"outputs": nout, "inputs": nin, "bias": has_bias}, w)


def _read_affine(r: DlibReader, tag: str) -> DlibLayer:
    start = r.pos
    params = r.read_tensor("the affine layer's parameters").reshape(-1)
    g = _alias(r, "the affine gamma")
    b = _alias(r, "the affine beta")
    mode = r.read_int(True, 4, "the affine mode")
    disabled = r.read_bool("affine disabled") if tag == "affine_2" else False
    ng, nb = int(np.prod(g)), int(np.prod(b))
    if params.size != ng + nb or ng != nb or ng == 0:
        raise r.error(f"affine layer: {params.size} parameters for gamma {g} and beta {b}", start)
    return DlibLayer("affine", tag, {"mode": "conv" if mode == 1 else "fc", "disabled": disabled,
                                     "channels": ng, "gamma_shape": g},
                     {"gamma": params[:ng].copy(), "beta": params[ng:].copy()})


def _read_bn(r: DlibReader, tag: str) -> DlibLayer:
    # bn_: params (gamma, beta), gamma/beta alias headers, means, invstds, running means,
    # running variances, num_updates, running_stats_window_size, lr/decay multipliers (4),
    # eps. dlib turns it into affine: gamma' = gamma/sqrt(var+eps), beta' = beta - mean*gamma'.
    start = r.pos
    params = r.read_tensor("the bn layer's parameters").reshape(-1)
    g = _alias(r, "the bn gamma")
    _alias(r, "the bn beta")
    r.read_tensor("bn means")
    r.read_tensor("bn invstds")
    rm = r.read_tensor("bn running means").reshape(-1)
    rv = r.read_tensor("bn running variances").reshape(-1)
    r.read_uint(what="bn num_updates")
    r.read_uint(what="bn running_stats_window_size")
    _mults(r)
    eps = r.read_float("bn eps")
    n = int(np.prod(g))
    if params.size != 2 * n or rm.size != n or rv.size != n:
        raise r.error(f"bn layer: inconsistent sizes ({params.size} params, {rm.size} means, {rv.size} vars)", start)
    gamma = params[:n] / np.sqrt(rv + eps)
    beta = params[n:] - rm * gamma
    return DlibLayer("affine", tag, {"mode": "conv" if tag == "bn_con2" else "fc", "disabled": False,
                                     "channels": n, "gamma_shape": g},
                     {"gamma": gamma.astype(np.float32), "beta": beta.astype(np.float32)})


def _read_pool(r: DlibReader, tag: str) -> DlibLayer:
    a = {"nr": r.read_int(what="pool rows"), "nc": r.read_int(what="pool cols"),
         "stride_y": r.read_int(True, 4, "pool stride_y"), "stride_x": r.read_int(True, 4, "pool stride_x"),
         "padding_y": r.read_int(True, 4, "pool padding_y"), "padding_x": r.read_int(True, 4, "pool padding_x")}
    if min(a.values()) < 0 or a["stride_y"] == 0 or a["stride_x"] == 0:
        raise r.error(f"pool layer: bad settings {a}")
    return DlibLayer("max_pool" if tag.startswith("max") else "avg_pool", tag, a)


def _read_details(r: DlibReader) -> DlibLayer:
    start = r.pos
    tag = r.read_string("a layer tag")
    if tag in ("con_4", "con_5", "con_6"):
        return _read_con(r, tag)
    if tag in ("fc_2", "fc_3"):
        return _read_fc(r, tag)
    if tag in ("affine_", "affine_2"):
        return _read_affine(r, tag)
    if tag in ("bn_con2", "bn_fc2"):
        return _read_bn(r, tag)
    if tag in ("max_pool_2", "avg_pool_2"):
        return _read_pool(r, tag)
    if tag in ("relu_", "relu_2"):
        disabled = r.read_bool("relu disabled") if tag == "relu_2" else False
        return DlibLayer("relu", tag, {"disabled": disabled} if disabled else {})
    if tag == "add_prev_":
        return DlibLayer("add_prev", tag)
    raise r.error(f"layer type {tag!r} is not supported by edgeship's dlib importer (supported: con, fc, "
                  f"affine, bn_con/bn_fc, max_pool, avg_pool, relu, add_prev, tag, skip)", start)


def _trail_add_layer(r: DlibReader, top_of_input: bool, version: int) -> None:
    for what in ("this_layer_setup_called", "gradient_input_is_stale", "get_output_and_gradient_input_disabled"):
        r.read_bool(what)
    r.read_tensor("x_grad")
    r.read_tensor("cached_output")
    if top_of_input:
        r.read_tensor("grad_final")
        if version >= 3:
            r.read_uint(what="_sample_expansion_factor")
    else:
        r.read_tensor("params_grad")


def parse_dlib_net(src: Union[str, "os.PathLike[str]", bytes], name: Optional[str] = None) -> DlibNet:
    """Parse a dlib DNN file (or its bytes) into a :class:`DlibNet`.

    Args:
        src: the ``.dat`` path or its bytes.
        name: a name for error messages (default: the file name).

    Raises:
        ModelFormatError: the data is truncated, corrupted, not a dlib DNN, or uses a layer
            type this importer does not support (the message names it).
    """
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        name = name or "dlib model"
    else:
        p = os.fspath(src)
        name = name or os.path.basename(p)
        if not os.path.isfile(p):
            raise ModelFormatError(f"expected a dlib DNN .dat file, got {p!r} (not a file)")
        with open(p, "rb") as f:
            data = f.read()
    if not data:
        raise ModelFormatError(f"{name}: the file is empty; expected a dlib DNN file (dlib::serialize of a network)")
    if data[:2] == b"\x1f\x8b" or data[:3] == b"BZh":
        raise ModelFormatError(f"{name}: this is a compressed file (gzip/bzip2); decompress it first "
                               f"(dlib's model downloads are .dat.bz2)")
    r = DlibReader(data, name)
    start = r.pos
    try:
        r.read_version(1, "the loss layer version")
    except ModelFormatError:
        raise ModelFormatError(f"{name}: not a dlib DNN file (it does not start with a loss layer record); "
                               f"expected a file written by dlib::serialize(net)") from None
    if r.peek_string() is None or not r.peek_string().startswith("loss_"):
        raise ModelFormatError(f"{name}: not a dlib DNN file (byte {start}: no 'loss_...' record); expected a "
                               f"file written by dlib::serialize(net), e.g. dlib_face_recognition_resnet_model_v1.dat")
    loss = _read_loss(r)

    # The run of wrapper versions down to the input layer.
    versions: List[int] = []
    while True:
        s = r.peek_string()
        if s is not None and s.startswith("input"):
            break
        if len(versions) > 100000:
            raise r.error("no input layer found")
        versions.append(r.read_version((1, 2, 3), "a layer wrapper version"))
    if not versions:
        raise r.error("the network has no layers between its loss and its input")
    inp = _read_input(r)

    layers: List[DlibLayer] = []
    # The wrapper right on top of the input: add_layer (details follow) or add_tag_layer (tensors).
    v0 = versions.pop()
    s = r.peek_string()
    if s is not None and not s.startswith("input"):
        layers.append(_read_details(r))
        _trail_add_layer(r, True, v0)
    else:
        r.read_tensor("cached_output")
        r.read_tensor("grad_final")
        r.read_bool("gradient_input_is_stale")
        if v0 >= 2:
            r.read_uint(what="_sample_expansion_factor")
        layers.append(DlibLayer("tag_or_skip", "tag"))
    for v in reversed(versions):
        if v == 1:
            layers.append(DlibLayer("tag_or_skip", "tag_or_skip"))
        elif v == 2:
            layers.append(_read_details(r))
            _trail_add_layer(r, False, v)
        else:
            raise r.error(f"unexpected layer wrapper version {v}")
    if not r.at_end():
        raise r.error(f"{r.remaining()} unexpected bytes after the network")
    for i, l in enumerate(layers):
        for wname, w in l.weights.items():
            if not np.isfinite(w).all():
                raise ModelFormatError(f"{name}: layer {i} ({l.tag}) has NaN or infinite {wname}; the file is "
                                       f"corrupted (re-download it)")
    return DlibNet(loss, inp, layers, name)
