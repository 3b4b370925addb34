"""Text rendering of an assessment for a clinician: headline, actions by urgency, findings,
artefacts, what could not be assessed; the working and references with --explain."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from leukos.domain.assessment import Assessment
from leukos.knowledge.base import end_sentence

__all__ = ["render_assessment"]

URGENCY_STYLE = {"emergent": "bold white on red", "urgent": "bold black on yellow", "routine": "bold black on green"}
PRIORITY = {1: "Act now", 2: "Today", 3: "Also"}


_TLS_DEFINITION = {"cairo_bishop": "Cairo-Bishop definition", "howard": "Howard definition"}


def _field_label(name: str) -> str:
    from leukos.knowledge import load_knowledge

    return load_knowledge().field_label(name)


def _words(text: str) -> str:
    """A text of the assessment with its code names put into words (``fibrin_marker``, ``labs.wbc``), as
    the web page and the CDS cards say it (:func:`leukos.present.clinical_text`)."""
    from leukos import present
    from leukos.knowledge import load_knowledge

    return present.clinical_text(text, load_knowledge())


def _yn(v: bool | None, yes: str = "yes", no: str = "no") -> str:
    return "not assessed" if v is None else (yes if v else no)


def _cites(keys, a: Assessment) -> str:
    if not keys:
        return ""
    return " [dim]\\[" + "; ".join(escape(_short(a, k)) for k in keys) + "][/]"


def _short(a: Assessment, key: str) -> str:
    ref = a.references.get(key)
    if not ref:
        return key
    first = (ref.get("authors") or "").split(",")[0].strip()
    if not first or first.startswith("("):  # authors not recorded: name the venue instead
        first = re.sub(r"\s*\d{4}$", "", ref["venue"].split(";")[0].strip())
    return f"{first} {ref['year']}"


def _urgency(a: Assessment) -> str:
    from leukos import present
    from leukos.knowledge import load_knowledge

    return present.urgency_label(a, load_knowledge())


def render_assessment(a: Assessment, console: Console, *, explain: bool = False) -> None:
    console.print(f"[dim]leukos {a.leukos_version} · ruleset {a.ruleset_version}"
                  + (f" · case {escape(a.case_id)}" if a.case_id else "") + "[/]")
    console.print(f"[italic]{escape(a.disclaimer)}[/]")
    console.print(Panel(Text(_words(a.headline)), title=_urgency(a).upper(), style=URGENCY_STYLE.get(a.urgency, ""), expand=True))

    if a.recommendations:
        for prio in (1, 2, 3):
            recs = [r for r in a.recommendations if r.priority == prio]
            if not recs:
                continue
            console.print(f"[bold]{PRIORITY[prio]}[/]")
            for r in recs:
                flag = " [magenta](unverified)[/]" if r.unverified else ""
                console.print(f"  • {escape(_words(r.text))}{flag}{_cites(r.citations, a)}")

    t = Table(title="Findings", show_lines=False, expand=True, title_justify="left")
    t.add_column("Finding", style="bold", no_wrap=True)
    t.add_column("Result")
    hl = a.hyperleukocytosis
    from leukos.knowledge import load_knowledge
    from leukos.present import fmt_num, organ_grades_text  # as the page and the cards write them

    blasts = f"; absolute blasts {fmt_num(hl.absolute_blasts_10e9_per_l)} ×10⁹/L" if hl.absolute_blasts_10e9_per_l is not None else ""
    wbc = "missing" if hl.wbc_10e9_per_l is None else f"{fmt_num(hl.wbc_10e9_per_l)} ×10⁹/L"
    t.add_row("Hyperleukocytosis", f"{_yn(hl.present, 'present', 'absent')} — WBC {wbc} (threshold > {hl.threshold_10e9_per_l:g}){blasts}"
              + "".join(f"\n[dim]{escape(_words(n))}[/]" for n in hl.lineage_notes))
    ls = a.leukostasis
    organs = organ_grades_text(ls.organ_grades, load_knowledge())
    grade = "not graded" if ls.grade is None else f"grade {ls.grade} ({ls.label})"
    t.add_row("Leukostasis", f"{grade} — organs: {organs} [magenta](grading table unverified)[/]"
              + "".join(f"\n[dim]{escape(_words(n))}[/]" for n in ls.notes if "unverified" not in n))
    tls = a.tls
    crit = ", ".join(_field_label(c) for c in tls.criteria_met) or "none"
    t.add_row("Tumour lysis", f"laboratory {_yn(tls.laboratory)} (criteria met: {crit}); clinical {_yn(tls.clinical)}; "
              f"risk {tls.risk or 'not assessed'} [dim]({_TLS_DEFINITION.get(tls.definition, tls.definition)})[/]")
    dic = a.dic
    score = f"{dic.isth_score}" if dic.isth_score is not None else f"{dic.score_range[0]}-{dic.score_range[1]} (incomplete)"
    t.add_row("DIC (ISTH)", f"score {score}; overt {_yn(dic.overt)}")
    lk = a.leukapheresis
    t.add_row("Leukapheresis", f"indicated {_yn(lk.indicated)}"
              + (f"; ASFA category {lk.asfa_category}" if lk.asfa_category else "")
              + "".join(f"\n[red bold]CONTRAINDICATED: {escape(_words(c))}[/]" for c in lk.contraindications)
              + "".join(f"\n[dim]{escape(_words(n))}[/]" for n in lk.notes))
    console.print(t)

    if a.differential:
        _render_differential(a, console)

    if a.artefacts:
        console.print("[bold]Possible lab artefacts[/]")
        for art in a.artefacts:
            console.print(f"  ⚠ [bold]{escape(_field_label(art.lab))}[/]: {escape(_words(art.message))}\n"
                          f"    [green]Action:[/] {escape(_words(art.action))}{_cites(art.citations, a)}")

    if a.not_assessed or a.missing_data:
        console.print("[bold]Could not assess[/]")
        for n in a.not_assessed:
            console.print(f"  – {escape(_words(n))}")
        if a.missing_data:
            console.print(f"  Missing: {escape(', '.join(_field_label(n) for n in a.missing_data))}")
    if a.warnings:
        console.print("[bold]Warnings[/]")
        for w in a.warnings:
            console.print(f"  ! {escape(_words(w))}")

    if explain:
        console.print("[bold]Working[/]")
        titles = {"hyperleukocytosis": "Hyperleukocytosis", "leukostasis": "Leukostasis", "tls": "Tumour lysis",
                  "dic": "DIC (ISTH)", "leukapheresis": "Leukapheresis"}
        for name, title in titles.items():
            part = getattr(a, name)
            console.print(Panel(escape(_working_text(part.working)), title=title, expand=True))
        for art in a.artefacts:
            console.print(Panel(escape(_working_text(art.working)), title=f"Possible artefact: {_field_label(art.lab)}"))
        for e in a.differential:
            _explain_differential_entry(e, console)
        if a.settings:
            console.print("[bold]Settings[/] [dim](as --set takes them)[/] " + escape(", ".join(f"{k}={v}" for k, v in a.settings.items())))
        console.print("[bold]References[/]")
        for i, line in enumerate(_reference_lines(a.references), 1):
            console.print(f"  {i}. {escape(line[0])}[dim]{escape(line[1])}[/]")
    else:
        console.print("[dim]Run with --explain for the working and the references.[/]")


LIKELIHOOD_STYLE = {"high": "bold red", "moderate": "yellow", "low": "dim"}


def _render_differential(a: Assessment, console: Console) -> None:
    """The ranked differential, one block per diagnosis (for, against, next tests), readable at 80 columns;
    what would change the leading entries below each."""
    console.print("[bold]Differential diagnosis (ranked)[/]")
    for e in a.differential:
        summary = e.working.get("summary", {})
        pro = [*summary.get("for", e.supporting), *(f"{x} (context, no points)" for x in summary.get("context", ()))]
        con = summary.get("against", e.against)
        tests = summary.get("tests", e.next_tests)
        style = LIKELIHOOD_STYLE.get(e.likelihood, "")
        console.print(f"  [bold]{e.rank}. {escape(e.label or e.code)}[/] — [{style}]{e.likelihood}[/] [dim]({e.score:g} point{'' if abs(e.score) == 1 else 's'})[/]")
        for head, items in (("for", pro), ("against", con), ("next tests", tests)):
            if items:
                console.print(Padding(f"[dim]{head}:[/] " + escape(_words("; ".join(items))), (0, 0, 0, 5)))
        if e.likelihood != "low":
            for n in e.notes:
                if not n.startswith("Not in the case format"):
                    console.print(Padding(f"[dim]note:[/] {escape(_words(n))}", (0, 0, 0, 5)))
            for w in e.would_change:
                console.print(Padding(f"[dim]would change:[/] {escape(_words(w))}", (0, 0, 0, 5)))
    console.print("[dim](U) = unverified criterion or threshold; points and likelihood bands are software choices. "
                  "--explain shows the features used.[/]")


def _explain_differential_entry(e: Any, console: Console) -> None:
    body = {
        "score": e.score,
        "points": e.working.get("points", []),
        "high_requires": e.working.get("high_requires", []),
        "high_requires_met": e.working.get("high_requires_met"),
        "capped_by": e.working.get("capped_by", []),
        "features_used": e.features_used,
        "supporting": e.supporting,
        "against": e.against,
        "would_change": e.would_change,
        "unverified": e.unverified,
        "notes": e.notes,
        "next_tests": e.next_tests,
    }
    for extra in ("phase", "settings"):
        if extra in e.working:
            body[extra] = e.working[extra]
    console.print(Panel(escape(_working_text(body)),
                        title=f"Differential #{e.rank}: {e.label or e.code} ({e.likelihood})"))


def _working_text(working: Any) -> str:
    """The working as labelled, indented lines (the same presenter as the web page's "Why?"), not JSON."""
    from leukos.knowledge import load_knowledge
    from leukos.present import working_tree

    def lines(node, depth: int) -> list[str]:
        out: list[str] = []
        for kid in node.children:
            out.append("  " * depth + f"{kid.label}" + (f": {kid.text}" if kid.text else ""))
            out += lines(kid, depth + 1)
        return out

    return "\n".join(lines(working_tree(_jsonable(working), load_knowledge()), 0)) or "none"


def _jsonable(x: Any) -> Any:
    from leukos.domain.assessment import jsonable

    return jsonable(x)


def _reference_lines(references: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Each publication once, as (reference, what of it is unverified): two citation keys may cite one
    publication for different statements, each with its own unverified parts (listed together)."""
    pubs: dict[str, list[str]] = {}
    for ref in references.values():
        link = f" https://doi.org/{ref['doi']}" if ref.get("doi") else (f" {ref['url']}" if ref.get("url") else "")
        who = f"{end_sentence(ref['authors'])} " if ref.get("authors") else ""
        text = f"{who}{end_sentence(ref['title'])} {end_sentence(ref['venue'])}{link}"
        notes = pubs.setdefault(text, [])
        for f in ref.get("unverified_fields") or ():
            if f not in notes:
                notes.append(f)
        if ref.get("checked_only_through_a_secondary_source") and _SECONDARY not in notes:
            notes.append(_SECONDARY)
    return [(text, f" (unverified: {', '.join(notes)})" if notes else "") for text, notes in pubs.items()]


_SECONDARY = "checked only through a secondary source"

