"""Facts read from the findings (three-valued; information only ever turns unknown into yes/no,
and a fact that holds keeps holding when more is recorded)."""

from __future__ import annotations

import math
from collections.abc import Callable

from leukos.domain.case import Case, Diagnosis, GeneticResult, Immunophenotype
from leukos.knowledge import KnowledgeBase
from leukos.knowledge.differential_rules import AREA
from leukos.rules._common import all3, any3
from leukos.rules.differential.quantities import (
    Interval,
    absolute,
    blasts_any,
    compare,
    lab,
    number,
    pct_sum,
    percent,
)

__all__ = ["FACTS", "CML_FAMILY", "FactOf", "fact_value"]

# A fact reads the case, the knowledge base and ``fact``: the value of another fact in the same
# call (computed once per call by the caller, e.g. :class:`~leukos.rules.differential.features.Features`),
# so a fact built from others (aCML criteria = aCML blood picture and BCR::ABL1 negative) reuses them.
FactOf = Callable[[str], "bool | None"]

CML_FAMILY = frozenset({Diagnosis.CML, Diagnosis.CML_CP, Diagnosis.CML_AP, Diagnosis.CML_BP})
_MPN = CML_FAMILY | {Diagnosis.CNL, Diagnosis.OTHER_MPN}
_BLAST_PHENOTYPES = frozenset({Immunophenotype.MYELOID, Immunophenotype.MONOCYTIC, Immunophenotype.PROMYELOCYTIC,
                               Immunophenotype.B_LYMPHOBLASTIC, Immunophenotype.T_LYMPHOBLASTIC})
# The phenotype and diagnosis groups the facts test, built once (not per fact and call).
_MYELOID = frozenset({Immunophenotype.MYELOID, Immunophenotype.MONOCYTIC})
_PROMYELOCYTIC = frozenset({Immunophenotype.PROMYELOCYTIC})
_LYMPHOBLASTIC = frozenset({Immunophenotype.B_LYMPHOBLASTIC, Immunophenotype.T_LYMPHOBLASTIC})
_MATURE_B = frozenset({Immunophenotype.MATURE_B})
_MATURE_T = frozenset({Immunophenotype.MATURE_T})
_ACUTE_MYELOID = frozenset({Diagnosis.AML, Diagnosis.APL})
_UNKNOWN = GeneticResult.UNKNOWN


def _not3(v: bool | None) -> bool | None:
    return None if v is None else not v


def _gene(case: Case, name: str, want: GeneticResult) -> bool | None:
    g = case.findings.genetics.get(name, _UNKNOWN)  # Findings.gene, without the call: ~20 facts ask
    return None if g is _UNKNOWN else g is want


def _phenotype(case: Case, kinds: frozenset[Immunophenotype]) -> bool | None:
    ip = case.findings.immunophenotype
    return None if ip is None else ip in kinds


def _drug(case: Case, name: str) -> bool | None:
    drugs = case.findings.drugs
    return None if drugs is None else name in drugs


def _c_difficile(case: Case) -> bool | None:
    inf = case.findings.infection
    if inf.organism:
        return "difficile" in inf.organism.lower()
    return False if inf.present is False else None


def _myelocyte_bulge(case: Case) -> bool | None:
    my, meta = case.value("myelocytes_pct"), case.value("metamyelocytes_pct")
    if my is None or meta is None:
        return None
    return my > meta


def _coagulopathy(case: Case, kb: KnowledgeBase, fact: FactOf) -> bool | None:
    fib = compare(lab(case, "fibrinogen"), "<=", float(kb.value("management.coagulopathy_fibrinogen_max")))
    inr = compare(lab(case, "inr"), ">", float(kb.value("management.coagulopathy_inr_min")))
    return any3([fib, inr])


def _cytokines(case: Case, kb: KnowledgeBase) -> list[bool | None]:
    cytokines = case.findings.cytokines
    return [compare(number(cytokines.get(name)), ">", uln) if configured else None
            for name, uln, configured in kb.derived("differential.cytokine_ulns", _cytokine_ulns)]


def _cytokine_ulns(kb: KnowledgeBase) -> tuple[tuple[str, float, bool], ...]:
    """(cytokine, upper limit of normal, configured by the site) of each cytokine (once per knowledge base)."""
    out = []
    for name in ("g_csf", "gm_csf", "il6"):
        p = kb.param(f"{AREA}.{name}_uln")
        out.append((name, float(p.value) if p.configured else math.nan, p.configured))
    return tuple(out)


