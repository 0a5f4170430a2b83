"""The face-unlock half of ``edgeship demo``: enrol and unlock real faces with the int8 model.

Faces: AT&T / ORL photos shipped in ``examples/face_unlock/sample_faces`` (credit: AT&T
Laboratories Cambridge; see that folder's README). They are used as they are (92x112 grayscale,
tightly cropped): the default YuNet detector finds exactly one face in each of them, so no
padding or upscaling is needed (the demo fails loudly if that ever changes).

Plan: ``s1`` and ``s2`` are enrolled from images 1-2 each, into a private encrypted store under
the demo folder; then ``unlock`` runs with images 3-4 of each enrolled person claiming themselves
(must be accepted), ``s3`` (never enrolled) claiming ``s1`` and claiming anyone (must be
rejected), and ``s1`` claiming ``s2`` (must be rejected). Every step is the app's own command
(``python -m examples.face_unlock ...``) run as a subprocess, as a user runs it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List

from ..errors import EdgeshipError, InputSpecError
from .demo_kws import app_command, run_app

ENROL = {"s1": (1, 2), "s2": (1, 2)}
# (image, claimed user or None for "anyone enrolled", expected: accepted?)
TRIES = [("s1/3", "s1", True), ("s1/4", "s1", True), ("s2/3", "s2", True), ("s2/4", "s2", True),
         ("s3/1", "s1", False), ("s3/2", None, False), ("s1/3", "s2", False)]


def faces_dir(repo: Path) -> Path:
    d = repo / "examples" / "face_unlock" / "sample_faces"
    if not d.is_dir():
        raise InputSpecError(f"the demo's face photos are missing: expected {d} (run the demo from an edgeship "
                             f"source checkout: `make demo`)")
    return d


def prepare_models(progress=None) -> dict:
    """Build (first use) or find the int8 face descriptor in edgeship's cache; how long it took."""
    import time

    from edgeship.models import face as face_models

    t0 = time.perf_counter()
    p = face_models.model_path("descriptor", "int8")
    return {"descriptor": str(p), "seconds": round(time.perf_counter() - t0, 1)}


def _json(p) -> dict:
    for ln in reversed(p.stdout.splitlines()):
        if ln.strip().startswith("{"):
            return json.loads(ln)
    raise EdgeshipError(f"the face app printed no JSON (exit {p.returncode}): {(p.stderr or p.stdout)[-1500:]}")


def run_face(repo: Path, out: Path, on_step=None) -> dict:
    """Enrol, then every unlock try; returns what each command said and whether it was right."""
    d = faces_dir(repo)
    store = out / "store"
    common = ["--store", str(store), "--model", "int8", "--json"]
    enrolled: List[dict] = []
    for user, ks in ENROL.items():
        cmd = app_command(repo, "face_unlock", "enroll", "--user", user, "--replace", "--images",
                          *[str(d / user / f"{k}.pgm") for k in ks], *common)
        p = run_app(repo, cmd)
        r = _json(p)
        if p.returncode != 0 or not r.get("enrolled"):
            raise EdgeshipError(f"enrolling {user} failed (exit {p.returncode}): {r}")
        enrolled.append({"user": user, "images": [f"{user}/{k}.pgm" for k in ks], "templates": r["templates"],
                         "command": _show(cmd, repo)})
        if on_step:
            on_step()
    tries = []
    for image, claim, expect in TRIES:
        cmd = app_command(repo, "face_unlock", "unlock", *(["--user", claim] if claim else []),
                          "--image", str(d / f"{image}.pgm"), *common)
        p = run_app(repo, cmd)
        r = _json(p)
        if p.returncode not in (0, 1):
            raise EdgeshipError(f"unlock with {image} failed (exit {p.returncode}): {r}")
        got = bool(r.get("unlocked"))
        tries.append({"image": f"{image}.pgm", "person": image.split("/")[0], "claims": claim or "anyone",
                      "expected": "accept" if expect else "reject", "outcome": "accepted" if got else "rejected",
                      "correct": got == expect, "score": r.get("score"), "threshold": r.get("threshold"),
                      "reason": r.get("reason"), "exit_code": p.returncode, "command": _show(cmd, repo)})
        if on_step:
            on_step()
    genuine = [t for t in tries if t["expected"] == "accept"]
    impostor = [t for t in tries if t["expected"] == "reject"]
    return {"store": str(store), "model": "int8", "enrolled": enrolled, "tries": tries,
            "accepted": sum(t["outcome"] == "accepted" for t in genuine), "genuine": len(genuine),
            "rejected": sum(t["outcome"] == "rejected" for t in impostor), "impostor": len(impostor),
            "threshold": next((t["threshold"] for t in tries if t["threshold"] is not None), None),
            "all_correct": all(t["correct"] for t in tries)}


def n_steps() -> int:
    return len(ENROL) + len(TRIES)


def _show(cmd: List[str], repo: Path) -> str:
    """The command as a user types it from the repository root."""
    def rel(a: str) -> str:
        try:
            return str(Path(a).relative_to(repo)) if a.startswith(str(repo)) else a
        except ValueError:
            return a
    return " ".join(["python", *[rel(a) for a in cmd[1:]]])


__all__ = ["run_face", "prepare_models", "n_steps", "faces_dir"]
