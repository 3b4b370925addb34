"""The validation report as Markdown (what ``leukos validate --format markdown`` prints)."""

from __future__ import annotations

from leukos.validation.scoring import CaseResult, ValidationReport

__all__ = ["render_comparison", "render_markdown"]


def _ranked(c: CaseResult, n: int = 3) -> str:
    return ", ".join(c.ranked[:n]) if c.ranked else "(nothing ranked)"


def render_markdown(report: ValidationReport, *, title: str = "Validation report", source: str = "") -> str:
    """Markdown summary: rates overall and by category, then every miss."""
    r = report
    out = [f"# {title}", ""]
    if source:
        out += [f"Set: `{source}`, {len(r.cases)} cases, {r.top1.total} informative.", ""]
    out += [f"leukos {r.leukos_version}, ruleset {r.ruleset_version}."
            + (" Settings: " + ", ".join(f"{k}={v}" for k, v in r.settings.items()) + "." if r.settings else ""), ""]
    out += ["How to read it: the differential is scored on informative cases only; top-1 counts a case when "
            "leukos ranks one of the reference's acceptable codes first, top-3 when one is among the first "
            "three (any CML phase matches CML). Hyperleukocytosis agreement is over the cases with a usable "
            "WBC; leukostasis sensitivity and specificity are over the cases whose source says whether "
            "leukostasis was present.", ""]
    out += ["## Differential (informative cases)", "",
            "| category | n | top-1 | top-3 |", "|---|---|---|---|"]
    for cat, (t1, t3) in r.by_category.items():
        out.append(f"| {cat} | {t1.total} | {t1.describe()} | {t3.describe()} |")
    out.append(f"| **all** | {r.top1.total} | **{r.top1.describe()}** | **{r.top3.describe()}** |")
    out += ["", "## Hyperleukocytosis and leukostasis", "",
            f"- Hyperleukocytosis flag agrees with the reference: {r.hyperleukocytosis.describe()}",
            f"- Leukostasis (leukos positive = grade >= {r.leukostasis_min_grade}), on cases where the source said "
            f"whether leukostasis was present: sensitivity {r.leukostasis_sensitivity.describe()}, "
            f"specificity {r.leukostasis_specificity.describe()}", ""]
    out += ["## Misses", "", "### Differential (top-1)", ""]
    if r.differential_misses:
        out += ["| case | category | reference | leukos top 3 | in top 3 |", "|---|---|---|---|---|"]
        for c in r.differential_misses:
            out.append(f"| {c.id} | {c.category} | {', '.join(c.acceptable)} | {_ranked(c)} | "
                       f"{'yes' if c.top3 else 'no'} |")
    else:
        out.append("None.")
    out += ["", "### Hyperleukocytosis", ""]
    if r.hyperleukocytosis_misses:
        out += [f"- {c.id}: reference {c.hyperleukocytosis_expected}, leukos "
                f"{'undecided' if c.hyperleukocytosis_found is None else c.hyperleukocytosis_found}"
                for c in r.hyperleukocytosis_misses]
    else:
        out.append("None.")
    out += ["", "### Leukostasis", ""]
    if r.leukostasis_misses:
        out += [f"- {c.id}: source {'describes' if c.leukostasis_expected else 'rules out'} leukostasis, leukos grade "
                f"{'not graded' if c.leukostasis_grade is None else c.leukostasis_grade}" for c in r.leukostasis_misses]
    else:
        out.append("None.")
    return "\n".join(out) + "\n"


def render_comparison(reports: list[tuple[str, ValidationReport]]) -> str:
    """Markdown table of top-1 and top-3 by category for several sets side by side (e.g. the
    development set as transcribed and its supplementary inputs)."""
    names = [n for n, _ in reports]
    cats = list(dict.fromkeys(c for _, r in reports for c in r.by_category))
    head = "| category | " + " | ".join(f"top-1 `{n}`" for n in names) + " | " + \
        " | ".join(f"top-3 `{n}`" for n in names) + " |"
    out = ["# leukos validation: sets side by side", "",
           "The same rules and settings on each set; the full report of each set follows.", "",
           head, "|" + "---|" * (1 + 2 * len(names))]
    for cat in cats:
        t1 = [r.by_category[cat][0].describe() if cat in r.by_category else "-" for _, r in reports]
        t3 = [r.by_category[cat][1].describe() if cat in r.by_category else "-" for _, r in reports]
        out.append(f"| {cat} | " + " | ".join(t1) + " | " + " | ".join(t3) + " |")
    out.append("| **all** | " + " | ".join(f"**{r.top1.describe()}**" for _, r in reports) + " | "
               + " | ".join(f"**{r.top3.describe()}**" for _, r in reports) + " |")
    return "\n".join(out) + "\n"
