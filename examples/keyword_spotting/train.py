"""``python -m examples.keyword_spotting train``: build a keyword spotter (the zoo recipe, or any words).

Two ways to use it:

* ``train --keywords marvin,sheila,house --out my_kws`` builds a spotter for any typed words from
  synthetic speech alone (``--voices``: espeak-ng's formant voices with their accents, rates
  and pitches, Piper's neural voice, Flite's four speakers, Festival's three voices and its Czech,
  Finnish, Italian and Russian speakers saying the words with an accent, warped and varied; by
  default every one that is installed; then augmentation with a random microphone response; the
  weights are averaged over the last 30 % of the epochs, ``--swa-epochs``):
  ``_unknown_`` is other synthetic words, ``_silence_`` is noise. ``--data DIR`` adds your own
  recordings (Speech Commands layout ``<label>/*.wav``; folders named like a keyword count as it,
  ``_silence_`` as silence, anything else as ``_unknown_``); they are split by speaker, and the
  held-out speakers give the validation figures.
* Without ``--keywords`` the labels are the MLPerf twelve (``yes no up down left right on off stop
  go _silence_ _unknown_``): this is how the zoo model ``kws_dscnn`` is made (see
  ``models/cards/kws_dscnn.md`` for the exact command).

``--init`` starts from a model: a ``.keras`` file, a zoo name (``kws_dscnn_keras``) or the MLPerf
reference SavedModel folder (its weights are read from ``variables/``). ``--teacher`` (repeatable)
distils from earlier runs with the same labels: train a few seeds, then one model on their
consensus (knowledge distillation; the 12-class synthetic-only recipe gains 1.6 points from it).

Writes into ``--out``: ``model.keras``, ``model_int8.tflite`` (converted by
``edgeship.converters.convert`` and checked against the Keras model on the validation data),
``labels.txt``, ``bundle/`` (loadable by ``listen --model OUT/bundle``), ``train_report.json``
and ``train.log`` (library output). ``--json`` prints the report as one JSON object.
Exit codes: 0 done, 1 the int8 model failed its parity check, 2 user error.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

EXIT_FAILED_CHECK, EXIT_USER_ERROR = 1, 2
MLPERF_LABELS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "_silence_", "_unknown_")
REPORT = "train_report.json"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m examples.keyword_spotting train", description=__doc__.splitlines()[0])
    p.add_argument("--keywords", default=None, help="comma-separated words to spot (default: the MLPerf 10)")
    p.add_argument("--data", default=None, help="your recordings: a folder of <label>/*.wav|*.flac")
    p.add_argument("--init", default=None, help="start from a .keras model, a zoo name or the MLPerf SavedModel folder")
    p.add_argument("--noise", action="append", default=[], help="folder of noise recordings (repeatable); "
                   "default: generated white/pink/brown noise")
    p.add_argument("--out", required=True, help="output folder (created; an earlier run's folder is replaced)")
    p.add_argument("--epochs", type=int, default=6, help="training epochs (default 6)")
    p.add_argument("--seed", type=int, default=0, help="seed of everything random (default 0)")
    p.add_argument("--per-word", type=int, default=300, help="synthetic utterances per label (default 300; 0 = none)")
    p.add_argument("--unknown-per-word", type=int, default=None, help="synthetic _unknown_ utterances (other "
                   "words); default: 3 x --per-word with --keywords (a spotter must reject every other word: this "
                   "cuts false alarms by half or more), --per-word for the MLPerf twelve (balanced, like its test set)")
    p.add_argument("--synth-copies", type=int, default=2, help="augmented copies per synthetic utterance (default 2)")
    p.add_argument("--voices", default="auto", help="synthetic voices, comma-separated, taking turns: "
                   "espeak (formant voices, many accents), piper (a neural voice, closer to real speech), flite "
                   "(four speakers: apt-get install flite), festival (three voices: apt-get install festival "
                   "festvox-kdlpc16k festvox-kallpc16k festvox-us-slt-hts), accented (Czech, Finnish, Italian and Russian "
                   "speakers saying the words: apt-get install festival festvox-czech-machac festvox-czech-dita "
                   "festvox-suopuhe-mv festvox-suopuhe-lj festvox-itapc16k festvox-ru); default auto: all of them that are "
                   "installed (the report records which; more voices do better on real speech: "
                   "models/cards/kws_dscnn.md)")
    p.add_argument("--synth-colour", type=float, default=0.8, help="probability of a random microphone/channel "
                   "response on each synthetic clip (default 0.8; 0 = off): synthetic voices are studio-clean, "
                   "real recordings are not")
    p.add_argument("--copies", type=int, default=4, help="augmented copies per real recording (default 4)")
    p.add_argument("--validation", type=float, default=0.25, help="fraction of --data speakers held out (default 0.25)")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="Adam learning rate, cosine-decayed (default 5e-4 with --init, 2e-3 without)")
    p.add_argument("--swa-epochs", type=int, default=None, help="average the weights over the last N epochs "
                   "(stochastic weight averaging; 0 = off). Default: 30 %% of --epochs when training on synthetic "
                   "speech only (no --data, no --init), where it carried over to real speech better (+2.3 points "
                   "for 12 classes, fewer false alarms for --keywords: models/cards/kws_dscnn.md), else 0")
    p.add_argument("--teacher", action="append", default=[], help="distil from a trained model (repeatable): a "
                   "train --out folder or its model.keras, with the same labels. The targets become --teacher-weight x "
                   "the teachers' consensus + the rest one-hot; models trained with other --seed values make good "
                   "teachers (12 classes from synthetic speech: +1.6 points on real speech; for --keywords it raised the false "
                   "alarms: models/cards/kws_dscnn.md)")
    p.add_argument("--teacher-weight", type=float, default=None,
                   help="the teachers' share of each training target, in [0, 1] (default 0.7; only with --teacher)")
    p.add_argument("--input-noise", type=float, default=0.3,
                   help="training-time Gaussian noise on the features, for int8 robustness (default 0.3)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--max-acc-drop", type=float, default=0.02,
                   help="largest int8-vs-float accuracy drop on the validation data (default 0.02)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object on stdout")
    return p


def _labels(args) -> List[str]:
    from edgeship.errors import InputSpecError

    if not args.keywords:
        return list(MLPERF_LABELS)
    words = [w.strip().lower() for w in args.keywords.split(",") if w.strip()]
    if not words:
        raise InputSpecError(f"--keywords: expected comma-separated words, given {args.keywords!r}")
    if len(set(words)) != len(words):
        raise InputSpecError(f"--keywords: each word once, given {args.keywords!r}")
    bad = [w for w in words if w.startswith("_")]
    if bad:
        raise InputSpecError(f"--keywords: {bad} are reserved label names; pick other words")
    return words + ["_silence_", "_unknown_"]


def _check_args(args) -> None:
    from edgeship.errors import InputSpecError

    if args.epochs < 1:
        raise InputSpecError(f"--epochs: expected at least 1, given {args.epochs}")
    if args.swa_epochs is None:
        args.swa_epochs = 0 if (args.data or args.init) else round(0.3 * args.epochs)
    if not 0 <= args.swa_epochs < args.epochs:
        raise InputSpecError(f"--swa-epochs: expected 0 (off) up to --epochs - 1 ({args.epochs - 1}), given "
                             f"{args.swa_epochs}")
    if args.per_word < 0 or args.copies < 0 or args.synth_copies < 1:
        raise InputSpecError("--per-word and --copies must be >= 0, --synth-copies >= 1")
    if args.unknown_per_word is not None and args.unknown_per_word < 1:
        raise InputSpecError(f"--unknown-per-word: expected at least 1, given {args.unknown_per_word}")
    if not 0.0 <= args.synth_colour <= 1.0:
        raise InputSpecError(f"--synth-colour: expected a probability in [0, 1], given {args.synth_colour}")
    from edgeship.models.kws import voice_list

    try:
        args.voice_names = voice_list(args.voices)
    except InputSpecError as exc:
        raise InputSpecError(f"--{exc}") from None
    if args.per_word == 0 and not args.data:
        raise InputSpecError("nothing to train on: --per-word 0 turns synthetic speech off and no --data was given")
    if args.teacher_weight is not None and not args.teacher:
        raise InputSpecError("--teacher-weight needs at least one --teacher model")
    if args.teacher_weight is None:
        args.teacher_weight = 0.7
    if not 0.0 <= args.teacher_weight <= 1.0:
        raise InputSpecError(f"--teacher-weight: expected a value in [0, 1], given {args.teacher_weight}")
    args.teacher_files = [_teacher_file(t, _labels(args), Path(args.out)) for t in args.teacher]
    if args.data and not Path(args.data).is_dir():
        raise InputSpecError(f"--data: expected a folder of <label>/*.wav, given {args.data}")
    for d in args.noise:
        if not Path(d).is_dir():
            raise InputSpecError(f"--noise: expected a folder of noise recordings, given {d}")
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / REPORT).is_file())):
        raise InputSpecError(f"--out {out}: exists and was not written by train (no {REPORT}); "
                             "pick a new folder so nothing of yours is overwritten")


@contextlib.contextmanager
def _library_output_to(log_path: Path):
    """Send everything written to fds 1/2 (TensorFlow, converters) to ``log_path``; progress keeps
    the real stderr, and stdout is restored for the one JSON object."""
    from edgeship.models import kws

    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    log = open(log_path, "a", buffering=1)
    err_stream = os.fdopen(os.dup(saved_err), "w", buffering=1)
    kws.progress_console(err_stream)
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        # Python-level writes too (sys.stdout may not be fd 1, e.g. under a capturing test runner)
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield err_stream
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        kws.progress_console(sys.stderr)
        log.close()


def _teacher_file(teacher: str, labels: List[str], out: Path) -> str:
    """A --teacher argument -> its .keras file; a train --out folder's labels must be ``labels``.
    Checked before any synthesis (the model itself loads later, with TensorFlow)."""
    import zipfile

    from edgeship.errors import InputSpecError

    p = Path(teacher)
    if p.resolve() == out.resolve() or out.resolve() in p.resolve().parents:
        raise InputSpecError(f"--teacher {teacher} is inside --out {out}, which this run replaces; train into "
                             "another folder")
    if p.is_dir():
        rep = p / REPORT
        if not (p / "model.keras").is_file() or not rep.is_file():
            raise InputSpecError(f"--teacher {teacher}: expected a train --out folder (model.keras and {REPORT}) or "
                                 "a .keras file")
        try:
            theirs = json.loads(rep.read_text()).get("labels")
        except (ValueError, AttributeError):
            theirs = None
        if theirs != labels:
            raise InputSpecError(f"--teacher {teacher}: trained for labels {theirs}, this run trains {labels}; a "
                                 "teacher needs the same labels in the same order")
        p = p / "model.keras"
    elif not (p.is_file() and p.suffix == ".keras"):
        raise InputSpecError(f"--teacher: expected a train --out folder or a .keras file, given {teacher}")
    if not zipfile.is_zipfile(p):
        raise InputSpecError(f"--teacher {teacher}: {p} is not a .keras model (a zip archive); was it truncated?")
    return str(p)


def _resolve_init(init: Optional[str]):
    """-> ("reference", dir) | ("keras", path) | (None, None)."""
    from edgeship.errors import InputSpecError

    if not init:
        return None, None
    p = Path(init)
    if p.is_dir() and (p / "variables" / "variables.index").is_file():
        return "reference", str(p)
    if p.is_file() and p.suffix == ".keras":
        return "keras", str(p)
    if not p.exists():
        from edgeship import models

        try:
            e = models.entry(init)
        except Exception:
            e = None
        if e is not None and e.file.endswith(".keras"):
            return "keras", str(models.path(init))
    raise InputSpecError(f"--init: expected a .keras file, a zoo Keras model name (e.g. kws_dscnn_keras) or the "
                         f"MLPerf reference SavedModel folder, given {init}")


def run(args) -> dict:
    import numpy as np

    from edgeship import bundle as bundle_mod
    from edgeship.converters import convert
    from edgeship.errors import InputSpecError, ParityError
    from edgeship.models import kws, kws_augment
    from edgeship.models.registry import _MFCC

    labels = _labels(args)
    _check_args(args)
    init_kind, init_path = _resolve_init(args.init)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    report = {"ok": False, "labels": labels, "seed": args.seed, "epochs": args.epochs, "init": args.init,
              "input_noise": args.input_noise, "batch_size": args.batch_size, "swa_epochs": args.swa_epochs,
              "data": args.data, "noise": args.noise, "per_word": args.per_word, "copies": args.copies,
              "synth_copies": args.synth_copies,
              "unknown_per_word": args.unknown_per_word or (3 if args.keywords else 1) * args.per_word,
              "voices": args.voice_names, "voices_asked": args.voices}
    noises = kws_augment.load_noise(args.noise) if args.noise else kws_augment.synthetic_noises(args.seed)
    augmenter = kws_augment.Augmenter(noises)  # recordings (--data): as recorded, no colouring
    synth_augmenter = kws_augment.Augmenter(noises, kws_augment.AugmentConfig(p_colour=args.synth_colour))
    report["augment"] = augmenter.config.to_dict()
    report["augment_synthetic"] = synth_augmenter.config.to_dict()
    lr = args.learning_rate or (5e-4 if init_kind else 2e-3)
    with _library_output_to(out / "train.log"):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        xs, ys = [], []
        x_val = y_val = None
        if args.data:
            split = kws.speaker_split(args.data, validation=args.validation, labels=labels)
            report["split"] = {k: len(v) for k, v in split.items()}
            report["data_sha256"] = kws.files_digest(split["train"] + split["validation"])
            if not split["train"]:
                raise InputSpecError(f"--data {args.data}: every speaker landed in validation; add recordings "
                                     "or lower --validation")
            x, y = kws.real_dataset(split["train"], copies=args.copies, augmenter=augmenter, seed=args.seed,
                                    labels=labels)
            xs.append(x), ys.append(y)
            if split["validation"]:
                x_val, y_val = kws.real_dataset(split["validation"], labels=labels, tag="validation")
        if args.per_word:
            x, y = kws.synthetic_dataset(labels, args.per_word, seed=args.seed, augmenter=synth_augmenter,
                                         copies=args.synth_copies, voices=args.voice_names,
                                         unknown_per_class=report["unknown_per_word"])
            xs.append(x), ys.append(y)
            report["synthetic_examples"] = int(x.shape[0])
            if x_val is None:  # held-out synthetic speech: other seeds, so other voice draws
                x_val, y_val = kws.synthetic_dataset(labels, max(20, args.per_word // 5), seed=args.seed + 1000,
                                                     augmenter=synth_augmenter, copies=1, voices=args.voice_names)
                report["validation_source"] = "synthetic (held-out seeds)"
        if "validation_source" not in report:
            report["validation_source"] = "real (held-out speakers of --data)"
        x_train, y_train = np.concatenate(xs), np.concatenate(ys)
        report["train_examples"] = int(x_train.shape[0])
        targets = None
        if args.teacher_files:
            from edgeship._io import sha256_file

            targets, facts = kws.teacher_targets(args.teacher_files, x_train, y_train, weight=args.teacher_weight,
                                                 num_classes=len(labels))
            report["teachers"] = [{"path": f, "sha256": sha256_file(f)} for f in args.teacher_files]
            report["teacher_weight"] = args.teacher_weight
            report["teacher_label_agreement"] = facts["teacher_label_agreement"]
        model, hist = kws.train(x_train, y_train, x_val=x_val, y_val=y_val, num_classes=len(labels),
                                init={"reference": "reference", "keras": init_path}.get(init_kind),
                                reference_dir=init_path if init_kind == "reference" else None, epochs=args.epochs,
                                batch_size=args.batch_size, learning_rate=lr, seed=args.seed,
                                description=f"training ({len(labels)} labels)", input_noise=args.input_noise,
                                swa_epochs=args.swa_epochs, targets=targets)
        report["history"] = hist
        report["learning_rate"] = lr
        keras_path = out / "model.keras"
        tmp = out / ".model.keras.tmp.keras"
        model.save(tmp)
        os.replace(tmp, keras_path)
        report["float_accuracy"] = kws.evaluate_keras(model, x_val, y_val)
        rng = np.random.default_rng(args.seed)
        calib = x_train[rng.choice(x_train.shape[0], min(2000, x_train.shape[0]), replace=False)]
        tflite_path = out / "model_int8.tflite"
        try:
            conv = convert(str(keras_path), to="tflite", quantize="int8", calibration=calib, validation=x_val,
                           labels=y_val, out=str(tflite_path), io_dtype="int8",
                           tolerance={"rel_max_abs": None, "acc_drop": args.max_acc_drop})
            parity = conv.to_dict()["outputs"][0]["parity"]
            passed = True
        except ParityError as exc:
            parity = (exc.report or {}).get("outputs", [{}])[0].get("parity") if getattr(exc, "report", None) else None
            passed = False
            report["error"] = str(exc)
        report["parity"] = parity
        if passed:
            acc8, _ = kws.evaluate_file(tflite_path, x_val, y_val)
            report["int8_accuracy"] = acc8
            (out / "labels.txt").write_text("\n".join(labels) + "\n")
            pre = dict(_MFCC)
            written = bundle_mod.write_bundle(
                out / "bundle", {"tflite-int8": str(tflite_path)}, labels=labels, preprocessing=pre,
                source=str(keras_path), extra={"train_report": {k: report[k] for k in ("seed", "epochs", "init")}},
                name="keyword-spotter", overwrite=True)
            # write_bundle returns the bundle folder, or (newer edgeship) its manifest with "_dir"
            report["bundle"] = str(written.get("_dir", out / "bundle") if isinstance(written, dict) else written)
    report["seconds"] = round(time.time() - t0, 1)
    report["ok"] = passed
    for f in ("model.keras", "model_int8.tflite"):
        if (out / f).is_file():
            from edgeship._io import sha256_file

            report.setdefault("sha256", {})[f] = sha256_file(out / f)
    from edgeship._io import atomic_write_json

    atomic_write_json(out / REPORT, report)
    return report


def _print(report: dict) -> None:
    print(f"labels: {', '.join(report['labels'])}")
    print(f"trained on {report['train_examples']} examples, {report['epochs']} epochs, {report['seconds']} s")
    if report.get("synthetic_examples"):
        from edgeship.models.kws import VOICES

        missing = [v for v in VOICES if v not in report["voices"]]
        print(f"synthetic voices: {', '.join(report['voices'])}"
              + ("" if not missing or report["voices_asked"] != "auto" else
                 f" (not installed: {', '.join(missing)}; more voices do better on real speech, see --help)"))
    if report.get("teachers"):
        print(f"distilled from {len(report['teachers'])} teacher(s), weight {report['teacher_weight']} (their consensus "
              f"agrees with {report['teacher_label_agreement']:.1%} of the training labels)")
    print(f"validation ({report['validation_source']}): float {report['float_accuracy']:.1%}"
          + (f", int8 {report['int8_accuracy']:.1%}" if "int8_accuracy" in report else ""))
    if report.get("ok"):
        print(f"wrote {Path(report['bundle'])} (listen --model {report['bundle']})")
    else:
        print(f"int8 model failed its parity check: {report.get('error')}")


def main(argv: Optional[List[str]] = None) -> int:
    from edgeship.errors import EdgeshipError

    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        report = run(args)
    except EdgeshipError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": {"type": type(exc).__name__, "message": str(exc)}}))
        else:
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    if args.json:
        print(json.dumps(report, default=str))
    else:
        _print(report)
    return 0 if report["ok"] else EXIT_FAILED_CHECK


if __name__ == "__main__":
    sys.exit(main())
