"""A float TFLite model rebuilt as a TensorFlow function, so it can be quantized again.

When the float ``.tflite`` file is all a user has (a vendor's model, a reference model whose
int8 twin was quantized from it), the TFLite converter cannot read it back. This module reads
the file with edgeship's own checked flatbuffer reader, and replays its ops with TensorFlow ops
on its own constant weights: a ``tf.function`` that computes the same outputs. The TFLite
converter then quantizes that function like any Keras model (int8, int16x8, fp16, dynamic),
and every output is checked against the original file, as for any conversion.

Supported ops (the convolutional nets of keyword spotting, vision and MCU models; data, so the
list is the documentation): see :data:`SUPPORTED_OPS`. Int8 weights of a dynamic-range
("hybrid") file are dequantized with their scales first. A file with any other op, with
quantized activations (already quantized: give its float model), or with several subgraphs is a
:class:`~edgeship.errors.ConversionError` naming what is not supported, before the converter
runs.

Example:
    >>> from edgeship.converters.tflite_graph import SUPPORTED_OPS
    >>> "CONV_2D" in SUPPORTED_OPS and "SOFTMAX" in SUPPORTED_OPS
    True
"""
from __future__ import annotations

from typing import Callable, Dict, List

import numpy as np

from edgeship._deps import require
from edgeship.errors import ConversionError

_PADDING = {0: "SAME", 1: "VALID"}


def _activations(tf) -> Dict[str, Callable]:
    return {"relu": tf.nn.relu, "relu6": tf.nn.relu6, "sigmoid": tf.math.sigmoid, "tanh": tf.math.tanh,
            "relu_n1_to_1": lambda v: tf.clip_by_value(v, -1.0, 1.0), "none": lambda v: v}


