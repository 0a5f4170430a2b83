"""Pick the real sample data that ``edgeship demo`` ships (run once; the output is committed).

Keyword spotting: Speech Commands v0.02 test-set clips (CC BY 4.0) from ``../shared`` taken only
from speakers the zoo model ``kws_dscnn`` never trained on: its speaker split
(:func:`edgeship.models.kws.speaker_split`, the model card's salt and fraction) sends them to
validation. Of the validation speakers who said all ten keywords, the first ``--speakers`` by hash
each give their first clip of every keyword and their first ``_unknown_`` word; the first
``--speakers`` validation ``_silence_`` clips complete the twelve classes. Files are copied byte
for byte (FLAC, 16 kHz, 16-bit, mono).

Face unlock: AT&T / ORL faces (AT&T Laboratories Cambridge; credit required): people ``s1`` ..
``s<--people>``, images ``1`` .. ``<--images>`` each, copied byte for byte (PGM, 92x112).

Usage::

    python bench/make_demo_samples.py [--shared ../shared] [--speakers 6] [--people 3] [--images 4]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KWS_OUT = ROOT / "examples" / "keyword_spotting" / "sample_data"
FACE_OUT = ROOT / "examples" / "face_unlock" / "sample_faces"


def pick_kws(shared: Path, n_speakers: int):
    from edgeship.models import kws

    split = kws.speaker_split(shared / "data" / "speech_commands_dev")  # the model card's split
    val = split["validation"]
    train_speakers = {c.speaker for c in split["train"]}
    words = [l for l in kws.LABELS if not l.startswith("_")]
    by = defaultdict(lambda: defaultdict(list))
    for c in val:
        by[c.speaker][c.label].append(c)
    full = sorted(sp for sp in by if not sp.startswith("file:") and all(w in by[sp] for w in words)
                  and kws.UNKNOWN in by[sp])
    speakers = full[:n_speakers]
    assert not set(speakers) & train_speakers
    chosen = [sorted(by[sp][l], key=lambda c: c.path)[0] for sp in speakers for l in words + [kws.UNKNOWN]]
    silence = sorted((c for c in val if c.label == kws.SILENCE), key=lambda c: c.path)[:n_speakers]
    return speakers, chosen + silence


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("EDGESHIP_SHARED", ROOT.parent / "shared")))
    ap.add_argument("--speakers", type=int, default=6)
    ap.add_argument("--people", type=int, default=3)
    ap.add_argument("--images", type=int, default=4)
    a = ap.parse_args()
    speakers, clips = pick_kws(a.shared, a.speakers)
    files = []
    for c in clips:
        rel = Path(c.path).relative_to(a.shared / "data" / "speech_commands_dev")
        dst = KWS_OUT / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(c.path, dst)
        files.append({"file": str(rel), "label": c.label, "speaker": c.speaker, "word": c.word,
                      "sha256": hashlib.sha256(dst.read_bytes()).hexdigest()})
    (KWS_OUT / "clips.json").write_text(json.dumps({"speakers": speakers, "clips": files}, indent=1) + "\n")
    faces = []
    for s in range(1, a.people + 1):
        for k in range(1, a.images + 1):
            src = a.shared / "data" / "faces" / "orl" / f"s{s}" / f"{k}.pgm"
            dst = FACE_OUT / f"s{s}" / f"{k}.pgm"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            faces.append(f"s{s}/{k}.pgm")
    total = sum(p.stat().st_size for p in KWS_OUT.rglob("*") if p.is_file())
    print(f"{len(files)} clips from speakers {', '.join(speakers)} ({total / 1e6:.2f} MB); {len(faces)} faces")


if __name__ == "__main__":
    main()
