"""Render assessment views as CDS Hooks cards (https://cds-hooks.hl7.org/2.0/#card-attributes).

The card ``detail`` is GitHub-flavoured Markdown carrying the basis of the finding — inputs,
intermediate numbers, references — so that a clinician can review it independently (FDA 2022 CDS
guidance, criterion 4). ``uuid`` is derived from the hook instance and the finding, so the same
call gives the same card ids (feedback stays idempotent).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from hashlib import sha1
from typing import Any

from leukos import __version__
from leukos.domain.assessment import Assessment
from leukos.knowledge import KnowledgeBase
from leukos.present import Labels, labels, working_rows
from leukos.service.cds.models import Card, Link, Source
from leukos.service.views import CitationView, FindingView

__all__ = ["cards_for", "card_from_view", "short_summary", "markdown_detail", "source_for", "card_uuid"]

_NS = uuid.UUID("5d1c7c2e-7d4b-4b8e-9f57-6c1e0c7a1e55")  # leukos card namespace (uuid5)
_NS_BYTES = _NS.bytes
_VARIANT = {h: "89ab"[int(h, 16) & 3] for h in "0123456789abcdef"}  # a hex digit with the RFC 4122 variant bits set
SUMMARY_MAX = 139  # spec: "<140-character summary"


def short_summary(text: str) -> str:
    """One line, at most 139 characters (ellipsis if cut)."""
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1].rstrip() + "…"


_DEEPEST = 16
_BULLETS = tuple("  " * d + "- " for d in range(_DEEPEST))  # a row's Markdown bullet at its depth, written once


def _working_md(working: Any, kb: KnowledgeBase, budget: int = 60) -> list[str]:
    """The working as a nested Markdown list of labelled values (the page's "Why?"), never JSON;
    at most ``budget`` rows so that a card stays a card (the full working is one link away). Past the
    budget, a "- …" stands for the rest of each level that had more (as a walk of the page's tree
    that stops there writes it)."""
    rows = working_rows(working, kb)
    bullets = _BULLETS
    out = [f"{bullets[d] if d < _DEEPEST else '  ' * d + '- '}{label}{': ' if text else ''}{text}"
           for d, label, text in rows[:max(budget, 0)]]
    if len(out) < len(rows):
        shallowest = len(rows)  # deeper than any row: the first row not shown has a "…" at its depth
        for d, _, _ in rows[len(out):]:
            if d < shallowest:
                out.append("  " * d + "- …")
                shallowest = d
                if d == 0:
                    break
    return out


@dataclass(frozen=True)
class _Common:
    """The parts of a card's detail that depend only on the assessment, worded once per call."""

    apl_line: str | None
    missing_line: str | None
    footer: str


def _common(a: Assessment, kb: KnowledgeBase, lab: Labels) -> _Common:
    apl = a.leukapheresis.apl_suspected
    return _Common(
        apl_line="**Leukapheresis contraindicated:** " + lab.text(" ".join(a.leukapheresis.contraindications))
        if apl else None,
        missing_line=_missing_line(tuple(a.missing_data), lab) if a.missing_data else None,
        footer=f"leukos {a.leukos_version}, ruleset {a.ruleset_version}. {a.disclaimer}")


def _missing_line(fields: tuple[str, ...], lab: Labels) -> str:
    """The fields not recorded, by their labels: a pure function of (kb, field names), remembered."""
    memo = lab.derived.setdefault("card_missing_lines", {})
    line = memo.get(fields)
    if line is None:
        if len(memo) >= _MEMO_MAX:
            memo.clear()
        line = memo[fields] = "Not recorded, so not assessed (not assumed normal): " + ", ".join(
            lab.kb.field_label(n) for n in fields)
    return line


def _reference_lines(citations: tuple[CitationView, ...], lab: Labels) -> list[str]:
    """A Markdown line per reference. The views resolve each citation key once per kb (one frozen
    CitationView per key: :func:`leukos.service.views.cite`), so its line is remembered by key for
    that very view (any other view of the key is worded afresh)."""
    memo = lab.derived.setdefault("card_reference_lines", {})
    out = []
    for c in citations:
        hit = memo.get(c.key) if type(c.key) is str else None
        if hit is not None and hit[0] is c:
            out.append(hit[1])
            continue
        ref = f"[{c.text}]({c.url})" if c.url else c.text
        line = f"- {ref}{' (some fields unverified)' if c.unverified else ''}"
        if type(c.key) is str:
            if len(memo) >= _MEMO_MAX:
                memo.clear()
            memo[c.key] = (c, line)
        out.append(line)
    return out


_MEMO_MAX = 4096


def markdown_detail(view: FindingView, a: Assessment, kb: KnowledgeBase) -> str:
    """Card detail in clinical words: points, contraindication, what is missing, working, references."""
    lab = labels(kb)
    return _detail(view, lab, _common(a, kb, lab))


def _detail(view: FindingView, lab: Labels, common: _Common) -> str:
    texts = lab.text_cache  # the words of rule texts, remembered per kb (Labels.text without the calls)
    lines = [f"**{lab.text(view.title)}**", ""]
    lines += [f"- {texts.get(p) or lab.text(p)}" for p in view.points]
    if common.apl_line is not None and view.key != "apl":  # the contraindication travels on every card
        lines += ["", common.apl_line]
    if common.missing_line is not None:
        lines += ["", common.missing_line]
    if view.unverified:
        lines += ["", "_Part of this rule uses a threshold marked unverified in the leukos knowledge base._"]
    if view.working:
        lines += ["", "<details><summary>Working</summary>", ""] + _working_md(view.working, lab.kb) \
            + ["", "</details>"]
    if view.citations:
        lines += ["", "References:"] + _reference_lines(view.citations, lab)
    lines += ["", common.footer]
    return "\n".join(lines)


def card_uuid(hook_instance: str, key: str) -> str:
    """``str(uuid.uuid5(_NS, f"{hook_instance}/{key}"))``, written out (RFC 4122 section 4.3: SHA-1 of the
    namespace and the name, version 5, RFC variant) without building a UUID object: same text, a card
    id per card of every call (tests/service/test_cds_words.py checks it against ``uuid.uuid5``)."""
    x = sha1(_NS_BYTES + f"{hook_instance}/{key}".encode()).hexdigest()
    # byte 6's high nibble is the version (5); byte 8's top two bits the variant (binary 10)
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT[x[16]]}{x[17:20]}-{x[20:32]}"


