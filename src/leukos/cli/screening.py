"""``leukos screen`` and ``leukos synth omop``: population screening and synthetic OMOP data.

Note on options: in ``leukos screen`` the ``--format`` option names the *input* format
(omop, mimic, table), as the issue and docs/outputs.md specify; the printed output is chosen with
``--output text|json``.
"""

from __future__ import annotations

import gc
import json
from datetime import datetime
from pathlib import Path

import typer

from leukos.cli.main import app, user_errors
from leukos.errors import ErrorDetail, LeukosUserError

synth_app = typer.Typer(help="Write synthetic data with known injected episodes (for tests and benchmarks).",
                        no_args_is_help=True)
app.add_typer(synth_app, name="synth")

EXIT_EPISODES_FOUND = 1


def _need_extras(engine: str) -> None:
    import importlib.util

    missing = [m for m in ("ibis", "duckdb", "pyarrow") if importlib.util.find_spec(m) is None]
    if engine == "spark" and importlib.util.find_spec("pyspark") is None:
        missing.append("pyspark")
    if missing:
        extra = "screen,spark" if "pyspark" in missing else "screen"
        raise LeukosUserError(ErrorDetail("installation", ", ".join(missing), "the screening extras",
                                          f'pip install "leukos[{extra}]"'))


def _parse_now(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise LeukosUserError(ErrorDetail("--now", text, "an ISO date or date-time", "e.g. --now 2026-01-01T00:00")) from None
    if value.tzinfo is not None:
        from datetime import UTC

        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


@app.command("screen")
@user_errors
def screen_command(
    input_path: Path = typer.Argument(..., metavar="INPUT", help="OMOP folder or .duckdb file, MIMIC folder, or a long table (CSV/Parquet)."),
    fmt: str = typer.Option("omop", "--format", "-f", help="Input format: omop | mimic | table."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for episodes.parquet, summary.json and report.html."),
    engine: str = typer.Option("duckdb", "--engine", help="duckdb (embedded, default) or spark."),
    gap_hours: float = typer.Option(None, "--gap-hours", help="Hours between extreme counts that end an episode (default: screening.episode_gap_hours)."),
    columns: str = typer.Option(None, "--columns", help="For --format table: ROLE=COLUMN pairs, e.g. person=subject_id,time=charttime,name=label."),
    memory_limit: str = typer.Option(None, "--memory-limit", help="DuckDB memory limit, e.g. 2GB (spills to disk above it)."),
    temp_directory: Path = typer.Option(None, "--temp-directory", help="Where DuckDB spills."),
    threads: int = typer.Option(None, "--threads", help="DuckDB threads."),
    spark_master: str = typer.Option(None, "--spark-master", help="Spark master URL, e.g. spark://HOST:7077 (default local[2] on loopback, or LEUKOS_SPARK_MASTER)."),
    default_unit: str = typer.Option(None, "--default-unit", help="The unit of results given without one, per analyte, e.g. wbc=10*9/L,potassium=mmol/L (default: such results are counted as unknown_unit)."),
    now: str = typer.Option(None, "--now", help="Results after this time count as 'future' (default: now, UTC)."),
    output: str = typer.Option("text", "--output", help="What to print: text | json."),
    no_report: bool = typer.Option(False, "--no-report", help="Do not write report.html."),
    fail_on_episodes: bool = typer.Option(False, "--fail-on-episodes", help="Exit 1 when episodes are found."),
) -> None:
    """Screen lab data for hyperleukocytosis episodes (WBC above the ruleset threshold)."""
    if output not in ("text", "json"):
        raise LeukosUserError(ErrorDetail("--output", output, "text or json", "choose one of them"))
    _need_extras(engine)
    from leukos.knowledge import load_knowledge
    from leukos.screening import ScreenOptions, screen
    from leukos.screening.factors import parse_default_units
    from leukos.screening.sources import parse_column_mapping

    defaults = parse_default_units(default_unit, load_knowledge())
    options = ScreenOptions(fmt=fmt, engine=engine, gap_hours=gap_hours, columns=parse_column_mapping(columns),
                            default_units=defaults,
                            memory_limit=memory_limit, temp_directory=str(temp_directory) if temp_directory else None,
                            threads=threads, spark_master=spark_master, now=_parse_now(now), report=not no_report)
    if output == "json":
        result = screen(input_path, out, options=options)
        typer.echo(json.dumps(result.summary, indent=2, default=str))
    else:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        err = Console(stderr=True)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=err, transient=True) as bar:
            tasks: dict[str, int] = {}

            def progress(stage: str, pct: float | None, rows_per_s: float | None = None) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=100, rate="")
                if pct is not None:
                    rate = f"{rows_per_s / 1e6:,.1f} M rows/s" if rows_per_s else ""
                    bar.update(tasks[stage], completed=pct, rate=rate)

            result = screen(input_path, out, options=options, progress=progress)
        _print_summary(result)
    # The run is over and its files are written: spare the interpreter's last garbage collection
    # over everything ibis, pint and the knowledge base built (about 0.2 s of every run). Objects
    # still freed as usual when their last reference goes; atexit handlers still run.
    gc.freeze()
    if fail_on_episodes and result.summary["episodes"]:
        raise typer.Exit(EXIT_EPISODES_FOUND)