# fused activation codes of the TFLite schema (the replay applies them after the op)
_FUSED = {0: "none", 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh"}


def _activation(tf, x, code: int, where: str):
    if code not in _FUSED:
        raise ConversionError(f"{where}: fused activation code {code} is not supported (supported: "
                              f"{', '.join(v for v in _FUSED.values() if v != 'none')})")
    return _activations(tf)[_FUSED[code]](x)


def _padding(op, where: str) -> str:
    code = op.builtin_options.get("padding", 0)
    if code not in _PADDING:
        raise ConversionError(f"{where}: padding code {code} is not supported")
    return _PADDING[code]


class _Args:
    """The inputs of one op: ``value(k)`` a tensor (graph value or constant), ``const(k)`` a numpy constant."""

    def __init__(self, model, op, env, tf, where):
        self.model, self.op, self.env, self.tf, self.where = model, op, env, tf, where
        self.opts = op.builtin_options

    def value(self, k: int):
        i = self.op.inputs[k]
        return self.env[i] if i in self.env else self.tf.constant(self.const(k))

    def const(self, k: int, optional: bool = False):
        i = self.op.inputs[k] if k < len(self.op.inputs) else -1
        if i < 0:
            if optional:
                return None
            raise ConversionError(f"{self.where}: input {k} is missing")
        t = self.model.main.tensors[i]
        data = self.model.buffer_data(t)
        if data is None:
            raise ConversionError(f"{self.where}: input {k} ({t.name!r}) is computed at run time; edgeship rebuilds "
                                  f"it only as a constant of the file")
        return constant(t, data)

    def act(self, y):
        return _activation(self.tf, y, self.opts.get("fused_activation", 0), self.where)

    def stride(self):
        return [1, self.opts["stride_h"], self.opts["stride_w"], 1]


def constant(t, data) -> np.ndarray:
    """A constant tensor's values; int8 weights of a dynamic-range model are dequantized (scale, zero point)."""
    v = np.frombuffer(bytes(data), dtype=np.dtype(t.dtype)).reshape(t.shape)
    q = t.quantization
    if t.dtype != "int8" or q is None:
        return v.copy()
    shape = [1] * v.ndim
    if len(q.scale) > 1:
        shape[q.axis] = -1
    scale = np.asarray(q.scale, np.float32).reshape(shape)
    zp = np.asarray(q.zero_point, np.float32).reshape(shape)
    return ((v.astype(np.float32) - zp) * scale).astype(np.float32)


def describe(data: bytes) -> str:
    """What the replay does with this file, for the conversion's notes."""
    from edgeship.tflite_schema import read_tflite

    sg = read_tflite(bytes(data)).main
    deq = [t.name for t in sg.tensors if t.has_data and t.dtype == "int8" and t.quantization is not None]
    text = f"float TFLite source replayed with TensorFlow ops ({len(sg.operators)} ops) and converted again"
    if deq:
        text += (f"; {len(deq)} weight tensor(s) stored as int8 (dynamic-range) were dequantized with their scales "
                 f"first, so their rounding is part of the source")
    return text


def _bias(tf, y, b):
    return y if b is None else tf.nn.bias_add(y, b)


def _conv(tf, a):
    o = a.opts
    y = tf.nn.conv2d(a.value(0), np.transpose(a.const(1), (1, 2, 3, 0)), strides=a.stride(),
                     padding=_padding(a.op, a.where), dilations=[1, o["dilation_h"], o["dilation_w"], 1])
    return a.act(_bias(tf, y, a.const(2, optional=True)))


def _depthwise(tf, a):
    x, w, o = a.value(0), a.const(1), a.opts
    cin = int(x.shape[-1])
    mult = int(w.shape[-1]) // max(cin, 1)
    if mult * cin != int(w.shape[-1]):
        raise ConversionError(f"{a.where}: {w.shape[-1]} depthwise filters for {cin} input channels")
    dil = (o["dilation_h"], o["dilation_w"])
    y = tf.nn.depthwise_conv2d(x, w.reshape(w.shape[1], w.shape[2], cin, mult), strides=a.stride(),
                               padding=_padding(a.op, a.where), dilations=dil if dil != (1, 1) else None)
    return a.act(_bias(tf, y, a.const(2, optional=True)))


def _fully_connected(tf, a):
    x, w, o = a.value(0), a.const(1), a.opts
    if o.get("weights_format", 0) != 0:
        raise ConversionError(f"{a.where}: shuffled fully-connected weights are not supported")
    flat = x if x.shape.rank == 2 else tf.reshape(x, [-1, int(w.shape[1])])  # no RESHAPE op the file did not have
    y = _bias(tf, tf.matmul(flat, w, transpose_b=True), a.const(2, optional=True))
    if o.get("keep_num_dims", 0):
        y = tf.reshape(y, tf.concat([tf.shape(x)[:-1], [int(w.shape[0])]], 0))
    return a.act(y)


def _pool(kind: str):
    def run(tf, a):
        fn = tf.nn.avg_pool2d if kind == "avg" else tf.nn.max_pool2d
        return a.act(fn(a.value(0), ksize=[1, a.opts["filter_h"], a.opts["filter_w"], 1], strides=a.stride(),
                        padding=_padding(a.op, a.where)))
    return run


def _binary(name: str):
    return lambda tf, a: a.act(getattr(tf.math, name)(a.value(0), a.value(1)))


def _reshape(tf, a):
    x = a.value(0)
    shape = list(a.model.main.tensors[a.op.outputs[0]].shape_signature)
    if shape and shape[0] in (-1, 1) and x.shape[0] is None:
        shape[0] = -1  # the batch dimension stays dynamic
    if sum(d < 0 for d in shape) > 1:
        raise ConversionError(f"{a.where}: the output shape {shape} has several unknown dimensions")
    return tf.reshape(x, shape)


def _softmax(tf, a):
    beta = float(a.opts.get("beta", 1.0))
    x = a.value(0)
    return tf.nn.softmax(x * beta if beta != 1.0 else x, axis=-1)


def _concat(tf, a):
    return a.act(tf.concat([a.value(k) for k in range(len(a.op.inputs))], axis=a.opts.get("axis", 0)))


def _mean(tf, a):
    axes = [int(v) for v in np.ravel(a.const(1))]
    return tf.reduce_mean(a.value(0), axis=axes, keepdims=bool(a.opts.get("keep_dims", 0)))


def _unary(fn: str):
    return lambda tf, a: _activations(tf)[fn](a.value(0))


def _hard_swish(tf, a):
    x = a.value(0)
    return x * tf.nn.relu6(x + 3.0) / 6.0


# op name -> replay(tf, args) returning the op's (single) output
SUPPORTED_OPS: Dict[str, Callable] = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _depthwise, "FULLY_CONNECTED": _fully_connected,
    "AVERAGE_POOL_2D": _pool("avg"), "MAX_POOL_2D": _pool("max"),
    "ADD": _binary("add"), "SUB": _binary("subtract"), "MUL": _binary("multiply"),
    "RESHAPE": _reshape, "SOFTMAX": _softmax, "CONCATENATION": _concat, "MEAN": _mean,
    "PAD": lambda tf, a: tf.pad(a.value(0), a.const(1)),
    "RELU": _unary("relu"), "RELU6": _unary("relu6"), "LOGISTIC": _unary("sigmoid"), "TANH": _unary("tanh"),
    "HARD_SWISH": _hard_swish,
}


