"""Charts of a simulated course: WBC with bands, ionised calcium with the symptom threshold, platelets.

PNG with matplotlib (Agg backend), HTML with Plotly with its JavaScript inlined (no CDN).
Both come from the optional extra ``plot``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from leukos.errors import ErrorDetail, LeukosUserError


def _bands(x):
    return np.percentile(x, [5, 50, 95], axis=0)


def write_plot(tr, plan, kb, path: Path) -> None:
    thr = kb.value("apheresis.ica_symptom_threshold_mmol_per_l")
    h = tr.times_min / 60.0
    panels = [("WBC (×10⁹/L)", tr.wbc_10e9_per_l, None),
              ("Ionised calcium (mmol/L)", tr.ionized_calcium_mmol_per_l, thr)]
    if tr.platelets_10e9_per_l is not None:
        panels.append(("Platelets (×10⁹/L)", tr.platelets_10e9_per_l, None))
    title = (f"leukos simulation: {plan.settings.blood_volumes:.2f} TBV, {plan.settings.duration_min:.0f} min, "
             f"{tr.n_draws} draws (median, 5-95 % band)")
    if plan.contraindications:
        title = "NOT RECOMMENDED (" + plan.contraindications[0][:60] + ") - " + title
    try:
        if path.suffix.lower() == ".png":
            _png(path, h, panels, title, tr)
        else:
            _html(path, h, panels, title, tr)
    except ImportError:
        raise LeukosUserError(ErrorDetail("--plot", str(path), "the optional plotting packages",
                                          'install them: pip install "leukos[plot]"')) from None
    except OSError as exc:
        raise LeukosUserError(ErrorDetail("--plot", str(path), "a writable file path", str(exc))) from None


def _png(path, h, panels, title, tr):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)), sharex=True)
    for ax, (label, x, thr) in zip(axes, panels, strict=True):
        lo, med, hi = _bands(x)
        ax.fill_between(h, lo, hi, alpha=0.25, color="tab:blue", label="5-95 %")
        ax.plot(h, med, color="tab:blue", label="median")
        if thr is not None:
            ax.axhline(thr, color="tab:red", ls="--", label=f"symptom threshold {thr}")
            ax.set_ylim(bottom=min(float(lo.min()), thr) - 0.05)
        for s, e in zip(tr.session_starts_min, tr.session_ends_min, strict=True):
            ax.axvspan(s / 60, e / 60, color="0.9", zorder=0)
        ax.set_ylabel(label)
        ax.legend(loc="best", fontsize=7)
    axes[-1].set_xlabel("hours from the start (grey: procedure)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _html(path, h, panels, title, tr):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, subplot_titles=[p[0] for p in panels])
    for i, (label, x, thr) in enumerate(panels, start=1):
        lo, med, hi = _bands(x)
        fig.add_trace(go.Scatter(x=h, y=hi, line={"width": 0}, showlegend=False, hoverinfo="skip"), row=i, col=1)
        fig.add_trace(go.Scatter(x=h, y=lo, fill="tonexty", line={"width": 0}, name=f"{label} 5-95 %"), row=i, col=1)
        fig.add_trace(go.Scatter(x=h, y=med, name=f"{label} median"), row=i, col=1)
        if thr is not None:
            fig.add_hline(y=thr, line_dash="dash", line_color="red", row=i, col=1)
    fig.update_layout(title=title, height=300 * len(panels))
    fig.update_xaxes(title_text="hours from the start", row=len(panels), col=1)
    path.write_text(fig.to_html(include_plotlyjs=True, full_html=True), "utf-8")
