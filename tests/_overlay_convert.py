"""Run ``edgeship.converters.convert(..., to="tflite")`` in a child process and print its report.

tests/test_overlay_exporters.py starts this module with ``PYTHONPATH=<overlay folder>`` so that
onnx2tf / tf-keras / litert-torch (which cannot live in the main venv, see the Makefile) are
imported only here, never in the pytest process. Run from the repository root with ``-m`` so that
the repo's ``tests`` package comes before anything of that name in the overlay.

The last stdout line is ``EDGESHIP_RESULT <json>``: the ConversionResult dict (also when parity
failed: ``ok`` is false), plus ``seconds``, the overlay modules the conversion used and the
values of the environment variables onnx2tf likes to set. Exit status: 0 converted and checked,
1 out of tolerance, 2 any other edgeship error.

Example:
    PYTHONPATH=.overlay-onnx2tf python -m tests._overlay_convert --onnx m.onnx \
        --validation val.npy --out m.tflite --offline
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time

import numpy as np

MARK = "EDGESHIP_RESULT "
WATCHED_ENV = ("TF_USE_LEGACY_KERAS",)  # onnx2tf sets it at import; edgeship must restore it


def _refuse_network() -> None:
    """Any connection attempt fails: the exporters must work offline."""
    def refuse(*args, **kwargs):
        raise OSError("network access during an offline conversion")

    socket.socket.connect = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse


def _overlay_modules(roots) -> list:
    roots = tuple(os.path.abspath(r) + os.sep for r in roots if r)
    return sorted({name.split(".")[0] for name, mod in list(sys.modules.items())
                   if mod is not None and (getattr(mod, "__file__", None) or "").startswith(roots)})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--onnx", help="path of an .onnx model")
    src.add_argument("--torch-cnn", type=int, metavar="SEED",
                     help="tests._onnx_helpers.small_cnn(SEED), example input 1x3x32x32")
    ap.add_argument("--validation", required=True, help=".npy batch (N, ...) of validation inputs")
    ap.add_argument("--out", required=True, help="output .tflite path")
    ap.add_argument("--offline", action="store_true", help="refuse every socket connection")
    ap.add_argument("--quantize", default=None, help="e.g. int8 (needs --calibration)")
    ap.add_argument("--calibration", default=None, help=".npy batch (N, ...) of calibration inputs")
    ap.add_argument("--dynamic-batch", action="store_true", help="convert(..., dynamic_batch=True)")
    args = ap.parse_args(argv)

    from edgeship.converters import convert
    from edgeship.errors import EdgeshipError, ParityError

    if args.offline:
        _refuse_network()
    if args.onnx:
        model, example = args.onnx, None
    else:
        import torch

        from tests._onnx_helpers import image_batch, small_cnn

        model, example = small_cnn(args.torch_cnn), torch.from_numpy(image_batch(1, seed=99))
    t0 = time.perf_counter()
    try:
        result = convert(model, to="tflite", example_inputs=example, validation=np.load(args.validation),
                         out=args.out, quantize=args.quantize, dynamic_batch=args.dynamic_batch,
                         calibration=None if args.calibration is None else np.load(args.calibration)).to_dict()
        code = 0
    except ParityError as exc:
        result, code = dict(exc.report or {"ok": False}, error=str(exc)), 1
    except EdgeshipError as exc:
        result, code = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}, 2
    result["seconds"] = round(time.perf_counter() - t0, 2)
    result["overlay_modules"] = _overlay_modules(os.environ.get("PYTHONPATH", "").split(os.pathsep))
    result["env_after"] = {k: os.environ.get(k) for k in WATCHED_ENV}
    from edgeship._io import to_jsonable

    sys.stdout.write("\n" + MARK + json.dumps(to_jsonable(result)) + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
