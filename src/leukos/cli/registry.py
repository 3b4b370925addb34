"""``leukos patient …``, ``leukos procedure record …``, ``leukos registry …``: the follow-up registry.

The database is ``LEUKOS_DATABASE_URL`` or a SQLite file under ``LEUKOS_DATA_DIR`` (default
``./leukos-data``), created on first use. Records are read from JSON or YAML files (``-`` = stdin)
with the fields of the REST API (``/docs``). Bad input exits 2 naming the field; nothing is written.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from leukos.cli.main import app, user_errors
from leukos.errors import CaseFormatError, ErrorDetail, LeukosUserError

T = TypeVar("T")

patient_app = typer.Typer(help="Registered patients: add, list (ward list), show the timeline and follow-up, add labs.",
                          no_args_is_help=True)
procedure_app = typer.Typer(help="Record a leukapheresis as performed (from a JSON/YAML record).", no_args_is_help=True)
registry_app = typer.Typer(help="The registry database: migrate, export, backup.", no_args_is_help=True)
app.add_typer(patient_app, name="patient")
app.add_typer(procedure_app, name="procedure")
app.add_typer(registry_app, name="registry")

FMT = typer.Option("text", "--format", "-f", help="text for people, json for programs.")


def _settings():
    from leukos.registry import RegistrySettings

    return RegistrySettings.from_env(os.environ)


def _registry():
    """The registry, writing as the operating-system user through the command line (its change history
    says so)."""
    from leukos.registry import open_registry
    from leukos.registry.changes import cli_actor

    return open_registry(_settings()).acting_as(cli_actor())


def _option_name(fn: Callable[..., Any], name: str) -> str:
    default = inspect.signature(fn).parameters[name].default
    decls = [d for d in getattr(default, "param_decls", None) or () if d.startswith("--")]
    if decls:
        return decls[0]
    if isinstance(default, typer.models.ArgumentInfo):
        return name.upper()
    return "--" + name.replace("_", "-")


def _check_text(fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """Command-line text must be Unicode (a lone surrogate, from bytes that are not UTF-8, cannot be stored)."""
    for name, value in kwargs.items():
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                shown = "(not shown)" if name == "mrn" else value[:40].encode("utf-8", "backslashreplace").decode("ascii",
                                                                                                                  "replace")
                raise LeukosUserError(ErrorDetail(_option_name(fn, name), shown, "UTF-8 text",
                                                  "type the value again in a UTF-8 terminal (these bytes are not "
                                                  "UTF-8 text)"), title="The command line could not be used") from None


def _database_problem(exc: BaseException) -> LeukosUserError:
    """A database failure as a user error: the database used and the driver's reason, never the SQL or its
    parameters (they may hold an MRN)."""
    from sqlalchemy.exc import DBAPIError

    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    lines = str(orig).strip().splitlines()
    reason = lines[0][:200] if lines else type(orig).__name__
    try:
        settings = _settings()
        where, what = ("LEUKOS_DATABASE_URL" if settings.database_url else "LEUKOS_DATA_DIR"), settings.describe()
    except LeukosUserError:
        where, what = "LEUKOS_DATABASE_URL", "(the registry database)"
    return LeukosUserError(ErrorDetail(where, what, "a registry database leukos can reach, read and write",
                                       f"check the setting, the server or file and its permissions ({reason}); "
                                       "nothing was written"), title="The registry database could not be used")


def _registry_command(fn: Callable[..., T]) -> Callable[..., T]:
    """``user_errors`` plus: hostile command-line text and database failures exit 2 with the reason."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        import sqlite3

        from sqlalchemy.exc import SQLAlchemyError

        _check_text(fn, kwargs)
        try:
            return fn(*args, **kwargs)
        except (SQLAlchemyError, sqlite3.Error) as exc:
            raise _database_problem(exc) from None

    return user_errors(wrapper)


