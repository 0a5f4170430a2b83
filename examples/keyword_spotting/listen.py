"""``listen``: detect keywords live (a microphone, or raw audio piped to ``--stdin``), or in a WAV/FLAC file.

This file is self-contained on purpose: it imports only the standard library, numpy and
edgeship's light core (plus sounddevice for the microphone), so ``deploy`` copies it as is
into a device bundle, where it runs with numpy, LiteRT (or tflite-runtime) and
soundfile/sounddevice. Inside a bundle folder its default model is that bundle; in the
repository it is the zoo's ``kws_dscnn_int8``.

Usage::

    python -m examples.keyword_spotting listen --wav speech.wav [--json] [--model M]
    python -m examples.keyword_spotting listen                 # microphone, Ctrl-C to stop
    arecord -q -f S16_LE -r 16000 -c 1 -t raw | python -m examples.keyword_spotting listen --stdin
    python3 listen.py --wav speech.wav --json                  # inside a deployed bundle

Output: one line per detection (``--json``: one JSON object per line: a ``start`` object with
the model, labels and settings, one ``keyword`` object per event, an ``end`` object with the
audio seconds, windows and real-time factor, and from a microphone ``input_overflows``: blocks
in which PortAudio lost samples because the reader fell behind). Exit codes: 0 done, 2 user
error (bad file, bad model, no microphone, a microphone that stopped delivering audio).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np

ZOO_DEFAULT = "kws_dscnn_int8"
EXIT_USER_ERROR = 2


def default_model() -> str:
    """The bundle this file sits in (deployed), else the zoo model."""
    here = Path(__file__).resolve().parent
    return str(here) if (here / "manifest.json").is_file() else ZOO_DEFAULT


def add_setting_args(p: argparse.ArgumentParser) -> None:
    """The detector setting's options; each one not given keeps the model's own value."""
    from edgeship.kws import DetectorConfig

    d = DetectorConfig()
    own = "default: the model's own setting (bundle manifest or zoo entry), else"
    p.add_argument("--threshold", type=float, default=None, help=f"smoothed posterior to fire ({own} {d.threshold})")
    p.add_argument("--smoothing", type=int, default=None, help=f"windows averaged ({own} {d.smoothing})")
    p.add_argument("--refractory", type=float, default=None,
                   help=f"seconds without a new event after one ({own} {d.refractory_s})")


def setting_overrides(args) -> dict:
    """The :func:`add_setting_args` options the user gave (only these replace the model's setting)."""
    given = {"threshold": args.threshold, "smoothing": args.smoothing, "refractory_s": args.refractory}
    return {k: v for k, v in given.items() if v is not None}


def add_detector_args(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs the detector."""
    p.add_argument("--model", default=None,
                   help=f"model file, bundle (dir or .zip) or zoo name (default: {default_model()})")
    p.add_argument("--labels", default=None, help="labels file (one per line) or a,b,c; default: from the "
                   "bundle manifest or the zoo entry")
    add_setting_args(p)
    p.add_argument("--hop-ms", type=int, default=100, help="window hop in ms (multiple of 20; default 100)")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    p.add_argument("--resample", action="store_true", help="resample files at another sample rate instead of failing")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def build_detector(args):
    """A KeywordDetector from parsed :func:`add_detector_args` options."""
    from edgeship.errors import InputSpecError
    from edgeship.kws import KeywordDetector

    cfg = setting_overrides(args)
    if args.hop_ms <= 0 or args.hop_ms % 20:
        raise InputSpecError(f"--hop-ms: expected a positive multiple of 20 ms (the frame step), given {args.hop_ms}")
    model = args.model or default_model()
    try:
        return KeywordDetector(model, labels=args.labels, config=cfg, hop_samples=args.hop_ms * 16, threads=args.threads)
    except Exception as exc:
        if model == ZOO_DEFAULT and "not a zoo model name" in str(exc):
            raise InputSpecError(f"the default model {ZOO_DEFAULT!r} is not in this edgeship's zoo; pass --model "
                                 f"(a .tflite, a bundle, or e.g. mlperf_kws_int8 with EDGESHIP_MIRROR set)") from exc
        raise


def emit(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _report(ev, as_json: bool) -> None:
    if as_json:
        emit(ev.to_dict())
    else:
        print(f"{ev.time_s:9.2f} s  {ev.label:<10s} confidence {ev.confidence:.2f}", flush=True)


MIC_STALL_S = 5.0   # seconds without a block from a started microphone before giving up


class Microphone:
    """A started sounddevice input stream at ``sample_rate`` Hz, mono, in blocks of ``blocksize``.

    :meth:`read` returns the next block; :attr:`overflows` counts blocks PortAudio flagged as
    "input overflow" (samples lost because the reader fell behind), reported at the end of
    ``listen``. A microphone that stops delivering (unplugged) raises TargetError after
    :data:`MIC_STALL_S` seconds instead of hanging.
    """

    def __init__(self, stream, blocks, sample_rate: int, blocksize: int):
        self.stream, self._blocks = stream, blocks
        self.sample_rate, self.blocksize = sample_rate, blocksize
        self.overflows = 0

    def read(self) -> np.ndarray:
        import queue

        from edgeship.errors import TargetError

        wait = MIC_STALL_S + self.blocksize / self.sample_rate
        try:
            block, overflowed = self._blocks.get(timeout=wait)
        except queue.Empty:
            raise TargetError(f"the microphone delivered no audio for {wait:.1f} s (unplugged, or taken by "
                              "another program?); check the device and start again") from None
        self.overflows += overflowed
        return block

    def close(self) -> None:
        try:
            self.stream.stop()
        finally:
            self.stream.close()


class PipeInput:
    """Raw audio from a pipe: signed 16-bit little-endian mono PCM at ``sample_rate`` Hz (what
    ``arecord -f S16_LE -r 16000 -c 1 -t raw``, ``sox ... -t raw`` or ``ffmpeg -f s16le`` write).

    Live audio without PortAudio or sounddevice. :meth:`read` returns the next block of
    ``blocksize`` samples, fewer at the end, None once the pipe is closed. A WAV or FLAC file
    piped in (its header would be read as samples) and a terminal are errors; a dangling half
    sample at the end is dropped with a warning on stderr.
    """

    def __init__(self, stream, sample_rate: int, blocksize: int):
        from edgeship.errors import InputSpecError

        if hasattr(stream, "isatty") and stream.isatty():
            raise InputSpecError("--stdin: standard input is a terminal; pipe raw audio into it, e.g. "
                                 f"arecord -q -f S16_LE -r {sample_rate} -c 1 -t raw | ... --stdin")
        self.stream, self.sample_rate, self.blocksize = stream, sample_rate, blocksize
        self._head = stream.read(4)   # waits for the first samples: a file header is refused up front
        if self._head in (b"RIFF", b"RIFX", b"RF64", b"fLaC"):
            raise InputSpecError("--stdin: standard input holds a WAV/FLAC file, but --stdin takes raw "
                                 f"16-bit mono samples at {sample_rate} Hz; use --wav FILE, or send raw "
                                 "samples (arecord -t raw, sox -t raw, ffmpeg -f s16le)")

    def read(self) -> Optional[np.ndarray]:
        head, self._head = self._head, b""
        data = head + self.stream.read(2 * self.blocksize - len(head))
        if len(data) % 2:
            print("warning: standard input ended with half a 16-bit sample; dropped it", file=sys.stderr)
            data = data[:-1]
        if not data:
            return None
        return np.frombuffer(data, "<i2").astype(np.float32) / np.float32(32768)

    def close(self) -> None:
        """Nothing to release: standard input stays the caller's."""


def open_microphone(sample_rate: int, blocksize: int) -> Microphone:
    """A started :class:`Microphone`; EdgeshipError when there is no microphone."""
    import queue

    from edgeship.errors import MissingDependencyError, TargetError

    try:
        import sounddevice as sd
    except ImportError as exc:
        raise MissingDependencyError("live listening needs sounddevice: pip install 'edgeship[audio]' "
                                     f"({exc}); or use --wav FILE") from exc
    except OSError as exc:   # sounddevice imports but cannot find the PortAudio library
        raise TargetError(f"no audio input: the PortAudio library is not installed ({exc}). Install it "
                          "(Debian/Raspberry Pi OS: sudo apt install libportaudio2) or use --wav FILE") from exc
    try:
        sd.query_devices(kind="input")
    except Exception as exc:
        raise TargetError(f"no microphone found ({exc}); plug one in, or use --wav FILE") from exc
    q: "queue.Queue[tuple]" = queue.Queue()

    def callback(indata, frames, t, status):  # runs on PortAudio's thread
        q.put((indata[:, 0].copy(), bool(getattr(status, "input_overflow", False))))

    try:
        stream = sd.InputStream(samplerate=sample_rate, channels=1, dtype="float32", blocksize=blocksize,
                                callback=callback)
        stream.start()
    except Exception as exc:
        raise TargetError(f"could not open the microphone at {sample_rate} Hz mono ({exc}); "
                          "check the device or use --wav FILE") from exc
    return Microphone(stream, q, sample_rate, blocksize)


def run(args) -> int:
    from edgeship.audio import read_audio_blocks
    from edgeship.errors import InputSpecError

    det = build_detector(args)
    sr, hop = det.sample_rate, det.hop_samples
    chunk = int(args.chunk_ms * sr / 1000) if args.chunk_ms else hop
    live = None
    if args.wav is not None and args.stdin:
        raise InputSpecError("--wav and --stdin: give one audio source")
    if args.wav is not None:
        # block by block: a recording of any length in constant memory (a bad file fails here)
        blocks = read_audio_blocks(args.wav, chunk, sample_rate=sr, resample=args.resample)
        source = str(args.wav)
    elif args.stdin:
        if sys.stdin is None or not hasattr(sys.stdin, "buffer"):
            raise InputSpecError("--stdin: this process has no standard input to read audio from")
        live, source = PipeInput(sys.stdin.buffer, sr, chunk), f"stdin (raw s16le mono {sr} Hz)"
    else:  # opened before anything is printed: without a microphone, the error is the only output
        live, source = open_microphone(sr, chunk), "microphone"
    if args.json:
        emit({**det.describe(), "source": source})
    else:
        c = det.config
        print(f"threshold {c.threshold:g}, smoothing {c.smoothing}, refractory {c.refractory_s:g} s "
              f"({det.info.config_from})", file=sys.stderr)
        if live is not None:
            words = ", ".join(l for l in det.labels if not l.startswith("_"))
            print(f"listening for {words} ({source}); " + ("until the input ends" if args.stdin else "Ctrl-C to stop"),
                  file=sys.stderr)
    tally = {"events": 0, "busy": 0.0, "samples": 0}
    t_start = time.perf_counter()

    def run(step, n_samples: int = 0) -> None:
        """Time one detector step (a push or the final flush) and print its events."""
        t0 = time.perf_counter()
        events = step()
        tally["busy"] += time.perf_counter() - t0
        tally["samples"] += n_samples
        for ev in events:
            _report(ev, args.json)
            tally["events"] += 1

    if args.wav is not None:
        for part in blocks:
            run(lambda: det.push(part), part.size)
            if args.pace:
                ahead = tally["samples"] / sr - (time.perf_counter() - t_start)
                if ahead > 0:
                    time.sleep(ahead)
    else:
        try:
            while args.seconds is None or tally["samples"] < args.seconds * sr:
                part = live.read()
                if part is None:
                    break
                run(lambda: det.push(part), part.size)
        except KeyboardInterrupt:
            pass
        finally:
            live.close()
    run(det.finish)
    mic = live if isinstance(live, Microphone) else None
    n_events, busy, samples = tally["events"], tally["busy"], tally["samples"]
    seconds = samples / sr
    if args.json:
        end = {"event": "end", "audio_s": round(seconds, 3), "windows": det.windows, "detections": n_events,
               "compute_s": round(busy, 4), "real_time_factor": round(busy / seconds, 5) if seconds else None}
        if mic is not None:
            end["input_overflows"] = mic.overflows
        emit(end)
    else:
        print(f"{n_events} detection(s) in {seconds:.1f} s of audio"
              + (f"; real-time factor {busy / seconds:.4f}" if seconds else " (no audio came in)"), file=sys.stderr)
        if mic is not None and mic.overflows:
            print(f"warning: the microphone input overflowed {mic.overflows} time(s): audio was lost because "
                  "this machine fell behind; use a larger --chunk-ms or fewer other jobs", file=sys.stderr)
    return 0


def build_parser(prog: str = "listen") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Detect keywords from the microphone, a WAV/FLAC file or "
                                "raw audio on standard input.")
    configure_parser(p)
    return p


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wav", default=None, help="stream this WAV/FLAC file instead of the microphone")
    p.add_argument("--stdin", action="store_true",
                   help="read raw 16-bit little-endian mono PCM at 16 kHz from standard input instead of the "
                        "microphone (e.g. arecord -q -f S16_LE -r 16000 -c 1 -t raw | ... --stdin)")
    p.add_argument("--chunk-ms", type=int, default=None, help="chunk size fed to the detector (default: one hop)")
    p.add_argument("--pace", action="store_true", help="with --wav: feed chunks at real-time speed")
    p.add_argument("--seconds", type=float, default=None,
                   help="microphone or --stdin: stop after this many seconds of audio")
    add_detector_args(p)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point (``python3 listen.py`` inside a deployed bundle)."""
    args = build_parser().parse_args(argv)
    return guarded(run, args)


def guarded(fn, args) -> int:
    """Run ``fn(args)``; an EdgeshipError becomes a message (JSON with --json) and exit code 2."""
    from edgeship.errors import EdgeshipError

    try:
        return fn(args)
    except EdgeshipError as exc:
        if getattr(args, "json", False):
            emit({"ok": False, "error": {"type": type(exc).__name__, "message": str(exc)}})
        else:
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
