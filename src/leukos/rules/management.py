"""Management: the APL gate, the leukapheresis indication (ASFA), urgency and recommendations.

Safety first: leukapheresis is never indicated when APL is known or suspected (Sanz 2009,
ELN rec. 1.8: avoid, risk of fatal haemorrhage). Missing data is reported, never assumed
normal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leukos.domain.assessment import (
    Artefact,
    DicResult,
    HyperleukocytosisResult,
    LeukapheresisResult,
    LeukostasisResult,
    Recommendation,
    TlsResult,
)
from leukos.domain.case import Case, Diagnosis, GeneticResult, Immunophenotype
from leukos.rules._common import Gaps, above, fmt, param_working

__all__ = ["AplStatus", "apl_status", "assess_leukapheresis", "recommendations", "urgency"]

ASFA_CATEGORY = {  # edition -> (symptomatic leukostasis, prophylaxis); clinical.md §3a
    "2016": ("I", "III"),
    "2019": ("II", "III"),
    "2023": ("II", "III"),
}


@dataclass(frozen=True)
class AplStatus:
    known: bool
    suspected: bool
    reasons: tuple[str, ...]
    coagulopathy: bool | None


def _coagulopathy(case: Case, dic: DicResult, gaps: Gaps) -> tuple[bool | None, list[str]]:
    fib_max = gaps.p("management.coagulopathy_fibrinogen_max")
    inr_min = gaps.p("management.coagulopathy_inr_min")
    why: list[str] = []
    fib = case.lab("fibrinogen")
    inr = case.lab("inr")
    low_fib = None if fib is None else fib.value <= fib_max.value
    high_inr = above(inr, float(inr_min.value), inclusive=False)
    if dic.overt:
        why.append("overt DIC (ISTH >= 5)")
    if low_fib:
        why.append(f"fibrinogen {fmt(fib.value)} g/L <= {fib_max.value}")
    if high_inr:
        why.append(f"INR {fmt(inr.value)} > {inr_min.value}")
    if why:
        return True, why
    if dic.overt is False and low_fib is False and high_inr is False:
        return False, why
    return None, why


def apl_status(case: Case, dic: DicResult, gaps: Gaps) -> AplStatus:
    """Is APL known or suspected? (known APL, PML::RARA positive, promyelocytic phenotype, or a
    promyelocyte-rich smear with coagulopathy; optionally untyped AML with coagulopathy)."""
    f = case.findings
    reasons: list[str] = []
    known = False
    if f.known_diagnosis is Diagnosis.APL:
        known = True
        reasons.append("known APL")
    if f.gene("pml_rara") is GeneticResult.POSITIVE:
        known = True
        reasons.append("PML::RARA positive")
    coag, coag_why = _coagulopathy(case, dic, gaps)
    suspected = known
    if f.immunophenotype is Immunophenotype.PROMYELOCYTIC:
        suspected = True
        reasons.append("promyelocytic immunophenotype")
    if f.smear.abnormal_promyelocytes and coag:
        suspected = True
        reasons.append("promyelocyte-rich smear with coagulopathy (" + ", ".join(coag_why) + ")")
    if not suspected and coag and f.gene("pml_rara") is GeneticResult.UNKNOWN and f.immunophenotype is None \
            and f.known_diagnosis in (Diagnosis.AML, None) and (case.value("blasts_pct") or 0) > 0:
        mode = gaps.v("management.apl_gate_unresolved_coagulopathy")
        text = ("acute myeloid leukaemia with coagulopathy (" + ", ".join(coag_why)
                + ") and PML::RARA not known: APL not excluded")
        if mode == "suspect":
            suspected = True
            reasons.append(text)
        else:
            gaps.warn(text[0].upper() + text[1:] + ": confirm PML::RARA before leukapheresis.")
    if f.smear.abnormal_promyelocytes and coag is None and not suspected:
        gaps.warn("Promyelocyte-rich smear with coagulation not fully known: check fibrinogen, INR, D-dimer now (APL gate).")
    return AplStatus(known=known, suspected=suspected, reasons=tuple(reasons), coagulopathy=coag)


def assess_leukapheresis(case: Case, hl: HyperleukocytosisResult, ls: LeukostasisResult, apl: AplStatus,
                         gaps: Gaps) -> LeukapheresisResult:
    edition = gaps.p("management.asfa_edition")
    min_grade = gaps.p("management.symptomatic_min_grade")
    sym_cat, pro_cat = ASFA_CATEGORY[str(edition.value)]
    citations = [{"2016": "asfa2016", "2019": "asfa2019", "2023": "asfa2023"}[str(edition.value)],
                 "pathologyoutlines_leukapheresis"]
    working: dict[str, Any] = {"asfa_edition": param_working(edition), "symptomatic_min_grade": param_working(min_grade),
                               "hyperleukocytosis_present": hl.present, "leukostasis_grade": ls.grade}
    notes: list[str] = []
    unverified = True  # relies on the leukostasis grade (Novotny table unverified); 2019/2023 categories unverified too
    if apl.known or apl.suspected:
        citations += ["sanz2009"]
        return LeukapheresisResult(
            indicated=False, asfa_category=None, urgency="emergent",
            contraindications=("APL " + ("known" if apl.known else "suspected") + ": " + "; ".join(apl.reasons)
                               + ". Leukapheresis may precipitate fatal haemorrhage (ELN: avoid).",),
            apl_suspected=True, notes=("Start ATRA now; treat the coagulopathy.",), unverified=False,
            working=working | {"apl_reasons": list(apl.reasons)}, citations=tuple(citations))
    if hl.present is False:
        return LeukapheresisResult(indicated=False, asfa_category=None, urgency="routine",
                                   notes=("No hyperleukocytosis.",), working=working, citations=tuple(citations))
    if hl.present is None:
        return LeukapheresisResult(indicated=None, asfa_category=None, urgency="routine",
                                   notes=("Not assessed: the white cell count is missing or censored.",),
                                   working=working, citations=tuple(citations))
    if ls.grade is None:
        notes.append("Not decided: leukostasis could not be graded (record symptoms, or give symptoms: [] if none).")
        return LeukapheresisResult(indicated=None, asfa_category=None, urgency="urgent", notes=tuple(notes),
                                   unverified=unverified, working=working, citations=tuple(citations))
    low_bv, high_bv = gaps.p("management.volume_blood_volumes_low"), gaps.p("management.volume_blood_volumes_high")
    red_lo, red_hi = gaps.p("management.expected_reduction_low_pct"), gaps.p("management.expected_reduction_high_pct")
    if ls.grade >= int(min_grade.value):
        notes.append(f"Symptomatic hyperleukocytosis (leukostasis grade {ls.grade}): ASFA {edition.value} category {sym_cat}.")
        notes.append(f"Process {low_bv.value}-{high_bv.value} total blood volumes; expect a {red_lo.value}-{red_hi.value} % fall per "
                     "procedure with rebound: repeat daily until symptoms resolve, alongside cytoreduction. "
                     "Use `leukos plan` for volumes, citrate and the expected count.")
        notes.append("Evidence: meta-analyses show no early-mortality benefit of leukapheresis overall (Bewersdorf 2020; Oberoi 2014).")
        citations += ["clinicalpub_leukapheresis", "bewersdorf2020", "oberoi2014"]
        if case.findings.known_diagnosis is Diagnosis.CLL:
            notes.append("CLL: leukostasis is very rare even at extreme counts: confirm symptoms are due to it.")
        return LeukapheresisResult(indicated=True, asfa_category=sym_cat, urgency="emergent", notes=tuple(notes),
                                   unverified=unverified, working=working, citations=tuple(citations))
    notes.append(f"Asymptomatic (leukostasis grade {ls.grade} < {min_grade.value}): prophylactic leukapheresis is ASFA "
                 f"{edition.value} category {pro_cat} (individualised decision); not routinely recommended — no early-mortality "
                 "benefit shown (Oberoi 2014; Bewersdorf 2020). Start cytoreduction.")
    citations += ["oberoi2014", "bewersdorf2020"]
    return LeukapheresisResult(indicated=False, asfa_category=pro_cat, urgency="urgent", notes=tuple(notes),
                               unverified=unverified, working=working, citations=tuple(citations))


def urgency(hl: HyperleukocytosisResult, ls: LeukostasisResult, tls: TlsResult, apl: AplStatus, gaps: Gaps) -> str:
    min_grade = int(gaps.v("management.symptomatic_min_grade"))
    if apl.suspected or (ls.grade is not None and ls.grade >= min_grade and hl.present) or tls.clinical:
        return "emergent"
    if hl.present or tls.laboratory:
        return "urgent"
    return "routine"


def recommendations(case: Case, hl: HyperleukocytosisResult, ls: LeukostasisResult, tls: TlsResult,
                    dic: DicResult, artefacts: tuple[Artefact, ...], lk: LeukapheresisResult, apl: AplStatus,
                    gaps: Gaps) -> tuple[Recommendation, ...]:
    kb = gaps.kb
    recs: list[Recommendation] = []
    if apl.suspected:
        recs.append(Recommendation("START_ATRA", 1, "APL " + ("known" if apl.known else "suspected")
                                   + ": start ATRA immediately, without waiting for genetic confirmation; send PML::RARA.",
                                   ("sanz2009", "sanz2019")))
        recs.append(Recommendation("NO_LEUKAPHERESIS_APL", 1, "Do not perform leukapheresis: in APL it may precipitate fatal haemorrhage.",
                                   ("sanz2009",)))
        v = {k: gaps.v(f"management.{k}") for k in ("apl_fibrinogen_target_low", "apl_fibrinogen_target_high",
                                                      "apl_platelet_target_low", "apl_platelet_target_high",
                                                      "coagulopathy_inr_min")}
        recs.append(Recommendation(
            "APL_COAGULOPATHY_SUPPORT", 1,
            f"Support coagulation: fibrinogen > {v['apl_fibrinogen_target_low']}-{v['apl_fibrinogen_target_high']} g/L, "
            f"platelets > {v['apl_platelet_target_low']}-{v['apl_platelet_target_high']} x10^9/L, INR < {v['coagulopathy_inr_min']}; "
            "monitor at least daily. With hyperleukocytosis start chemotherapy without waiting for the molecular result; "
            "prophylactic steroids may reduce differentiation syndrome.", ("sanz2019", "sanz2009")))
    if hl.present:
        dx = case.diagnosis
        hu_lo, hu_hi = gaps.v("management.hydroxyurea_historic_mg_per_kg_low"), gaps.v("management.hydroxyurea_historic_mg_per_kg_high")
        if dx is Diagnosis.CLL:
            text = ("CLL: leukostasis is very rare even at extreme counts; the count alone is not an emergency. "
                    "Decide treatment on the usual CLL indications.")
            recs.append(Recommendation("CLL_COUNT_CONTEXT", 2, text, ("hallek_iwcll",), unverified=False))
        elif dx is Diagnosis.ALL and not above(case.lab("wbc"), float(gaps.v("hyperleukocytosis.all_threshold")), inclusive=False) \
                and not (ls.grade and ls.grade >= 2):
            recs.append(Recommendation("START_INDUCTION", 2, "ALL: start induction promptly; emergency cytoreduction is suggested only above "
                                       f"{gaps.v('hyperleukocytosis.all_threshold')} x10^9/L or with symptoms.", ("lowe2005",)))
        elif dx in (Diagnosis.CML_CP, Diagnosis.CML):
            recs.append(Recommendation(
                "CML_CYTOREDUCTION", 1,
                "CML: cytoreduce with hydroxyurea while BCR::ABL1 is confirmed (commonly quoted bridging dose 40 mg/kg/day, "
                "unverified); induction chemotherapy is not indicated in chronic phase. Rapid BCR::ABL1 screening is part "
                "of the hyperleukocytosis work-up.", ("rollig2015",), unverified=True))
        elif not apl.suspected:  # APL: chemotherapy is part of the APL recommendations above
            recs.append(Recommendation(
                "START_CYTOREDUCTION", 1,
                "Start cytoreduction now: definitive induction chemotherapy promptly (it takes precedence over hydroxyurea "
                f"and leukapheresis). If induction must wait, hydroxyurea {hu_lo}-{hu_hi} mg/kg/day (historic regimen; "
                "~50 % fall after one dose).", ("rollig2015", "oberoi2014", "hu_1977", "hu_casablanca")))
        recs.append(Recommendation(
            "DEFER_RBC_TRANSFUSION", 2,
            "Defer red-cell transfusion until the count is reduced (it raises blood viscosity); if essential, transfuse "
            "cautiously. (No verified haemoglobin trigger.)", ("blood_rev_transfusion",)))
        if not apl.suspected:
            lo, hi, bl = (gaps.v(f"management.platelet_threshold_{k}") for k in ("non_apl_low", "non_apl_high", "bleeding"))
            recs.append(Recommendation(
                "PLATELET_SUPPORT", 2,
                f"Platelet transfusion does not raise viscosity meaningfully; commonly kept >= {lo}-{hi} x10^9/L "
                f"(>= {bl} with bleeding or DIC). Unverified threshold: use local policy.", ("rollig2015",), unverified=True))
    if lk.indicated:
        recs.append(Recommendation("CONSIDER_LEUKAPHERESIS", 1,
                                   f"Consider leukapheresis (ASFA category {lk.asfa_category}) with cytoreduction: "
                                   "plan it with `leukos plan`.", lk.citations, unverified=lk.unverified))
    # Tumour lysis
    proph = kb.table("tumour_lysis")["prophylaxis"]
    if tls.risk is not None:
        pr = 1 if tls.risk == "high" or tls.laboratory else 2
        recs.append(Recommendation(f"TLS_PROPHYLAXIS_{tls.risk.upper()}", pr,
                                   f"TLS risk {tls.risk} (Cairo 2010): {proph[tls.risk]}", tuple(proph["prophylaxis_citations"])))
    if tls.laboratory:
        recs.append(Recommendation("TREAT_TLS", 1, "Laboratory TLS present"
                                   + (" with clinical TLS" if tls.clinical else "")
                                   + ": hydration, urate lowering (rasburicase unless G6PD deficient), electrolyte "
                                     "monitoring; involve nephrology early.", ("cairo_bishop2004", "rasburicase_label")))
    missing_tls = [n for n in ("uric_acid", "potassium", "phosphate", "calcium", "creatinine", "ldh") if case.lab(n) is None]
    if missing_tls and (hl.present or case.diagnosis):
        recs.append(Recommendation("MEASURE_TLS_LABS", 2, "Measure " + ", ".join(missing_tls)
                                   + " to assess tumour lysis.", ("cairo_bishop2004", "cairo2010")))
    if dic.overt:
        recs.append(Recommendation("DIC_MONITOR", 1, "Overt DIC: treat the cause, support with blood products as needed, and "
                                   "repeat the ISTH score daily.", ("taylor2001_isth",)))
    elif dic.overt is None and hl.present:
        recs.append(Recommendation("COMPLETE_DIC_SCREEN", 2, "Complete the coagulation screen (platelets, PT with control, "
                                   "fibrinogen, D-dimer with the assay's ULN) to score DIC.", ("taylor2001_isth",)))
    leukocytosis = above(case.lab("wbc"), float(gaps.v("hyperleukocytosis.leukocytosis_threshold")), inclusive=False)
    if gaps.missing and leukocytosis is not False:
        recs.append(Recommendation("MISSING_DATA", 3, "Not recorded, so not assessed: " + ", ".join(gaps.missing) + ".", ()))
    return tuple(sorted(recs, key=lambda r: r.priority))
