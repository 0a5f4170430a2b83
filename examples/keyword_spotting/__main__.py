"""``python -m examples.keyword_spotting COMMAND``: listen, evaluate, false-alarms, train, deploy.

Exit codes: 0 done, 1 a failed check (``evaluate --min-accuracy``, ``false-alarms --max-per-hour``),
2 user error (bad file, bad model, no microphone, missing module).
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from . import listen as _listen

EXIT_FAILED_CHECK = 1


def _evaluate(args) -> int:
    from .evaluate import evaluate, plot_confusion, print_evaluation

    det = _listen.build_detector(args)
    r = evaluate(det, args.data, limit=args.limit, resample=args.resample, json_mode=args.json)
    if args.plot:
        r["plot"] = str(plot_confusion(r, args.plot))
    return _verdict(r, args.min_accuracy is not None and r["accuracy"] < args.min_accuracy, args.json,
                    print_evaluation)


def _false_alarms(args) -> int:
    from .evaluate import SWEEP_THRESHOLDS, best_in_sweep, false_alarms, plot_false_alarms, print_false_alarms

    if args.max_per_hour is not None and not args.max_per_hour >= 0:   # also NaN
        from edgeship.errors import InputSpecError

        raise InputSpecError(f"--max-per-hour: expected a rate >= 0, given {args.max_per_hour}")
    det = _listen.build_detector(args)
    r = false_alarms(det, args.audio, resample=args.resample, json_mode=args.json, keywords=args.keywords,
                     limit=args.limit, thresholds=SWEEP_THRESHOLDS if args.sweep or args.plot else None)
    if args.plot:
        r["plot"] = str(plot_false_alarms(r, args.plot))
    if args.max_per_hour is not None:
        r["max_per_hour"] = args.max_per_hour
        if "sweep" in r:
            r["best_in_sweep"] = best_in_sweep(r, args.max_per_hour)
    return _verdict(r, args.max_per_hour is not None and (r["per_hour"] or 0) > args.max_per_hour, args.json,
                    print_false_alarms)


def _verdict(report: dict, failed: bool, json_mode: bool, show) -> int:
    """Record pass/fail in the report, print it (one JSON object or a table), return the exit code."""
    report["passed"] = not failed
    if json_mode:
        _listen.emit(report)
    else:
        show(report)
    return EXIT_FAILED_CHECK if failed else 0


def _deploy(args) -> int:
    from .deploy import deploy_app

    r = deploy_app(model=args.model or _listen.default_model(), target=args.target, out=args.out,
                   labels=args.labels, config=_listen.setting_overrides(args), force=args.force)
    if args.json:
        _listen.emit({"ok": True, **r})
    else:
        c = r["detector"]
        print(f"bundle {r['bundle']} (target {r['target']}); detector threshold {c['threshold']:g}, smoothing "
              f"{c['smoothing']} ({r['detector_from']}); on the device: {r['run_command']}")
    return 0


def _train(argv: List[str]) -> int:
    import importlib

    try:
        train = importlib.import_module(".train", __package__)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.endswith("keyword_spotting.train"):
            print("train: the training recipe (examples/keyword_spotting/train.py) is not part of this checkout; "
                  "it comes with the DS-CNN zoo model", file=sys.stderr)
            return _listen.EXIT_USER_ERROR
        raise
    return int(train.main(argv) or 0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m examples.keyword_spotting", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    _listen.configure_parser(sub.add_parser(
        "listen", help="detect keywords from the microphone, --wav FILE or raw audio on --stdin"))
    ev = sub.add_parser("evaluate", help="accuracy, per-class recall, confusion matrix on a Speech Commands folder")
    ev.add_argument("--data", required=True, help="folder of <label>/*.wav|*.flac")
    ev.add_argument("--plot", default=None, help="write the confusion matrix to this PNG")
    ev.add_argument("--limit", type=int, default=None, help="at most N files per folder")
    ev.add_argument("--min-accuracy", type=float, default=None, help="exit 1 below this accuracy (0..1)")
    _listen.add_detector_args(ev)
    fa = sub.add_parser("false-alarms", help="false accepts per hour on audio without keywords")
    fa.add_argument("--audio", required=True, help="a .wav/.flac file or a folder of them (searched recursively)")
    fa.add_argument("--max-per-hour", type=float, default=None,
                    help="exit 1 when the model's setting goes above this rate; with --sweep, also name the "
                         "threshold with the best recall (with --keywords) within it")
    fa.add_argument("--keywords", default=None, help="a Speech Commands folder of keyword clips: recall too")
    fa.add_argument("--limit", type=int, default=None, help="at most N --keywords files per folder")
    fa.add_argument("--sweep", action="store_true", help="also every threshold 0.5..0.98 (same smoothing)")
    fa.add_argument("--plot", default=None, help="write the sweep to this PNG (recall vs false accepts with "
                    "--keywords)")
    _listen.add_detector_args(fa)
    sub.add_parser("train", help="train a keyword model (python -m examples.keyword_spotting train --help)",
                   add_help=False)
    dp = sub.add_parser("deploy", help="a device folder (bundle + listen.py) for a target such as rpi4")
    dp.add_argument("--target", default="rpi4", help="target name (default rpi4)")
    dp.add_argument("-o", "--out", required=True, help="folder to write")
    dp.add_argument("--model", default=None, help="model file or zoo name (default: the zoo model)")
    dp.add_argument("--labels", default=None, help="labels file or a,b,c (default: the zoo entry's)")
    _listen.add_setting_args(dp)   # recorded in the bundle: listen.py on the device starts from it
    dp.add_argument("--force", action="store_true", help="replace an existing bundle in --out")
    dp.add_argument("--json", action="store_true", help="one JSON object on stdout")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:
        return _train(argv[1:])
    args = build_parser().parse_args(argv)
    fn = {"listen": _listen.run, "evaluate": _evaluate, "false-alarms": _false_alarms, "deploy": _deploy}[args.command]
    return _listen.guarded(fn, args)


if __name__ == "__main__":
    sys.exit(main())
