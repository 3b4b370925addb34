"""``assess(case, kb) -> Assessment``: every rule, in order, with what it could not assess."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from leukos import __version__
from leukos.domain.assessment import Assessment, HyperleukocytosisResult, LeukostasisResult
from leukos.domain.case import Case
from leukos.knowledge import KnowledgeBase, load_knowledge
from leukos.rules import differential as differential_rules
from leukos.rules._common import Gaps, fmt
from leukos.rules.artefacts import assess_artefacts
from leukos.rules.coagulation import assess_dic
from leukos.rules.hyperleukocytosis import assess_hyperleukocytosis
from leukos.rules.leukostasis import assess_leukostasis
from leukos.rules.management import apl_status, assess_leukapheresis, recommendations, urgency, working_diagnosis
from leukos.rules.tumour_lysis import assess_tls

__all__ = ["assess"]


def assess(case: Case, kb: KnowledgeBase | None = None, *, explain_differential: bool = True) -> Assessment:
    """Assess one case: hyperleukocytosis, leukostasis, differential, TLS, DIC, artefacts, management.

    Parameters
    ----------
    case : Case
        A validated case (``leukos.interop.case_format.load_case_text`` or ``case_from_fhir``).
    kb : KnowledgeBase, optional
        The knowledge base (with any site overrides); the bundled one by default.
    explain_differential : bool, default True
        False: rank the differential without explaining its entries (most of the differential's
        cost), for a caller that shows no differential (the CDS cards). The working diagnosis, and
        so the headline, urgency, leukapheresis verdict and recommendations, follow the same ranking
        and are the same; ``differential`` then holds :class:`RankedDiagnosis` values,
        ``references`` lack the differential's, ``differential_explained`` is False and
        ``to_dict`` refuses (never an answer).

    Returns
    -------
    Assessment
        Every part with its working and citations; ``missing_data`` and ``not_assessed`` say
        what could not be assessed. Pure function: no I/O, no clock.

    Examples
    --------
    >>> from leukos.interop.case_format import case_from_dict
    >>> a = assess(case_from_dict({"labs": {"wbc": 250}, "symptoms": []}))
    >>> a.hyperleukocytosis.present, a.leukostasis.grade
    (True, 0)
    """
    kb = kb or load_knowledge()
    gaps = Gaps(kb)
    hl = assess_hyperleukocytosis(case, gaps)
    ls = assess_leukostasis(case, hl, gaps)
    ranking, entries = differential_rules.ranked(case, kb, explain=explain_differential)
    if not ranking and case.lab("wbc") is None and case.findings.tissue_cytology is None:
        gaps.cannot("Differential diagnosis: no white cell count (and no tissue cytology)")
    for ranked in ranking:  # edition settings the differential used: shown in settings, overrides warned
        for key in ranked.settings:
            gaps.p(key)
    if not differential_rules.IMPLEMENTED:
        gaps.cannot("Differential diagnosis: not implemented in this version")
    tls = assess_tls(case, gaps)
    dic = assess_dic(case, gaps)
    arts = assess_artefacts(case, hl, gaps)
    dx = working_diagnosis(case, ranking, gaps)  # the advice follows the known or the leading diagnosis
    apl = apl_status(case, dic, gaps, dx)
    lk = assess_leukapheresis(case, hl, ls, apl, gaps, dx, dic)
    urg = urgency(hl, ls, tls, apl, gaps, dx)
    recs = recommendations(case, hl, ls, tls, dic, arts, lk, apl, gaps, dx)

    overridden = _overridden_keys(kb)
    for key, p in (gaps.used_params.items() if overridden else ()):  # the bundled settings: none
        if key in overridden:
            gaps.warn(f"Setting {key} = {p.value!r} (default {p.overridden_from!r}) changed by the site configuration.")
    if ls.grade is not None:
        gaps.warn("The leukostasis grading table (Novotny 2005) is unverified: organ descriptors and aggregation are status U.")
    for note in case.import_notes:
        gaps.warn(note)
    bare = _without_unit(case, kb)
    if bare:
        gaps.warn("Given without a unit, so read in the case format's unit for each value: " + "; ".join(bare)
                  + ". Check that these units are the ones the laboratory reported.")

    cited: list[str] = []
    for part in (hl, ls, tls, dic, lk, *arts, *recs, *(entries or ())):
        cited.extend(part.citations)
    for p in gaps.used_params.values():
        cited.extend(p.citations)
    refs = _reference_dicts(kb)
    references = {k: refs[k] for k in dict.fromkeys(cited)}
    settings = {k: p.value for k, p in gaps.used_params.items() if p.choices}

    return Assessment(
        leukos_version=__version__,
        ruleset_version=kb.ruleset_version,
        case_id=case.id,
        headline=_headline(hl, ls, apl.suspected, urg, tls.laboratory, dic.overt,
                           dx.label if dx.group == "leukemoid" else None),
        urgency=urg,
        wbc_10e9_per_l=hl.wbc_10e9_per_l,
        absolute_blasts_10e9_per_l=hl.absolute_blasts_10e9_per_l,
        hyperleukocytosis=hl,
        leukostasis=ls,
        differential=ranking if entries is None else entries,
        tls=tls,
        dic=dic,
        artefacts=arts,
        leukapheresis=lk,
        recommendations=recs,
        missing_data=tuple(gaps.missing),
        not_assessed=tuple(gaps.not_assessed),
        warnings=tuple(gaps.warnings),
        settings=MappingProxyType(settings),
        references=MappingProxyType(references),
        differential_explained=entries is not None,
    )


def _reference_dicts(kb: KnowledgeBase) -> dict[str, Mapping[str, Any]]:
    """Every citation of ``kb`` as its output mapping (``Citation.to_dict``, read-only), built once per
    knowledge base: citations are immutable and about 40 are cited per assessment."""
    return kb.derived("engine.reference_dicts",
                      lambda kb: {k: MappingProxyType(c.to_dict()) for k, c in kb.citations.items()})


def _overridden_keys(kb: KnowledgeBase) -> frozenset[str]:
    """The parameters the site configuration changed (once per knowledge base)."""
    return kb.derived("engine.overridden_keys",
                      lambda kb: frozenset(k for k, p in kb.parameters.items() if p.overridden))


def _without_unit(case: Case, kb: KnowledgeBase) -> list[str]:
    """Values given as bare numbers (case-format contract: canonical unit), in clinical words."""
    out = []
    for name, series in case.labs.items():
        for lv in series:
            if not lv.unit_given:
                unit = lv.unit.replace("10*9/L", "x10^9/L")
                out.append(f"{kb.analyte(name).label} {lv.given} read as {lv.value:g} {unit}")
    return out


def _headline(hl: HyperleukocytosisResult, ls: LeukostasisResult, apl: bool, urg: str, tls_lab: bool | None,
              dic_overt: bool | None, leukemoid: str | None = None) -> str:
    parts: list[str] = []
    if hl.wbc_10e9_per_l is None:
        parts.append("White cell count missing: hyperleukocytosis not assessed")
    elif hl.present:
        blasts = f", blasts {fmt(hl.absolute_blasts_10e9_per_l)}" if hl.absolute_blasts_10e9_per_l is not None else ""
        parts.append(f"Hyperleukocytosis: WBC {fmt(hl.wbc_10e9_per_l)}{blasts} x10^9/L")
    elif hl.present is False:
        parts.append(f"No hyperleukocytosis (WBC {fmt(hl.wbc_10e9_per_l)} x10^9/L)")
    else:
        parts.append("Hyperleukocytosis undecided (censored WBC)")
    if ls.grade is not None and ls.applicable and leukemoid and ls.grade > 0:
        parts.append(f"symptoms at leukostasis grade {ls.grade}, not attributed to leukostasis (reactive count)")
    elif ls.grade is not None and ls.applicable:
        parts.append(f"leukostasis grade {ls.grade} ({ls.label})")
    elif ls.grade is None and hl.present:
        parts.append("leukostasis not graded")
    if apl:
        parts.append("APL known or suspected: no leukapheresis, ATRA now")
    if leukemoid:
        parts.append(f"{leukemoid}: treat the cause, no leukapheresis")
    if tls_lab:
        parts.append("laboratory TLS")
    if dic_overt:
        parts.append("overt DIC")
    # nothing urgent found is not "routine" when the count itself could not be assessed
    said = "NOT ASSESSED" if hl.present is None and urg == "routine" else urg.upper()
    return "; ".join(parts) + f" — {said}"
