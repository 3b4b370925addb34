"""``leukos validate``: score the assessment on a validation set (docs/validation.md)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer

from leukos.cli.inputs import parse_overrides
from leukos.cli.main import app, user_errors
from leukos.errors import CaseFormatError, ErrorDetail
from leukos.knowledge import load_knowledge


class ReportFormat(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"


@app.command("validate")
@user_errors
def validate_cmd(
    cases: str = typer.Argument(..., help="Validation set: JSON Lines of {id, case, expected} (docs/validation.md)."),
    fmt: ReportFormat = typer.Option(ReportFormat.text, "--format", "-f",
                                     help="text for people, json for programs, markdown for docs/validation.md."),
    leukostasis_min_grade: int = typer.Option(2, "--leukostasis-min-grade", min=1, max=3,
                                              help="Leukostasis grade from which leukos counts as positive."),
    settings: list[str] | None = typer.Option(None, "--set", help="Override a knowledge parameter (as in assess)."),
    fail_under: float | None = typer.Option(None, "--fail-under", min=0, max=100,
                                            help="Exit 1 when top-1 on informative cases is below this percentage."),
    compare: list[str] | None = typer.Option(None, "--compare",
                                             help="Another set to score with the same rules and show side by side "
                                                  "(repeatable); --fail-under applies to CASES only."),
) -> None:
    """Score the differential (top-1/top-3 overall and by category), the hyperleukocytosis flag and
    leukostasis on a validation set, and list the misses."""
    from leukos.validation import parse_validation_set, render_comparison, render_markdown, validate
    from leukos.validation.dataset import MAX_SET_BYTES

    overrides = parse_overrides(settings)
    kb = load_knowledge(overrides)
    reports = []
    for i, name in enumerate([cases, *(compare or [])]):
        path = Path(name)
        if not path.is_file():
            field = "CASES" if i == 0 else "--compare"
            raise CaseFormatError(ErrorDetail(field, name, "an existing JSON Lines file", "check the path"))
        with path.open("rb") as fh:
            data = fh.read(MAX_SET_BYTES + 1)
        reports.append((path.name, validate(parse_validation_set(data, kb, name=path.name), kb,
                                            leukostasis_min_grade=leukostasis_min_grade, settings=overrides)))
    report = reports[0][1]
    if fmt is ReportFormat.json:
        out = report.to_dict() if len(reports) == 1 else {"sets": {n: r.to_dict() for n, r in reports}}
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        if len(reports) > 1:
            typer.echo(render_comparison(reports))
        for n, r in reports:
            typer.echo(render_markdown(r, title=f"leukos validation: {n}", source=n), nl=False)
            if len(reports) > 1:
                typer.echo("")
    frac = report.top1.fraction
    if fail_under is not None and (frac is None or 100 * frac < fail_under):
        raise typer.Exit(1)