def _persistent(case: Case, kb: KnowledgeBase, fact: FactOf) -> bool | None:
    series = [lv for lv in case.series("wbc") if lv.time is not None]
    if len(series) < 2:
        return None
    span_days = (series[-1].time - series[0].time).total_seconds() / 86400.0
    if span_days < float(kb.value(f"{AREA}.cnl_persistence_days")):
        return None
    t = float(kb.value(f"{AREA}.cnl_wbc_min"))
    return all3(compare(Interval(lv.value, lv.value), ">=", t) for lv in series)


def _cnl_wbc(case: Case, kb: KnowledgeBase, fact: FactOf) -> bool | None:
    wbc = lab(case, "wbc")
    full = compare(wbc, ">=", float(kb.value(f"{AREA}.cnl_wbc_min")))
    if kb.value(f"{AREA}.cnl_criteria") != "ICC2022" or full is not False:
        return full
    low = compare(wbc, ">=", float(kb.value(f"{AREA}.cnl_wbc_min_csf3r_icc")))
    return all3([low, _gene(case, "csf3r", GeneticResult.POSITIVE)])


def _tissue(case: Case, attr: str) -> bool | None:
    tc = case.findings.tissue_cytology
    return None if tc is None else getattr(tc, attr)


def _tissue_trilineage(case: Case) -> bool | None:
    tc = case.findings.tissue_cytology
    if tc is None:
        return None
    if tc.trilineage_precursors is True or (tc.megakaryocytes is True and tc.erythroid_precursors is True):
        return True
    if tc.trilineage_precursors is False or tc.megakaryocytes is False or tc.erythroid_precursors is False:
        return False
    return None


def _tissue_phenotype(case: Case) -> bool | None:
    tc = case.findings.tissue_cytology
    if tc is None or tc.immunophenotype is None:
        return None
    return tc.immunophenotype in _BLAST_PHENOTYPES


def _known_in(case: Case, codes: frozenset[Diagnosis]) -> bool | None:
    k = case.findings.known_diagnosis
    return None if k is None else k in codes


def _mpn_context(case: Case) -> bool | None:
    return any3([_known_in(case, _MPN), _gene(case, "bcr_abl1", GeneticResult.POSITIVE) or None])


def _param(kb: KnowledgeBase, name: str) -> float:
    """Parameter ``differential.<name>`` as a number (looked up once per knowledge base: the facts
    compare with about twenty of them on every call)."""
    known = kb.derived("differential.fact_params", _no_params)
    try:
        return known[name]
    except KeyError:
        return known.setdefault(name, float(kb.value(f"{AREA}.{name}")))


def _no_params(kb: KnowledgeBase) -> dict[str, float]:
    return {}


def _monocytosis(case: Case, kb: KnowledgeBase, fact: FactOf) -> bool | None:
    """WHO 2022 / ICC 2022 CMML monocytosis: absolute AND relative (both thresholds inclusive)."""
    return all3([compare(absolute(case, "monocytes"), ">=", _param(kb, "cmml_monocytes_abs_min")),
                 compare(percent(case, "monocytes"), ">=", _param(kb, "cmml_monocytes_pct_min"))])


def _acml_blood_picture(case: Case, kb: KnowledgeBase, fact: FactOf) -> bool | None:
    """The blood criteria of aCML (WHO 2022 'MDS/MPN with neutrophilia', ICC 2022 aCML): WBC >= 13,
    neutrophil precursors >= 10 %, monocytes < 10 %, basophils < 2 %, blood blasts < 20 %.
    Dysgranulopoiesis is a feature of its own (``dysgranulopoiesis``); the marrow is listed, not assumed."""
    return all3([
        compare(lab(case, "wbc"), ">=", _param(kb, "acml_wbc_min")),
        compare(pct_sum([lab(case, n) for n in ("promyelocytes_pct", "myelocytes_pct", "metamyelocytes_pct")]),
                ">=", _param(kb, "acml_precursors_min_pct")),
        compare(percent(case, "monocytes"), "<", _param(kb, "acml_monocytes_max_pct")),
        compare(percent(case, "basophils"), "<", _param(kb, "acml_basophils_max_pct")),
        compare(lab(case, "blasts_pct"), "<", _param(kb, "acute_blast_pct")),
    ])


_DRIVERS = ("jak2", "calr", "mpl")


def _mpn_driver(case: Case) -> bool | None:
    """Any MPN driver mutation found: True; all three tested negative: False; else unknown."""
    return any3([_gene(case, g, GeneticResult.POSITIVE) for g in _DRIVERS])


