"""report.html: self-contained (embedded images, no outside script or style), sortable
tables and the attention explorer; the explorer is checked in headless Chromium."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from attnlab.probes.explorer import ExplorerLog, decode_pattern
from attnlab.report.html import markdown_to_html
from attnlab.runs import probe, train
from attnlab.runs import report as write_run_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def probed_run(tmp_path_factory) -> Path:
    """A tiny trained and probed run (2 layers x 4 heads, attention.json written)."""
    from attnlab.config import validate
    from tests.helpers import tiny_raw

    run = tmp_path_factory.mktemp("html") / "run"
    train(validate(tiny_raw(), "tiny"), run)
    probe(run)
    write_run_report(run)
    return run


def test_markdown_subset_to_html(tmp_path):
    (tmp_path / "p.png").write_bytes(b"\x89PNG fake")
    md = (
        "# T\n\nSome `code` & **bold**.\n\n| a | b |\n|---|---|\n| 2 | x |\n\n"
        "![fig](p.png)\n\n- one\n- two\n"
    )
    html = markdown_to_html(md, tmp_path)
    assert "<h1>T</h1>" in html and "<code>code</code> &amp; <strong>bold</strong>" in html
    assert '<table class="sortable">' in html and "<td>2</td>" in html
    assert 'src="data:image/png;base64,' in html and "<li>two</li>" in html


def test_explorer_log_round_trip():
    p = np.random.default_rng(0).dirichlet(np.ones(5), size=(2, 3))  # (H=2, Tq=3, Tk=5)
    log = ExplorerLog()
    log.add("ex", list("abc"), list("vwxyz"), [("blocks.0.attn", p)])
    layer = log.examples[0]["layers"][0]
    assert np.abs(decode_pattern(layer, 3, 5) - p).max() <= 0.5 / 255 + 1e-12
    with pytest.raises(ValueError, match="does not fit"):
        log.add("bad", list("ab"), list("vwxyz"), [("blocks.0.attn", p)])


def test_run_report_html_is_self_contained(probed_run):
    html = (probed_run / "report.html").read_text()
    assert (probed_run / "attention.json").is_file()
    assert 'id="explorer-data"' in html and "blocks.1.attn" in html
    assert not re.search(r"""(src|href)=["']https?://""", html), "loads something from the web"
    assert html.count("data:image/png;base64,") >= 2
    assert "<link" not in html


browser = pytest.mark.skipif(
    (CHROMIUM is None or importlib.util.find_spec("playwright") is None)
    and not os.environ.get("ATTNLAB_REQUIRE_BROWSER"),
    reason="needs Chromium and Playwright (pip install -e '.[browser]'; CI installs both)",
)


@pytest.mark.browser
@browser
def test_explorer_renders_and_responds_in_chromium(probed_run, tmp_path):
    """Open report.html offline in headless Chromium: the grid draws, the selectors
    redraw it, a hover names the weight and tokens, a header click sorts a table."""
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.goto((probed_run / "report.html").as_uri())
        cells = page.locator("#explorer-grid td")
        n = cells.count()
        assert n > 0 and round(n**0.5) ** 2 == n  # a square grid: self-attention, T x T
        assert page.locator("#explorer-layer option").count() == 2  # 2 layers
        assert page.locator("#explorer-head option").count() == 5  # 4 heads + their mean
        first = [cells.nth(i).get_attribute("data-w") for i in range(n)]
        page.select_option("#explorer-layer", "1")
        page.select_option("#explorer-head", "2")
        second = [cells.nth(i).get_attribute("data-w") for i in range(n)]
        assert first != second, "choosing another layer and head did not redraw"
        cells.nth(n - 1).hover()
        info = page.locator("#explorer-info").inner_text()
        want = r'weight \d\.\d{3}: query \d+ ".*" → key \d+ ".*" \(blocks\.1\.attn, head 2\)'
        assert re.match(want, info), info
        # the last query row sums to ~1 over the keys (a softmax row)
        T = round(n**0.5)
        row = [float(cells.nth(n - T + k).get_attribute("data-w")) for k in range(T)]
        assert abs(sum(row) - 1.0) < 0.05
        header = page.locator("table.sortable thead th").nth(1)  # the metrics table's values
        header.click()
        assert "asc" in (header.get_attribute("class") or "")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    outside = [u for u in requests if not u.startswith(("file:", "data:"))]
    assert not outside, f"the report fetched {outside}"
