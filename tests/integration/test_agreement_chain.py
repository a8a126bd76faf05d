"""The agreement end to end, as a new user runs it on three CRM shapes: leadq's synthetic CRM,
the same CRM exported in Salesforce's report shape (Lead ID, Created Date as "7/1/2024 1:09 AM",
Closed Won / Closed Lost, Hot/Warm/Cold, Working - Contacted / Unqualified) and in HubSpot's
(Record ID, Connected / Bad Timing, grades A–D).

`leadq init` with the leads, outcomes and --feedback files → train → score → recalibrate →
plan → report → review, with no edit to the generated params. Then: the report shows campaign
quality, the review shows SLA compliance and rejection reasons by campaign, and the report,
recalibrate and review quote the same MQL share and within-SLA share. The review page opens in
headless Chromium, where markup planted in a campaign name and a rejection reason stays text.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from tests.helpers import IMG, SCRIPT

pytestmark = pytest.mark.slow

LEADS = 3000
SHAPES = ("leadq", "salesforce", "hubspot")


def _write(shape: str, directory: Path) -> dict[str, Path]:
    if shape == "leadq":
        from leadq.pipelines.synthetic.crm import write_crm

        return write_crm(directory, n_leads=LEADS, seed=5)
    from leadq.pipelines.synthetic.shapes import write_shaped

    return write_shaped(directory, shape, n_leads=LEADS, seed=5)


def _figure(html: str, name: str) -> str:
    match = re.search(rf'data-figure="{name}">([^<]*)<', html)
    assert match, f"no {name} figure on the page"
    return match.group(1)


def run(argv: list[str]) -> dict:
    """`leadq --json ARGV` in this process: exit 0 required, the JSON result returned."""
    import contextlib
    import io
    import json

    from leadq.pipelines.cli import main as cli

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli(["--json", *argv])
    assert code == 0, f"leadq {argv[0]} exited {code}"
    text = buf.getvalue()
    return json.loads(text if text.startswith("{") else text[text.index("\n{") + 1:])


@pytest.fixture(scope="module", params=SHAPES)
def chain(request, tmp_path_factory) -> dict:
    shape = request.param
    d = tmp_path_factory.mktemp(f"chain-{shape}")
    crm = _write(shape, d / "export")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(d)
        params = str(d / "params.yaml")
        init = run(["init", "--leads", str(crm["leads"]), "--deals", str(crm["deals"]),
                    "--feedback", str(crm["feedback"]), "--out", params])
        out = {"shape": shape, "dir": d, "params": params, "init": init,
               "text": Path(params).read_text()}
        out["train"] = run(["train", "--params", params])
        out["score"] = run(["score", "--params", params, "--input", str(crm["leads"]),
                            "--output", str(d / "scores" / "2026-06-30.csv")])
        out["recalibrate"] = run(["recalibrate", "--params", params])
        out["plan"] = run(["plan", "--params", params, "--won-deals", "20"])
        out["report"] = run(["report", "--params", params, "--out", str(d / "report.html")])
        out["review"] = run(["review", "--params", params, "--out", str(d / "review.html")])
    return out


def test_init_onboards_feedback_campaigns_and_the_scores_location(chain):
    text = chain["text"]
    assert "feedback:" in text and "first_contact_at:" in text and "status:" in text
    assert "campaign_column:" in text and "scores: scores/*.csv" in text
    if chain["shape"] == "salesforce":
        assert "'%m/%d/%Y %I:%M %p'" in text  # the US report date-time, out-of-time split
        assert "Unqualified" in text and "Working - Contacted" in text and "Hot: 5" in text
        assert "won_values: [Closed Won]" in text
    if chain["shape"] == "hubspot":
        assert "Bad Timing" in text and "A: 5" in text


def test_the_report_shows_campaign_quality_and_the_review_the_sla_and_reasons(chain):
    report = (chain["dir"] / "report.html").read_text()
    review = (chain["dir"] / "review.html").read_text()
    assert 'data-campaigns="1"' in report
    assert 'data-table="campaigns"' in review and 'data-table="reasons"' in review
    assert 'data-table="sla-tier"' in review and "no first-contact times" not in review
    assert chain["review"]["rejection_reasons"], "no rejection reasons by campaign"
    assert any(c["reasons"] for c in chain["review"]["campaigns"])
    assert 0 < chain["review"]["now"]["within_sla_share"] < 1


def test_report_recalibrate_and_review_quote_the_same_shared_figures(chain):
    period = chain["recalibrate"]["period"]
    review = chain["review"]["now"]
    for key in ("mql_share", "within_sla_share", "mqls", "acceptance_rate"):
        assert review[key] == pytest.approx(period[key]), key
    for page in ("report.html", "review.html"):
        html = (chain["dir"] / page).read_text()
        assert _figure(html, "within-sla-share") == f"{100 * period['within_sla_share']:.1f}%"
        assert _figure(html, "mql-share") == f"{100 * period['mql_share']:.1f}%"
    # The recalibration's own SLA measure is the same rule on the same MQLs.
    assert chain["recalibrate"]["sla"]["within_sla_share"] == pytest.approx(
        period["within_sla_share"])


def test_the_report_quotes_the_training_runs_test_figures(chain):
    import mlflow

    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.store import configure

    params = load_params(chain["params"])
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(chain["dir"])
        configure(params)
        run = mlflow.get_run(chain["train"]["run_id"])
    html = (chain["dir"] / "report.html").read_text()
    for label, key in (("test ROC AUC", "test_roc_auc"), ("test PR AUC", "test_pr_auc")):
        shown = re.search(rf"{label}<b>([0-9.]+)<", html).group(1)
        assert shown == f"{run.data.metrics[key]:.3f}", label
    shown = re.search(r"test leads<b>([0-9,]+)<", html).group(1)
    assert int(shown.replace(",", "")) == int(run.data.metrics["test_n"])


# --- the review page in a browser ------------------------------------------------------------

def test_review_page_in_chromium_escapes_planted_markup_and_is_screenshotted(chain, tmp_path):
    from tests.integration.test_report_browser import (
        CHROMIUM,
        PLANT_PROBE,
        SCREENSHOT_DIR,
        Browser,
        websocket,
    )

    if CHROMIUM is None or websocket is None:
        pytest.skip("Chromium and websocket-client are needed (.ci/run installs them)")
    from leadq.pipelines.review import render_review

    review = {k: v for k, v in chain["review"].items() if k != "output"}
    review["campaigns"] = [dict(c) for c in review["campaigns"]]
    review["campaigns"][0]["campaign"] = SCRIPT
    review["campaigns"][0]["reasons"] = IMG
    review["rejection_reasons"] = [{"reason": IMG, "leads": 3, "share": 0.5},
                                   *review["rejection_reasons"]]
    planted = tmp_path / "planted-review.html"
    planted.write_text(render_review(review), encoding="utf-8")
    b = Browser()
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            b.call(f"{domain}.enable")
        b.open(planted)
        seen = b.evaluate(PLANT_PROBE)
        assert b.errors() == []
        assert seen["pwned"] is None and seen["title"].startswith("leadq review")
        assert seen["scripts"] == seen["images"] == seen["handlers"] == 0
        assert SCRIPT in seen["text"] and IMG in seen["text"]
        b.open(chain["dir"] / "review.html")
        assert b.errors() == []
        size = b.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = b.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                      clip={"x": 0, "y": 0, "width": size["width"],
                            "height": min(size["height"], 8000), "scale": 1})
    finally:
        b.close()
    png = base64.b64decode(shot["data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    (SCREENSHOT_DIR / f"review-{chain['shape']}.png").write_bytes(png)
