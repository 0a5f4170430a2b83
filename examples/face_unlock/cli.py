"""``python -m examples.face_unlock COMMAND``: enrol faces, unlock, evaluate on LFW pairs.

Commands: ``enroll``, ``unlock``, ``evaluate-pairs``, ``users``, ``remove``. Every command takes
``--store DIR`` (default: the user's data directory, see :func:`store.default_store_dir`) and
``--json`` (exactly one JSON object on stdout). Exit codes: 0 success / unlocked; 1 unlock refused
(no face, several faces, below threshold, locked out); 2 user error (bad or unreadable file, image
without exactly one usable face at enrolment, unknown user, damaged store, wrong key, no camera).

Scores are dlib's: the Euclidean distance between 128-d embeddings; a face unlocks when its
distance to the nearest enrolled template is at most the threshold (``score`` in the output is
that distance -- lower is closer).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import typer

from edgeship.cli.console import EXIT_FAILED_CHECK, EXIT_USER_ERROR, console, emit_json, handle_errors, json_option
from edgeship.errors import InputSpecError

from . import store as store_mod

app = typer.Typer(name="face_unlock", help="Face unlock: enrol people, unlock only for them, on-device and offline.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

STORE_HELP = "Store folder (default: $XDG_DATA_HOME/edgeship/face_unlock or ~/.local/share/edgeship/face_unlock)."
MODEL_HELP = "Face descriptor model: int8 (default), fp32, onnx, or a path to a .tflite/.onnx descriptor."


def _store(store: Optional[Path], key_file: Optional[Path], keyring: bool, **kw) -> store_mod.Store:
    return store_mod.Store(store or store_mod.default_store_dir(), key_file=key_file, use_keyring=keyring, **kw)


def _engine(model: str, detector: Optional[str], threads: Optional[int]):
    from .engine import FaceEngine

    return FaceEngine(model, detector=detector, threads=threads)


def _fail(json_: bool, result: dict, code: int):
    if json_:
        emit_json(result)
    else:
        console().print(f"[bold red]{result.get('reason', 'failed')}:[/] {result.get('detail', '')}")
    raise typer.Exit(code)


def _camera(source: str):
    """Open a camera (an index such as ``0``) or a video file through OpenCV; exit 2 when there is none."""
    from edgeship._deps import require

    cv2 = require("cv2", "face", "reading a camera")
    src = int(source) if source.isdigit() else source
    if isinstance(src, str) and not Path(src).exists():
        raise InputSpecError(f"expected a camera index (0, 1, ...) or a video file for --camera-source, got {source!r}")
    cap = cv2.VideoCapture(src)
    if not cap.isOpened():
        cap.release()
        raise InputSpecError(f"no camera found: OpenCV could not open camera {source!r}. Connect a camera "
                             f"(or pass --camera-source with another index or a video file), or use --image/--images")
    return cap, cv2


def _frames(cap, cv2, max_frames: int):
    for _ in range(max_frames):
        ok, frame = cap.read()
        if not ok or frame is None:
            return
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
        else:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        yield frame


def _encode_png(frame) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return buf.tobytes()


@app.command("enroll")
@handle_errors
def enroll_cmd(
    user: str = typer.Option(..., "--user", help="Name of the person to enrol."),
    images: Optional[List[Path]] = typer.Option(None, "--images", help="Image files, each with exactly one face "
                                                "(--images a.jpg b.jpg, or --images a.jpg --images b.jpg)."),
    more_images: Optional[List[Path]] = typer.Argument(None, hidden=True),
    camera: bool = typer.Option(False, "--camera", help="Enrol from the camera instead of files."),
    frames: int = typer.Option(5, "--frames", help="With --camera: how many frames with one face to enrol."),
    camera_source: str = typer.Option("0", "--camera-source", help="Camera index, or a video file, for --camera."),
    replace: bool = typer.Option(False, "--replace", help="Replace the user's templates instead of adding to them."),
    keep_images: bool = typer.Option(False, "--keep-images", help="Keep the enrolment images (encrypted) in the store."),
    model: str = typer.Option("int8", "--model", help=MODEL_HELP),
    detector: Optional[str] = typer.Option(None, "--detector", help="Face detector (default: the pipeline's)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Interpreter threads."),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    key_file: Optional[Path] = typer.Option(None, "--key-file", help="Key file (default: STORE/key)."),
    keyring: bool = typer.Option(False, "--keyring", help="Keep a new store's key in the OS keyring."),
    json_: bool = json_option(),
):
    """Enrol a user from image files (each must hold exactly one face) or from the camera."""
    user = store_mod.check_user_name(user)
    if more_images:  # `--images a.jpg b.jpg`: click gives the first to --images and the rest as arguments
        if not images:
            raise InputSpecError(f"unexpected file arguments {[str(p) for p in more_images]}; put them after --images")
        images = list(images) + list(more_images)
    if bool(images) == camera:
        raise InputSpecError("expected exactly one of --images F... or --camera")
    if camera and frames < 1:
        raise InputSpecError(f"expected --frames >= 1, got {frames}")
    st = _store(store, key_file, keyring)
    if st.exists():
        st.load()  # a damaged store or a wrong key is reported before any work
    from .engine import FaceRejected

    eng = _engine(model, detector, threads)
    embs, kept, refused, used = [], [], [], []
    if images:
        for p in images:
            img = eng.read(p)
            try:
                f = eng.one_face(img, str(p))
            except FaceRejected as exc:
                refused.append({"image": str(p), "reason": exc.reason, "faces": exc.n_faces, "detail": str(exc)})
                continue
            embs.append(f.embedding)
            used.append(str(p))
            if keep_images:
                kept.append(Path(p).read_bytes())
        if refused:
            res = {"ok": False, "enrolled": False, "user": user, "refused": refused,
                   "reason": "image without exactly one usable face",
                   "detail": "; ".join(r["detail"] for r in refused) + ". Nothing was enrolled."}
            _fail(json_, res, EXIT_USER_ERROR)
    else:
        cap, cv2 = _camera(camera_source)
        seen = 0
        try:
            for frame in _frames(cap, cv2, max_frames=frames * 20):
                seen += 1
                try:
                    f = eng.one_face(frame, f"frame {seen}")
                except FaceRejected:
                    continue
                embs.append(f.embedding)
                used.append(f"frame {seen}")
                if keep_images:
                    kept.append(_encode_png(frame))
                if len(embs) >= frames:
                    break
        finally:
            cap.release()
        if len(embs) < frames:
            _fail(json_, {"ok": False, "enrolled": False, "user": user, "reason": "not enough faces",
                          "detail": f"{len(embs)} of {seen} camera frames held exactly one face; {frames} needed. "
                                    f"Nothing was enrolled."}, EXIT_USER_ERROR)
    n = st.enroll(user, embs, model_id=eng.model_id, images=kept, replace=replace)
    res = {"ok": True, "enrolled": True, "user": user, "added": len(embs), "templates": n, "sources": used,
           "images_kept": len(kept), "model": eng.model_id, "store": str(st.root)}
    if json_:
        emit_json(res)
    else:
        console().print(f"[bold green]enrolled[/] {user}: {len(embs)} face(s) added, {n} template(s) in {st.root}")


@app.command("unlock")
@handle_errors
def unlock_cmd(
    user: Optional[str] = typer.Option(None, "--user", help="Claimed user (default: anyone enrolled)."),
    image: Optional[Path] = typer.Option(None, "--image", help="Image file to unlock with."),
    camera: bool = typer.Option(False, "--camera", help="Unlock from the camera."),
    camera_source: str = typer.Option("0", "--camera-source", help="Camera index, or a video file, for --camera."),
    max_frames: int = typer.Option(30, "--max-frames", help="With --camera: frames to try before giving up."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Distance threshold (default: the shipped one)."),
    max_failures: int = typer.Option(store_mod.DEFAULT_MAX_FAILURES, "--max-failures",
                                     help="Consecutive failed unlocks before a lockout."),
    lockout_seconds: float = typer.Option(store_mod.DEFAULT_LOCKOUT_S, "--lockout-seconds", help="Lockout length."),
    model: str = typer.Option("int8", "--model", help=MODEL_HELP),
    detector: Optional[str] = typer.Option(None, "--detector", help="Face detector (default: the pipeline's)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Interpreter threads."),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    key_file: Optional[Path] = typer.Option(None, "--key-file", help="Key file (default: STORE/key)."),
    keyring: bool = typer.Option(False, "--keyring", help="(accepted for symmetry; the store header says where its key is)"),
    json_: bool = json_option(),
):
    """Unlock with one face: exit 0 on a match, 1 with the reason otherwise (2 on a user error)."""
    if (image is None) == (not camera):
        raise InputSpecError("expected exactly one of --image F or --camera")
    st = _store(store, key_file, keyring, max_failures=max_failures, lockout_s=lockout_seconds)
    if not st.exists():
        raise store_mod.StoreError(f"no store at {st.root}: nobody is enrolled yet (run enroll first)")
    doc = st.load()
    if user is not None:
        user = store_mod.check_user_name(user)
        if user not in doc["users"]:
            raise store_mod.UnknownUserError(f"no enrolled user {user!r} in {st.root}; enrolled: "
                                             f"{', '.join(sorted(doc['users'])) or '(none)'}")
    from .engine import FaceRejected, decide, threshold_for

    eng = _engine(model, detector, threads)
    thr = threshold_for(model, eng.model_sha256, threshold)
    if thr.warning and not json_:
        console().print(f"[yellow]warning:[/] {thr.warning}")

    face, rejected = None, None
    if image is not None:
        img = eng.read(image)
        try:
            face = eng.one_face(img, str(image))
        except FaceRejected as exc:
            rejected = exc
    else:
        cap, cv2 = _camera(camera_source)
        try:
            n = 0
            for frame in _frames(cap, cv2, max_frames):
                n += 1
                try:
                    face = eng.one_face(frame, f"camera frame {n}")
                    break
                except FaceRejected as exc:
                    rejected = exc
        finally:
            cap.release()
        if face is None and rejected is None:
            rejected = FaceRejected("the camera gave no frames", "no face", 0)

    import numpy as np

    def _decide(doc):
        if rejected is not None:  # not a comparison: does not count towards the lockout
            return False, {"unlocked": False, "user": None, "score": None, "reason": rejected.reason,
                           "detail": str(rejected), "counts": False}
        emb = np.asarray(face.embedding, np.float32).reshape(-1)
        tmpl = st.templates(doc, user)
        other = sorted({doc["users"][u].get("model") for u in tmpl} - {eng.model_id})
        if other and all(doc["users"][u].get("model") != eng.model_id for u in tmpl):
            raise store_mod.StoreError(f"the enrolled templates were made with model {', '.join(map(str, other))}, "
                                       f"not {eng.model_id}; unlock with that --model or enrol again")
        tmpl = {u: t for u, t in tmpl.items() if doc["users"][u].get("model") == eng.model_id}
        r = decide(tmpl, emb, thr.value)
        return r["unlocked"], r

    ok, res = st.attempt(_decide, user)
    res.setdefault("unlocked", False)
    res.setdefault("user", None)
    res.setdefault("score", None)
    res["threshold"] = thr.value
    res["threshold_source"] = thr.source
    if thr.warning:
        res["warning"] = thr.warning
    if ok:
        if json_:
            emit_json(res)
        else:
            console().print(f"[bold green]unlocked[/]: {res['user']} (distance {res['score']:.3f} <= {thr.value:.3f})")
        return
    _fail(json_, res, EXIT_FAILED_CHECK)


@app.command("evaluate-pairs")
@handle_errors
def evaluate_pairs_cmd(
    pairs: Path = typer.Option(..., "--pairs", help="LFW pairs.txt (View 2 format)."),
    images: Path = typer.Option(..., "--images", help="LFW folder: DIR/<name>/<name>_<NNNN>.jpg."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a ROC plot (PNG)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Report at this threshold instead of the shipped one."),
    model: str = typer.Option("int8", "--model", help=MODEL_HELP),
    detector: Optional[str] = typer.Option(None, "--detector", help="Face detector (default: the pipeline's)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Interpreter threads."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N pairs (a quick look)."),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP + " (unused: evaluation reads no store)"),
    json_: bool = json_option(),
):
    """Face verification on LFW pairs at the app's shipped threshold (never tuned on these pairs)."""
    from . import evaluate as ev
    from .engine import threshold_for

    plist = ev.read_pairs(pairs)
    if limit is not None:
        if limit < 1:
            raise InputSpecError(f"expected --limit >= 1, got {limit}")
        plist = plist[:limit]
    if not Path(images).is_dir():
        raise InputSpecError(f"expected --images to be a folder of <name>/<name>_NNNN.jpg, got {str(images)!r}")
    keys = ev.unique_keys(plist)
    for k in keys:  # a mismatched folder is found before minutes of work
        if not ev.image_path(images, k).is_file():
            raise InputSpecError(f"{pairs} names {k[0]} image {k[1]} but {ev.image_path(images, k)} does not exist; "
                                 f"--images must be the LFW folder that matches --pairs")
    eng = _engine(model, detector, threads)
    thr = threshold_for(model, eng.model_sha256, threshold)
    if thr.warning:
        console().print(f"[yellow]warning:[/] {thr.warning}")

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    t0 = time.perf_counter()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console(), transient=json_) as bar:
        task = bar.add_task("embedding faces", total=len(keys))
        embs = ev.embed_all(keys, images, lambda p: eng.central_face_embedding(eng.read(p)),
                            progress=lambda n: bar.advance(task, n))
    seconds = time.perf_counter() - t0
    import numpy as np

    d = ev.pair_distances(plist, embs)
    same = np.array([p.same for p in plist])
    m = ev.verification_metrics(d, same, thr.value)
    res = {"ok": True, **m, "threshold_source": thr.source, "model": eng.model_id, "pairs_file": str(pairs),
           "n_images": len(keys), "n_images_without_face": sum(v is None for v in embs.values()),
           "embed_seconds": round(seconds, 2)}
    if thr.warning:
        res["warning"] = thr.warning
    if plot is not None:
        far, tar, _ = ev.roc_curve(d, same)
        ev.plot_roc({f"{eng.model_id.split(':')[0]} (AUC {m['auc']:.4f})": (far, tar)}, plot,
                    title=f"{Path(pairs).name}: {m['n_pairs']} pairs",
                    marks={f"shipped threshold {thr.value:.3f}": (m["far_at_shipped_threshold"], m["tar_at_shipped_threshold"])})
        res["plot"] = str(plot)
    if json_:
        emit_json(res)
        return
    from rich.table import Table

    t = Table(title=f"{pairs.name}: {m['n_pairs']} pairs, model {eng.model_id[:24]}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("accuracy at shipped threshold", f"{m['accuracy_at_shipped_threshold']:.2%} (threshold {thr.value:.4f})")
    t.add_row("best-threshold accuracy", f"{m['best_accuracy']:.2%} (threshold {m['best_threshold']:.4f}, optimistic)")
    t.add_row("TAR at FAR = 1e-3", f"{m['tar_at_far_1e-3']:.2%}")
    t.add_row("FAR / TAR at shipped threshold", f"{m['far_at_shipped_threshold']:.3%} / {m['tar_at_shipped_threshold']:.2%}")
    t.add_row("pairs without a usable face", str(m["n_pairs_without_face"]))
    console().print(t)


@app.command("users")
@handle_errors
def users_cmd(
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    key_file: Optional[Path] = typer.Option(None, "--key-file", help="Key file (default: STORE/key)."),
    keyring: bool = typer.Option(False, "--keyring", help="(the store header says where its key is)"),
    json_: bool = json_option(),
):
    """List enrolled users, their template counts and lockout state."""
    st = _store(store, key_file, keyring)
    users = st.users() if st.exists() else []
    if json_:
        emit_json({"ok": True, "store": str(st.root), "users": users})
        return
    from rich.table import Table

    t = Table(title=f"{len(users)} user(s) in {st.root}")
    for c in ("user", "templates", "model", "enrolled", "locked"):
        t.add_column(c)
    for u in users:
        t.add_row(u["user"], str(u["templates"]), str(u["model"])[:20], str(u["enrolled_at"]),
                  f"{u['locked_for_s']} s" if u["locked"] else "-")
    console().print(t)


@app.command("remove")
@handle_errors
def remove_cmd(
    user: str = typer.Option(..., "--user", help="User to remove (templates, lockout state, kept images)."),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    key_file: Optional[Path] = typer.Option(None, "--key-file", help="Key file (default: STORE/key)."),
    keyring: bool = typer.Option(False, "--keyring", help="(the store header says where its key is)"),
    json_: bool = json_option(),
):
    """Remove an enrolled user."""
    st = _store(store, key_file, keyring)
    if not st.exists():
        raise store_mod.UnknownUserError(f"no store at {st.root}; nobody is enrolled")
    st.remove(user)
    if json_:
        emit_json({"ok": True, "removed": user.strip(), "store": str(st.root)})
    else:
        console().print(f"removed {user.strip()} from {st.root}")


def main(argv: Optional[List[str]] = None) -> None:
    app(args=argv, prog_name="python -m examples.face_unlock")


__all__ = ["app", "main"]
