"""Commands of the assessment core: assess, demo, rules, schema."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from leukos.cli.inputs import parse_overrides, read_case
from leukos.cli.main import app, user_errors
from leukos.cli.render import render_assessment
from leukos.knowledge import load_knowledge
from leukos.rules import assess


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _print_json(data) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


@app.command("assess")
@user_errors
def assess_cmd(
    case: str = typer.Argument(..., help="Case file (leukos case JSON/YAML or FHIR R4 Bundle), or - for stdin."),
    fmt: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f", help="text for people, json for programs."),
    explain: bool = typer.Option(False, "--explain", help="Show the working and the references."),
    settings: list[str] | None = typer.Option(None, "--set", help="Override a knowledge parameter, e.g. --set hyperleukocytosis.wbc_threshold=50"),
) -> None:
    """Assess one patient: hyperleukocytosis, leukostasis, TLS, DIC, artefacts, management."""
    kb = load_knowledge(parse_overrides(settings))
    result = assess(read_case(case, kb), kb)
    if fmt is OutputFormat.json:
        _print_json(result.to_dict())
    else:
        render_assessment(result, _console(), explain=explain)


def example_files() -> list[Path]:
    """The bundled example cases: packaged copy in a wheel, the repository's examples/ otherwise."""
    from importlib import resources

    packaged = resources.files("leukos").joinpath("examples")
    if packaged.is_dir():
        root = Path(str(packaged))
    else:
        root = Path(__file__).resolve().parents[3] / "examples"
    return sorted(p for p in root.glob("*") if p.suffix in (".yaml", ".yml", ".json"))


@app.command("demo")
@user_errors
def demo_cmd(
    fmt: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f"),
    explain: bool = typer.Option(False, "--explain"),
) -> None:
    """Assess every bundled example case and print the results."""
    kb = load_knowledge()
    files = example_files()
    if not files:
        raise typer.BadParameter("no example cases found")
    results = []
    console = _console()
    for path in files:
        result = assess(read_case(str(path), kb), kb)
        if fmt is OutputFormat.json:
            results.append({"file": path.name, "assessment": result.to_dict()})
        else:
            console.rule(f"[bold]{path.name}")
            render_assessment(result, console, explain=explain)
    if fmt is OutputFormat.json:
        _print_json(results)


@app.command("rules")
@user_errors
def rules_cmd(
    fmt: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f"),
    citations: bool = typer.Option(False, "--citations", help="List the citation registry instead."),
) -> None:
    """List every rule parameter with its value, unit, status (V/P/U) and sources."""
    kb = load_knowledge()
    if citations:
        if fmt is OutputFormat.json:
            _print_json({k: c.to_dict() for k, c in kb.citations.items()})
            return
        t = Table(title=f"Citation registry (ruleset {kb.ruleset_version})", expand=True)
        for col in ("Key", "Reference", "Link"):
            t.add_column(col)
        for k, c in kb.citations.items():
            t.add_row(k, (f"{c.authors}. " if c.authors else "") + f"{c.title_sentence} {c.venue}."
                      + (" [unverified: " + ", ".join(c.unverified) + "]" if c.unverified else "")
                      + (" [checked only through a secondary source]" if c.read_via else ""),
                      c.link or "")
        _console().print(t)
        return
    if fmt is OutputFormat.json:
        _print_json({
            "ruleset_version": kb.ruleset_version,
            "parameters": {k: p.to_dict() for k, p in kb.parameters.items()},
            "symptom_grades": {t: {"organ": s.organ, "grade": s.grade, "basis": s.grade_basis, "placement": s.placement,
                                   "status": s.status, "citations": list(s.placement_citations)}
                               for t, s in kb.symptoms.items()},
        })
        return
    console = _console()
    console.print(f"[bold]leukos rules[/] (ruleset {kb.ruleset_version})")
    family = None
    for k, p in kb.parameters.items():
        fam, name = k.split(".", 1)
        if fam != family:
            family = fam
            console.print(f"\n[bold underline]{fam}[/]")
        flag = {"V": "green", "P": "yellow", "U": "magenta"}[p.status]
        console.print(f"  {k} = [bold]{p.value}[/] {p.unit}  [{flag}]\\[{p.status}][/]  sources: {', '.join(p.citations)}")
        if p.note:
            console.print(f"      [dim]{escape(p.note)}[/]")
    console.print("\n[bold underline]leukostasis symptom grades[/] [magenta]\\[U][/] (Novotny 2005 candidate table; "
                  "'closest row' = placed by the nearest row, the table does not name it)")
    for term, sym in kb.symptoms.items():
        place = {"table": "table", "closest_row": "closest row", "ungraded": "not graded"}[sym.placement]
        console.print(f"  {term} ({sym.organ}): {'not graded' if sym.grade is None else 'grade ' + str(sym.grade)} {escape('[' + place + ']')} — "
                      f"[dim]{escape(sym.grade_basis)}[/]")
    console.print("[dim]Status: V seen in a source, P partly seen, U unverified (used only where needed, flagged in outputs). "
                  "`leukos rules --citations` lists the sources.[/]")


schema_app = typer.Typer(help="Print the JSON Schemas shipped with leukos.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")


@schema_app.command("case")
def schema_case_cmd() -> None:
    """Print the JSON Schema of the leukos case format (version 1)."""
    from leukos.interop.schema import shipped_case_schema

    _print_json(shipped_case_schema())
