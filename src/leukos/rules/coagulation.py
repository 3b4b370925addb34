"""DIC: the ISTH overt-DIC score (Taylor 2001; table via ASH-SAP), with the fibrin-marker
categories as assay settings (multiples of the D-dimer assay's upper limit of normal)."""

from __future__ import annotations

from typing import Any

from leukos.domain.assessment import DicResult
from leukos.domain.case import Case
from leukos.knowledge import KnowledgeBase
from leukos.rules._common import Gaps, lab_working, param_working

__all__ = ["assess_dic"]


def _rule_texts(kb: KnowledgeBase) -> tuple[dict[str, str], dict[str, int]]:
    """Each item's rule in words and its maximum points: functions of the knowledge alone (once per kb)."""
    def build(kb: KnowledgeBase) -> tuple[dict[str, str], dict[str, int]]:
        pts = kb.table("dic")["points"]
        v = {k: kb.value(f"dic.{k}") for k in (
            "platelets_gt_0", "platelets_lt_2", "d_dimer_moderate_uln_multiple", "d_dimer_strong_uln_multiple",
            "pt_prolongation_1", "pt_prolongation_2", "fibrinogen_max_1", "overt_min_score")}
        p100, p50 = v["platelets_gt_0"], v["platelets_lt_2"]
        mod, strong = v["d_dimer_moderate_uln_multiple"], v["d_dimer_strong_uln_multiple"]
        s1, s2 = v["pt_prolongation_1"], v["pt_prolongation_2"]
        texts = {
            "platelets": f"> {p100}: {pts['platelets'][0]}; {p50}-{p100}: {pts['platelets'][1]}; < {p50}: "
                         f"{pts['platelets'][2]}",
            "fibrin_marker": f"< {mod} x ULN: {pts['fibrin_marker'][0]}; {mod}-{strong} x ULN: "
                             f"{pts['fibrin_marker'][1]} (moderate); > {strong} x ULN: {pts['fibrin_marker'][2]} (strong)",
            "pt": f"prolongation < {s1} s: {pts['pt_prolongation'][0]}; {s1}-{s2} s: {pts['pt_prolongation'][1]}; "
                  f"> {s2} s: {pts['pt_prolongation'][2]}",
            "fibrinogen": f"<= {v['fibrinogen_max_1']} g/L: {pts['fibrinogen'][1]}",
            "total": f"total >= {v['overt_min_score']}: compatible with overt DIC",
        }
        return texts, {k: max(pts[k]) for k in ("platelets", "fibrin_marker", "pt_prolongation", "fibrinogen")}
    return kb.derived("dic.rule_texts", build)


def assess_dic(case: Case, gaps: Gaps) -> DicResult:
    items: dict[str, int | None] = {}
    working: dict[str, Any] = {}
    notes: list[str] = []
    pts = gaps.kb.table("dic")["points"]  # points per category of each item (ISTH table)
    rules, max_points = _rule_texts(gaps.kb)

    plt = case.lab("platelets")
    p100, p50 = gaps.p("dic.platelets_gt_0"), gaps.p("dic.platelets_lt_2")
    if plt is None:
        items["platelets"] = None
        gaps.need("platelets")
    else:
        v = plt.value
        items["platelets"] = pts["platelets"][0 if v > p100.value else (1 if v >= p50.value else 2)]
    working["platelets"] = {"value": lab_working(plt, case), "rule": rules["platelets"],
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
    working["fibrin_marker"] = {"value": lab_working(dd, case), "uln_mg_per_l": uln,
                                "rule": rules["fibrin_marker"],
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
    working["pt"] = {"value": lab_working(pt, case), "control_s": control,
                     "rule": rules["pt"]}

    fib = case.lab("fibrinogen")
    f1 = gaps.p("dic.fibrinogen_max_1")
    if fib is None:
        items["fibrinogen"] = None
        gaps.need("fibrinogen")
    else:
        items["fibrinogen"] = pts["fibrinogen"][1 if fib.value <= f1.value else 0]
    working["fibrinogen"] = {"value": lab_working(fib, case), "rule": rules["fibrinogen"], "threshold": param_working(f1)}

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
    working["total_rule"] = rules["total"]
    return DicResult(
        isth_score=known if complete else None,
        score_range=(known, possible),
        overt=overt,
        items=items,
        notes=tuple(notes),
        working=working,
        citations=("taylor2001_isth", "ashsap_isth_table", "pmc8607173"),
    )
