"""Render an ``edgeship report`` (the dict of report.json) as Markdown, one self-contained HTML
page and PNG plots. Pure functions of the report data: one table (:func:`table`) feeds the
Markdown, the HTML and the CLI, so the three always agree.

Example:
    >>> data = {"rows": [], "targets": ["rpi4"], "threads": [1, 2], "source": {}, "formats": []}
    >>> table(data)[0][:4]
    ['format', 'runtime', 'KiB', 'accuracy']
"""
from __future__ import annotations

import base64
import html as _html
from pathlib import Path
from typing import Dict, List, Optional, Tuple

VERDICT_COLOURS = {"ok": "#2e9e4f", "no": "#d2453c", "error": "#9a9a9a"}
REASON_CHARS = 48
HTML_REASON_CHARS = 24  # the full reason is the cell's tooltip and in the list below the table


def _num(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def estimate_text(cell: dict) -> Optional[str]:
    """The latency estimate of a target cell (``≥`` when it is only a lower bound), or None.

    Example:
        >>> estimate_text({"estimate_ms": 182.0, "estimate_lower_bound": True})
        '≥182 ms'
        >>> estimate_text({"verdict": "ok"}) is None
        True
    """
    est = cell.get("estimate_ms")
    if not isinstance(est, (int, float)):
        return None
    return f"{'≥' if cell.get('estimate_lower_bound') else ''}{est:.3g} ms"


def target_text(cell: dict, limit: Optional[int] = REASON_CHARS) -> str:
    """``ok 0.031 ms`` / ``ok`` / ``no: <reason>`` / ``error: <reason>`` for one target cell.

    Example:
        >>> target_text({"verdict": "ok", "estimate_ms": 0.0312})
        'ok 0.0312 ms'
        >>> target_text({"verdict": "no", "reason": "edgetpu accepts int8 only"}, limit=10)
        'no: edgetpu ac…'
        >>> target_text({"verdict": "no", "reason": "edgetpu accepts int8 only"}, limit=0)
        'no'
    """
    v = cell.get("verdict", "error")
    if v == "ok":
        est = estimate_text(cell)
        return "ok" if est is None else f"ok {est}"
    reason = (cell.get("reason") or "").replace("\n", " ")
    if limit == 0:
        return v
    if limit is not None and len(reason) > limit:
        reason = reason[:limit] + "…"
    return f"{v}: {reason}" if reason else v


def table(data: dict, reason_chars: Optional[int] = REASON_CHARS) -> Tuple[List[str], List[List[str]]]:
    """(header, rows of cell strings) of the report table: one row per format x runtime."""
    threads = data.get("threads") or []
    header = ["format", "runtime", "KiB", "accuracy", "parity", "cosine"]
    for t in threads:
        header += [f"p50 ms {t}t", f"p99 ms {t}t"]
    header += ["peak +MiB"] + list(data.get("targets") or []) + ["status"]
    rows = []
    for r in data.get("rows", []):
        lat = {b["threads"]: b for b in r.get("latency") or []}
        cells = [r["format"], r.get("runtime") or "-", _num(None if r.get("bytes") is None else r["bytes"] / 1024, ".1f"),
                 _num(r.get("accuracy"), ".4f"),
                 "-" if r.get("parity_passed") is None else ("pass" if r["parity_passed"] else "FAIL"),
                 _num(r.get("cosine"), ".6f")]
        for t in threads:
            b = lat.get(t) or {}
            cells += [_num(b.get("p50_ms"), ".3f"), _num(b.get("p99_ms"), ".3f")]
        cells.append(_num(None if r.get("peak_rss_bytes") is None else r["peak_rss_bytes"] / 2 ** 20, ".1f"))
        cells += [target_text((r.get("targets") or {}).get(t, {}), reason_chars) for t in data.get("targets") or []]
        cells.append(r.get("status", "-"))
        rows.append(cells)
    return header, rows


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _summary_lines(data: dict) -> List[str]:
    s = data.get("source") or {}
    src = Path(s.get("path") or "model").name
    lines = [f"source: {src} ({s.get('kind', '?')}, sha256 {(s.get('file_sha256') or s.get('sha256') or '?')[:16]}…)"]
    if data.get("accuracy_metric"):
        what = "top-1 on the labelled validation data" if data["accuracy_metric"] == "top1" else "the --evaluate command"
        lines.append(f"source accuracy: {_num(s.get('accuracy'), '.4f')} ({what}; "
                     f"{(data.get('validation') or {}).get('count', '?')} validation samples)")
    else:
        lines.append("accuracy: not measured (give --validation with --labels, or --evaluate)")
    lines.append(f"latency: this host, {data.get('runs')} timed runs after {data.get('warmup')} warm-up, "
                 f"threads {', '.join(map(str, data.get('threads') or []))}; target columns: verdict and "
                 f"latency estimate (a model, not a measurement)")
    return lines


def _why_not(data: dict) -> List[Tuple[str, str, str, str]]:
    """(format, target, verdict, full reason) for every non-ok target cell, one per format."""
    out = []
    for f in data.get("formats", []):
        for t, c in (f.get("targets") or {}).items():
            if c.get("verdict") != "ok":
                out.append((f["format"], t, c.get("verdict", "error"), c.get("reason") or ""))
    return out


def markdown(data: dict) -> str:
    """report.md: summary lines, the table, failures and the target reasons in full."""
    header, rows = table(data)
    out = ["# edgeship report", ""] + [f"- {ln}" for ln in _summary_lines(data)] + [""]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|")
    out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    failed = [r for r in data.get("rows", []) if r.get("error")]
    if failed:
        out += ["", "## Failures", ""]
        seen = set()
        for r in failed:
            key = (r["format"], r.get("runtime"), r["error"])
            if key not in seen:
                seen.add(key)
                out.append(f"- **{r['format']}** ({r.get('runtime') or 'no runtime'}): {_md_cell(r['error'])}")
    why = _why_not(data)
    if why:
        out += ["", "## Why a target says no", ""]
        out += [f"- {fmt} on {t}: {v}: {_md_cell(reason)}" for fmt, t, v, reason in why]
    if data.get("plots"):
        out += ["", "## Plots", ""] + [f"![{k}]({p})" for k, p in data["plots"].items()]
    out += ["", "Files, hashes, versions and the command line: `report.json`. Converter log: `report.log`.", ""]
    return "\n".join(out)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222;max-width:100%}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;font-size:13px;margin:1em 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f0f0f0}td.l,th.l{text-align:left}
