"""Differential diagnosis of extreme leukocytosis and of tissue findings (EMH vs infiltration).

The criteria are data (``knowledge/data/rules/differential.toml``; sources in docs/differential.md);
this package only evaluates them. The rules file is parsed and checked by
:mod:`leukos.knowledge.differential_rules` when the knowledge base loads. Modules: ``quantities``
(intervals), ``facts`` and ``features`` (the case as yes/no/unknown), ``cml_phase``, ``ranking``,
``explanation`` (one entry with its working).

How the ranking is computed
---------------------------
1. **Features.** Each feature of the case is yes / no / unknown. A *measure* feature compares a
   quantity (WBC, blast %, absolute basophils, immature granulocytes…) with a threshold
   parameter; quantities are intervals, so a partly known differential still decides what it can
   (myelocytes 25 % alone already means immature granulocytes > 20 %). A *fact* feature reads the
   findings (genetics, immunophenotype, smear, causes, tumour, tissue cytology). Unknown is never
   read as no.
2. **Points.** Each criterion row gives a diagnosis points for a feature that holds: positive
   supports, negative opposes, zero lists the diagnosis as a consideration without points. The
   score is the sum. Weights are a software choice (``leukos_operational``, U).
3. **Likelihood.** ``high`` if score >= ``likelihood_high_min_points`` *and* the diagnosis's
   defining test is in the case (``high_requires``: e.g. CML needs BCR::ABL1 positive, PLR a
   known tumour with a raised cytokine and other causes excluded, APL PML::RARA or a
   promyelocytic phenotype); ``moderate`` if score >= ``likelihood_moderate_min_points``; else
   ``low``. A cap feature (e.g. BCR::ABL1 negative for CML) limits it to ``low``.
4. **Order.** A diagnosis whose ``rank_first_requires`` findings are all absent or unknown (APL
   without PML::RARA, promyelocytic phenotype, promyelocytes or coagulopathy) comes after every
   other entry; then by likelihood, score and a fixed tie-break order (data). A diagnosis is
   listed when at least one of its supporting or context features holds; blood diagnoses are not
   listed when the WBC is known to be normal, tissue diagnoses only when tissue cytology is given.
5. **What would change it.** For every unknown feature of a listed diagnosis the ranking is
   recomputed with that feature present; those that would change its likelihood or rank are
   reported in ``would_change``.

Steps 1-4 are the ranking; step 5 and the for/against, next tests and working are the
explanation, which costs most of the time. :func:`ranked` gives the ranking with or without the
explanation (one computation of the scores either way): the CDS cards, which never show the
differential, need only the leading diagnosis and ask for the ranking alone.

Monotonicity (tested): a gate or rank-first term is always a supporting feature and a cap always
an opposing one, and adding information never turns a feature that holds into one that does not. Hence adding
a finding that supports diagnosis D never lowers D's score or likelihood, and never lets a
diagnosis that the finding does not also support overtake D.
"""

from __future__ import annotations

from leukos.domain.assessment import DifferentialEntry, RankedDiagnosis
from leukos.domain.case import Case
from leukos.knowledge import KnowledgeBase
from leukos.rules.differential.cml_phase import PhaseResult, cml_phase
from leukos.rules.differential.explanation import entry, head
from leukos.rules.differential.features import case_features
from leukos.rules.differential.ranking import BANDS, context, score_all

__all__ = ["differential", "ranked", "case_features", "cml_phase", "PhaseResult", "IMPLEMENTED", "BANDS"]

IMPLEMENTED = True


def differential(case: Case, kb: KnowledgeBase) -> tuple[DifferentialEntry, ...]:
    """Ranked differential diagnosis of the case (docs/outputs.md, ``differential``).

    Parameters
    ----------
    case : Case
        The patient; missing findings are read as unknown, never as normal.
    kb : KnowledgeBase
        Knowledge base; settings ``differential.cml_phase_system``, ``differential.cnl_criteria``
        and ``differential.plr_high_criteria`` choose between editions.

    Returns
    -------
    tuple of DifferentialEntry
        Most likely first. Empty when the WBC is known to be normal and no tissue cytology is
        given, or when nothing in the case supports any diagnosis (e.g. no WBC at all).

    References
    ----------
    (Reding 1998, Granger 2009, Kasuga 2001, Arber 2016, ICC 2022); EMH vs myeloid sarcoma on FNAC;
    APL: Sanz 2009/2019. The citation keys are in the rules file.
    """
    return ranked(case, kb)[1] or ()


def ranked(case: Case, kb: KnowledgeBase, *, explain: bool = True) -> tuple[
        tuple[RankedDiagnosis, ...], tuple[DifferentialEntry, ...] | None]:
    """The ranking of the differential and, when ``explain``, its entries explained.

    Returns
    -------
    (ranking, entries)
        ``ranking``: one :class:`RankedDiagnosis` per listed diagnosis, most likely first (code,
        rank, likelihood, label, score, edition settings read). ``entries``: the same diagnoses as
        :class:`DifferentialEntry` (same code, rank, likelihood, label and score: each is built on
        its ranking head) with their explanation; ``None`` when not ``explain``.
    """
    ctx = context(case, kb)
    scored = score_all(ctx)
    heads = [head(ctx, s, i, explain=explain) for i, s in enumerate(scored, start=1)]
    ranking = tuple(h for h, _ in heads)
    if not explain:
        return ranking, None
    return ranking, tuple(entry(ctx, scored, s, h, ph) for s, (h, ph) in zip(scored, heads, strict=True))
