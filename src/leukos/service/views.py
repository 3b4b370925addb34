"""What the service shows, derived from an :class:`~leukos.domain.assessment.Assessment`.

CDS cards, the web page and the printable report all render these views; none recomputes a
finding. A view only selects, orders and words what the assessment already says,
and carries the assessment's own ``working`` and ``citations`` for the "why".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from leukos.domain.assessment import Assessment
from leukos.knowledge import KnowledgeBase
from leukos.present import fmt_num, labels, organ_grades_text

__all__ = ["FindingView", "CitationView", "finding_views", "cite", "INDICATOR_ORDER"]

# CDS Hooks card indicators, most urgent first (https://cds-hooks.hl7.org/2.0/#card-attributes).
INDICATOR_ORDER = {"critical": 0, "warning": 1, "info": 2}
_URGENCY_TO_INDICATOR = {"emergent": "critical", "urgent": "warning", "routine": "info"}


@dataclass(frozen=True)
class CitationView:
    key: str
    text: str
    url: str | None
    unverified: bool


@dataclass(frozen=True)
class FindingView:
    """One finding as shown: an indicator, a one-line summary and the basis."""

    key: str  # hyperleukocytosis | tls | dic | artefact:<code> | apl | missing
    title: str
    indicator: str  # critical | warning | info
    summary: str
    points: tuple[str, ...] = ()
    # The assessment's own working (not a copy: read only, like the assessment); the page and the
    # cards read it through leukos.present.working_rows, which reads any value as its JSON form.
    working: Mapping[str, Any] = field(default_factory=dict)
    citations: tuple[CitationView, ...] = ()
    unverified: bool = False
    # The points the web page and report show: without the recommendations (they have their own
    # section there) and without repeating the headline.
    page_points: tuple[str, ...] | None = None
    page_summary: str | None = None


def cite(kb: KnowledgeBase, keys: tuple[str, ...] | list[str]) -> tuple[CitationView, ...]:
    """Resolve citation keys to short texts and links; an unknown key is shown as such, not dropped.

    The views of the knowledge base's own citation keys (one key, or a rule's tuple of keys) are
    remembered per knowledge base: they repeat call after call. Any other key (unknown, or not a
    text) is resolved afresh and never kept, so the memo holds knowledge only."""
    derived = labels(kb).derived
    groups = derived.setdefault("citation_view_groups", {})
    if type(keys) is tuple:  # the usual call: the same keys of a rule's citations, call after call
        hit = groups.get(keys) if _STR.issuperset(map(type, keys)) else None  # stored: knowledge keys only
        if hit is not None:
            return hit
    memo = derived.setdefault("citation_views", {})  # a pure function of (kb, key); views are frozen
    known = kb.citations
    out: dict[tuple[str, str | None], CitationView] = {}  # by publication: its text and link
    for k in dict.fromkeys(keys):
        view = memo.get(k) if type(k) is str else None
        if view is None:
            view = _citation_view(kb, k)
            if type(k) is str and k in known:
                if len(memo) >= _CITE_MEMO_MAX:
                    memo.clear()
                memo[k] = view
        # Two keys may cite one publication for different statements (each with its own unverified
        # parts): the publication is listed once, unverified if either use of it is.
        same = out.get((view.text, view.url))
        if same is None:
            out[(view.text, view.url)] = view
        elif view.unverified and not same.unverified:
            out[(view.text, view.url)] = replace(same, unverified=True)
    views = tuple(out.values())
    if type(keys) is tuple and _STR.issuperset(map(type, keys)) and all(k in known for k in keys):
        if len(groups) >= _CITE_MEMO_MAX:
            groups.clear()
        groups[keys] = views
    return views


_CITE_MEMO_MAX = 4096
_STR = frozenset({str})


def _citation_view(kb: KnowledgeBase, k: str) -> CitationView:
    c = kb.citations.get(k)
    if c is None:
        return CitationView(k, f"{k} (not in the citation registry)", None, True)
    return CitationView(k, f"{c.short}. {c.title_sentence}", c.link, bool(c.unverified))


def _fmt(v: float | None, unit: str) -> str:
    """A count as the working writes it (:func:`leukos.present.fmt_num`: 219.9, not 219.891)."""
    return "not recorded" if v is None else f"{fmt_num(v)} {unit}"


def finding_views(a: Assessment, kb: KnowledgeBase) -> list[FindingView]:
    """The findings of an assessment that call for attention, most urgent first."""
    views: list[FindingView] = []
    hl, ls = a.hyperleukocytosis, a.leukostasis

    if a.leukapheresis.apl_suspected:
        views.append(FindingView(
            key="apl", title="APL known or suspected", indicator="critical",
            summary="APL known or suspected: leukapheresis is not recommended; see contraindications",
            points=tuple(a.leukapheresis.contraindications) + tuple(a.leukapheresis.notes),
            working=a.leukapheresis.working, citations=cite(kb, a.leukapheresis.citations)))

    if hl.present or (ls.grade or 0) > 0:
        indicator = _URGENCY_TO_INDICATOR.get(a.urgency, "warning")
        if hl.present and indicator == "info":
            indicator = "warning"
        points = [f"WBC {_fmt(hl.wbc_10e9_per_l, '×10⁹/L')} (threshold {hl.threshold_10e9_per_l:g} ×10⁹/L)",
                  f"Absolute blasts {_fmt(hl.absolute_blasts_10e9_per_l, '×10⁹/L')}"]
        if ls.grade is not None:
            organs = organ_grades_text(ls.organ_grades, kb)
            points.append(f"Leukostasis grade {ls.grade} ({ls.label}); organ grades: {organs}")
        points += list(hl.lineage_notes) + list(ls.notes)
        page_points = list(points)
        when = labels(kb).section("priority")  # as the page words the priorities
        points += [f"{when.get(str(r.priority), r.priority)}: {r.text}" for r in a.recommendations if r.priority <= 2]
        lp = a.leukapheresis
        if lp.indicated is not None:
            lp_line = (f"Leukapheresis: indicated{f' (ASFA category {lp.asfa_category})' if lp.asfa_category else ''}"
                       f", {lp.urgency}" if lp.indicated else "Leukapheresis: not indicated")
            points.append(lp_line)
            page_points.append(lp_line)
        views.append(FindingView(
            key="hyperleukocytosis", title="Hyperleukocytosis / leukostasis", indicator=indicator,
            summary=a.headline, points=tuple(points), page_points=tuple(page_points),
            page_summary=(f"Hyperleukocytosis: WBC {_fmt(hl.wbc_10e9_per_l, '×10⁹/L')}" if hl.present
                          else f"WBC {_fmt(hl.wbc_10e9_per_l, '×10⁹/L')}")
            + (f"; leukostasis grade {ls.grade} ({ls.label})" if ls.grade is not None else ""),
            working={"hyperleukocytosis": hl.working, "leukostasis": ls.working,
                     "leukapheresis": a.leukapheresis.working},
            citations=cite(kb, tuple(hl.citations) + tuple(ls.citations) + tuple(a.leukapheresis.citations)
                           + tuple(c for r in a.recommendations if r.priority <= 2 for c in r.citations)),
            unverified=ls.unverified or a.leukapheresis.unverified))

    tls = a.tls
    if tls.laboratory or tls.clinical:
        kind = "Clinical" if tls.clinical else "Laboratory"
        views.append(FindingView(
            key="tls", title="Tumour lysis syndrome", indicator="critical" if tls.clinical else "warning",
            summary=f"{kind} tumour lysis syndrome ({tls.definition}): {', '.join(tls.criteria_met)}",
            points=tuple(tls.notes) + ((f"Not assessed: {', '.join(tls.criteria_not_assessed)}",)
                                       if tls.criteria_not_assessed else ()),
            working=tls.working, citations=cite(kb, tls.citations)))

    dic = a.dic
    if dic.overt:
        views.append(FindingView(
            key="dic", title="Disseminated intravascular coagulation", indicator="warning",
            summary=f"Overt DIC: ISTH score {dic.isth_score} (range {dic.score_range[0]}-{dic.score_range[1]})",
            points=tuple(f"{k}: {v}" for k, v in dic.items.items()) + tuple(dic.notes),
            working=dic.working, citations=cite(kb, dic.citations)))

    for art in a.artefacts:
        views.append(FindingView(
            key=f"artefact:{art.code}", indicator="warning",
            title=f"Possible laboratory artefact: {kb.analytes[art.lab].label if art.lab in kb.analytes else art.lab}",
            summary=art.message, points=(art.action,), working=art.working,
            citations=cite(kb, art.citations)))

    views.sort(key=lambda v: INDICATOR_ORDER[v.indicator])
    return views
