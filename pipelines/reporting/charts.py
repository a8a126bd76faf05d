"""Inline SVG charts for the HTML report: self-contained, no JavaScript, no network.

Every chart is a ``<figure class="chart" data-chart="NAME">`` holding one ``<svg>`` whose marks
carry ``class="mark"``, so a browser test can check that each chart is drawn (has size and
marks) without knowing how it was drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import numpy as np

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")
FONT = "font-family:system-ui,sans-serif;font-size:11px"


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def _shorten(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _figure(name: str, title: str, width: int, height: int, body: list[str],
            caption: str = "") -> str:
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
           f'style="{FONT}">' + "".join(body) + "</svg>")
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return (f'<figure class="chart" data-chart="{escape(name)}"><h4>{escape(title)}</h4>'
            f"{svg}{cap}</figure>")


def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: a + (float(v) - lo) / span * (b - a)


def hbar_chart(name: str, title: str, labels: Sequence[str], values: Sequence[float],
               errors: Sequence[float] | None = None, *, xlabel: str = "",
               reference: float | None = None, caption: str = "",
               colors: Sequence[str] | None = None, label_chars: int = 34) -> str:
    """Horizontal bars (one per label), optional ± error whiskers and a reference line."""
    labels = [str(v) for v in labels]
    values = np.asarray(values, float)
    err = np.zeros_like(values) if errors is None else np.nan_to_num(np.asarray(errors, float))
    left, right, top, row = 20 + int(5.6 * label_chars), 30, 10, 20
    width, height = left + 450, top + row * len(labels) + 40
    lo = min(0.0, float(np.nanmin(values - err)) if len(values) else 0.0)
    hi = max(float(np.nanmax(values + err)) if len(values) else 1.0, reference or 0.0, 1e-12)
    x = _scale(lo, hi, left, width - right)
    body = [f'<line x1="{x(0):.1f}" y1="{top}" x2="{x(0):.1f}" y2="{height - 30}" '
            'stroke="#999"/>']
    for i, (label, v, e) in enumerate(zip(labels, values, err, strict=True)):
        y = top + i * row
        x0, x1 = sorted((x(0), x(np.nan_to_num(v))))
        color = (colors[i] if colors else PALETTE[0]) if np.isfinite(v) else "#ccc"
        body.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">'
                    f"{escape(_shorten(label, label_chars))}</text>")
        body.append(f'<rect class="mark" x="{x0:.1f}" y="{y + 3}" width="{max(x1 - x0, 1):.1f}" '
                    f'height="{row - 6}" fill="{color}"><title>{escape(label)}: {_fmt(v)}'
                    "</title></rect>")
        if e > 0:
            body.append(f'<line x1="{x(v - e):.1f}" y1="{y + row / 2}" x2="{x(v + e):.1f}" '
                        f'y2="{y + row / 2}" stroke="#111"/>')
    if reference is not None:
        body.append(f'<line class="mark" x1="{x(reference):.1f}" y1="{top}" '
                    f'x2="{x(reference):.1f}" y2="{height - 30}" stroke="{PALETTE[1]}" '
                    'stroke-dasharray="4 3"/>')
    for t in np.linspace(lo, hi, 5):
        body.append(f'<text x="{x(t):.1f}" y="{height - 16}" text-anchor="middle">'
                    f"{_fmt(t)}</text>")
    body.append(f'<text x="{(left + width - right) / 2}" y="{height - 3}" '
                f'text-anchor="middle">{escape(xlabel)}</text>')
    return _figure(name, title, width, height, body, caption)


def line_chart(name: str, title: str, series: Sequence[tuple[str, Sequence[float],
                                                            Sequence[float]]], *,
               xlabel: str = "", ylabel: str = "", diagonal: bool = False,
               marker: tuple[float, float, str] | None = None, caption: str = "",
               xmax: float | None = None, ymax: float | None = None) -> str:
    """Lines with dots; optional y = x diagonal and one marked point (e.g. the MQL bar)."""
    width, height, left, right, top, bottom = 420, 320, 50, 20, 14, 44
    xs = np.concatenate([np.asarray(s[1], float) for s in series])
    ys = np.concatenate([np.asarray(s[2], float) for s in series])
    hx = xmax if xmax is not None else max(float(np.nanmax(xs)), 1e-12)
    hy = ymax if ymax is not None else max(float(np.nanmax(ys)), 1e-12)
    if diagonal:
        hx = hy = max(hx, hy)
    x = _scale(0, hx, left, width - right)
    y = _scale(0, hy, height - bottom, top)
    body = [f'<rect x="{left}" y="{top}" width="{width - left - right}" '
            f'height="{height - top - bottom}" fill="none" stroke="#ddd"/>']
    for t in np.linspace(0, hx, 5):
        body.append(f'<text x="{x(t):.1f}" y="{height - bottom + 14}" text-anchor="middle">'
                    f"{_fmt(t)}</text>")
    for t in np.linspace(0, hy, 5):
        body.append(f'<text x="{left - 4}" y="{y(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    if diagonal:
        body.append(f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(hx):.1f}" y2="{y(hy):.1f}" '
                    'stroke="#999" stroke-dasharray="4 3"/>')
    for k, (label, sx, sy) in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        pts = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in zip(sx, sy, strict=True)
                       if np.isfinite(a) and np.isfinite(b))
        body.append(f'<polyline class="mark" points="{pts}" fill="none" stroke="{color}" '
                    'stroke-width="2"/>')
        if len(sx) <= 30:
            body += [f'<circle class="mark" cx="{x(a):.1f}" cy="{y(b):.1f}" r="3" '
                     f'fill="{color}"/>' for a, b in zip(sx, sy, strict=True)
                     if np.isfinite(a) and np.isfinite(b)]
        body.append(f'<text x="{left + 8}" y="{top + 14 + 14 * k}" fill="{color}">'
                    f"{escape(label)}</text>")
    if marker is not None:
        mx, my, text = marker
        body.append(f'<circle class="mark" cx="{x(mx):.1f}" cy="{y(my):.1f}" r="6" '
                    f'fill="none" stroke="{PALETTE[1]}" stroke-width="2"/>')
        body.append(f'<text x="{x(mx) + 9:.1f}" y="{y(my) + 14:.1f}" fill="{PALETTE[1]}">'
                    f"{escape(text)}</text>")
    body.append(f'<text x="{(left + width - right) / 2}" y="{height - 8}" '
                f'text-anchor="middle">{escape(xlabel)}</text>')
    body.append(f'<text transform="translate(12 {(top + height - bottom) / 2}) rotate(-90)" '
                f'text-anchor="middle">{escape(ylabel)}</text>')
    return _figure(name, title, width, height, body, caption)


def strip_chart(name: str, title: str, columns: Sequence[str], values: np.ndarray,
                colour_values: np.ndarray, *, xlabel: str = "", caption: str = "") -> str:
    """A SHAP summary: one row per column, one dot per lead at its contribution, coloured by the
    lead's value of that column (blue low → red high; grey where the value is not a number)."""
    n_rows = len(columns)
    left, right, top, row = 150, 20, 10, 26
    width, height = 640, top + row * n_rows + 40
    lim = float(np.nanmax(np.abs(values))) if values.size else 1.0
    lim = lim or 1.0
    x = _scale(-lim, lim, left, width - right)
    rng = np.random.default_rng(0)
    body = [f'<line x1="{x(0):.1f}" y1="{top}" x2="{x(0):.1f}" y2="{height - 30}" '
            'stroke="#999"/>']
    for i, col in enumerate(columns):
        yc = top + i * row + row / 2
        body.append(f'<text x="{left - 6}" y="{yc + 4:.1f}" text-anchor="end">'
                    f"{escape(col)}</text>")
        v, c = values[:, i], colour_values[:, i]
        jitter = rng.uniform(-row * 0.35, row * 0.35, len(v))
        for a, b, j in zip(v, c, jitter, strict=True):
            fill = "#9ca3af" if not np.isfinite(b) else (
                f"rgb({int(40 + 200 * b)},{int(90 - 40 * abs(b - 0.5))},{int(240 - 200 * b)})")
            body.append(f'<circle class="mark" cx="{x(a):.1f}" cy="{yc + j:.1f}" r="1.8" '
                        f'fill="{fill}" fill-opacity="0.6"/>')
    for t in np.linspace(-lim, lim, 5):
        body.append(f'<text x="{x(t):.1f}" y="{height - 16}" text-anchor="middle">'
                    f"{_fmt(t)}</text>")
    body.append(f'<text x="{(left + width - right) / 2}" y="{height - 3}" '
                f'text-anchor="middle">{escape(xlabel)}</text>')
    return _figure(name, title, width, height, body, caption)
