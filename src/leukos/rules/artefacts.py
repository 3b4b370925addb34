"""Laboratory artefacts of extreme leukocytosis: which values may be spurious
and what to do about each. Messages and actions are data (knowledge/data/rules/artefacts.toml)."""

from __future__ import annotations

from typing import Any

from leukos.domain.assessment import Artefact, HyperleukocytosisResult
from leukos.domain.case import Case, Diagnosis
from leukos.rules._common import Gaps, above, below, fmt, lab_working
from leukos.rules.definitions import CaseInputs, compile_predicate, pseudohyperkalaemia_possible

__all__ = ["assess_artefacts"]

ACUTE = (Diagnosis.AML, Diagnosis.APL, Diagnosis.ALL, Diagnosis.CML_BP)


def _make(gaps: Gaps, code: str, working: dict[str, Any], **fmtargs: Any) -> Artefact:
    m = gaps.kb.table("artefacts")["messages"][code]
    return Artefact(code=code, lab=m["lab"], message=m["message"].format(**fmtargs), action=m["action"],
                    working=working, citations=tuple(m["citations"]))


def assess_artefacts(case: Case, hl: HyperleukocytosisResult, gaps: Gaps) -> tuple[Artefact, ...]:
    out: list[Artefact] = []
    extreme = hl.present is True
    k, kp = case.lab("potassium"), case.lab("potassium_plasma")

    # Potassium: a paired serum/plasma measurement decides; otherwise flag a high value.
    if k is not None and kp is not None:
        gap = gaps.p("artefacts.pseudohyperkalemia_gap")
        diff = k.value - kp.value
        w = {"serum": lab_working(k, case), "plasma_or_whole_blood": lab_working(kp, case), "difference_mmol_per_l": round(diff, 2),
             "rule": f"serum - plasma > {gap.value} mmol/L", "source": list(gap.citations)}
        if diff > gap.value:
            out.append(_make(gaps, "PSEUDOHYPERKALEMIA_CONFIRMED", w, gap=gap.value))
        elif diff < 0:
            out.append(_make(gaps, "REVERSE_PSEUDOHYPERKALEMIA", w))
    elif k is not None and extreme:
        thr = gaps.p("tumour_lysis.potassium_min")
        high = gaps.kb.derived("artefacts.pseudohyperkalaemia_possible",
                               lambda kb: compile_predicate(pseudohyperkalaemia_possible(), kb))(CaseInputs(case, gaps.kb))
        if high:
            w = {"potassium": lab_working(k, case), "wbc_10e9_per_l": hl.wbc_10e9_per_l,
                 "rule": f"hyperleukocytosis and K >= {thr.value} mmol/L (TLS threshold) or above the laboratory's range"}
            out.append(_make(gaps, "PSEUDOHYPERKALEMIA_POSSIBLE", w))
        low = below(k, k.reference_low, inclusive=False) if k.reference_low is not None else None
        if low:
            out.append(_make(gaps, "PSEUDOHYPOKALEMIA_POSSIBLE",
                             {"potassium": lab_working(k, case), "rule": "hyperleukocytosis and K below the laboratory's range"}))

    phos = case.lab("phosphate")
    if extreme and phos is not None and phos.reference_low is not None and phos.value < phos.reference_low:
        out.append(_make(gaps, "PSEUDOHYPOPHOSPHATEMIA_POSSIBLE",
                         {"phosphate": lab_working(phos, case), "rule": "hyperleukocytosis and phosphate below the laboratory's range"}))

    # Oxygen: PaO2 low with a normal SpO2 is leukocyte larceny until shown otherwise.
    pao2, spo2 = case.lab("pao2"), case.lab("spo2")
    if extreme and pao2 is not None:
        p_max = gaps.p("artefacts.pseudohypoxemia_pao2_max")
        s_min = gaps.p("artefacts.pseudohypoxemia_spo2_min")
        low_pao2 = below(pao2, float(p_max.value), inclusive=False)
        if low_pao2:
            w = {"pao2": lab_working(pao2, case), "spo2": lab_working(spo2, case),
                 "rule": f"PaO2 < {p_max.value} mmHg with SpO2 > {s_min.value} %", "source": list(p_max.citations)}
            if spo2 is None:
                gaps.need("spo2")
                out.append(_make(gaps, "PAO2_UNCONFIRMED", w))
            elif above(spo2, float(s_min.value), inclusive=False):
                out.append(_make(gaps, "PSEUDOHYPOXEMIA_POSSIBLE", w, pao2=fmt(pao2.value), spo2=fmt(spo2.value)))

    # Counts: blast fragments as platelets; turbidity raising Hb/MCV.
    plt = case.lab("platelets")
    blasts = case.lab("blasts_pct")
    if extreme and plt is not None and ((blasts.value if blasts else 0) > 0 or case.diagnosis in ACUTE):
        out.append(_make(gaps, "SPURIOUS_PLATELETS_POSSIBLE",
                         {"platelets": lab_working(plt, case), "blasts_pct": lab_working(blasts, case),
                          "rule": "hyperleukocytosis with blasts: impedance counts include blast fragments"}))
    rbc_thr = gaps.p("artefacts.spurious_rbc_indices_wbc")
    if case.lab("hemoglobin") is not None or case.lab("hematocrit") is not None:
        if above(case.lab("wbc"), float(rbc_thr.value), inclusive=False):
            out.append(_make(gaps, "SPURIOUS_RBC_INDICES_POSSIBLE",
                             {"wbc": lab_working(case.lab("wbc"), case), "hemoglobin": lab_working(case.lab("hemoglobin"), case),
                              "hematocrit": lab_working(case.lab("hematocrit"), case),
                              "rule": f"WBC > {rbc_thr.value} x10^9/L"}, wbc_min=rbc_thr.value))

    # Uric acid after rasburicase degrades in the tube.
    if case.lab("uric_acid") is not None and "rasburicase" in (case.findings.treatment or ()):
        out.append(_make(gaps, "URIC_ACID_AFTER_RASBURICASE",
                         {"uric_acid": lab_working(case.lab("uric_acid"), case), "rule": "rasburicase given"}))
    return tuple(out)
