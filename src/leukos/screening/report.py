"""A self-contained HTML report of a screening run: summary, exclusions, and three inline SVG charts.

No scripts, no CDN, no external files: the charts are SVG drawn here, so the report opens
offline and can be archived with the run.
"""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["write_report", "render_report", "bar_chart_svg"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;max-width:64rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}
th{background:#f3f3f3}.note{color:#555;font-size:.9rem}.warn{color:#8a4b00}
svg text{font-family:system-ui,sans-serif;font-size:11px;fill:#333}
"""


def bar_chart_svg(labels: list[str], values: list[float], *, title: str, x_label: str, y_label: str,
                  width: int = 640, height: int = 260) -> str:
    """A bar chart as an SVG string (labels under the bars, counts above them)."""
    left, right, top, bottom = 48, 12, 28, 48
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(values), 1)
    vmax = max(values) if values and max(values) > 0 else 1
    bar_w = plot_w / n
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{html.escape(title)}">',
             f'<text x="{width / 2}" y="16" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333"/>']
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        h = plot_h * v / vmax
        x = left + i * bar_w
        parts.append(f'<rect x="{x + bar_w * 0.1:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w * 0.8:.1f}" '
                     f'height="{h:.1f}" fill="#4a78a8"><title>{html.escape(label)}: {v:g}</title></rect>')
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h - h - 3:.1f}" text-anchor="middle">{v:g}</text>')
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle">'
                     f'{html.escape(label)}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">{html.escape(x_label)}</text>')
    parts.append(f'<text x="12" y="{top + plot_h / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 12 {top + plot_h / 2})">{html.escape(y_label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _peak_bins(peaks: list[float], threshold: float) -> tuple[list[str], list[float]]:
    edges = [threshold, 200, 300, 400, 500, 750, 1000]
    edges = [e for e in edges if e >= threshold]
    labels, counts = [], []
    for lo, hi in zip(edges, edges[1:] + [None], strict=True):
        labels.append(f">{lo:g}" if hi is None else f"{lo:g}-{hi:g}")
        counts.append(sum(1 for p in peaks if p > lo and (hi is None or p <= hi)))
    return labels, counts


def _delay_bins(hours: list[float]) -> tuple[list[str], list[float]]:
    edges = [(None, 0, "before"), (0, 6, "0-6"), (6, 12, "6-12"), (12, 24, "12-24"), (24, 48, "24-48"),
             (48, 72, "48-72"), (72, None, ">72")]
    labels, counts = [], []
    for lo, hi, label in edges:
        labels.append(label)
        counts.append(sum(1 for h in hours if (lo is None or h >= lo) and (hi is None or h < hi)))
    return labels, counts


def render_report(summary: dict[str, Any], episodes) -> str:
    """The report as one HTML string."""
    rows = episodes.to_pylist() if hasattr(episodes, "to_pylist") else list(episodes)
    threshold = float(summary["parameters"]["wbc_threshold"])
    years = Counter(r["start_ts"].year for r in rows if r["start_ts"] is not None)
    year_labels = [str(y) for y in sorted(years)]
    charts = [bar_chart_svg(year_labels, [years[int(y)] for y in year_labels], title="Episodes per year",
                            x_label="year of the first extreme count", y_label="episodes")]
    labels, counts = _peak_bins([r["peak_wbc_10e9_per_l"] for r in rows], threshold)
    charts.append(bar_chart_svg(labels, counts, title="Peak WBC per episode", x_label="peak WBC (x10^9/L)",
                                y_label="episodes"))
    if summary.get("cytoreduction_data"):
        delays = [r["hours_to_cytoreduction"] for r in rows if r["hours_to_cytoreduction"] is not None]
        labels, counts = _delay_bins(delays)
        charts.append(bar_chart_svg(labels, counts, title="Time from first extreme count to cytoreduction",
                                    x_label="hours (hydroxyurea, chemotherapy or leukapheresis)",
                                    y_label="episodes"))
        none = sum(1 for r in rows if r["hours_to_cytoreduction"] is None)
        charts.append(f'<p class="note">{none} episode(s) with no recorded cytoreduction from the day of the first '
                      'extreme count on.</p>')
    else:
        charts.append('<p class="note">No drug or procedure data: time to cytoreduction not assessed.</p>')
    overview = [("rows read", summary["rows_read"]), ("rows screened (WBC, blasts, chemistry)", summary["rows_screened"]),
                ("rows used", summary["rows_used"]), ("persons with screened labs", summary["persons"]),
                ("persons with episodes", summary["persons_with_episodes"]), ("episodes", summary["episodes"]),
                ("episodes meeting TLS laboratory criteria", summary["episodes_with_tls_laboratory"]),
                ("engine", summary["engine"]), ("seconds", summary["seconds"]),
                ("ruleset version", summary["ruleset_version"]), ("leukos version", summary["leukos_version"])]
    excl = [(k, v) for k, v in summary["excluded"].items() if v]
    unknown = [(u["analyte"], u["unit"], u["rows"], u.get("why") or "") for u in summary["unknown_units"]]
    params = [(k, v) for k, v in summary["parameters"].items()]
    warn = "".join(f'<li class="warn">{html.escape(w)}</li>' for w in summary.get("warnings", []))
    unverified = ", ".join(summary.get("unverified_parameters", [])) or "none"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>leukos screening report</title>
<style>{_CSS}</style></head><body>
<h1>Hyperleukocytosis screening</h1>
<p class="note">Decision support for audit and research: it finds laboratory episodes of WBC above
{threshold:g} x10^9/L; it does not diagnose, and it is not a medical device.</p>
<h2>Overview</h2>{_table(overview, ("", "value"))}
<h2>Charts</h2>{''.join(charts)}
<h2>Excluded rows</h2>{_table(excl, ("reason", "rows")) if excl else '<p>None.</p>'}
<h2>Units that could not be converted</h2>{_table(unknown, ("analyte", "unit", "rows", "why")) if unknown else '<p>None.</p>'}
<h2>Warnings</h2><ul>{warn or '<li>None.</li>'}</ul>
<h2>Parameters</h2>{_table(params, ("parameter", "value"))}
<p class="note">Parameters with status other than verified: {html.escape(unverified)}.
Citations: {html.escape(', '.join(summary.get('citations', [])))}.</p>
</body></html>
"""


def write_report(path: str | Path, summary: dict[str, Any], episodes) -> Path:
    path = Path(path)
    path.write_text(render_report(summary, episodes), "utf-8")
    return path
