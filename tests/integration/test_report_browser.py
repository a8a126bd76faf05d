"""The marketer report in a real browser: headless Chromium opens the file (no network), the page
logs no console error, every chart is drawn, names holding markup never run as script, and a
screenshot is saved.

Chromium is driven over the Chrome DevTools Protocol with websocket-client: no browser download.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import DOLLARS, IMG, SCRIPT, planted_report

CHROMIUM = next((p for p in (os.environ.get("LEADQ_CHROMIUM"), shutil.which("chromium"),
                             shutil.which("chromium-browser")) if p), None)
try:
    import websocket  # websocket-client
except ImportError:  # pragma: no cover - the dev extras install it
    websocket = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None,
                       reason="Chromium is not installed (apt-get install chromium; "
                              ".ci/run installs it)"),
    pytest.mark.skipif(websocket is None, reason="websocket-client is not installed "
                                                 "(pip install -e '.[dev]')"),
]

SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-port=0", "--window-size=1280,900"]

# Per chart: its size and how many of its data marks were drawn. Marks are the groups
# matplotlib wrote for artists with a `mark-…` gid, and raster layers (the SHAP dots are an
# <image> inside the SVG).
CHART_PROBE = """JSON.stringify({
  charts: [...document.querySelectorAll('figure.chart')].map(f => {
    const svgs = f.querySelectorAll('svg');
    const box = svgs.length ? svgs[0].getBoundingClientRect() : {width: 0, height: 0};
    const marks = svgs.length ? [...svgs[0].querySelectorAll('[id^="mark-"], image')] : [];
    const drawn = marks.filter(m => { const b = m.getBBox(); return b.width > 0 || b.height > 0; });
    return {name: f.dataset.chart, svgs: svgs.length, width: box.width, height: box.height,
            marks: marks.length, drawn: drawn.length};
  }),
  visibleSvgs: [...document.querySelectorAll('svg')].filter(s => {
    const b = s.getBoundingClientRect(); return b.width > 0 && b.height > 0; }).length,
})"""

# Per chart, each label that does not lie wholly inside its SVG (the SVG clips what overflows)
# or that overflows the page; and per row of charts (same top), how much of the main column's
# content width it spans.
OVERFLOW_PROBE = """JSON.stringify((() => {
  const main = document.querySelector('main'), style = getComputedStyle(main);
  const m = main.getBoundingClientRect();
  const left = m.left + parseFloat(style.paddingLeft);
  const right = m.right - parseFloat(style.paddingRight);
  const eps = 0.5;
  const figures = [...document.querySelectorAll('figure.chart')];
  const charts = figures.map(f => {
    const svg = f.querySelector('svg'), s = svg.getBoundingClientRect();
    const texts = [...svg.querySelectorAll('text')];
    const out = texts.filter(t => { const b = t.getBoundingClientRect();
      return b.left < s.left - eps || b.right > s.right + eps || b.top < s.top - eps
             || b.bottom > s.bottom + eps; });
    const f0 = f.getBoundingClientRect();
    return {name: f.dataset.chart, texts: texts.length, top: Math.round(f0.top),
            left: f0.left, right: f0.right, svgLeft: s.left, svgRight: s.right,
            clipped: out.map(t => t.textContent)};
  });
  const rows = {};
  for (const c of charts) (rows[c.top] = rows[c.top] || []).push(c);
  return {column: right - left, columnLeft: left, columnRight: right,
          pageWidth: document.documentElement.scrollWidth, viewport: window.innerWidth,
          charts,
          rows: Object.values(rows).map(r => ({names: r.map(c => c.name),
            span: Math.max(...r.map(c => c.right)) - Math.min(...r.map(c => c.left))}))};
})())"""

# What a planted name could have done had it been markup: run, add elements or handlers.
PLANT_PROBE = """JSON.stringify({
  pwned: window.__pwned === undefined ? null : window.__pwned, title: document.title,
  scripts: document.scripts.length, images: document.images.length,
  handlers: [...document.querySelectorAll('*')].filter(
    e => [...e.attributes].some(a => a.name.toLowerCase().startsWith('on'))).length,
  text: document.body.innerText,
  svgText: [...document.querySelectorAll('svg text')].map(t => t.textContent),
})"""


class Browser:
    """One headless Chromium with a fresh profile, and a CDP session on its first page."""

    def __init__(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="leadq-chromium-")
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=30,
                                              suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        msg_id = self.next_id
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, event: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(event)
            self.events.append(json.loads(self.ws.recv()))

    def errors(self) -> list[str]:
        out = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description", "")))
                                    for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                out.append(params["exceptionDetails"].get("text", "exception"))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                out.append(params["entry"].get("text", ""))
        return out

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def open(self, path: Path) -> None:
        """Load a file and wait for it; events (errors, requests) then belong to this page."""
        self.events.clear()
        self.call("Page.navigate", url=Path(path).resolve().as_uri())
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        return json.loads(self.call("Runtime.evaluate", expression=expression,
                                    returnByValue=True)["result"]["value"])

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"]


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            b.call(f"{domain}.enable")
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def report_data(report_store):
    """The report's figures from the session's champion, cheaply (few SHAP rows). The
    importance repeats stay as the rendered page had them: they pick the insight columns,
    and two nearly tied columns can swap places with fewer shuffles."""
    import mlflow

    from leadq.pipelines.io.crm import load_crm
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.report import compute_report
    from leadq.pipelines.scoring.model import load_scoring_model

    params = load_params(report_store["params_path"])
    params["report"].update(shap_rows=200)
    scoring = load_scoring_model(params)
    model = mlflow.sklearn.load_model(scoring.uri)
    return compute_report(model, load_crm(params), params, threshold=scoring.threshold)


@pytest.fixture(scope="module")
def rendered(browser, report_store):
    browser.open(report_store["html"])
    probe = browser.evaluate(CHART_PROBE)
    overflow = browser.evaluate(OVERFLOW_PROBE)
    metrics = browser.call("Page.getLayoutMetrics")["cssContentSize"]
    shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                        clip={"x": 0, "y": 0, "width": metrics["width"],
                              "height": min(metrics["height"], 12000), "scale": 1})
    return {**probe, "overflow": overflow, "errors": browser.errors(),
            "png": base64.b64decode(shot["data"]),
            "requests": browser.requests()}


def _inline(url: str) -> bool:
    # The page itself, or data the page carries (the SVG's raster layer as a data: URL).
    return url.startswith(("file://", "data:"))


def test_report_opens_without_console_errors_or_network(rendered):
    assert rendered["errors"] == []
    # The page itself is the only thing loaded: no fonts, scripts or images from anywhere.
    assert all(_inline(url) for url in rendered["requests"]), rendered["requests"]


def expected_charts(rep) -> int:
    """Charts the report data implies: importance and SHAP, one per insight column, one per
    persona list with segments, campaign rejection, calibration, gains and threshold trade-off."""
    personas = sum(not f.empty for f in (rep.personas_best, rep.personas_worst))
    return 2 + len(rep.insights) + personas + (rep.campaigns is not None) + 3


def test_every_chart_is_drawn(rendered, report_data):
    charts = rendered["charts"]
    names = [c["name"] for c in charts]
    assert {"importance", "shap-summary", "personas-best", "personas-worst", "calibration",
            "gains", "threshold-tradeoff", "campaign-rejection"} <= set(names)
    assert {f"insight-{col}" for col in report_data.insights} <= set(names)
    assert len(names) == len(set(names)) == expected_charts(report_data)
    # Every <svg> on the page is a chart, and each one has size in the laid-out page.
    assert rendered["visibleSvgs"] == len(charts)
    for chart in charts:
        assert chart["svgs"] == 1, chart
        assert chart["width"] > 100 and chart["height"] > 50, chart
        assert chart["drawn"] > 0 and chart["drawn"] == chart["marks"], chart


def test_no_chart_label_is_clipped_and_charts_use_the_column(rendered):
    # At the default width (1280 px): every label of every chart lies inside its SVG, which
    # would clip it otherwise, and nothing widens the page beyond the window.
    probe = rendered["overflow"]
    assert probe["pageWidth"] <= probe["viewport"], probe["pageWidth"]
    for chart in probe["charts"]:
        assert chart["texts"] > 0, chart["name"]
        assert chart["clipped"] == [], (chart["name"], chart["clipped"])
        assert probe["columnLeft"] - 0.5 <= chart["left"] and \
            chart["right"] <= probe["columnRight"] + 0.5, chart
    # Charts use the page: one across the column, or a row of them, spans 80% of it or more.
    for row in probe["rows"]:
        assert row["span"] >= 0.8 * probe["column"], (row, probe["column"])
    # And the ones a marketer reads are one across the column each.
    alone = [r["names"] for r in probe["rows"] if len(r["names"]) == 1]
    assert {"importance", "shap-summary", "campaign-rejection"} <= {n for (n,) in alone}


def test_long_names_are_shown_whole_and_inside_the_chart(browser, report_data, tmp_path):
    # A campaign name longer than any label width wraps, never cut: every word of it is
    # in the chart's labels, and none of those spill out of the SVG.
    import dataclasses

    from leadq.pipelines.report import render_html

    long_name = ("spring 2026 partner co-marketing webinar series for finance directors in "
                 "small and medium enterprises, EMEA and North America, with retargeting")
    campaigns = report_data.campaigns.sort_values("rejected_share", ascending=False).copy()
    campaigns.iloc[0, campaigns.columns.get_loc("campaign")] = long_name
    page = tmp_path / "long.html"
    page.write_text(render_html(dataclasses.replace(report_data, campaigns=campaigns)),
                    encoding="utf-8")
    browser.open(page)
    probe = browser.evaluate(OVERFLOW_PROBE)
    texts = browser.evaluate(
        "JSON.stringify([...document.querySelectorAll('figure[data-chart=\"campaign-rejection\"] "
        "svg text')].map(t => t.textContent))")
    words = " ".join(texts).split()
    assert all(w in words for w in long_name.split()), texts
    assert all(c["clipped"] == [] for c in probe["charts"]), [
        (c["name"], c["clipped"]) for c in probe["charts"] if c["clipped"]]


def test_planted_markup_in_names_never_runs(browser, report_data, tmp_path):
    from leadq.pipelines.report import render_html

    page = tmp_path / "planted.html"
    page.write_text(render_html(planted_report(report_data)), encoding="utf-8")
    browser.open(page)
    seen = browser.evaluate(PLANT_PROBE)
    assert browser.errors() == []
    assert seen["pwned"] is None and seen["title"].startswith("leadq report"), seen["title"]
    assert seen["scripts"] == seen["images"] == seen["handlers"] == 0
    assert all(_inline(url) for url in browser.requests()), browser.requests()
    # The names show as the text they are, in the tables and in the charts' labels.
    assert SCRIPT in seen["text"] and IMG in seen["text"] and DOLLARS in seen["text"]
    assert DOLLARS in seen["svgText"]
    # Whole: labels wrap, never cut (these two have no space to wrap at within the width).
    assert SCRIPT in seen["svgText"] and IMG in seen["svgText"]


def test_screenshot_is_saved(rendered, tmp_path):
    png = rendered["png"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    (SCREENSHOT_DIR / "report.png").write_bytes(png)
    (tmp_path / "report.png").write_bytes(png)