td.ok{background:#dff3e4;text-align:left}td.no{background:#f8dcda;text-align:left}td.error{background:#eee;color:#666;text-align:left}
td.FAIL,td.bad{color:#b00;font-weight:bold}
img{max-width:100%;height:auto;border:1px solid #ddd;margin:0.5em 0}
code,pre{font-size:12px;background:#f6f6f6}pre{padding:0.6em;overflow-x:auto}
.scroll{overflow-x:auto;max-width:100%}
.note{color:#555;font-size:13px}
"""


def _esc(s) -> str:
    return _html.escape(str(s), quote=True)


def html(data: dict, plots: Dict[str, Path]) -> str:
    """report.html: one file, inline CSS, plots as base64 PNG, no script, no external URL."""
    import json

    header, rows = table(data, reason_chars=HTML_REASON_CHARS)
    n_targets = len(data.get("targets") or [])
    first_target = len(header) - 1 - n_targets
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>edgeship report</title>", f"<style>{CSS}</style></head><body>",
             "<h1>edgeship report</h1>", "<ul>"]
    parts += [f"<li>{_esc(ln)}</li>" for ln in _summary_lines(data)]
    parts += ["</ul>", '<div class="scroll"><table id="report-table"><thead><tr>']
    parts += [f'<th class="{"l" if i < 2 or i >= first_target else ""}">{_esc(h)}</th>' for i, h in enumerate(header)]
    parts.append("</tr></thead><tbody>")
    for r, cells in zip(data.get("rows", []), rows):
        parts.append(f'<tr data-format="{_esc(r["format"])}" data-runtime="{_esc(r.get("runtime") or "-")}">')
        for i, c in enumerate(cells):
            cls = "l" if i < 2 else ""
            title = ""
            if first_target <= i < first_target + n_targets:
                cls = c.split(":")[0].split(" ")[0]
                cell = (r.get("targets") or {}).get(header[i], {})
                title = cell.get("reason") or cell.get("estimate") or ""
            elif header[i] == "parity" and c == "FAIL":
                cls = "bad"
            elif header[i] == "status" and c != "ok":
                cls = "bad"
            tip = f' title="{_esc(title)}"' if title else ""
            parts.append(f'<td class="{cls}"{tip}>{_esc(c)}</td>')
        parts.append("</tr>")
    parts.append("</tbody></table></div>")
    for name, p in plots.items():
        b64 = base64.b64encode(Path(p).read_bytes()).decode("ascii")
        parts.append(f'<h2>{_esc(name.replace("_", " "))}</h2>'
                     f'<img id="plot-{_esc(name)}" alt="{_esc(name)}" src="data:image/png;base64,{b64}">')
    failed = [r for r in data.get("rows", []) if r.get("error")]
    if failed:
        parts.append("<h2>Failures</h2><ul>")
        parts += [f"<li><b>{_esc(r['format'])}</b> ({_esc(r.get('runtime') or 'no runtime')}): {_esc(r['error'])}</li>"
                  for r in failed]
        parts.append("</ul>")
    why = _why_not(data)
    if why:
        parts.append("<h2>Why a target says no</h2><ul>")
        parts += [f"<li>{_esc(f)} on {_esc(t)}: {_esc(v)}: {_esc(reason)}</li>" for f, t, v, reason in why]
        parts.append("</ul>")
    parts.append("<h2>Files</h2><table><tr><th class='l'>format</th><th class='l'>file</th><th>bytes</th>"
                 "<th class='l'>sha256</th></tr>")
    for f in data.get("formats", []):
        parts.append(f"<tr><td class='l'>{_esc(f['format'])}</td><td class='l'>{_esc(f.get('file') or '-')}</td>"
                     f"<td>{_esc(f.get('bytes') or '-')}</td><td class='l'><code>{_esc(f.get('sha256') or '-')}</code></td></tr>")
    parts.append("</table>")
    meta = {k: data.get(k) for k in ("versions", "command", "seed", "calibration", "validation", "labels", "run")}
    parts.append("<h2>Versions, data and command line</h2>"
                 f"<pre>{_esc(json.dumps(meta, indent=1, sort_keys=True))}</pre>")
    parts.append('<p class="note">Generated by edgeship report; the full data is in report.json.</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- plots


def _best_p50(data: dict, fmt: str, threads: int) -> Optional[float]:
    vals = [b["p50_ms"] for r in data.get("rows", []) if r["format"] == fmt
            for b in r.get("latency") or [] if b.get("threads") == threads and b.get("p50_ms") is not None]
    return min(vals) if vals else None


def write_plots(data: dict, folder: Path, notes: List[str]) -> Dict[str, Path]:
    """``accuracy_latency_size.png`` and ``targets_grid.png`` in ``folder`` (matplotlib, Agg).

    Returns {name: path}; empty (with a note) when matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        notes.append("plots skipped: matplotlib is not installed (pip install matplotlib)")
        return {}
    from edgeship._io import atomic_write_bytes

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, draw in (("accuracy_latency_size", _plot_tradeoff), ("targets_grid", _plot_grid)):
        fig = draw(plt, data)
        if fig is None:
            continue
        import io

        buf = io.BytesIO()
        # no timestamps or software tag in the PNG: the same data draws the same bytes
        fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
        plt.close(fig)
        out[name] = atomic_write_bytes(folder / f"{name}.png", buf.getvalue())
    return out


def _plot_tradeoff(plt, data: dict):
    formats = data.get("formats", [])
    t1 = min(data.get("threads") or [1])
    pts = [(f["format"], _best_p50(data, f["format"], t1), f.get("accuracy"), (f.get("parity") or {}).get("cosine"),
            f.get("bytes"), f.get("status") == "ok") for f in formats if f.get("bytes")]
    pts = [p for p in pts if p[1] is not None]
    if not pts:
        return None
    use_acc = all(p[2] is not None for p in pts)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 5.4), gridspec_kw={"width_ratios": [3, 2]})
    sizes = [p[4] for p in pts]
    smax = max(sizes)
    cmap = plt.get_cmap("tab10")
    for i, (name, lat, acc, cos, size, ok) in enumerate(pts):
        y = acc if use_acc else cos
        ax.scatter([lat], [y], s=60 + 900 * size / smax, color=cmap(i % 10), alpha=0.6, zorder=3,
                   edgecolors="k" if ok else "red", linewidths=1 if ok else 2.5,
                   label=name if ok else f"{name} (parity failed)")
    ax.set_xlabel(f"p50 latency on this host, {t1} thread (ms, fastest runtime)")
    ax.set_ylabel("task accuracy" if use_acc else "parity: cosine vs source")
    ax.set_title("accuracy vs latency (marker area = file size)")
    ax.grid(True, alpha=0.3)
    src_acc = (data.get("source") or {}).get("accuracy")
    if use_acc and src_acc is not None:
        ax.axhline(src_acc, color="grey", ls="--", lw=1, label=f"source {src_acc:.3f}")
    ys = [(p[2] if use_acc else p[3]) for p in pts]
    lo, hi = min(ys + ([src_acc] if use_acc and src_acc is not None else [])), max(ys)
    pad = max(0.01, (hi - lo) * 0.25)
    ax.set_ylim(lo - pad, hi + pad)
    lats = [p[1] for p in pts]
    if max(lats) / max(min(lats), 1e-9) > 8:  # one slow format would squash the others into a corner
        ax.set_xscale("log")
        ax.set_xlim(min(lats) / 1.6, max(lats) * 1.6)
        ax.set_xlabel(ax.get_xlabel() + ", log scale")
    else:
        ax.set_xlim(0, max(lats) * 1.15)
    leg = ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, markerscale=0.4,
                    framealpha=0.8)
    for h in getattr(leg, "legend_handles", []):
        if hasattr(h, "set_sizes"):
            h.set_sizes([40])
    names = [p[0] for p in pts]  # sizes of every written file (parity failed ones too)
    kib = [p[4] / 1024 for p in pts]
    ax2.barh(names, kib, color=[cmap(i % 10) for i in range(len(pts))], alpha=0.8)
    for i, v in enumerate(kib):
        ax2.text(v, i, f" {v:.1f}", va="center", fontsize=8)
    ax2.invert_yaxis()
    ax2.set_xlabel("file size (KiB)")
    ax2.set_title("size per format")
    ax2.set_xlim(0, max(kib) * 1.25)
    fig.tight_layout()
    return fig


def _plot_grid(plt, data: dict):
    formats = [f for f in data.get("formats", [])]
    targets = list(data.get("targets") or [])
    if not formats or not targets:
        return None
    from matplotlib.colors import to_rgb

    import numpy as np

    img = np.ones((len(formats), len(targets), 3))
    fig, ax = plt.subplots(figsize=(1.5 + 1.35 * len(targets), 1.2 + 0.45 * len(formats)))
    for i, f in enumerate(formats):
        for j, t in enumerate(targets):
            c = (f.get("targets") or {}).get(t, {"verdict": "error"})
            img[i, j] = to_rgb(VERDICT_COLOURS.get(c.get("verdict"), "#9a9a9a"))
            if c.get("verdict") == "ok":
                text = estimate_text(c) or "ok"
            else:
                text = "no" if c.get("verdict") == "no" else "error"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white", fontweight="bold")
    ax.imshow(img, aspect="auto")
    ax.set_xticks(range(len(targets)), targets)
    ax.set_yticks(range(len(formats)), [f["format"] for f in formats])
    ax.xaxis.tick_top()
    ax.set_xticks(np.arange(-0.5, len(targets)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(formats)), minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.tick_params(which="minor", length=0)
    ax.set_title("targets x formats: green runs (text: estimated latency), red does not", fontsize=9, pad=24)
    fig.tight_layout()
    return fig


__all__ = ["markdown", "html", "table", "target_text", "write_plots"]
