"""The simulated course as an SVG drawn on the server: one panel per quantity, one time axis in hours.

Used by the web page and the printed/PDF report alike (no JavaScript, legible in black and white:
median solid, 90 % band grey, thresholds dashed and labelled, procedure window hatched). It draws
the simulation's own series; the threshold lines are knowledge parameters passed in by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

__all__ = ["Panel", "Line", "course_svg", "nice_ticks", "threshold_lines_svg", "x_ticks_svg"]


@dataclass(frozen=True)
class Line:
    value: float
    label: str


@dataclass(frozen=True)
class Panel:
    title: str
    series: Mapping[str, Sequence[float]] | Sequence[float]
    lines: tuple[Line, ...] = ()


def nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step + 1e-9) * step
    end = math.ceil(hi / step - 1e-9) * step
    count = round((end - start) / step)
    return [round(start + k * step, 10) for k in range(count + 1)]


def threshold_lines_svg(lines: Sequence[Line], y_of, left: float, width: float) -> list[str]:
    """Dashed threshold lines with their labels (black on white: legible in black-and-white print)."""
    out: list[str] = []
    for ln in lines:
        y = y_of(ln.value)
        out.append(f'<line x1="{left}" x2="{left + width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#000" '
                   'stroke-dasharray="6 4" stroke-width="1.2"/>')
        out.append(f'<text x="{left + width - 4}" y="{y - 4:.1f}" text-anchor="end" font-size="10" '
                   f'paint-order="stroke" stroke="#fff" stroke-width="3">{escape(ln.label)}</text>')
    return out


def x_ticks_svg(ticks: Sequence[tuple[float, str]], y_axis: float) -> list[str]:
    """Tick marks and labels under a panel: (x position, label) pairs."""
    out: list[str] = []
    for x, label in ticks:
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y_axis}" y2="{y_axis + 4}" stroke="#444"/>')
        out.append(f'<text x="{x:.1f}" y="{y_axis + 15}" text-anchor="middle">{label}</text>')
    return out


def _fmt(v: float) -> str:
    return f"{v:g}" if abs(v) < 1000 else f"{v:.0f}"


def course_svg(times_min: Sequence[float], panels: Sequence[Panel], *, window_min: tuple[float, float] | None,
               title: str, width: int = 720, panel_h: int = 150) -> str:
    """An accessible SVG (role=img, title, description) with stacked panels sharing the hour axis."""
    left, right, top, gap, bottom = 64, 16, 28, 44, 40
    h_total = top + len(panels) * panel_h + (len(panels) - 1) * gap + bottom
    hours = [t / 60.0 for t in times_min]
    x0, x1 = 0.0, max(hours) if hours else 1.0
    pw = width - left - right

    def X(h: float) -> float:
        return left + (h - x0) / (x1 - x0 or 1) * pw

    xt = nice_ticks(x0, x1, 6)
    xt = [t for t in xt if x0 <= t <= x1]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {h_total}" role="img" '
           f'aria-labelledby="chart-title chart-desc" class="course" font-family="sans-serif" font-size="11">',
           f'<title id="chart-title">{escape(title)}</title>',
           '<desc id="chart-desc">Median line with the 90 % band of the model draws; dashed lines are thresholds; '
           'the hatched area is the procedure.</desc>',
           '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
           '<line x1="0" y1="0" x2="0" y2="6" stroke="#999" stroke-width="1"/></pattern></defs>']
    for i, p in enumerate(panels):
        y_top = top + i * (panel_h + gap)
        s = p.series
        med = list(s["median"]) if isinstance(s, Mapping) else list(s)
        lo_s = list(s.get("p05", med)) if isinstance(s, Mapping) else med
        hi_s = list(s.get("p95", med)) if isinstance(s, Mapping) else med
        vals = [v for v in lo_s + hi_s + med if v is not None] + [ln.value for ln in p.lines]
        vmin, vmax = min(vals), max(vals)
        pad = (vmax - vmin) * 0.08 or abs(vmax) * 0.1 or 1
        yt = nice_ticks(max(0.0, vmin - pad) if vmin >= 0 else vmin - pad, vmax + pad, 4)
        y0, y1 = yt[0], yt[-1]

        def Y(v: float, y_top: float = y_top, y0: float = y0, y1: float = y1) -> float:
            return y_top + panel_h - (v - y0) / (y1 - y0 or 1) * panel_h

        out.append(f'<clipPath id="clip-{i}"><rect x="{left}" y="{y_top}" width="{pw}" height="{panel_h}"/></clipPath>')
        out.append(f'<g class="panel" aria-label="{escape(p.title)}">')
        out.append(f'<text x="{left}" y="{y_top - 8}" font-weight="bold" font-size="12">{escape(p.title)}</text>')
        if window_min:
            wx0, wx1 = X(window_min[0] / 60), X(min(window_min[1] / 60, x1))
            out.append(f'<rect x="{wx0:.1f}" y="{y_top}" width="{wx1 - wx0:.1f}" height="{panel_h}" '
                       'fill="url(#hatch)" opacity="0.45"/>')
            if i == 0:
                out.append(f'<text x="{(wx0 + wx1) / 2:.1f}" y="{y_top + 12}" text-anchor="middle" '
                           'font-size="10">procedure</text>')
        for t in yt:
            y = Y(t)
            out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
        out.append(f'<rect x="{left}" y="{y_top}" width="{pw}" height="{panel_h}" fill="none" stroke="#444"/>')
        if isinstance(s, Mapping) and "p05" in s:
            pts = [f"{X(h):.1f},{Y(v):.1f}" for h, v in zip(hours, hi_s, strict=True)] + \
                  [f"{X(h):.1f},{Y(v):.1f}" for h, v in reversed(list(zip(hours, lo_s, strict=True)))]
            out.append(f'<polygon points="{" ".join(pts)}" fill="#bbb" fill-opacity="0.55" stroke="none" '
                       f'clip-path="url(#clip-{i})"/>')
        path = " ".join(f"{'M' if k == 0 else 'L'}{X(h):.1f},{Y(v):.1f}" for k, (h, v) in enumerate(zip(hours, med, strict=True)))
        out.append(f'<path d="{path}" fill="none" stroke="#000" stroke-width="2" clip-path="url(#clip-{i})"/>')
        out += threshold_lines_svg(p.lines, Y, left, pw)
        out += x_ticks_svg([(X(t), _fmt(t)) for t in xt], y_top + panel_h)
        out.append("</g>")
    out.append(f'<text x="{left + pw / 2}" y="{h_total - 6}" text-anchor="middle">hours from the start of the '
               'procedure</text>')
    out.append("</svg>")
    return "".join(out)


def panels_from_simulation(sim: Mapping[str, Any], lines: Mapping[str, tuple[Line, ...]]) -> list[Panel]:
    spec = (("wbc_10e9_per_l", "White cell count (×10⁹/L)"),
            ("ionized_calcium_mmol_per_l", "Ionised calcium (mmol/L)"),
            ("platelets_10e9_per_l", "Platelets (×10⁹/L)"))
    return [Panel(title, sim[key], lines.get(key, ())) for key, title in spec if sim.get(key)]
