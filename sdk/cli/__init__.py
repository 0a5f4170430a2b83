"""The ``edgeship`` command line: one module per command group, registered below in --help order.

Conventions every command follows (see :mod:`edgeship.cli.console`): human output goes to
stderr through rich, ``--json`` prints exactly one JSON object on stdout, user errors exit 2,
a failed check (parity out of tolerance, incompatible target) exits 1. Command modules import
only typer/rich at module level; the library loads when a command runs.
"""
from __future__ import annotations

import os

import typer

from . import bench, bundle, convert, demo, deploy, inspect, keys, report, targets

# TensorFlow/absl log at C++ level to stderr unless told not to; a CLI user wants our report.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("GLOG_minloglevel", "2")

app = typer.Typer(
    name="edgeship",
    help="Convert, check, benchmark and ship trained models to edge devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

inspect.register(app)
bundle.register(app)
bench.register(app)
convert.register(app)
targets.register(app)
deploy.register(app)
demo.register(app)
keys.register(app)
report.register(app)


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    main()