def _read(source: str) -> Any:
    """A JSON or YAML record from a file or stdin, with the shared input limits (size, depth, aliases, numbers)."""
    from leukos.interop.case_format import MAX_CASE_BYTES, parse_document

    if source == "-":
        raw, name = sys.stdin.buffer.read(MAX_CASE_BYTES + 1), "stdin"
    else:
        p = Path(source)
        if not p.is_file():
            raise CaseFormatError(ErrorDetail("FILE", source, "an existing JSON or YAML file (or - for stdin)", "check the path"))
        with p.open("rb") as fh:
            raw, name = fh.read(MAX_CASE_BYTES + 1), p.name
    if len(raw) > MAX_CASE_BYTES:
        raise CaseFormatError(ErrorDetail("FILE", source, f"at most {MAX_CASE_BYTES} bytes", "send one record per file"))
    try:
        return parse_document(raw, name=name)
    except CaseFormatError as exc:
        raise CaseFormatError(list(exc.details), title="The record file could not be read") from None


def _json(data: Any) -> None:
    from leukos.domain.assessment import jsonable

    typer.echo(json.dumps(jsonable(data), indent=2, ensure_ascii=False, default=str))


def _t(value: Any) -> str:
    return value.strftime("%d %b %Y %H:%M UTC") if isinstance(value, dt.datetime) else "—"


@patient_app.command("add")
@_registry_command
def patient_add(
    pseudonym: str | None = typer.Option(None, help="Local pseudonymous id (generated when absent)."),
    mrn: str | None = typer.Option(None, help="Hospital number: stored in its own column, never printed or logged."),
    fhir_id: str | None = typer.Option(None, "--fhir-id", help="FHIR Patient id (links CDS Hooks calls)."),
    sex: str | None = typer.Option(None, help="male or female."),
    age: float | None = typer.Option(None, help="Age in years."),
    weight_kg: float | None = typer.Option(None, "--weight-kg"),
    height_cm: float | None = typer.Option(None, "--height-cm"),
    diagnosis: str | None = typer.Option(None, help="AML, APL, ALL, CML, CLL, other, unknown."),
    ward: str | None = typer.Option(None),
    target: float | None = typer.Option(None, help="Target white cell count (10^9/L); default from the knowledge base."),
    fmt: str = FMT,
) -> None:
    """Register a patient."""
    from leukos.registry.inputs import PatientIn, parse

    data = {k: v for k, v in {"pseudonym": pseudonym, "mrn": mrn, "fhir_patient_id": fhir_id, "sex": sex, "age_years": age,
                              "weight_kg": weight_kg, "height_cm": height_cm, "diagnosis": diagnosis, "ward": ward,
                              "target_wbc_10e9_per_l": target}.items() if v is not None}
    p = _registry().add_patient(parse(PatientIn, data))
    _json(p) if fmt == "json" else typer.echo(f"Registered {p['pseudonym']}.")


@patient_app.command("update")
@_registry_command
def patient_update(pseudonym: str = typer.Argument(...),
                   fhir_id: str | None = typer.Option(None, "--fhir-id", help="Record (or change) the FHIR Patient id."),
                   no_fhir_id: bool = typer.Option(False, "--no-fhir-id", help="Remove the FHIR Patient id link."),
                   ward: str | None = typer.Option(None),
                   target: float | None = typer.Option(None, help="Target white cell count (10^9/L)."),
                   version: int | None = typer.Option(None, help="The version you read (refused if the patient changed "
                                                      "since); default: the current one."),
                   fmt: str = FMT) -> None:
    """Change a registered patient's FHIR Patient id, ward or target (the REST API's PATCH)."""
    from leukos.registry.inputs import PatientUpdate, parse

    if fhir_id is not None and no_fhir_id:
        raise LeukosUserError(ErrorDetail("--fhir-id / --no-fhir-id", fhir_id, "one of the two",
                                          "give --fhir-id ID to record an id, or --no-fhir-id to remove it"))
    reg = _registry()
    changes: dict[str, Any] = {k: v for k, v in {"fhir_patient_id": fhir_id, "ward": ward,
                                                 "target_wbc_10e9_per_l": target}.items() if v is not None}
    if no_fhir_id:
        changes["fhir_patient_id"] = None
    if not changes:
        raise LeukosUserError(ErrorDetail("options", None, "at least one change: --fhir-id, --no-fhir-id, --ward, --target",
                                          "name what to change, e.g. leukos patient update LK-0001 --fhir-id pat-1"))
    current = version if version is not None else reg.get_patient(pseudonym)["version"]
    p = reg.update_patient(pseudonym, parse(PatientUpdate, changes | {"version": current}))
    _json(p) if fmt == "json" else typer.echo(f"Updated {p['pseudonym']} (version {p['version']}).")