def _print_summary(result) -> None:
    from rich.console import Console
    from rich.table import Table

    s = result.summary
    console = Console()
    t = Table(title=f"leukos screen: {s['episodes']} hyperleukocytosis episode(s)", show_header=True)
    t.add_column("")
    t.add_column("value", justify="right")
    for label, value in (("rows read", s["rows_read"]), ("rows screened", s["rows_screened"]),
                         ("rows used", s["rows_used"]), ("persons", s["persons"]),
                         ("persons with episodes", s["persons_with_episodes"]), ("episodes", s["episodes"]),
                         ("TLS laboratory criteria met", s["episodes_with_tls_laboratory"]),
                         ("with cytoreduction recorded", s["episodes_with_cytoreduction"] if s["cytoreduction_data"]
                          else "no drug/procedure data"),
                         ("engine", s["engine"]), ("seconds", s["seconds"]), ("ruleset", s["ruleset_version"])):
        t.add_row(label, str(value))
    for reason, n in s["excluded"].items():
        if n:
            t.add_row(f"excluded: {reason}", str(n))
    console.print(t)
    for u in s["unknown_units"]:
        console.print(f"[yellow]unknown unit[/] {u['analyte']} {u['unit']!r}: {u['rows']} rows")
    for w in s["warnings"]:
        console.print(f"[yellow]warning:[/] {w}")
    console.print(f"wrote {result.episodes_path}, {result.summary_path}"
                  + (f", {result.report_path}" if result.report_path else ""))


@synth_app.command("omop")
@user_errors
def synth_omop_command(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the OMOP CSV tables and ground_truth.csv into."),
    persons: int = typer.Option(100, "--persons", "-n", min=1, help="Number of persons."),
    episode_fraction: float = typer.Option(0.1, "--episode-fraction", min=0.0, max=1.0, help="Share of persons with an injected episode."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    on_top: Path = typer.Option(None, "--on-top", help="Copy this OMOP CSV folder and inject episodes into its persons instead."),
    episodes: int = typer.Option(5, "--episodes", help="With --on-top: how many episodes to inject."),
    output: str = typer.Option("text", "--format", help="text | json."),
) -> None:
    """Synthetic OMOP CDM 5.4 tables with known hyperleukocytosis episodes (ground truth beside them)."""
    from leukos.knowledge import load_knowledge
    from leukos.screening.synth import inject_omop, synth_omop

    kb = load_knowledge()
    threshold = float(kb.value("hyperleukocytosis.wbc_threshold"))
    gap = float(kb.value("screening.episode_gap_hours"))
    if on_top is not None:
        if not (on_top / "MEASUREMENT.csv").exists():
            raise LeukosUserError(ErrorDetail("--on-top", str(on_top), "an OMOP folder with MEASUREMENT.csv",
                                              "unzip the OMOP CSVs into a folder first"))
        truth = inject_omop(on_top, out, episodes=episodes, seed=seed, threshold=threshold, gap_hours=gap)
    else:
        truth = synth_omop(out, persons=persons, episode_fraction=episode_fraction, seed=seed, threshold=threshold,
                           gap_hours=gap)
    if output == "json":
        typer.echo(json.dumps({"out": str(out), "episodes": len(truth), "ground_truth": str(out / "ground_truth.csv")}))
    else:
        typer.echo(f"wrote OMOP tables with {len(truth)} injected episode(s) to {out} (ground truth: ground_truth.csv)")