def _cmml_supporting(case: Case, kb: KnowledgeBase, fact: FactOf) -> bool | None:
    """WHO 2022 (Khoury 2022, Table 6): monocytes >= 1 x10^9/L need one supporting criterion,
    0.5-1 x10^9/L need dysplasia *and* clonality. Of the supporting criteria the case carries
    granulocytic dysplasia and ASXL1/SETBP1; the others (other lineages, other mutations,
    monocyte subsets) are not in the case, so this is never False: only True or unknown."""
    mono = absolute(case, "monocytes")
    dysplasia = case.findings.smear.dysgranulopoiesis is True
    clonal = any(case.findings.gene(g) is GeneticResult.POSITIVE for g in ("asxl1", "setbp1"))
    if compare(mono, ">=", _param(kb, "cmml_monocytes_abs_one_criterion_min")) is True:
        return True if (dysplasia or clonal) else None
    if compare(mono, ">=", _param(kb, "cmml_monocytes_abs_min")) is True:
        return True if (dysplasia and clonal) else None
    return None


def _pmf_criteria(case: Case, kb: KnowledgeBase, fact: FactOf) -> bool | None:
    """ICC 2022 / WHO 2022 overt PMF as far as the case carries it: a driver mutation, marrow
    fibrosis grade >= 2 and one minor criterion (leukoerythroblastosis, palpable splenomegaly,
    WBC >= 11). Megakaryocyte atypia and the exclusion of other neoplasms stay with the marrow."""
    minor = any3([case.findings.smear.leukoerythroblastosis, case.findings.splenomegaly,
                  compare(lab(case, "wbc"), ">=", _param(kb, "pmf_wbc_min"))])
    return all3([fact("mpn_driver_positive"),
                 compare(number(case.findings.marrow.fibrosis_grade), ">=", _param(kb, "pmf_fibrosis_min_grade")),
                 minor])


def _pb_blasts_below_acute_present(case: Case, kb: KnowledgeBase, fact: FactOf) -> bool | None:
    """Circulating blasts present but below the AML cut-off (20 %): the blood blast range of the
    chronic myeloid neoplasms (CML short of blast phase, CMML, MDS/MPN)."""
    pb = lab(case, "blasts_pct")
    return all3([compare(pb, ">", 0.0), compare(pb, "<", _param(kb, "acute_blast_pct"))])


def _lymphoblasts(case: Case) -> bool | None:
    blasts = compare(lab(case, "blasts_pct"), ">", 0.0)
    return all3([_phenotype(case, _LYMPHOBLASTIC), blasts])