@patient_app.command("list")
@_registry_command
def patient_list(page: int = typer.Option(1), per_page: int = typer.Option(50, "--per-page"),
                 ward: str | None = typer.Option(None), fmt: str = FMT) -> None:
    """The ward list: active patients, latest white cell count, next session, flags."""
    w = _registry().ward_list(page=page, per_page=per_page, ward=ward)
    if fmt == "json":
        _json(w)
        return
    typer.echo(f"Patients {w['total']} (page {w['page']}):")
    for p in w["patients"]:
        lw = p["latest_wbc"]
        count = f"WBC {lw['value']:g} ×10⁹/L at {_t(lw['taken_at'])}" if lw else "no WBC recorded"
        nxt = f"; next session due {_t(p['next_session_due_at'])}" if p["next_session_due_at"] else ""
        typer.echo(f"  {p['pseudonym']:<12} {count}; sessions {p['sessions']}{nxt}")
        for f in p["flags"]:
            typer.echo(f"      ! {f['label']}: {f['detail']}")


@patient_app.command("show")
@_registry_command
def patient_show(pseudonym: str = typer.Argument(...), fmt: str = FMT) -> None:
    """A patient's timeline and follow-up: predicted vs observed fall per session, next session, flags."""
    reg = _registry()
    t = reg.timeline(pseudonym)
    f = reg.follow_up(pseudonym)
    if fmt == "json":
        _json({"timeline": t, "follow_up": f.to_dict()})
        return
    p = t["patient"]
    typer.echo(f"{p['pseudonym']}: {p['diagnosis'] or 'diagnosis not recorded'}, "
               f"{p['weight_kg'] or '?'} kg; {len(t['procedures'])} session(s), {len(t['labs'])} lab result(s).")
    typer.echo("Follow-up:")
    for line in f.working:
        typer.echo(f"  {line}")
    for line in f.not_assessed:
        typer.echo(f"  Not assessed: {line}")
    for w in f.warnings:
        typer.echo(f"  Warning: {w}")
    for fl in f.flags:
        typer.echo(f"  ! {fl.label}: {fl.detail} {fl.action}")


@patient_app.command("labs")
@_registry_command
def patient_labs(pseudonym: str = typer.Argument(...),
                 file: str = typer.Argument(..., help="JSON/YAML list of {analyte, value, unit, taken_at, source}."),
                 by: str | None = typer.Option(None, "--by", help="Who recorded them."), fmt: str = FMT) -> None:
    """Add lab results (converted to canonical units; repeats of a source id are skipped)."""
    from leukos.registry.inputs import LabIn, parse

    items = _read(file)
    if not isinstance(items, list):
        items = [items]
    labs = [parse(LabIn, x, prefix=f"labs[{i}].") for i, x in enumerate(items)]
    r = _registry().add_labs(pseudonym, labs, recorded_by=by)
    _json(r) if fmt == "json" else typer.echo(f"Added {r['added']} result(s); {r['already_present']} already present.")


@patient_app.command("treatment")
@_registry_command
def patient_treatment(pseudonym: str = typer.Argument(...),
                      agent: str = typer.Option(..., help="hydroxyurea, induction_chemotherapy, corticosteroid_prephase, "
                                                          "tyrosine_kinase_inhibitor, other."),
                      start: str = typer.Option(..., help="Start time, ISO 8601 with time zone (2026-12-01T10:00Z)."),
                      end: str | None = typer.Option(None, help="End time, if stopped."),
                      dose: str | None = typer.Option(None, help="Dose and schedule as prescribed."),
                      by: str = typer.Option(..., "--by", help="Who records it."), fmt: str = FMT) -> None:
    """Record cytoreduction (marked on the course chart)."""
    from leukos.registry.inputs import TreatmentIn, parse

    data = {k: v for k, v in {"agent": agent, "started_at": start, "ended_at": end, "dose": dose,
                              "recorded_by": by}.items() if v is not None}
    r = _registry().add_treatment(pseudonym, parse(TreatmentIn, data))
    _json(r) if fmt == "json" else typer.echo(f"Recorded {agent} for {pseudonym}.")


