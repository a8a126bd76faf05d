"""Every chart leadq draws, from matplotlib: the report's inline SVG and the training plots.

The report's charts come out as SVG text (`svg.fonttype: none`, so labels stay ``<text>``: small,
selectable, searchable) that the HTML template inlines. Figures are built on
`matplotlib.figure.Figure` with the Agg canvas rather than through pyplot: nothing is registered
in pyplot's global figure list, so nothing leaks between calls and a caller's backend (a notebook's
inline one, say) is left alone.

Every artist that holds data carries a gid starting with ``mark-`` (matplotlib writes it as the
``id`` of the artist's ``<g>``); dense dot layers are rasterized into an ``<image>`` inside the
SVG. A browser test can so check that each chart drew its data without knowing how.
"""

from __future__ import annotations

import io
import re
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import matplotlib as mpl
import numpy as np
import pandas as pd
from cycler import cycler
from markupsafe import Markup
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from leadq.models.metrics import calibration_table, gains_table

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")
GREY = "#9ca3af"
STYLE = {
    "svg.fonttype": "none",
    # The browser picks the first installed font; layout is measured with DejaVu Sans (shipped
    # with matplotlib), wider than the fallbacks, so labels never overflow their space.
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 8.5,
    # Labels are CRM data: a campaign called "$5 off $50" must print as typed, not as mathtext.
    "text.parse_math": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=PALETTE),
    "legend.frameon": False,
}
# No Creator/Date/RDF block: the page stays deterministic and names no URL.
_NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}
RASTER_DPI = 100  # ≈ one image pixel per CSS pixel at the chart's size
# Chart widths in inches, sized for the report's page: a browser draws an SVG inch as 96 CSS px,
# and the main column holds 1100 − 2 × 24 px of content, less a chart frame's 2 × 11 px. Drawn
# this wide, a chart shows at its own size in the column (text at its point size), and the page
# scales it down, never up, on a narrower screen.
PAGE_WIDTH = 10.7  # one chart across the column
THIRD_WIDTH = 3.3  # three side by side (a 16 px gap between them)
WRAP_CHARS = 60  # longer labels wrap onto further lines: names are never cut
# Only real tags can match: matplotlib escapes "<" and ">" in text and attribute values alike.
_UNSAFE_SVG = re.compile(r"<\s*(script|foreignobject|iframe|object|embed)\b"
                         r"|<[^>]*\s(on[a-z]+\s*=|(xlink:)?href\s*=\s*[\"']?\s*javascript:)",
                         re.IGNORECASE)
# matplotlib names every group it opens ("figure_1", "axes_1", ...): harmless in a file of its
# own, but a page of many charts would repeat each id. Nothing refers to them (references use
# the salted ids), so they go; the gids set here ("mark-…") stay.
_AUTO_GROUP_ID = re.compile(r'<g id="(?!mark-)[A-Za-z][\w.]*_\d+"(/?)>')


@contextmanager
def _style() -> Iterator[None]:
    with mpl.rc_context(STYLE):
        yield


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "chart"


def _mark(artist, name: str, k: int) -> None:
    artist.set_gid(f"mark-{_slug(name)}-{k}")


def to_svg(fig: Figure, name: str) -> Markup:
    """The figure as an SVG element to inline in HTML (prolog and DOCTYPE dropped).

    This is the one place the report marks text safe. matplotlib's SVG writer escapes every
    string it writes (``<``, ``>``, ``&`` in text; quotes too in attributes), so a label holding
    markup ends up as inert text; the check below fails loudly should that ever stop being true.
    The hash salt makes the SVG's internal ids (clip paths, markers) differ between charts of one
    page and repeat between runs.
    """
    buf = io.StringIO()
    with mpl.rc_context({**STYLE, "svg.hashsalt": _slug(name)}):
        fig.savefig(buf, format="svg", metadata=_NO_METADATA, dpi=RASTER_DPI)
    text = buf.getvalue()
    text = _AUTO_GROUP_ID.sub(r"<g\1>", text[text.index("<svg"):].strip())
    if _UNSAFE_SVG.search(text):
        raise ValueError(f"chart {name!r}: matplotlib wrote active content into its SVG")
    return Markup(text)


def _fmt(v: float, percent: bool) -> str:
    if not np.isfinite(v):
        return "–"
    v = v if round(v, 3) else 0.0  # no "-0.000" (or "-0.0%") for what rounds to nothing
    # Shares read as percentages; other values (ROC AUC lost) to the metric's own 3 decimals.
    return f"{100 * v:.1f}%" if percent else f"{v:.3f}"


def _wrap(text: object, chars: int) -> str:
    """A label on lines of at most `chars` characters, broken at spaces where it can be (a
    single long word is split): all of it shows, and one long name cannot squeeze the plot.
    A label that fits is left exactly as it is."""
    text = str(text)
    if len(text) <= chars:
        return text
    return "\n".join(textwrap.wrap(text, chars, break_on_hyphens=False)) or text


