"""The report page: `ReportData` → one self-contained HTML string, through a Jinja2 template.

The template (templates/report.html.j2, shipped as package data) is rendered with autoescape on:
every value from the data, including names of campaigns, categories and models, is escaped by
Jinja. Only the charts' SVG goes in unescaped, and that is text matplotlib wrote and escaped
itself (see `charts.to_svg`). This module turns figures into display strings and chart SVG;
the template only lays them out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from leadq.features.activities import readable_feature
from leadq.pipelines.reporting import charts


@dataclass
class ReportData:
    """Everything the page shows; tables are DataFrames, figures plain numbers."""

    model: dict
    data: dict
    importance: pd.DataFrame
    shap_summary: dict
    insights: dict[str, pd.DataFrame]
    personas_best: pd.DataFrame
    personas_worst: pd.DataFrame
    campaigns: pd.DataFrame | None
    health: dict = field(default_factory=dict)
    # A segmented model: one row per segment model (leadq.pipelines.segmenting.report).
    segments: pd.DataFrame | None = None
    # ... and per segment model: predicted vs observed by score band, best personas.
    segment_reliability: dict[str, pd.DataFrame] | None = None
    segment_personas: dict[str, pd.DataFrame] | None = None


TEMPLATE = "report.html.j2"
STRIP_DOTS = 500  # leads drawn per row of the SHAP summary: the page stays light
INSIGHT_ROWS = 15  # values per attribute insight, by lift; kept values (flagged campaigns) too


@cache
def environment() -> Environment:
    """The report's Jinja2 environment: templates from the installed package, autoescaped."""
    env = Environment(
        loader=PackageLoader("leadq.pipelines.reporting", "templates"),
        autoescape=True,  # every template here is HTML
        undefined=StrictUndefined,  # a misspelt field fails the render, not blanks the page
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(pct=pct, thousands=thousands)
    return env


# --- display strings ------------------------------------------------------------------------
def pct(v: float | None, digits: int = 1) -> str:
    """A share as a percentage; "–" when unknown."""
    return "–" if v is None or not np.isfinite(v) else f"{100 * v:.{digits}f}%"


def thousands(v: float) -> str:
    return f"{int(v):,}"


@dataclass(frozen=True)
class Column:
    """One table column; `fmt` None means text (left-aligned), a formatter a number."""

    key: str
    header: str
    fmt: Callable[[object], str] | None = None
    pill: bool = False  # a truthy value shows as a red `pill` badge


@dataclass(frozen=True)
class Cell:
    text: str
    left: bool = False
    pill: bool = False


@dataclass(frozen=True)
class Table:
    headers: list[tuple[str, bool]]  # (text, left-aligned)
    rows: list[tuple[list[Cell], bool]]  # (cells, flagged)


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    svg: Markup
    caption: str = ""


def _cell(col: Column, value: object) -> Cell:
    if col.pill:
        return Cell("cut" if value else "", left=True, pill=bool(value))
    if col.fmt is None:
        return Cell("" if value is None or value is pd.NA else str(value), left=True)
    return Cell(col.fmt(value))


def table(frame: pd.DataFrame, columns: list[Column], flag: str | None = None) -> Table:
    """The rows of `frame` as display strings; `flag` names a boolean column that highlights."""
    rows = [([_cell(c, rec.get(c.key)) for c in columns], bool(flag and rec.get(flag)))
            for rec in frame.to_dict("records")]
    return Table([(c.header, c.fmt is None) for c in columns], rows)


RATE_COLUMNS = [Column("leads", "leads", thousands), Column("conversions", "conversions",
                                                            thousands),
                Column("rate", "conversion", pct), Column("ci", "95% interval"),
                Column("lift", "lift", lambda v: f"{v:.2f}×")]


def _with_ci(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["ci"] = [f"{pct(a)} – {pct(b)}" for a, b in zip(out["ci_low"], out["ci_high"],
                                                        strict=True)]
    return out


# --- sections -------------------------------------------------------------------------------
def _test_set(rep: ReportData) -> str:
    """"out-of-time", or what a random split's test leads are (leadq.features.split)."""
    return str(rep.data.get("test_set") or "out-of-time")


def _drivers(rep: ReportData) -> list[Chart]:
    imp, sh = rep.importance, rep.shap_summary
    cols = list(sh["mean_abs"].index[:12])
    dots = min(len(sh["values"]), STRIP_DOTS)  # the sample's order is random already
    return [
        Chart("importance", f"Importance per CRM column (permutation, {_test_set(rep)} test)",
              charts.hbar_chart("importance", [readable_feature(c) for c in imp["column"]],
                                imp["importance"], imp["spread"],
                                xlabel="ROC AUC lost when shuffled"),
              "Each column is shuffled in "
              + (f"{imp.attrs['rows']:,} " if imp.attrs.get("rows") else "the ")
              + "test leads (drawn keeping the conversion rate) and the drop in ROC AUC "
              "measured; the whisker is ± one standard deviation over the repeats."),
        Chart("shap-summary", f"SHAP summary ({sh['rows']:,} test leads)",
              charts.strip_chart("shap-summary", [readable_feature(c) for c in cols],
                                 sh["values"][cols].to_numpy()[:dots],
                                 sh["colour"][cols].to_numpy()[:dots],
                                 xlabel="contribution to the log-odds of converting"),
              f"Method: {sh['method']}; contributions plus the base value give the model's "
              f"log-odds exactly (largest error {sh['max_additivity_error']:.1e}). Colour: "
              "the lead's value of a numeric column, blue low → red high; grey for "
              "categories."),
    ]


def _insights(rep: ReportData) -> list[tuple[Chart, Table]]:
    out = []
    for col, frame in rep.insights.items():
        # The top values by lift, and every kept one wherever it ranks: a campaign flagged
        # for cutting is read beside the others even when it converts worst of all.
        kept = frame["kept"].to_numpy(bool)
        shown = _with_ci(frame[(np.arange(len(frame)) < INSIGHT_ROWS) | kept])
        flagged = shown["kept"].to_numpy(bool)
        name = f"insight-{col}"
        hidden = len(frame) - len(shown)
        caption = " ".join(filter(None, [
            "Red: campaigns marked cut under Campaign quality." if flagged.any() else "",
            f"{hidden:,} more values are not shown." if hidden else ""]))
        chart = Chart(name, f"{readable_feature(col)}: conversion by value", charts.hbar_chart(
            name, shown["value"], shown["rate"], reference=rep.data["conversion_rate"],
            colors=[charts.PALETTE[1] if f else charts.PALETTE[0] for f in flagged],
            xlabel="conversion rate (dashed: overall)", percent=True), caption)
        out.append((chart, table(shown, [Column("value", "value"), *RATE_COLUMNS],
                                 flag="kept")))
    return out


def _personas(rep: ReportData) -> list[dict]:
    out = []
    for title, frame, name in (("Ideal customer profile", rep.personas_best, "personas-best"),
                               ("Anti-persona", rep.personas_worst, "personas-worst")):
        if frame.empty:
            out.append({"title": title, "name": name, "table": None, "chart": None})
            continue
        shown = _with_ci(frame)
        shown["share_txt"] = shown["share"].map(pct)
        labels = [" · ".join(map(str, v)) for v in frame["values"]]
        chart = Chart(name, f"{title}: conversion", charts.hbar_chart(
            name, labels, shown["rate"], reference=rep.data["conversion_rate"],
            xlabel="conversion rate (dashed: overall)", percent=True))
        out.append({"title": title, "name": name, "chart": chart, "table": table(
            shown, [Column("segment", "segment"), Column("share_txt", "share of leads"),
                    *RATE_COLUMNS])})
    return out


def _campaigns(rep: ReportData) -> dict | None:
    if rep.campaigns is None:
        return None
    c = rep.campaigns
    top = c.sort_values("rejected_share", ascending=False).head(15)
    chart = Chart("campaign-rejection", "Share of worked leads sales rejected, by campaign",
                  charts.hbar_chart(
                      "campaign-rejection", top["campaign"], top["rejected_share"].fillna(0),
                      colors=[charts.PALETTE[1] if f else charts.PALETTE[0] for f in top["flag"]],
                      xlabel="rejected share of sales feedback", percent=True),
                  "Red: campaigns marked cut.")
    columns = [Column("campaign", "campaign"), Column("source", "source"),
               Column("leads", "leads", thousands), Column("mql_share", "above MQL bar", pct),
               Column("feedback", "feedback", thousands),
               Column("accepted_share", "accepted", pct),
               Column("rejected_share", "rejected", pct),
               Column("rejection_reasons", "rejection reasons"),
               Column("win_rate", "win rate", pct),
               Column("revenue", "revenue", lambda v: f"{v:,.0f}"),
               Column("flag", "", pill=True)]
    return {"table": table(c, columns, flag="flag"), "chart": chart}


def _health(rep: ReportData) -> list[Chart]:
    h = rep.health
    cal, g, t, bar = h["calibration"], h["gains"], h["tradeoff"], h["bar"]
    return [
        Chart("calibration", f"Calibration ({_test_set(rep)} test)", charts.line_chart(
            "calibration", [("model", cal["predicted"], cal["observed"])], diagonal=True,
            xlabel="predicted conversion", ylabel="observed conversion")),
        Chart("gains", "Cumulative gains", charts.line_chart(
            "gains", [("model", [0, *g["leads_share"]], [0, *g["conversions_share"]])],
            diagonal=True, xlabel="share of leads (best first)",
            ylabel="share of conversions", xmax=1, ymax=1)),
        Chart("threshold-tradeoff", "Threshold trade-off", charts.line_chart(
            "threshold-tradeoff",
            [("conversions captured", t["leads_share"], t["conversions_share"])],
            xlabel="share of leads passed to sales", ylabel="share of conversions captured",
            marker=(bar["leads_share"], bar["conversions_share"], "MQL bar"), xmax=1, ymax=1),
              (f"The current MQL bars (one per {bar['per_segment']}; "
               f"{bar['threshold']:.3f} for every other lead; circled) pass "
               if bar.get("per_segment") else
               f"The current MQL bar ({bar['threshold']:.3f}, circled) passes ") +
              f"{pct(bar['leads_share'])} of test leads to sales and captures "
              f"{pct(bar['conversions_share'])} of their conversions."),
    ]


def _segments(rep: ReportData) -> dict | None:
    if rep.segments is None or rep.segments.empty:
        return None

    def auc(v: float) -> str:
        return "–" if v is None or not np.isfinite(v) else f"{v:.3f}"

    reliability = None
    if rep.segment_reliability:
        reliability = Chart("segment-calibration", "Calibration by segment model",
                            charts.line_chart(
                                "segment-calibration",
                                [(name, t["predicted"], t["observed"])
                                 for name, t in rep.segment_reliability.items()],
                                diagonal=True, xlabel="predicted conversion",
                                ylabel="observed conversion"))
    personas = []
    for name, frame in (rep.segment_personas or {}).items():
        if frame is None or frame.empty:
            personas.append({"segment": name, "table": None})
            continue
        shown = _with_ci(frame)
        shown["share_txt"] = shown["share"].map(pct)
        personas.append({"segment": name, "table": table(shown, [
            Column("segment", "persona"), Column("share_txt", "share of its leads"),
            *RATE_COLUMNS])})
    return {"column": rep.model.get("segment_column", ""), "table": table(rep.segments, [
        Column("segment", "segment"), Column("model", "model"),
        Column("leads", "test leads", thousands), Column("conversion_rate", "conversion", pct),
        Column("mean_score", "mean score", pct),
        Column("roc_auc", "ROC AUC", auc), Column("pr_auc", "PR AUC", auc),
        Column("ece", "ECE", auc), Column("drivers", "strongest drivers")]),
        "reliability": reliability, "personas": personas}


def render_html(rep: ReportData) -> str:
    """The report as one HTML string: inline CSS and SVG, nothing fetched, no scripts."""
    h = rep.health
    tiers = table(h["tiers"], [
        Column("tier", "tier"), Column("min_score", "min score", lambda v: f"{v:.3f}"),
        Column("leads", "leads", thousands), Column("leads_share", "share of leads", pct),
        Column("conversion_rate", "conversion", pct),
        Column("conversions_share", "share of conversions", pct)])
    return environment().get_template(TEMPLATE).render(
        model=rep.model, data=rep.data, metrics=h["metrics"], drivers=_drivers(rep),
        insights=_insights(rep), personas=_personas(rep), campaigns=_campaigns(rep),
        health=_health(rep), tiers=tiers, sla=h.get("sla"), period=h.get("period"),
        recorded=h.get("recorded"), segments=_segments(rep),
        baselines=rep.model.get("baselines") or [])
