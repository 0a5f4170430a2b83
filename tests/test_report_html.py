"""report.html opens in headless Chromium (DevTools protocol over a pipe) without console errors,
and renders the table rows and the plots; skipped with a reason when no Chromium is installed."""
from __future__ import annotations

import json
import re

import pytest

from tests._chromium import find_chromium, open_page
from tests._report_helpers import cli_report

pytestmark = pytest.mark.slow
CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium; "
                                                              ".ci/run installs it when it can)")

PAGE_FACTS = """JSON.stringify({
  rows: Array.from(document.querySelectorAll('#report-table tbody tr')).map(
      tr => [tr.dataset.format, tr.dataset.runtime, tr.getBoundingClientRect().height]),
  cols: document.querySelectorAll('#report-table thead th').length,
  imgs: Array.from(document.images).map(i => ({id: i.id, natural: [i.naturalWidth, i.naturalHeight],
      box: [i.getBoundingClientRect().width, i.getBoundingClientRect().height], complete: i.complete})),
  svgs: document.querySelectorAll('svg').length,
  scripts: document.scripts.length})"""


@needs_chromium
def test_html_report_renders_in_chromium_without_errors(tmp_path):
    out, proc, data = cli_report()
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = out / "report.html"
    text = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), "external URL in the self-contained page"
    shot = tmp_path / "report.png"
    res = open_page(CHROMIUM, page, PAGE_FACTS, screenshot=shot)
    assert res["errors"] == [], res["errors"]
    facts = json.loads(res["value"])
    assert facts["scripts"] == 0
    assert [r[:2] for r in facts["rows"]] == [[r["format"], r["runtime"]] for r in data["rows"]]
    assert all(r[2] > 5 for r in facts["rows"])
    assert facts["cols"] == 8 + 2 * len(data["threads"]) + len(data["targets"])
    imgs = {i["id"]: i for i in facts["imgs"]}
    assert set(imgs) == {f"plot-{name}" for name in data["plots"]}
    for i in imgs.values():
        assert i["complete"] and min(i["natural"]) > 100 and min(i["box"]) > 100, i
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 20000


@needs_chromium
def test_the_check_sees_console_errors_and_failed_loads(tmp_path):
    """The same check on a broken page reports its errors (so the test above can fail)."""
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><script>console.error("boom"); notDefined();</script>'
                   '<img src="missing.png"></body></html>')
    res = open_page(CHROMIUM, bad, "document.images.length")
    text = " ".join(res["errors"])
    assert "console.error" in text and "exception" in text and "missing.png" in text, res["errors"]
