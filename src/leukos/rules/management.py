"""Management: the APL gate, the leukapheresis indication (ASFA), urgency and recommendations.

Safety first: leukapheresis is never indicated when APL is known or suspected (Sanz 2009,
ELN rec. 1.8: avoid, risk of fatal haemorrhage). Missing data is reported, never assumed
normal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from leukos.domain.assessment import (
    Artefact,
    DicResult,
    DifferentialEntry,
    HyperleukocytosisResult,
    LeukapheresisResult,
    LeukostasisResult,
    RankedDiagnosis,
    Recommendation,
    TlsResult,
)
from leukos.domain.case import Case, Diagnosis, GeneticResult, Immunophenotype
from leukos.rules._common import Gaps, above, fmt, param_working

__all__ = ["AplStatus", "WorkingDiagnosis", "apl_status", "assess_leukapheresis", "recommendations", "urgency",
           "working_diagnosis"]

@dataclass(frozen=True)
class WorkingDiagnosis:
    """The diagnosis the advice follows: the known diagnosis, else the leading one of the differential.

    ``group`` is its advice group (management.toml ``advice_groups``): acute_leukaemia,
    chronic_leukaemia, leukemoid or tissue; None when there is no diagnosis to follow.
    """

    code: str | None
    source: str | None  # known | differential | None
    likelihood: str | None
    label: str
    group: str | None

    @property
    def confirmed(self) -> bool:
        return self.source == "known"

    def describe(self) -> str:
        if self.source == "known":
            return f"known diagnosis {self.label}"
        if self.source == "differential":
            return f"leading diagnosis of the differential: {self.label} ({self.likelihood} likelihood, not confirmed)"
        return "no diagnosis"


def working_diagnosis(case: Case, differential: Sequence[DifferentialEntry | RankedDiagnosis],
                      gaps: Gaps) -> WorkingDiagnosis:
    """The known diagnosis, else the first-ranked entry of the differential when its likelihood
    reaches ``management.advice_min_likelihood``; else no diagnosis (not established)."""
    groups = gaps.kb.table("management")["advice_groups"]
    dx = case.findings.known_diagnosis
    if dx is not None:
        return WorkingDiagnosis(dx.value, "known", None, dx.value.replace("_", " "), groups.get(dx.value))
    ranked = sorted(differential, key=lambda e: e.rank)
    order = ("low", "moderate", "high")
    floor = order.index(str(gaps.v("management.advice_min_likelihood")))
    if not ranked or ranked[0].likelihood not in order or order.index(ranked[0].likelihood) < floor:
        return WorkingDiagnosis(None, None, None, "no diagnosis", None)
    top = ranked[0]
    return WorkingDiagnosis(top.code, "differential", top.likelihood, top.label or top.code, groups.get(top.code))


@dataclass(frozen=True)
class AplStatus:
    """The APL gate. ``suspected`` includes ``known``; ``unresolved`` lists why APL is not excluded
    although it is not suspected (the data that would settle it are missing): leukapheresis then
    waits for them."""

    known: bool
    suspected: bool
    reasons: tuple[str, ...]
    coagulopathy: bool | None
    unresolved: tuple[str, ...] = ()


def _coagulopathy(case: Case, dic: DicResult, gaps: Gaps) -> tuple[bool | None, list[str]]:
    fib_max = gaps.p("management.coagulopathy_fibrinogen_max")
    inr_min = gaps.p("management.coagulopathy_inr_min")
    why: list[str] = []
    fib = case.lab("fibrinogen")
    inr = case.lab("inr")
    low_fib = None if fib is None else fib.value <= fib_max.value
    high_inr = above(inr, float(inr_min.value), inclusive=False)
    if dic.overt:
        why.append(f"overt DIC (ISTH score >= {gaps.v('dic.overt_min_score')})")
    if low_fib:
        why.append(f"fibrinogen {fmt(fib.value)} g/L <= {fib_max.value}")
    if high_inr:
        why.append(f"INR {fmt(inr.value)} > {inr_min.value}")
    if why:
        return True, why
    if dic.overt is False and low_fib is False and high_inr is False:
        return False, why
    return None, why


def _acute_route(case: Case) -> bool | None:
    """Acute-leukaemia route of the gate: a known acute myeloid leukaemia, or circulating blasts or
    promyelocytes (promyelocytes count with blasts: in APL the leukaemic cells are promyelocytes).
    None when neither count is recorded: a missing count is unknown, never 0."""
    if case.findings.known_diagnosis is Diagnosis.AML:
        return True
    counts = [case.value(n) for n in ("blasts_pct", "promyelocytes_pct")]
    if any(c is not None and c > 0 for c in counts):
        return True
    if all(c is not None for c in counts):
        return False
    return None


def apl_status(case: Case, dic: DicResult, gaps: Gaps, leading: WorkingDiagnosis | None = None) -> AplStatus:
    """Is APL known, suspected, or not yet excluded?

    Known: known APL or PML::RARA positive. Suspected until PML::RARA is negative, whatever the
    coagulation tests: a promyelocytic immunophenotype or a promyelocyte-rich smear (Sanz 2009/2019:
    start ATRA on suspicion). With the setting ``apl_gate_unresolved_coagulopathy = suspect``, also
    an untyped acute myeloid picture (blasts or promyelocytes) with coagulopathy while PML::RARA is
    not known. A missing blast/promyelocyte count or missing coagulation tests leave APL not excluded
    (``unresolved``), never excluded.
    """
    f = case.findings
    reasons: list[str] = []
    unresolved: list[str] = []
    known = False
    pml = f.gene("pml_rara")
    if f.known_diagnosis is Diagnosis.APL:
        known = True
        reasons.append("known APL")
    if pml is GeneticResult.POSITIVE:
        known = True
        reasons.append("PML::RARA positive")
    coag, coag_why = _coagulopathy(case, dic, gaps)
    suspected = known
    excluded = pml is GeneticResult.NEGATIVE and not known
    morph = []
    if f.immunophenotype is Immunophenotype.PROMYELOCYTIC:
        morph.append("promyelocytic immunophenotype")
    if f.smear.abnormal_promyelocytes:
        morph.append("promyelocyte-rich smear" + (" with coagulopathy (" + ", ".join(coag_why) + ")" if coag else ""))
    if morph and excluded:
        gaps.warn("PML::RARA negative: APL not suspected despite the " + " and the ".join(morph) + ".")
    elif morph:
        suspected = True
        reasons += [m + (": APL suspected until PML::RARA is negative" if not known else "") for m in morph]
    route = _acute_route(case)
    other_phenotype = f.immunophenotype is not None and f.immunophenotype is not Immunophenotype.PROMYELOCYTIC
    if not suspected and not excluded and not other_phenotype and f.known_diagnosis in (Diagnosis.AML, None):
        if coag and route is not False:
            text = ("acute myeloid leukaemia" if route else "hyperleukocytosis with the blast and promyelocyte counts not recorded")
            text += " with coagulopathy (" + ", ".join(coag_why) + ") and PML::RARA not known: APL not excluded"
            mode = gaps.v("management.apl_gate_unresolved_coagulopathy")
            if route and mode == "suspect":
                suspected = True
                reasons.append(text)
            else:  # 'warn' only warns; missing counts leave APL not excluded in either mode
                if route is None:
                    unresolved.append(text)
                gaps.warn(text[0].upper() + text[1:] + ": review the smear and confirm PML::RARA before leukapheresis.")
            if route is None:
                gaps.need("blasts_pct")
                gaps.need("promyelocytes_pct")
        elif route is None and coag is None:
            absent = [n for n in ("blasts_pct", "promyelocytes_pct") if case.value(n) is None]
            counts = " and ".join({"blasts_pct": "blast count", "promyelocytes_pct": "promyelocyte count"}[n]
                                  for n in absent)
            unresolved.append(f"{counts} and coagulation tests not recorded")
            for n in absent:
                gaps.need(n)
    if leading is not None and leading.code == Diagnosis.APL.value and leading.source == "differential" \
            and not suspected and not excluded:
        suspected = True
        reasons.append(f"APL is the leading diagnosis of the differential ({leading.likelihood} likelihood)")
    if f.smear.abnormal_promyelocytes and coag is None and not excluded:
        gaps.warn("Promyelocyte-rich smear: APL suspected; check fibrinogen, INR, D-dimer now.")
    return AplStatus(known=known, suspected=suspected, reasons=tuple(reasons), coagulopathy=coag,
                     unresolved=tuple(unresolved))


def _asfa(gaps: Gaps) -> tuple[str, str, str, list[str]]:
    """(edition, symptomatic category, prophylactic category, citations) of the configured edition."""
    edition = str(gaps.v("management.asfa_edition"))
    row = gaps.kb.table("management")["asfa_categories"][edition]
    return edition, row["symptomatic"], row["prophylactic"], list(row["citations"])


def _cautions(case: Case, dic: DicResult, gaps: Gaps) -> list[str]:
    """What must be dealt with before a leukapheresis: DIC and a platelet count below the threshold
    (the run removes platelets; ``leukos plan`` predicts the count after it)."""
    out: list[str] = []
    if dic.overt:
        out.append(f"Overt DIC (ISTH score {dic.score_range[0]}): exclude APL (PML::RARA), correct the coagulopathy and "
                   "weigh the bleeding risk of the apheresis catheter before leukapheresis; repeat coagulation tests "
                   "after each run.")
    plt = case.lab("platelets")
    lo = float(gaps.v("management.platelet_threshold_non_apl_low"))
    if plt is not None and plt.value < lo:
        out.append(f"Platelets {fmt(plt.value)} x10^9/L, below {fmt(lo)}: the run removes platelets; transfuse before "
                   "and after leukapheresis (the plan predicts the count after the run).")
    return out


def assess_leukapheresis(case: Case, hl: HyperleukocytosisResult, ls: LeukostasisResult, apl: AplStatus,
                         gaps: Gaps, dx: WorkingDiagnosis | None = None, dic: DicResult | None = None
                         ) -> LeukapheresisResult:
    """The leukapheresis indication (ASFA), for leukaemic hyperleukocytosis only.

    Never indicated when APL is known or suspected (contraindication), nor for a leukemoid
    reaction (treat the cause). Not decided while APL is not excluded for want of data.
    """
    dx = dx or WorkingDiagnosis(None, None, None, "no diagnosis", None)
    edition_p = gaps.p("management.asfa_edition")
    min_grade = gaps.p("management.symptomatic_min_grade")
    edition, sym_cat, pro_cat, asfa_cites = _asfa(gaps)
    citations = asfa_cites + ["pathologyoutlines_leukapheresis"]
    working: dict[str, Any] = {"asfa_edition": param_working(edition_p), "symptomatic_min_grade": param_working(min_grade),
                               "hyperleukocytosis_present": hl.present, "leukostasis_grade": ls.grade,
                               "diagnosis": {"code": dx.code, "source": dx.source, "likelihood": dx.likelihood,
                                             "advice_group": dx.group}}
    notes: list[str] = []
    cautions = tuple(_cautions(case, dic, gaps)) if dic is not None else ()
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
    symptomatic = ls.grade is not None and ls.grade >= int(min_grade.value)
    if dx.group == "leukemoid":
        citations += list(gaps.kb.table("management")["advice_group_citations"]["leukemoid"])
        notes.append(f"Not indicated: {dx.describe()}. Leukapheresis treats leukaemic hyperleukocytosis; leukostasis "
                     "is a complication of leukaemic blasts, not of a reactive count. Treat the cause.")
        if symptomatic:
            notes.append(f"The symptoms (leukostasis grade {ls.grade}) need another explanation (e.g. sepsis, "
                         "pneumonia, ARDS) while the count is reactive.")
        if not dx.confirmed:
            notes.append("If a leukaemia is found (smear review, flow cytometry, BCR::ABL1), reassess.")
        return LeukapheresisResult(indicated=False, asfa_category=None, urgency="emergent" if symptomatic else "urgent",
                                   notes=tuple(notes), unverified=unverified, working=working,
                                   citations=tuple(dict.fromkeys(citations)))
    if dx.group == "tissue":
        return LeukapheresisResult(indicated=None, asfa_category=None, urgency="urgent",
                                   notes=(f"Not decided: {dx.describe()} is a tissue finding, not a blood count.",),
                                   working=working, citations=tuple(citations))
    if ls.grade is None:
        notes.append("Not decided: leukostasis could not be graded (record the symptoms, or record that there are none).")
        return LeukapheresisResult(indicated=None, asfa_category=None, urgency="urgent", notes=tuple(notes),
                                   unverified=unverified, working=working, citations=tuple(citations))
    if symptomatic and apl.unresolved:
        notes.append("Not decided: APL is not excluded (" + "; ".join(apl.unresolved) + "). Review the smear for "
                     "promyelocytes, check fibrinogen, INR and D-dimer, and send PML::RARA before leukapheresis.")
        citations += ["sanz2009"]
        return LeukapheresisResult(indicated=None, asfa_category=None, urgency="emergent", notes=tuple(notes),
                                   cautions=cautions, unverified=unverified,
                                   working=working | {"apl_unresolved": list(apl.unresolved)}, citations=tuple(citations))
    low_bv, high_bv = gaps.p("management.volume_blood_volumes_low"), gaps.p("management.volume_blood_volumes_high")
    red_lo, red_hi = gaps.p("management.expected_reduction_low_pct"), gaps.p("management.expected_reduction_high_pct")
    if symptomatic:
        notes.append(f"Symptomatic hyperleukocytosis (leukostasis grade {ls.grade}): ASFA {edition} category {sym_cat}.")
        if dx.source == "differential":
            notes.append(f"Diagnosis not confirmed ({dx.describe()}): confirm a leukaemia before leukapheresis.")
        notes.append(f"Process {low_bv.value}-{high_bv.value} total blood volumes; expect a {red_lo.value}-{red_hi.value} % fall per "
                     "procedure with rebound: repeat daily until symptoms resolve, alongside cytoreduction. "
                     "The leukapheresis plan gives volumes, citrate and the expected count.")
        notes.append("Evidence: meta-analyses show no early-mortality benefit of leukapheresis overall (Bewersdorf 2020; Oberoi 2014).")
        citations += ["clinicalpub_leukapheresis", "bewersdorf2020", "oberoi2014"]
        if dx.code == Diagnosis.CLL.value:
            notes.append("CLL: leukostasis is very rare even at extreme counts: confirm symptoms are due to it.")
        if cautions:
            citations += ["taylor2001_isth", "rollig2015"]
        return LeukapheresisResult(indicated=True, asfa_category=sym_cat, urgency="emergent", notes=tuple(notes),
                                   cautions=cautions, unverified=unverified, working=working, citations=tuple(citations))
    state = "no leukostasis symptoms" if ls.grade == 0 else f"leukostasis {ls.label} (grade {ls.grade} < {min_grade.value})"
    notes.append(f"Not symptomatic enough for the ASFA leukostasis indication ({state}): prophylactic leukapheresis is ASFA "
                 f"{edition} category {pro_cat} (individualised decision); not routinely recommended — no early-mortality "
                 "benefit shown (Oberoi 2014; Bewersdorf 2020). Start cytoreduction.")
    citations += ["oberoi2014", "bewersdorf2020"]
    return LeukapheresisResult(indicated=False, asfa_category=pro_cat, urgency="urgent", notes=tuple(notes),
                               unverified=unverified, working=working, citations=tuple(citations))


def urgency(hl: HyperleukocytosisResult, ls: LeukostasisResult, tls: TlsResult, apl: AplStatus, gaps: Gaps,
            dx: WorkingDiagnosis | None = None) -> str:
    """emergent | urgent | routine. In CLL the count alone is not an emergency (iwCLL): urgency
    follows the symptoms and the tumour lysis findings, not the count."""
    min_grade = int(gaps.v("management.symptomatic_min_grade"))
    if apl.suspected or (ls.grade is not None and ls.grade >= min_grade and hl.present) or tls.clinical:
        return "emergent"
    count_matters = not (dx is not None and dx.code == Diagnosis.CLL.value)
    if (hl.present and count_matters) or tls.laboratory:
        return "urgent"
    return "routine"


def _disease_advice(case: Case, hl: HyperleukocytosisResult, ls: LeukostasisResult, apl: AplStatus,
                    dx: WorkingDiagnosis, gaps: Gaps) -> list[Recommendation]:
    """Cytoreduction and bridging by diagnosis, for hyperleukocytosis (never for a leukemoid reaction)."""
    kb = gaps.kb
    code = dx.code
    pre = "" if dx.confirmed or dx.source is None else f"Leading diagnosis {dx.label} (not confirmed: do the tests the differential names). "
    hu_lo, hu_hi = gaps.v("management.hydroxyurea_historic_mg_per_kg_low"), gaps.v("management.hydroxyurea_historic_mg_per_kg_high")
    if dx.group == "leukemoid":
        paraneoplastic = code == Diagnosis.LEUKEMOID_PARANEOPLASTIC.value
        cause = ("the underlying tumour (paraneoplastic leukemoid reaction)" if paraneoplastic else
                 "the cause: infection or sepsis (cultures, source control, antibiotics), a drug such as G-CSF or "
                 "corticosteroids, haemorrhage or haemolysis")
        return [Recommendation(
            "TREAT_THE_CAUSE", 1,
            pre + f"Leukemoid reaction: treat {cause}. Induction chemotherapy and leukapheresis are not indicated for a "
            "reactive count. Exclude a leukaemia: smear review; flow cytometry if blasts or atypical cells; BCR::ABL1 "
            "if the picture is left-shifted with basophilia.",
            tuple(kb.table("management")["advice_group_citations"]["leukemoid"]))]
    if code == Diagnosis.CLL.value:
        return [Recommendation("CLL_COUNT_CONTEXT", 2, pre + "CLL: leukostasis is very rare even at extreme counts; the count "
                               "alone is not an emergency (urgency follows symptoms and tumour lysis). Decide treatment on "
                               "the usual CLL indications.", ("hallek_iwcll",), unverified=True)]
    if code == Diagnosis.ALL.value:
        all_thr = gaps.v("hyperleukocytosis.all_threshold")
        high = above(case.lab("wbc"), float(all_thr), inclusive=False)
        text = (pre + "ALL: start a steroid pre-phase (corticosteroid, as the treating protocol gives it) as the bridge, "
                "then induction promptly; emergency cytoreduction beyond it is suggested only above "
                f"{all_thr} x10^9/L or with symptoms.")
        pr = 1 if (high or (ls.grade or 0) >= int(gaps.v("management.symptomatic_min_grade"))) else 2
        return [Recommendation("ALL_PREPHASE_INDUCTION", pr, text, ("hoelzer2016_esmo", "gokbuget2024_eln", "lowe2005"),
                               unverified=True)]
    if code == Diagnosis.CML_BP.value:
        return [Recommendation("CML_BP_TKI", 1, pre + "CML blast phase: treat as acute leukaemia — a tyrosine-kinase "
                               "inhibitor (chosen by the BCR::ABL1 mutation profile) is the bridge, with induction "
                               "chemotherapy; plan allogeneic transplantation.", ("hochhaus2020_eln", "uptodate_schiffer"),
                               unverified=True)]
    if code in (Diagnosis.CML_CP.value, Diagnosis.CML_AP.value, Diagnosis.CML.value):
        return [Recommendation(
            "CML_CYTOREDUCTION", 1,
            pre + "CML: cytoreduce with hydroxyurea (dose per local protocol: no verified bridging dose) while "
            "BCR::ABL1 is confirmed, then a tyrosine-kinase inhibitor; induction chemotherapy is not indicated in "
            "chronic phase. Rapid BCR::ABL1 testing is part of the hyperleukocytosis work-up.",
            ("rollig2015", "hochhaus2020_eln"), unverified=True)]
    if dx.group == "chronic_leukaemia":  # CNL, CMML, other MPN
        return [Recommendation(
            "CHRONIC_MYELOID_NEOPLASM", 2,
            pre + f"{dx.label}: a chronic myeloid neoplasm — induction chemotherapy is not the first step; cytoreduce as "
            "its guideline advises and confirm the diagnosis (marrow, BCR::ABL1 negative, CSF3R, monocyte count).",
            ("arber2016", "icc2022"), unverified=True)]
    if dx.group == "tissue" or apl.suspected:  # APL: chemotherapy is part of the APL recommendations
        return []
    # AML, or no diagnosis yet
    lead = pre if dx.source else "Diagnosis not established: smear review, flow cytometry and BCR::ABL1 today. "
    return [Recommendation(
        "START_CYTOREDUCTION", 1,
        lead + "For acute leukaemia: definitive induction chemotherapy promptly (it takes precedence over hydroxyurea "
        f"and leukapheresis). If induction must wait, hydroxyurea {hu_lo}-{hu_hi} mg/kg/day (historic regimen; "
        f"~{gaps.v('management.hydroxyurea_historic_fall_after_one_dose_pct')} % fall after one dose).",
        ("rollig2015", "oberoi2014", "hu_1977", "hu_casablanca"))]


def recommendations(case: Case, hl: HyperleukocytosisResult, ls: LeukostasisResult, tls: TlsResult,
                    dic: DicResult, artefacts: tuple[Artefact, ...], lk: LeukapheresisResult, apl: AplStatus,
                    gaps: Gaps, dx: WorkingDiagnosis | None = None) -> tuple[Recommendation, ...]:
    kb = gaps.kb
    dx = dx or WorkingDiagnosis(None, None, None, "no diagnosis", None)
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
    elif apl.unresolved and hl.present:
        # Urgent while the count may be leukaemic; with no circulating blasts and a reactive leading
        # diagnosis it stays on the list (safety) but does not push out the emergency of the cause.
        reactive = dx is not None and dx.group == "leukemoid" and case.value("blasts_pct") == 0
        recs.append(Recommendation("EXCLUDE_APL", 2 if reactive else 1, "APL not excluded (" + "; ".join(apl.unresolved) + "): review the "
                                   "smear for promyelocytes, check fibrinogen, INR and D-dimer, and send PML::RARA; no "
                                   "leukapheresis until APL is excluded.", ("sanz2009", "sanz2019")))
    if hl.present:
        recs += _disease_advice(case, hl, ls, apl, dx, gaps)
    elif dx.group == "leukemoid" and above(case.lab("wbc"), float(gaps.v("hyperleukocytosis.leukocytosis_threshold")),
                                           inclusive=False):
        recs += _disease_advice(case, hl, ls, apl, dx, gaps)  # treat the cause at any leukocytosis
    if hl.present:
        if dx.group != "leukemoid":
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
                                   f"Consider leukapheresis (ASFA category {lk.asfa_category}) with cytoreduction; "
                                   "the leukapheresis plan gives volumes and the expected count.", lk.citations,
                                   unverified=lk.unverified))
    if lk.cautions and lk.indicated is not False:
        recs.append(Recommendation("CAUTION_BEFORE_LEUKAPHERESIS", 1, "Before leukapheresis: " + " ".join(lk.cautions),
                                   ("taylor2001_isth", "sanz2009", "rollig2015"), unverified=True))
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
        recs.append(Recommendation("MEASURE_TLS_LABS", 2, "Measure " + ", ".join(kb.field_label(n) for n in missing_tls)
                                   + " to assess tumour lysis.", ("cairo_bishop2004", "cairo2010")))
    if dic.overt:
        recs.append(Recommendation("DIC_MONITOR", 1, "Overt DIC: treat the cause, support with blood products as needed, and "
                                   "repeat the ISTH score daily.", ("taylor2001_isth",)))
    elif dic.overt is None and hl.present:
        recs.append(Recommendation("COMPLETE_DIC_SCREEN", 2, "Complete the coagulation screen (platelets, PT with control, "
                                   "fibrinogen, D-dimer with the assay's ULN) to score DIC.", ("taylor2001_isth",)))
    leukocytosis = above(case.lab("wbc"), float(gaps.v("hyperleukocytosis.leukocytosis_threshold")), inclusive=False)
    if gaps.missing and leukocytosis is not False:
        recs.append(Recommendation("MISSING_DATA", 3, "Not recorded, so not assessed: "
                                   + ", ".join(kb.field_label(n) for n in gaps.missing) + ".", ()))
    return tuple(sorted(recs, key=lambda r: r.priority))
