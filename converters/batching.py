"""The batch dimension of a conversion: ask for a dynamic one, and feed checks the batch the model has.

Two facts decide what a converted file accepts along axis 0:

* a source exported from an example input (PyTorch) or built with a fixed batch has that batch
  baked in: a ``torch.nn.Module`` traced on a batch-4 example becomes an ONNX/TFLite file whose
  input is ``[4, ...]``. Calibration and validation samples are stored one row each (batch 1),
  so :func:`group_to_batch` stacks them into batches of 4 before they reach the source, the
  calibrator and the parity check.
* :func:`with_dynamic_batch` asks for a dynamic batch instead (``convert(..., dynamic_batch=True)``,
  ``edgeship convert --dynamic-batch``): PyTorch is exported with a symbolic dim 0
  (``torch.onnx.export(dynamic_shapes=...)``), a Keras model is rebuilt on ``Input(batch_shape=
  (None, ...))`` (TFLite then records a ``-1`` batch in its shape signature), an ONNX model gets
  a symbolic dim 0 on its inputs and outputs (checked by running it at batch 1 and 2).

Example:
    >>> import numpy as np
    >>> from edgeship.spec import TensorSpec
    >>> rows = [{"x": np.full((1, 3), i, np.float32)} for i in range(9)]
    >>> batched, note = group_to_batch(rows, [TensorSpec("x", (4, 3), "float32")])
    >>> [b["x"].shape for b in batched], batched[1]["x"][:, 0].tolist()
    ([(4, 3), (4, 3)], [4.0, 5.0, 6.0, 7.0])
    >>> note
    "the model's inputs have a fixed batch of 4: 9 samples checked as 2 batches of 4 (1 left over, not used)"
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional, Tuple

import numpy as np

from edgeship.errors import ConversionError


def fixed_batch(inputs) -> Optional[int]:
    """The fixed batch size (> 1) that every input declares along axis 0, else None."""
    batches = {int(s.shape[0]) for s in inputs if len(s.shape) > 0}
    if len(batches) != 1:
        return None
    b = batches.pop()
    return b if b > 1 else None


def group_to_batch(samples: List[dict], inputs) -> Tuple[List[dict], Optional[str]]:
    """Stack batch-1 samples into the model's fixed batch (a no-op when the batch is 1 or dynamic).

    Too few samples for one batch: the samples are cycled to fill it (said in the note). Samples
    beyond the last full batch are left out (said in the note).

    Returns:
        (samples to feed, a note for the report or None when nothing changed).
    """
    b = fixed_batch(inputs)
    if b is None or not samples:
        return samples, None
    names = [s.name for s in inputs]
    first = samples[0][names[0]]
    if first.shape[0] == b:   # already batched
        return samples, None
    if first.shape[0] != 1:
        raise ConversionError(f"samples of batch {first.shape[0]} cannot feed a model whose inputs have a fixed "
                              f"batch of {b}: give one sample per row")
    n = len(samples)
    if n < b:
        rows = [samples[i % n] for i in range(b)]
        note = (f"the model's inputs have a fixed batch of {b}: only {n} sample(s), cycled to fill one batch")
    else:
        rows = samples[: (n // b) * b]
        left = n - len(rows)
        note = (f"the model's inputs have a fixed batch of {b}: {n} samples checked as {n // b} batches of {b}"
                + (f" ({left} left over, not used)" if left else ""))
    out = [{k: np.concatenate([r[k] for r in rows[i:i + b]], axis=0) for k in names}
           for i in range(0, len(rows), b)]
    return out, note


def with_dynamic_batch(source) -> Tuple[object, str]:
    """``source`` re-declared with a dynamic batch dimension; returns (source, note for the report).

    Raises:
        ConversionError: the source kind cannot be given a dynamic batch here (SavedModel, TFLite),
            or the rebuilt model does not run at batch 1 and 2.
    """
    before = [list(s.shape) for s in source.inputs]
    if source.kind == "torch":
        spec = lambda s: dataclasses.replace(s, shape=(-1,) + tuple(s.shape[1:]))  # noqa: E731
        new = dataclasses.replace(source, inputs=[spec(s) for s in source.inputs],
                                  outputs=[spec(s) for s in source.outputs], dynamic_batch=True)
    elif source.kind == "keras":
        if all(s.shape and s.shape[0] < 0 for s in source.inputs):
            return source, f"--dynamic-batch: the Keras model's batch is already dynamic {before}"
        from edgeship.converters.sources import rebatch_keras

        new = rebatch_keras(source, None)
    elif source.kind == "onnx":
        new = _onnx_dynamic(source)
    else:
        raise ConversionError(f"--dynamic-batch is available for PyTorch, Keras and ONNX sources; this is a "
                              f"{source.kind} source: export it again with a dynamic batch dimension")
    return new, f"--dynamic-batch: input shapes {before} -> {[list(s.shape) for s in new.inputs]}"


def torch_export_args(source) -> Tuple[tuple, Optional[tuple]]:
    """(example args, ``dynamic_shapes``) to export a torch source with: the one place both
    PyTorch exporters (``torch.onnx.export`` and litert-torch) take them from.

    With ``source.dynamic_batch`` every input's dim 0 is a ``torch.export.Dim("batch")``;
    ``torch.export`` specialises a dim of size 1, so a batch-1 example is traced as a batch of 2
    (the same rows twice) to keep that dim symbolic.
    """
    args = tuple(source.example_inputs)
    if not getattr(source, "dynamic_batch", False):
        return args, None
    import torch

    args = tuple(torch.cat([x, x]) if x.shape[0] == 1 else x for x in args)
    batch = torch.export.Dim("batch")
    return args, tuple({0: batch} for _ in args)


def _onnx_dynamic(source):
    """An ONNX source whose graph inputs/outputs have a symbolic dim 0 named ``batch``."""
    import onnx

    from edgeship.converters.sources import load_source

    model = onnx.ModelProto()
    model.CopyFrom(source.obj)
    inits = {i.name for i in model.graph.initializer}
    for vi in [i for i in model.graph.input if i.name not in inits] + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if len(dims):
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"
    del model.graph.value_info[:]   # stale shapes with the old batch would contradict the new one
    new = load_source(model)
    for b in (1, 2):
        feeds = {s.name: np.zeros((b,) + tuple(max(d, 1) for d in s.shape[1:]), np.dtype(s.dtype))
                 for s in new.inputs}
        try:
            outs = new.run(feeds)
        except Exception as exc:
            raise ConversionError(f"--dynamic-batch: the ONNX model does not run at batch {b} once its batch "
                                  f"dimension is made dynamic (its graph fixes the batch inside, e.g. in a "
                                  f"Reshape): {str(exc).splitlines()[0][:300]}; export it again from the "
                                  f"training framework with a dynamic batch") from exc
        if any(np.shape(o)[:1] != (b,) for o in outs):
            raise ConversionError(f"--dynamic-batch: at batch {b} the ONNX model's outputs have shapes "
                                  f"{[list(np.shape(o)) for o in outs]}; the batch is fixed inside the graph")
    return dataclasses.replace(new, path=source.path, sha256=source.sha256)


__all__ = ["fixed_batch", "group_to_batch", "with_dynamic_batch"]
