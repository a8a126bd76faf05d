"""The marketer report in a real browser: headless Chromium opens the file (no network), the page
logs no console error, every chart is drawn, and a screenshot is saved.

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

# Per chart: its size and how many marks (bars, dots, lines) it drew.
CHART_PROBE = """JSON.stringify([...document.querySelectorAll('figure.chart')].map(f => {
  const svg = f.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  const marks = svg ? [...svg.querySelectorAll('.mark')] : [];
  const drawn = marks.filter(m => { const b = m.getBBox(); return b.width > 0 || b.height > 0; });
  return {name: f.dataset.chart, width: box.width, height: box.height,
          marks: marks.length, drawn: drawn.length};
}))"""


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


@pytest.fixture(scope="module")
def rendered(report_store):
    browser = Browser()
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable")
        browser.call("Page.navigate", url=Path(report_store["html"]).resolve().as_uri())
        browser.wait_for("Page.loadEventFired")
        charts = json.loads(browser.call("Runtime.evaluate", expression=CHART_PROBE,
                                         returnByValue=True)["result"]["value"])
        metrics = browser.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                            clip={"x": 0, "y": 0, "width": metrics["width"],
                                  "height": min(metrics["height"], 12000), "scale": 1})
        requests = [e["params"]["request"]["url"] for e in browser.events
                    if e.get("method") == "Network.requestWillBeSent"]
        yield {"charts": charts, "errors": browser.errors(), "png": base64.b64decode(shot["data"]),
               "requests": requests}
    finally:
        browser.close()


def test_report_opens_without_console_errors_or_network(rendered):
    assert rendered["errors"] == []
    # The page itself is the only thing loaded: no fonts, scripts or images from anywhere.
    assert all(url.startswith("file://") for url in rendered["requests"]), rendered["requests"]


def test_every_chart_is_drawn(rendered):
    charts = rendered["charts"]
    names = {c["name"] for c in charts}
    assert {"importance", "shap-summary", "personas-best", "personas-worst", "calibration",
            "gains", "threshold-tradeoff", "campaign-rejection"} <= names
    for chart in charts:
        assert chart["width"] > 100 and chart["height"] > 50, chart
        assert chart["drawn"] > 0 and chart["drawn"] == chart["marks"], chart


def test_screenshot_is_saved(rendered, tmp_path):
    png = rendered["png"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    (SCREENSHOT_DIR / "report.png").write_bytes(png)
    (tmp_path / "report.png").write_bytes(png)
