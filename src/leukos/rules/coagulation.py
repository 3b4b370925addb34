"""DIC: the ISTH overt-DIC score (Taylor 2001; table via ASH-SAP), with the fibrin-marker
categories as assay settings (multiples of the D-dimer assay's upper limit of normal)."""

from __future__ import annotations

from typing import Any

from leukos.domain.assessment import DicResult
from leukos.domain.case import Case
from leukos.rules._common import Gaps, lab_working, param_working

__all__ = ["assess_dic"]


def assess_dic(case: Case, gaps: Gaps) -> DicResult:
    items: dict[str, int | None] = {}
    working: dict[str, Any] = {}
    notes: list[str] = []
    pts = gaps.kb.table("dic")["points"]  # points per category of each item (ISTH table)
    max_points = {k: max(pts[k]) for k in ("platelets", "fibrin_marker", "pt_prolongation", "fibrinogen")}

    plt = case.lab("platelets")
    p100, p50 = gaps.p("dic.platelets_gt_0"), gaps.p("dic.platelets_lt_2")
    if plt is None:
        items["platelets"] = None
        gaps.need("platelets")
    else:
        v = plt.value
        items["platelets"] = pts["platelets"][0 if v > p100.value else (1 if v >= p50.value else 2)]
    working["platelets"] = {"value": lab_working(plt), "rule": f"> {p100.value}: {pts['platelets'][0]}; {p50.value}-{p100.value}: {pts['platelets'][1]}; < {p50.value}: {pts['platelets'][2]}",
                            "thresholds": [param_working(p100), param_working(p50)]}

    dd = case.lab("d_dimer")
    mod, strong = gaps.p("dic.d_dimer_moderate_uln_multiple"), gaps.p("dic.d_dimer_strong_uln_multiple")
    cfg_uln = gaps.p("dic.d_dimer_uln")
    uln = (dd.reference_high if dd is not None and dd.reference_high else None) or (cfg_uln.value or None)
    if dd is None:
        items["fibrin_marker"] = None
        gaps.need("d_dimer")
    elif not uln:
        items["fibrin_marker"] = None
        gaps.need("labs.d_dimer.reference_high")
        notes.append("D-dimer given without the assay's upper limit of normal: the fibrin-marker item was not scored "
                     "(give reference_high on d_dimer, or configure dic.d_dimer_uln).")
    else:
        ratio = dd.value / float(uln)
        items["fibrin_marker"] = pts["fibrin_marker"][0 if ratio < mod.value else (1 if ratio <= strong.value else 2)]
        working["d_dimer_x_uln"] = round(ratio, 2)
    working["fibrin_marker"] = {"value": lab_working(dd), "uln_mg_per_l": uln,
                                "rule": f"< {mod.value} x ULN: {pts['fibrin_marker'][0]}; {mod.value}-{strong.value} x ULN: {pts['fibrin_marker'][1]} "
                                        f"(moderate); > {strong.value} x ULN: {pts['fibrin_marker'][2]} (strong)",
                                "thresholds": [param_working(mod), param_working(strong)]}

    pt = case.lab("pt_seconds")
    ctl = case.lab("pt_control_seconds")
    control = ctl.value if ctl is not None else (pt.reference_high if pt is not None and pt.reference_high else None)
    s1, s2 = gaps.p("dic.pt_prolongation_1"), gaps.p("dic.pt_prolongation_2")
    if pt is None:
        items["pt_prolongation"] = None
        gaps.need("pt_seconds")
    elif control is None:
        items["pt_prolongation"] = None
        gaps.need("pt_control_seconds")
    else:
        prolong = pt.value - control
        items["pt_prolongation"] = pts["pt_prolongation"][0 if prolong < s1.value else (1 if prolong <= s2.value else 2)]
        working["pt_prolongation_s"] = round(prolong, 2)
    working["pt"] = {"value": lab_working(pt), "control_s": control,
                     "rule": f"prolongation < {s1.value} s: {pts['pt_prolongation'][0]}; {s1.value}-{s2.value} s: "
                             f"{pts['pt_prolongation'][1]}; > {s2.value} s: {pts['pt_prolongation'][2]}"}

    fib = case.lab("fibrinogen")
    f1 = gaps.p("dic.fibrinogen_max_1")
    if fib is None:
        items["fibrinogen"] = None
        gaps.need("fibrinogen")
    else:
        items["fibrinogen"] = pts["fibrinogen"][1 if fib.value <= f1.value else 0]
    working["fibrinogen"] = {"value": lab_working(fib), "rule": f"<= {f1.value} g/L: {pts['fibrinogen'][1]}", "threshold": param_working(f1)}

    known = sum(v for v in items.values() if v is not None)
    possible = known + sum(max_points[k] for k, v in items.items() if v is None)
    overt_min = gaps.p("dic.overt_min_score")
    overt: bool | None
    if known >= overt_min.value:
        overt = True
    elif possible < overt_min.value:
        overt = False
    else:
        overt = None
    complete = all(v is not None for v in items.values())
    if not complete:
        missing = [k for k, v in items.items() if v is None]
        gaps.cannot("ISTH DIC score incomplete: " + ", ".join(missing) + f" (score {known}-{possible})")
    if overt is True:
        notes.append("Compatible with overt DIC: repeat the score daily.")
    elif overt is False:
        notes.append("Not overt DIC (suggestive of non-overt DIC if raised): repeat in 1-2 days.")
    notes.append("Use only with an underlying disorder associated with DIC (acute leukaemia qualifies). "
                 "In APL/AML the score may under-call hyperfibrinolysis.")
    working["total_rule"] = f"total >= {overt_min.value}: compatible with overt DIC"
    return DicResult(
        isth_score=known if complete else None,
        score_range=(known, possible),
        overt=overt,
        items=items,
        notes=tuple(notes),
        working=working,
        citations=("taylor2001_isth", "ashsap_isth_table", "pmc8607173"),
    )