@patient_app.command("fhir-export")
@_registry_command
def patient_fhir_export(pseudonym: str = typer.Argument(...), out: Path | None = typer.Option(None, "--out",
                        help="File to write (default: stdout); written owner-only, never over an existing file."),
                        overwrite: bool = typer.Option(False, "--overwrite", help="Replace the --out file if it exists.")) -> None:
    """The patient's course as a FHIR R4 Bundle (Patient, Procedure, Observation, AdverseEvent)."""
    from leukos.registry.backup import check_output, write_private
    from leukos.registry.fhir_io import export_bundle

    if out is not None:
        check_output(out, overwrite=overwrite)  # before reading the database
    reg = _registry()
    text = json.dumps(export_bundle(reg.timeline(pseudonym), reg.kb), indent=1, ensure_ascii=False)
    if out is None:
        typer.echo(text)
    else:
        with write_private(out, overwrite=overwrite) as tmp:
            tmp.write_text(text, "utf-8")
        typer.echo(f"Wrote {out}.")


@patient_app.command("fhir-import")
@_registry_command
def patient_fhir_import(pseudonym: str = typer.Argument(...), bundle: str = typer.Argument(..., help="FHIR R4 Bundle (JSON)."),
                        by: str | None = typer.Option(None, "--by"), fmt: str = FMT) -> None:
    """Import the lab results of a FHIR Bundle (a repeated import adds nothing)."""
    from leukos.registry.fhir_io import labs_from_bundle

    reg = _registry()
    labs, notes = labs_from_bundle(_read(bundle), reg.kb, reg.get_patient(pseudonym))
    r = reg.import_labs(pseudonym, labs, recorded_by=by)
    if fmt == "json":
        _json(r | {"notes": notes})
        return
    typer.echo(f"Imported {r['added']} result(s); {r['already_present']} already present.")
    for n in notes:
        typer.echo(f"  note: {n}")


@patient_app.command("assess")
@_registry_command
def patient_assess(pseudonym: str = typer.Argument(...), case: str = typer.Argument(..., help="Case file (leukos case "
                   "format or FHIR Bundle)."), plan: bool = typer.Option(False, "--plan", help="Also plan a leukapheresis."),
                   fmt: str = FMT) -> None:
    """Assess a case (and optionally plan) and keep the output as issued in the patient's record."""
    from leukos.cli.inputs import read_bytes
    from leukos.domain.assessment import jsonable
    from leukos.interop.case_format import load_case_text, parse_document
    from leukos.registry.fhir_io import check_case_about_patient
    from leukos.rules import assess

    reg = _registry()
    patient = reg.get_patient(pseudonym)
    raw, name = read_bytes(case)
    check_case_about_patient(parse_document(raw, name=name), patient)  # FHIR input must be about this patient
    c = load_case_text(raw, reg.kb, name=name)
    a = assess(c, reg.kb)
    ids = {"assessment": reg.record_issued(pseudonym, "assessment", a.to_dict())}
    if plan:
        from leukos.apheresis import plan_leukapheresis

        ids["plan"] = reg.record_issued(pseudonym, "plan", jsonable(plan_leukapheresis(c, None, reg.kb, a).to_dict()))
    _json(ids) if fmt == "json" else typer.echo(
        "Stored as issued: " + ", ".join(f"{k} {v}" for k, v in ids.items()) + f" (ruleset {reg.kb.ruleset_version}).")


@procedure_app.command("record")
@_registry_command
def procedure_record(pseudonym: str = typer.Argument(..., help="Patient pseudonym."),
                     file: str = typer.Argument(..., help="JSON/YAML procedure record (- for stdin)."), fmt: str = FMT) -> None:
    """Record a leukapheresis as performed: device, access, volume, anticoagulant, calcium, counts, adverse events."""
    from leukos.registry.inputs import ProcedureIn, parse

    r = _registry().record_procedure(pseudonym, parse(ProcedureIn, _read(file)))
    _json(r) if fmt == "json" else typer.echo(f"Recorded procedure {r['id']} for {pseudonym} (version {r['version']}).")