def _row_height(labels: Sequence[str]) -> float:
    """Inches per row: one line of label, plus the extra lines of the longest wrapped one."""
    lines = max((s.count("\n") + 1 for s in labels), default=1)
    return 0.23 + 0.14 * (lines - 1)


# --- report charts (SVG) --------------------------------------------------------------------
def hbar_chart(name: str, labels: Sequence[object], values: Sequence[float],
               errors: Sequence[float] | None = None, *, xlabel: str = "",
               reference: float | None = None, colors: Sequence[str] | None = None,
               wrap_chars: int = WRAP_CHARS, percent: bool = False) -> Markup:
    """Horizontal bars across the page, first label on top, each with its value at the end;
    optional ± error whiskers and a dashed reference line (e.g. the overall conversion rate).
    Missing values draw as an empty grey bar marked "–". Labels longer than `wrap_chars`
    wrap; the plot takes the width they leave."""
    labels = [_wrap(v, wrap_chars) for v in labels]
    values = np.asarray(values, float)
    err = None if errors is None else np.nan_to_num(np.asarray(errors, float))
    finite = np.isfinite(values)
    fill = [(colors[i] if colors is not None else PALETTE[0]) if finite[i] else GREY
            for i in range(len(values))]
    with _style():
        fig = _figure(PAGE_WIDTH, 0.62 + _row_height(labels) * max(len(labels), 1))
        ax = fig.add_subplot()
        pos = np.arange(len(labels))
        bars = ax.barh(pos, np.where(finite, values, 0.0), xerr=err, color=fill, height=0.7,
                       error_kw={"elinewidth": 0.8, "ecolor": "#111", "capsize": 0})
        for k, bar in enumerate(bars.patches):
            _mark(bar, name, k)
        ax.bar_label(bars, labels=[_fmt(v, percent) for v in values], padding=3,
                     fontsize=7.5, color="#334155")
        ax.set_yticks(pos, labels)
        if colors is not None:  # a label in its bar's colour: marked even where the bar is 0
            for tick, colour in zip(ax.get_yticklabels(), colors, strict=True):
                if colour != PALETTE[0]:
                    tick.set_color(colour)
        ax.invert_yaxis()  # read top-down in the order given
        ax.axvline(0, color="#999", lw=0.8)
        if reference is not None:
            _mark(ax.axvline(reference, color=PALETTE[1], ls=(0, (4, 3)), lw=1.2), name,
                  len(labels))
        ax.margins(x=0.12)  # room for the value printed past the longest bar
        if percent:
            ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.spines["left"].set_visible(False)
        ax.tick_params(axis="y", length=0)
        ax.set_xlabel(xlabel)
        return to_svg(fig, name)


def _lines(ax, series: Sequence[tuple[str, Sequence[float], Sequence[float]]], *,
           name: str = "", diagonal: bool = False,
           marker: tuple[float, float, str] | None = None, xmax: float | None = None,
           ymax: float | None = None, diagonal_label: str | None = None) -> None:
    """Lines (with dots when few points) on `ax`, from 0; shared by the report and training."""
    xs = np.concatenate([np.asarray(s[1], float) for s in series])
    ys = np.concatenate([np.asarray(s[2], float) for s in series])
    hx = xmax if xmax is not None else max(float(np.nanmax(xs)), 1e-12)
    hy = ymax if ymax is not None else max(float(np.nanmax(ys)), 1e-12)
    if diagonal:
        hx = hy = max(hx, hy)
        ax.plot([0, hx], [0, hy], ls=(0, (4, 3)), color="#999", lw=1, label=diagonal_label)
    for k, (label, sx, sy) in enumerate(series):
        sx, sy = np.asarray(sx, float), np.asarray(sy, float)
        ok = np.isfinite(sx) & np.isfinite(sy)
        (line,) = ax.plot(sx[ok], sy[ok], lw=2, label=label,
                          marker="o" if len(sx) <= 30 else None, ms=4)
        _mark(line, name, k)
    if marker is not None:
        mx, my, text = marker
        (ring,) = ax.plot([mx], [my], ls="", marker="o", ms=11, mfc="none", mec=PALETTE[1],
                          mew=2)
        _mark(ring, name, len(series))
        # Written on the side of the point with more room. Out of the layout: a note on a
        # point should not shrink the axes (a long one would collapse a third-width chart).
        right = mx <= 0.6 * hx
        note = ax.annotate(text, (mx, my), xytext=(9 if right else -9, -12),
                           textcoords="offset points", ha="left" if right else "right",
                           color=PALETTE[1])
        note.set_in_layout(False)
    ax.set_xlim(0, hx * 1.02)
    ax.set_ylim(0, hy * 1.02)
    ax.grid(color="#eee", lw=0.6)
    ax.legend(loc="lower right" if diagonal or marker else "best")