def live_ops(sg) -> list:
    """The ops the outputs depend on, in order. A RESHAPE is replayed to its output tensor's shape, so
    the ops that only compute its target shape at run time (SHAPE, STRIDED_SLICE, PACK: Keras'
    Flatten on a dynamic batch) are not needed."""
    needed = set(sg.outputs)
    live = []
    for op in reversed(sg.operators):
        if not any(o in needed for o in op.outputs):
            continue
        live.append(op)
        needed.update(op.inputs[:1] if op.op == "RESHAPE" else [i for i in op.inputs if i >= 0])
    return live[::-1]


def check_float_model(model, where: str) -> None:
    """Refuse what cannot be replayed: quantized tensors, other ops, several subgraphs."""
    if len(model.subgraphs) != 1:
        raise ConversionError(f"{where} has {len(model.subgraphs)} subgraphs; re-quantizing a TFLite file takes "
                              f"single-graph models (convert from the original Keras/SavedModel/ONNX model)")
    sg = model.main
    quantized = [t.name for t in sg.tensors if not t.has_data and (t.quantization is not None or t.dtype != "float32")
                 and t.dtype != "int32"]
    if quantized:
        raise ConversionError(f"{where} is already quantized ({len(quantized)} quantized activations, e.g. "
                              f"{', '.join(quantized[:3])}); re-quantizing takes the float model it was made from")
    odd = [t.name for t in sg.tensors if t.has_data and t.dtype not in ("float32", "int32")
           and not (t.dtype == "int8" and t.quantization is not None)]
    if odd:
        raise ConversionError(f"{where} has constants of a type edgeship cannot rebuild ({', '.join(odd[:3])}); "
                              f"convert from the original Keras/SavedModel/ONNX model instead")
    other = sorted({op.op for op in live_ops(sg) if op.op not in SUPPORTED_OPS})
    if other:
        raise ConversionError(f"{where} uses op(s) {', '.join(other)}, which edgeship cannot rebuild from a TFLite "
                              f"file (it rebuilds {', '.join(SUPPORTED_OPS)}); convert from the original "
                              f"Keras/SavedModel/ONNX model instead")
    several = [op.op for op in live_ops(sg) if len(op.outputs) != 1]
    if several:
        raise ConversionError(f"{where}: op {several[0]} has several outputs; not supported")


def concrete_function(data: bytes, where: str, in_names: List[str]):
    """The TFLite model ``data`` as a concrete ``tf.function`` of its inputs, returning its outputs in order."""
    tf = require("tensorflow", "convert", "re-quantizing a TFLite model")
    from edgeship.tflite_schema import read_tflite

    model = read_tflite(bytes(data))
    check_float_model(model, where)
    sg = model.main

    def replay(*args):
        env = dict(zip(sg.inputs, args))
        for op in live_ops(sg):
            env[op.outputs[0]] = SUPPORTED_OPS[op.op](tf, _Args(model, op, env, tf, f"{where}: op {op.index} "
                                                                                     f"({op.op})"))
        return [env[i] for i in sg.outputs]

    specs = [tf.TensorSpec([None if d < 0 else d for d in sg.tensors[i].shape_signature], tf.float32, name=n)
             for i, n in zip(sg.inputs, in_names)]
    try:
        return tf.function(replay, input_signature=specs, autograph=False).get_concrete_function()
    except ConversionError:
        raise
    except Exception as exc:
        raise ConversionError(f"{where}: rebuilding the TFLite graph failed: {str(exc).splitlines()[0]}") from exc
