"""A patient's course as an SVG drawn on the server (no JavaScript; legible in black and white).

Stacked panels (white cells, platelets, ionised calcium) on one time axis in days from the first
point; leukapheresis sessions hatched and numbered, cytoreduction starts as dotted lines, the target
count dashed and labelled. It draws the stored results only; thresholds are passed in by the caller.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape

from leukos.service.chart import Line, nice_ticks, threshold_lines_svg, x_ticks_svg

__all__ = ["course_timeline_svg"]


def _fmt(v: float) -> str:
    return f"{v:g}"


def course_timeline_svg(series: Sequence[tuple[str, Sequence[tuple[dt.datetime, float]], tuple[Line, ...]]], *,
                        sessions: Sequence[tuple[dt.datetime, dt.datetime]],
                        treatments: Sequence[tuple[dt.datetime, str]], title: str, width: int = 760,
                        panel_h: int = 130) -> str:
    """``series``: (panel title, [(time, value)], threshold lines) per panel; empty panels are left out."""
    panels = [p for p in series if p[1]]
    if not panels:
        return ""
    times = [t for _, pts, _ in panels for t, _ in pts] + [t for s in sessions for t in s] + [t for t, _ in treatments]
    t0 = min(times)
    days = [(t - t0).total_seconds() / 86400 for t in times]
    x_hi = max(max(days), 1.0)
    left, right, top, gap, bottom = 64, 16, 34, 44, 40
    pw = width - left - right
    h_total = top + len(panels) * panel_h + (len(panels) - 1) * gap + bottom

    def d(t: dt.datetime) -> float:
        return (t - t0).total_seconds() / 86400

    def X(day: float) -> float:
        return left + day / x_hi * pw

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {h_total}" role="img" '
           'aria-labelledby="course-title course-desc" class="course" font-family="sans-serif" font-size="11">',
           f'<title id="course-title">{escape(title)}</title>',
           '<desc id="course-desc">Measured values joined by lines; hatched bands are leukapheresis sessions; dotted '
           'lines mark the start of cytoreduction; dashed lines are thresholds.</desc>',
           '<defs><pattern id="reg-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
           '<line x1="0" y1="0" x2="0" y2="6" stroke="#999" stroke-width="1"/></pattern></defs>']
    xt = [t for t in nice_ticks(0.0, x_hi, 6) if 0 <= t <= x_hi]
    for i, (name, pts, lines) in enumerate(panels):
        y_top = top + i * (panel_h + gap)
        vals = [v for _, v in pts] + [ln.value for ln in lines]
        lo, hi = min(vals), max(vals)
        pad = (hi - lo) * 0.1 or abs(hi) * 0.1 or 1
        yt = nice_ticks(max(0.0, lo - pad), hi + pad, 4)
        y0, y1 = yt[0], yt[-1]

        def Y(v: float, y_top: int = y_top, y0: float = y0, y1: float = y1) -> float:
            return y_top + panel_h - (v - y0) / (y1 - y0 or 1) * panel_h

        out.append(f'<g class="panel" aria-label="{escape(name)}">')
        out.append(f'<text x="{left}" y="{y_top - 8}" font-weight="bold" font-size="12">{escape(name)}</text>')
        for k, (a, b) in enumerate(sessions, start=1):
            xa, xb = X(d(a)), max(X(d(b)), X(d(a)) + 2)
            out.append(f'<rect class="session" x="{xa:.1f}" y="{y_top}" width="{xb - xa:.1f}" height="{panel_h}" '
                       'fill="url(#reg-hatch)" opacity="0.6"/>')
            if i == 0:
                out.append(f'<text x="{xa:.1f}" y="{y_top + 11}" font-size="10">S{k}</text>')
        for t, label in treatments:
            x = X(d(t))
            out.append(f'<line class="cytoreduction" x1="{x:.1f}" x2="{x:.1f}" y1="{y_top}" y2="{y_top + panel_h}" '
                       'stroke="#000" stroke-dasharray="2 3"/>')
            if i == 0:
                out.append(f'<text x="{x + 3:.1f}" y="{y_top - 20}" font-size="10">{escape(label)}</text>')
        for t in yt:
            y = Y(t)
            out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
        out.append(f'<rect x="{left}" y="{y_top}" width="{pw}" height="{panel_h}" fill="none" stroke="#444"/>')
        path = " ".join(f"{'M' if k == 0 else 'L'}{X(d(t)):.1f},{Y(v):.1f}" for k, (t, v) in enumerate(pts))
        out.append(f'<path d="{path}" fill="none" stroke="#000" stroke-width="1.8"/>')
        for t, v in pts:
            out.append(f'<circle cx="{X(d(t)):.1f}" cy="{Y(v):.1f}" r="2.6" fill="#000"><title>{_fmt(v)} at '
                       f'{t.strftime("%d %b %H:%M")} UTC</title></circle>')
        out += threshold_lines_svg(lines, Y, left, pw)
        out += x_ticks_svg([(X(t), _fmt(t)) for t in xt], y_top + panel_h)
        out.append("</g>")
    out.append(f'<text x="{left + pw / 2}" y="{h_total - 6}" text-anchor="middle">days from {t0.strftime("%d %b %Y %H:%M")} '
               'UTC</text>')
    out.append("</svg>")
    return "".join(out)