@registry_app.command("migrate")
@_registry_command
def registry_migrate(revision: str = typer.Option("head", help="head, base, a revision id, or -1 (one step down)."),
                     down: bool = typer.Option(False, "--down", help="Downgrade to REVISION (SQLite: a backup is "
                                               "taken first, beside the database)."),
                     yes_lose_data: bool = typer.Option(False, "--yes-lose-data", help="Allow a downgrade that drops "
                                                        "tables holding records (they are deleted).")) -> None:
    """Upgrade (or downgrade) the registry schema.

    A downgrade that would drop tables holding records is refused unless --yes-lose-data is given. On SQLite
    every downgrade first writes a backup of the database beside it and names it."""
    from leukos.registry.backup import backup_before_downgrade
    from leukos.registry.db import current_revision, downgrade, make_engine, rows_a_downgrade_drops, upgrade

    settings = _settings()
    engine = make_engine(settings)
    try:
        if down:
            before = current_revision(engine)
            held = {t: n for t, n in rows_a_downgrade_drops(engine, revision).items() if n}
            if held and not yes_lose_data:
                rows = ", ".join(f"{t} ({n} row{'s' if n != 1 else ''})" for t, n in held.items())
                raise LeukosUserError(ErrorDetail(
                    "--down --revision", revision,
                    f"a downgrade that keeps the records; this one deletes {rows} of {settings.describe()}",
                    "take a backup first (leukos registry backup --out FILE), then add --yes-lose-data if these "
                    "records are to be deleted; nothing was changed"), title="The downgrade would delete records")
            if before is not None:
                if settings.sqlite_path is not None:
                    saved = backup_before_downgrade(settings.sqlite_path, before)
                    typer.echo(f"Backup of {settings.describe()} at revision {before} written to {saved} (owner-only).")
                else:
                    typer.echo(f"{settings.describe()}: no automatic backup on PostgreSQL "
                               "(leukos registry backup --out FILE takes one).")
            downgrade(engine, revision)
        else:
            upgrade(engine, revision)
        typer.echo(f"{settings.describe()}: schema at revision {current_revision(engine) or 'base (empty)'}.")
    finally:
        engine.dispose()


@registry_app.command("changes")
@_registry_command
def registry_changes(patient: str | None = typer.Option(None, "--patient", help="Only this patient's changes "
                                                        "(pseudonym)."),
                     limit: int = typer.Option(50, "--limit", help="How many changes, newest first."),
                     fmt: str = FMT) -> None:
    """Who changed what, newest first: time, who, surface, what, which record, which fields (names only)."""
    from leukos.registry.changes import describe_change

    changes = _registry().changes(patient, limit=limit)
    if fmt == "json":
        _json(changes)
        return
    if not changes:
        typer.echo("No changes recorded" + (f" for {patient}." if patient else "."))
        return
    for c in changes:
        typer.echo(describe_change(c))


@registry_app.command("export")
@_registry_command
def registry_export(out: Path = typer.Option(..., "--out", help="JSON file to write (a new file, written owner-only)."),
                    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the --out file if it exists."),
                    with_identifiers: bool = typer.Option(False, "--with-identifiers",
                                                          help="Include MRNs and FHIR Patient ids (default: "
                                                               "pseudonyms only, no link back to the hospital record).")
                    ) -> None:
    """Export every table as JSON (pseudonymised unless --with-identifiers: no MRN, no FHIR Patient id)."""
    from leukos.registry.backup import check_output, export_json

    check_output(out, overwrite=overwrite)  # before opening (and perhaps creating) the database
    n = export_json(_registry(), out, with_identifiers=with_identifiers, overwrite=overwrite)
    typer.echo(f"Exported {n} rows to {out}.")


@registry_app.command("backup")
@_registry_command
def registry_backup(out: Path = typer.Option(..., "--out", help="Backup file (SQLite database copy, or pg_dump "
                                             "output); a new file, written owner-only."),
                    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier backup at --out "
                                                   "(never a file that is not a backup).")) -> None:
    """A consistent backup while the registry is in use (SQLite online backup; pg_dump for PostgreSQL)."""
    from leukos.registry.backup import backup as take_backup
    from leukos.registry.backup import check_output

    check_output(out, overwrite=overwrite)
    typer.echo(take_backup(_registry(), out, overwrite=overwrite))