_P = GeneticResult.POSITIVE
_N = GeneticResult.NEGATIVE
FACTS: dict[str, Callable[[Case, KnowledgeBase, FactOf], bool | None]] = {
    "bcr_abl1_positive": lambda c, kb, f: _gene(c, "bcr_abl1", _P),
    "bcr_abl1_negative": lambda c, kb, f: _gene(c, "bcr_abl1", _N),
    "pml_rara_positive": lambda c, kb, f: _gene(c, "pml_rara", _P),
    "pml_rara_negative": lambda c, kb, f: _gene(c, "pml_rara", _N),
    "csf3r_positive": lambda c, kb, f: _gene(c, "csf3r", _P),
    "csf3r_negative": lambda c, kb, f: _gene(c, "csf3r", _N),
    "flt3_itd_positive": lambda c, kb, f: _gene(c, "flt3_itd", _P),
    "kmt2a_positive": lambda c, kb, f: _gene(c, "kmt2a", _P),
    "phenotype_myeloid": lambda c, kb, f: _phenotype(c, _MYELOID),
    "phenotype_promyelocytic": lambda c, kb, f: _phenotype(c, _PROMYELOCYTIC),
    "phenotype_lymphoblastic": lambda c, kb, f: _phenotype(c, _LYMPHOBLASTIC),
    "phenotype_mature_b": lambda c, kb, f: _phenotype(c, _MATURE_B),
    "phenotype_mature_t": lambda c, kb, f: _phenotype(c, _MATURE_T),
    "auer_rods": lambda c, kb, f: c.findings.smear.auer_rods,
    "abnormal_promyelocytes": lambda c, kb, f: c.findings.smear.abnormal_promyelocytes,
    "toxic_changes": lambda c, kb, f: any3([c.findings.smear.toxic_granulation, c.findings.smear.dohle_bodies]),
    "toxic_changes_absent": lambda c, kb, f: _not3(f("toxic_changes")),
    "myelocyte_bulge": lambda c, kb, f: _myelocyte_bulge(c),
    "coagulopathy": _coagulopathy,
    "splenomegaly": lambda c, kb, f: c.findings.splenomegaly,
    "infection_present": lambda c, kb, f: c.findings.infection.present,
    "c_difficile": lambda c, kb, f: _c_difficile(c),
    "g_csf_therapy": lambda c, kb, f: _drug(c, "g_csf"),
    "corticosteroids": lambda c, kb, f: _drug(c, "corticosteroids"),
    "lithium": lambda c, kb, f: _drug(c, "lithium"),
    "epinephrine": lambda c, kb, f: _drug(c, "epinephrine"),
    "reactive_cause_present": lambda c, kb, f: any3([c.findings.infection.present, _drug(c, "g_csf"),
                                                   _drug(c, "corticosteroids")]),
    "no_other_reactive_cause": lambda c, kb, f: _not3(f("reactive_cause_present")),
    "no_reactive_cause": lambda c, kb, f: _not3(any3([f("reactive_cause_present"), c.findings.solid_tumor.present])),
    "solid_tumor_present": lambda c, kb, f: c.findings.solid_tumor.present,
    "solid_tumor_absent": lambda c, kb, f: _not3(c.findings.solid_tumor.present),
    "tumour_in_marrow": lambda c, kb, f: any3([c.findings.solid_tumor.marrow_involvement,
                                             c.findings.marrow.tumour_cells]),
    "cytokine_raised": lambda c, kb, f: any3(_cytokines(c, kb)),
    "cytokines_normal": lambda c, kb, f: _not3(f("cytokine_raised")),
    "persistent_leukocytosis": _persistent,
    "cnl_wbc": _cnl_wbc,
    "tissue_given": lambda c, kb, f: True if c.findings.tissue_cytology is not None else None,
    "tissue_trilineage": lambda c, kb, f: _tissue_trilineage(c),
    "tissue_megakaryocytes": lambda c, kb, f: _tissue(c, "megakaryocytes"),
    "tissue_erythroid": lambda c, kb, f: _tissue(c, "erythroid_precursors"),
    "tissue_lacks_erythroid_megakaryocytic": lambda c, kb, f: all3([_not3(_tissue(c, "megakaryocytes")),
                                                                  _not3(_tissue(c, "erythroid_precursors"))])
    if c.findings.tissue_cytology is not None else None,
    "tissue_blast_phenotype": lambda c, kb, f: _tissue_phenotype(c),
    "mpn_context": lambda c, kb, f: _mpn_context(c),
    "aml_context": lambda c, kb, f: _known_in(c, _ACUTE_MYELOID),
    "lymphoblasts_present": lambda c, kb, f: _lymphoblasts(c),
    "pb_blasts_below_acute_present": _pb_blasts_below_acute_present,
    "monocytosis": _monocytosis,
    "acml_blood_picture": _acml_blood_picture,
    "acml_criteria": lambda c, kb, f: all3([f("acml_blood_picture"), f("bcr_abl1_negative")]),
    "dysgranulopoiesis": lambda c, kb, f: c.findings.smear.dysgranulopoiesis,
    "dysgranulopoiesis_absent": lambda c, kb, f: _not3(c.findings.smear.dysgranulopoiesis),
    "teardrop_cells": lambda c, kb, f: c.findings.smear.teardrop_cells,
    "leukoerythroblastosis": lambda c, kb, f: c.findings.smear.leukoerythroblastosis,
    "mpn_driver_positive": lambda c, kb, f: _mpn_driver(c),
    "mpn_driver_negative": lambda c, kb, f: _not3(f("mpn_driver_positive")),
    "setbp1_positive": lambda c, kb, f: _gene(c, "setbp1", _P),
    "asxl1_positive": lambda c, kb, f: _gene(c, "asxl1", _P),
    "setbp1_with_asxl1": lambda c, kb, f: all3([f("setbp1_positive"), f("asxl1_positive")]),
    "cmml_supporting": _cmml_supporting,
    "pmf_criteria": _pmf_criteria,
    "cmml_prerequisites": lambda c, kb, f: all3([
        f("monocytosis"), f("bcr_abl1_negative"), compare(blasts_any(c), "<", _param(kb, "acute_blast_pct"))]),
}



def fact_value(case: Case, kb: KnowledgeBase, name: str) -> bool | None:
    """Fact ``name`` of the case on its own (the facts it is built from computed once for it)."""
    seen: dict[str, bool | None] = {}

    def fact(n: str) -> bool | None:
        if n not in seen:
            seen[n] = FACTS[n](case, kb, fact)
        return seen[n]

    return fact(name)
