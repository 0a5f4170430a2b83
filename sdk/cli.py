"""The ``edgeship`` command line. Each folder adds its own commands through ``register(app)``.

Conventions every command follows: human output goes to stderr through rich,
``--json`` prints exactly one JSON object on stdout, user errors exit 2,
a failed check (parity out of tolerance, incompatible target) exits 1.
"""
from __future__ import annotations

import importlib
import importlib.util
import os

import typer

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

# Modules that define commands; each has register(app). Order = order in --help.
COMMAND_MODULES = (
    "edgeship.commands",            # inspect, bundle
    "edgeship.bench_cli",           # bench
    "edgeship.converters.cli",      # convert
    "edgeship.targets.cli",         # targets, check
    "edgeship.targets.deploy_cli",  # deploy
    "edgeship.demo",                # demo (the main job)
)

for _name in COMMAND_MODULES:
    if importlib.util.find_spec(_name) is not None:
        importlib.import_module(_name).register(app)


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    main()