def line_chart(name: str, series: Sequence[tuple[str, Sequence[float], Sequence[float]]], *,
               xlabel: str = "", ylabel: str = "", diagonal: bool = False,
               marker: tuple[float, float, str] | None = None, xmax: float | None = None,
               ymax: float | None = None, width: float = THIRD_WIDTH) -> Markup:
    """Lines of (label, x, y) series; optional dashed y = x diagonal and one ringed point (e.g.
    the current MQL bar on the threshold trade-off). Sized by default for three in a row."""
    with _style():
        fig = _figure(width, 0.82 * width)
        ax = fig.add_subplot()
        _lines(ax, series, name=name, diagonal=diagonal, marker=marker, xmax=xmax, ymax=ymax)
        ax.set(xlabel=xlabel, ylabel=ylabel)
        return to_svg(fig, name)


def strip_chart(name: str, columns: Sequence[str], values: np.ndarray,
                colour_values: np.ndarray, *, xlabel: str = "") -> Markup:
    """A SHAP summary: one row per column (first on top), one dot per lead at its contribution,
    coloured by the lead's value of that column (blue low → red high; grey where the value is
    not a number). The dots are rasterized inside the SVG: thousands of vector dots would make
    the page several times heavier; axes and labels stay vector text."""
    values = np.asarray(values, float)
    colour_values = np.asarray(colour_values, float)
    lim = float(np.nanmax(np.abs(values))) if values.size else 1.0
    lim = (lim if np.isfinite(lim) else 0.0) or 1.0
    cmap = mpl.colormaps["coolwarm"].with_extremes(bad=GREY)
    rng = np.random.default_rng(0)  # the jitter is layout, not data: fixed
    labels = [_wrap(c, WRAP_CHARS) for c in columns]
    with _style():
        fig = _figure(PAGE_WIDTH,
                      0.75 + (0.07 + _row_height(labels)) * max(len(columns), 1))
        ax = fig.add_subplot()
        ax.axvline(0, color="#999", lw=0.8)
        for i in range(len(columns)):
            jitter = rng.uniform(-0.35, 0.35, values.shape[0])
            dots = ax.scatter(values[:, i], i + jitter, c=colour_values[:, i], cmap=cmap,
                              vmin=0, vmax=1, s=5, alpha=0.6, linewidths=0,
                              plotnonfinite=True, rasterized=True)
            _mark(dots, name, i)
        ax.set_yticks(np.arange(len(columns)), labels)
        ax.set_ylim(len(columns) - 0.5, -0.5)
        ax.set_xlim(-lim * 1.04, lim * 1.04)
        ax.spines["left"].set_visible(False)
        ax.tick_params(axis="y", length=0)
        ax.set_xlabel(xlabel)
        # The legend in 24 vector steps: a few KB, and the dots stay the chart's only image.
        legend = mpl.cm.ScalarMappable(mpl.colors.Normalize(0, 1), cmap.resampled(24))
        bar = fig.colorbar(legend, ax=ax, ticks=[0, 1], aspect=30, pad=0.01)
        bar.ax.set_yticklabels(["low", "high"])
        bar.set_label("value of the column")
        bar.solids.set_edgecolor("face")  # no hairline seams between the steps
        return to_svg(fig, name)


# --- training plots (PNG, logged to the MLflow run) -----------------------------------------
def training_figures(test_frame: pd.DataFrame) -> dict[str, Figure]:
    """Figures keyed by file name (for `mlflow.log_figure`), from test labels and scores.

    Not in pyplot's registry: they are freed with their last reference, closing them is not
    needed (and `plt.close` on them is a harmless no-op).
    """
    from sklearn.metrics import precision_recall_curve, roc_curve

    y, score = test_frame["label"].to_numpy(), test_frame["score"].to_numpy()
    figs: dict[str, Figure] = {}
    with _style():
        fig = _figure(5, 5)
        ax = fig.add_subplot()
        cal = calibration_table(y, score)
        top = max(cal["predicted"].max(), cal["observed"].max(), 0.05)
        _lines(ax, [("model", cal["predicted"], cal["observed"])], diagonal=True,
               xmax=top, ymax=top, diagonal_label="perfect")
        ax.set(xlabel="predicted conversion", ylabel="observed conversion",
               title=f"Calibration on {test_frame.attrs.get('test_set', 'out-of-time')} "
                     "test leads")
        figs["calibration.png"] = fig

        fig = _figure(10, 4.5)
        axes = fig.subplots(1, 2)
        fpr, tpr, _ = roc_curve(y, score)
        axes[0].plot(fpr, tpr)
        axes[0].plot([0, 1], [0, 1], ls="--", c="grey")
        axes[0].set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
        prec, rec, _ = precision_recall_curve(y, score)
        axes[1].plot(rec, prec)
        axes[1].axhline(np.mean(y), ls="--", c="grey")
        axes[1].set(xlabel="recall", ylabel="precision", title="Precision-recall")
        figs["roc_pr.png"] = fig

        fig = _figure(5, 4.5)
        ax = fig.add_subplot()
        gains = gains_table(y, score)
        _lines(ax, [("model", [0, *gains["leads_share"]], [0, *gains["conversions_share"]])],
               diagonal=True, xmax=1, ymax=1, diagonal_label="random")
        ax.set(xlabel="share of leads (best first)", ylabel="share of conversions",
               title="Cumulative gains")
        figs["gains.png"] = fig
    return figs