def source_for(base_url: str) -> Source:
    return Source(label=f"leukos {__version__} (extreme leukocytosis decision support)", url=f"{base_url}/about")


def card_from_view(view: FindingView, a: Assessment, kb: KnowledgeBase, *, hook_instance: str, base_url: str,
                   page_url: str | None) -> Card:
    lab = labels(kb)
    return _card(view, lab, _common(a, kb, lab), hook_instance, source_for(base_url), _links(page_url))


def _links(page_url: str | None) -> list[Link] | None:
    return [Link(label="Open in leukos (assessment, working, plan)", url=page_url, type="absolute")] if page_url else None


def _card(view: FindingView, lab: Labels, common: _Common, hook_instance: str, source: Source,
          links: list[Link] | None) -> Card:
    """One card; ``source`` and ``links`` are the same for every card of a call (frozen in use: built once)."""
    return Card(
        uuid=card_uuid(hook_instance, view.key),
        summary=short_summary(lab.text(view.summary)),
        detail=_detail(view, lab, common),
        indicator=view.indicator,  # type: ignore[arg-type]
        source=source,
        links=links,
    )


def cards_for(views: list[FindingView], a: Assessment, kb: KnowledgeBase, *, hook_instance: str, base_url: str,
              page_url: str | None) -> list[Card]:
    """One card per view, most urgent first; ``[]`` when there is nothing to say."""
    if not views:
        return []
    lab = labels(kb)
    common = _common(a, kb, lab)
    source, links = source_for(base_url), _links(page_url)
    return [_card(v, lab, common, hook_instance, source, links) for v in views]
