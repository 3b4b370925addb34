"""order-select: recognise the draft orders that matter in extreme leukocytosis.

Order kinds, their codes/text and their cautions are data (``knowledge/data/rules/orders.toml``);
whether an order matters is read from the Assessment (``hyperleukocytosis.present``,
``leukapheresis``), never recomputed. Hook definition: HL7/cds-hooks-library ``order-select``
(context ``selections`` = ``Type/id`` of the draft orders just selected, ``draftOrders`` = Bundle).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leukos.domain.assessment import Assessment, jsonable
from leukos.domain.case import Case
from leukos.errors import LeukosUserError
from leukos.knowledge import KnowledgeBase
from leukos.present import clinical_text, fmt_num, labels
from leukos.service.cds.cards import card_uuid, markdown_detail, short_summary, source_for
from leukos.service.cds.models import Card, Link
from leukos.service.views import FindingView, cite

__all__ = ["selected_orders", "order_kind", "order_cards"]

_CYTOREDUCTION = {"hydroxyurea", "chemotherapy", "leukapheresis"}


def _concept(res: Mapping[str, Any]) -> Mapping[str, Any]:
    for k in ("code", "medicationCodeableConcept", "codeCodeableConcept"):
        v = res.get(k)
        if isinstance(v, dict):
            return v
    return {}


def selected_orders(context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The draft orders named in ``context.selections`` (all drafts if no selection is given)."""
    bundle = context.get("draftOrders") or {}
    entries = [e.get("resource") for e in (bundle.get("entry") or []) if isinstance(e, dict)]
    resources = [r for r in entries if isinstance(r, dict)]
    selections = context.get("selections")
    if not isinstance(selections, list) or not selections:
        return resources
    wanted = set(selections)
    return [r for r in resources if f"{r.get('resourceType')}/{r.get('id')}" in wanted]


def order_kind(res: Mapping[str, Any], kb: KnowledgeBase) -> str | None:
    kinds = kb.table("orders")["kinds"]
    concept = _concept(res)
    codings = [c for c in concept.get("coding") or [] if isinstance(c, dict)]
    texts = [str(concept.get("text") or "").lower()] + [str(c.get("display") or "").lower() for c in codings]
    for name, kind in kinds.items():
        if res.get("resourceType") not in kind["resource_types"]:
            continue
        for code in kind["codes"]:
            if any(c.get("system") == code["system"] and c.get("code") == code["code"] for c in codings):
                return name
    for name, kind in kinds.items():
        if res.get("resourceType") not in kind["resource_types"]:
            continue
        if any(t and any(s in t for s in kind["text"]) for t in texts):
            return name
    return None


def _card(view: FindingView, a: Assessment, kb: KnowledgeBase, hook_instance: str, base_url: str,
          page_url: str | None) -> Card:
    return Card(uuid=card_uuid(hook_instance, view.key),
                summary=short_summary(clinical_text(view.summary, kb)),
                detail=markdown_detail(view, a, kb), indicator=view.indicator,  # type: ignore[arg-type]
                source=source_for(base_url),
                links=[Link(label="Open in leukos", url=page_url, type="absolute")] if page_url else None)


def order_cards(orders: list[dict[str, Any]], case: Case, a: Assessment, kb: KnowledgeBase, *,
                hook_instance: str, base_url: str, page_url: str | None,
                plan: Mapping[str, Any] | None = None, no_plan: str | None = None) -> list[Card]:
    kinds = kb.table("orders")["kinds"]
    cards: list[Card] = []
    done: set[str] = set()
    for res in orders:
        name = order_kind(res, kb)
        if name is None or name in done:
            continue
        kind = kinds[name]
        order_ref = f"{res.get('resourceType')}/{res.get('id')}"
        if name == "leukapheresis":
            done.add(name)
            lp = a.leukapheresis
            if lp.apl_suspected:
                view = FindingView(
                    key="order:leukapheresis", title="Leukapheresis requested: APL known or suspected",
                    indicator="critical",
                    summary="Leukapheresis requested but APL is known or suspected: not recommended",
                    points=tuple(lp.contraindications) + tuple(lp.notes), working=jsonable(lp.working),
                    citations=cite(kb, lp.citations))
            else:
                points = [_INDICATED.get(lp.indicated, "Indication for leukapheresis not established")]
                if lp.asfa_category:
                    points.append(f"ASFA category: {lp.asfa_category}")
                if lp.urgency:
                    points.append(f"Urgency: {lp.urgency}")
                points += [f"Contraindication: {c}" for c in lp.contraindications]
                points += list(lp.notes)
                if plan:
                    method = plan.get("tbv_method")
                    method = labels(kb).section("tbv_method").get(method, method)  # its words, not its code
                    points.append(f"Plan: TBV {plan.get('tbv_l')} L ({method}), process "
                                  f"{plan.get('volume_to_process_l')} L ({plan.get('blood_volumes_processed')} blood "
                                  f"volumes), about {plan.get('duration_min')} min")
                elif no_plan:
                    points.append(no_plan)
                view = FindingView(
                    key="order:leukapheresis", title="Leukapheresis request: planning",
                    indicator="warning" if lp.contraindications else "info",
                    summary=f"{kind['summary']}: " + ("indicated" if lp.indicated else "indication not established")
                    + (f", ASFA {lp.asfa_category}" if lp.asfa_category else ""),
                    points=tuple(points), working={"order": order_ref, "leukapheresis": jsonable(lp.working),
                                                   **({"plan": dict(plan)} if plan else {})},
                    citations=cite(kb, tuple(lp.citations) + tuple(plan.get("citations", ()) if plan else ())),
                    unverified=lp.unverified)
            cards.append(_card(view, a, kb, hook_instance, base_url, page_url))
            continue
        if kind["when"] == "hyperleukocytosis.present" and a.hyperleukocytosis.present is not True:
            continue
        treatments = set(case.findings.treatment or ())
        if name == "rbc_transfusion" and treatments & _CYTOREDUCTION:
            continue  # cytoreduction already recorded
        done.add(name)
        hl = a.hyperleukocytosis
        view = FindingView(
            key=f"order:{name}", title=kind["summary"], indicator=kind["indicator"], summary=kind["summary"],
            points=(kind["message"], f"WBC {hl.wbc_10e9_per_l:g} ×10⁹/L; hyperleukocytosis threshold "
                    f"{hl.threshold_10e9_per_l:g} ×10⁹/L" if hl.wbc_10e9_per_l is not None else "WBC not recorded"),
            working={"order": order_ref, "hyperleukocytosis": jsonable(hl.working),
                     "cytoreduction_recorded": sorted(treatments & _CYTOREDUCTION)},
            citations=cite(kb, tuple(kind["citations"]) + tuple(hl.citations)),
            unverified=kind["status"] == "U")
        cards.append(_card(view, a, kb, hook_instance, base_url, page_url))
    return cards


_INDICATED = {True: "Leukapheresis indicated", False: "Leukapheresis not indicated"}


def plan_problem(exc: LeukosUserError, kb: KnowledgeBase) -> str:
    """Why the planner could not plan this patient, in the card's words: what is missing or wrong, by
    its label (the case-format field names and fixes are for a case file, not for an EHR record)."""
    parts = []
    for d in exc.details:
        label = kb.field_label(d.field)
        parts.append(f"{label} not recorded; needed: {d.expected}" if d.value is None
                     else f"{label} {fmt_num(d.value)} cannot be used; expected: {d.expected}")
    title = exc.title.rstrip(":. ")
    return f"No volumes computed ({title[:1].lower()}{title[1:]}): " + "; ".join(parts) + "."

