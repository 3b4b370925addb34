"""Readers that turn OMOP, MIMIC-IV and long lab tables into one shape of observations.

Every source yields an ibis table ``obs`` with the columns

===============  ==========  ==============================================================
person_id        integer or  the source's person/subject id: an integer id as the source stores it
                 string      (the episodes give it as text), any other id as trimmed text
ts               timestamp   when the specimen was taken (OMOP datetime, else the date)
analyte          string      a key of ``kb.analytes`` (wbc, blasts_pct, potassium, ...)
value            float64     the number as given (null when missing or not a number)
value_given      boolean     whether the source had *something* in the value field
unit             string      the unit text as given (UCUM code from CONCEPT for OMOP)
comparator       string      ``<``, ``<=``, ``>``, ``>=`` or null
ref_high         float64     the laboratory's upper reference limit in the unit of ``value``, or null
===============  ==========  ==============================================================

and, where the source has them, ``events`` (``person_id``, ``ts``, ``kind``) for cytoreduction:
hydroxyurea, chemotherapy, leukapheresis. Nothing here is clinical logic; the episode logic is in
:mod:`leukos.screening.episodes`.

How concepts are identified (OMOP):

- labs: CONCEPT rows with ``vocabulary_id = 'LOINC'`` whose ``concept_code`` is one of
  ``kb.analytes[name].loinc`` (knowledge/data/labs.toml), never a hard-coded concept id;
- units: ``unit_concept_id`` through CONCEPT (``concept_code`` of the UCUM concept), falling
  back to ``unit_source_value`` when the concept is 0 or missing;
- comparators: ``operator_concept_id`` through CONCEPT (domain ``Meas Value Operator``; the
  concept name is the symbol), with the five standard OMOP operator concepts as a fallback
  for CONCEPT extracts that omit that domain;
- cytoreduction: drug and procedure concepts whose ``concept_name`` contains a name listed in
  ``screening/data/treatments.toml``, plus their descendants in CONCEPT_ANCESTOR when present.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from leukos.errors import ErrorDetail, LeukosUserError
from leukos.knowledge import KnowledgeBase

__all__ = ["LabSource", "SourceError", "read_source", "SCREEN_ANALYTES", "TABLE_COLUMNS"]

# Analytes the episode logic uses.
SCREEN_ANALYTES = ("wbc", "blasts_pct", "potassium", "potassium_plasma", "phosphate", "uric_acid", "calcium",
                   "ionized_calcium", "creatinine")

# The standard OMOP "Meas Value Operator" concepts (OMOP vocabulary; used only when CONCEPT lacks them).
_STANDARD_OPERATORS = {4171756: "<", 4171754: "<=", 4172703: "=", 4171755: ">=", 4172704: ">"}

TABLE_COLUMNS = ("person", "time", "code", "name", "value", "unit")


class SourceError(LeukosUserError):
    """A table or column the screening needs is missing or unreadable."""

    default_title = "The screening input could not be read"


@dataclass
class LabSource:
    """Observations (and treatment events) in the common shape, plus what was found on the way.

    ``scan`` is the one read of the large lab table: the rows of the screening analytes only
    (the filter is pushed into the Parquet/CSV scan) and only the columns screening uses, as
    the source stores them. ``shape`` turns that (or its cached copy) into the common shape;
    it is cheap, so the engine caches ``scan`` and shapes the cached rows.
    """

    scan: Any
    shape: Any  # Callable[[ibis table like scan], ibis table in the common shape]
    rows_read: Any  # an ibis scalar expression: rows of the source lab table
    events: Any | None = None
    notes: list[str] = field(default_factory=list)
    mapping: dict[str, Any] = field(default_factory=dict)
    births: Any | None = None  # ibis table (person_id string, year_of_birth int64) when the source has one

    @property
    def obs(self):
        """The observations in the common shape, straight from the source (not cached)."""
        return self.shape(self.scan)


def read_source(backend, path: Path, fmt: str, kb: KnowledgeBase, *,
                columns: Mapping[str, str] | None = None) -> LabSource:
    """Read ``path`` in format ``omop``, ``mimic`` or ``table`` on ``backend``.

    Raises
    ------
    SourceError
        When the path, a required table or a required column is missing.
    """
    path = Path(path)
    if not path.exists():
        raise SourceError(ErrorDetail("INPUT", str(path), "an existing file or folder",
                                      "check the path"))
    if fmt == "omop":
        return _read_omop(backend, path, kb)
    if fmt == "mimic":
        return _read_mimic(backend, path, kb)
    if fmt == "table":
        return _read_table(backend, path, kb, dict(columns or {}))
    raise SourceError(ErrorDetail("--format", fmt, "omop, mimic or table", "choose one of them"))


# --------------------------------------------------------------------------------------------
# shared helpers


def _to_float(col):
    import ibis.expr.datatypes as dt

    if col.type().is_numeric():
        return col.cast(dt.float64)
    return col.cast(dt.string).strip().try_cast(dt.float64)


def _given(col):
    if col.type().is_string():
        return col.notnull() & (col.strip() != "")
    return col.notnull()


def _to_int(col):
    import ibis.expr.datatypes as dt

    if col.type().is_integer():
        return col.cast(dt.int64)
    return col.cast(dt.string).strip().try_cast(dt.int64)


def _code(col):
    """An integer code (concept id, item id) to look up: an integer column as it is, text parsed.
    No cast on an integer column: a filter on the bare column is pushed into the Parquet scan."""
    return col if col.type().is_integer() else _to_int(col)


def _to_ts(col):
    import ibis.expr.datatypes as dt

    t = col.type()
    if t.is_timestamp():
        return col.cast(dt.Timestamp())
    if t.is_date():
        return col.cast(dt.Timestamp())
    return col.cast(dt.string).strip().try_cast(dt.Timestamp())


def _text(col):
    import ibis.expr.datatypes as dt

    return col.cast(dt.string)


def _id_text(col):
    """An id as text: integers as they are, text without surrounding blanks (trimming is costly: only text)."""
    if col.type().is_string():
        return col.strip()
    return _text(col)


def _person_id(col):
    """The person id of the observations: integer ids keep their type (grouping, joining and counting
    integers is much cheaper than text; the episodes give the id as text), text is trimmed, anything
    else (a decimal id) becomes text."""
    if col.type().is_integer():
        return col
    return _id_text(col)


def _empty_as_null(unit):
    """A blank unit is no unit (counted as unknown_unit unless a default unit is given)."""
    return unit.strip().nullif("")


def _columns(table, needed: tuple[str, ...], table_name: str) -> dict[str, str]:
    """Map lower-case column names to the table's own spelling; error if one is missing."""
    have = {c.lower(): c for c in table.columns}
    missing = [c for c in needed if c not in have]
    if missing:
        raise SourceError([ErrorDetail(f"{table_name}.{c}", None, f"a column {c!r} in {table_name}",
                                       f"add the column (columns found: {', '.join(table.columns)})")
                           for c in missing])
    return have


def _find_file(folder: Path, name: str) -> Path | None:
    """A table file in an OMOP/MIMIC folder: NAME.csv, name.parquet, name.csv.gz or a folder of Parquet."""
    candidates = {}
    for p in folder.iterdir():
        stem = p.name.lower()
        for suffix in (".parquet", ".csv", ".csv.gz", ".tsv"):
            if stem == name + suffix:
                candidates[suffix] = p
        if p.is_dir() and stem == name and any(p.glob("*.parquet")):
            candidates["dir"] = p
    for key in (".parquet", "dir", ".csv", ".csv.gz", ".tsv"):
        if key in candidates:
            return candidates[key]
    return None


def _analyte_by_loinc(kb: KnowledgeBase) -> dict[str, str]:
    return {code: name for name in SCREEN_ANALYTES for code in kb.analyte(name).loinc}


def _words(text: str) -> tuple[str, ...]:
    return tuple(sorted(re.findall(r"[a-z0-9%]+", text.lower())))


def _analyte_by_text(kb: KnowledgeBase) -> dict[tuple[str, ...], str]:
    out: dict[tuple[str, ...], str] = {}
    for name in SCREEN_ANALYTES:
        a = kb.analyte(name)
        for t in (*a.text, name, a.label):
            out.setdefault(_words(t), name)
    return out


def match_name(text: str, kb: KnowledgeBase) -> str | None:
    """The analyte a lab name denotes (case, punctuation and word order ignored), or None."""
    table = _analyte_by_text(kb)
    w = _words(text)
    if w in table:
        return table[w]
    trimmed = tuple(x for x in w if x not in ("count", "blood", "serum", "plasma", "total", "level"))
    return table.get(trimmed)


# --------------------------------------------------------------------------------------------
# OMOP CDM 5.4


class _OmopTables:
    def __init__(self, backend, path: Path):
        self.backend = backend
        self.path = path
        self.is_db = path.is_file() and path.suffix.lower() in (".duckdb", ".db", ".ddb")
        if path.is_file() and not self.is_db:
            raise SourceError(ErrorDetail("INPUT", str(path), "a folder of OMOP CDM tables (CSV or Parquet) "
                                          "or a DuckDB database (.duckdb)",
                                          "give the folder that holds MEASUREMENT and CONCEPT"))
        if self.is_db and backend.name != "duckdb":
            raise SourceError(ErrorDetail("--engine", backend.name, "duckdb for a DuckDB database",
                                          "use --engine duckdb, or export the tables to Parquet for Spark"))
        self._db_tables = None

    def get(self, name: str, *, required: bool):
        if self.is_db:
            if self._db_tables is None:
                self._db_tables = {t.lower(): t for t in self.backend.con.list_tables()}
            real = self._db_tables.get(name)
            if real is None:
                if required:
                    raise SourceError(ErrorDetail(f"table {name.upper()}", None, f"an OMOP table {name}",
                                                  f"the database has: {', '.join(sorted(self._db_tables)) or 'no tables'}"))
                return None
            return self.backend.con.table(real)
        f = _find_file(self.path, name)
        if f is None:
            if required:
                raise SourceError(ErrorDetail(f"table {name.upper()}", str(self.path),
                                              f"a file {name.upper()}.csv or {name}.parquet in the folder",
                                              "export the OMOP table into the folder"))
            return None
        return self.backend.read(f, table_name=f"omop_{name}")


def _concept_frame(backend, concept, predicate, cols=("concept_id", "concept_code", "concept_name", "vocabulary_id", "domain_id")):
    have = _columns(concept, ("concept_id", "concept_code", "vocabulary_id", "concept_name", "domain_id"), "CONCEPT")
    c = concept.select(**{k: concept[have[k]] for k in cols})
    c = c.mutate(concept_id=_to_int(c.concept_id), concept_code=_text(c.concept_code).strip(),
                 concept_name=_text(c.concept_name), vocabulary_id=_text(c.vocabulary_id).strip(),
                 domain_id=_text(c.domain_id).strip())
    return backend.rows(c.filter(predicate(c)))


def _read_omop(backend, path: Path, kb: KnowledgeBase) -> LabSource:
    import ibis
    import ibis.expr.datatypes as dt

    tables = _OmopTables(backend, path)
    meas = tables.get("measurement", required=True)
    concept = tables.get("concept", required=True)
    m_cols = _columns(meas, ("person_id", "measurement_concept_id", "measurement_date", "value_as_number",
                             "unit_concept_id"), "MEASUREMENT")

    by_loinc = _analyte_by_loinc(kb)
    # One read of CONCEPT for the lab, unit and operator concepts.
    rows = _concept_frame(backend, concept, lambda c: ((c.vocabulary_id == "LOINC") & c.concept_code.isin(list(by_loinc)))
                          | c.domain_id.isin(["Unit", "Meas Value Operator"]))
    lab_rows = [r for r in rows if r["vocabulary_id"] == "LOINC" and r["concept_code"] in by_loinc]
    concept_analyte = {r["concept_id"]: by_loinc[r["concept_code"]] for r in lab_rows if r["concept_id"] is not None}
    if not any(a == "wbc" for a in concept_analyte.values()):
        raise SourceError(ErrorDetail("CONCEPT", None,
                                      f"LOINC concepts for the white cell count ({', '.join(kb.analyte('wbc').loinc)})",
                                      "load the LOINC vocabulary into CONCEPT (OHDSI Athena)"))
    unit_rows = [r for r in rows if r["domain_id"] == "Unit"]
    unit_code = {r["concept_id"]: r["concept_code"] for r in unit_rows if r["concept_id"] is not None}
    op_rows = [r for r in rows if r["domain_id"] == "Meas Value Operator"]
    operators = dict(_STANDARD_OPERATORS)
    operators.update({r["concept_id"]: r["concept_name"].strip() for r in op_rows
                      if r["concept_id"] is not None and r["concept_name"].strip() in ("<", "<=", "=", ">=", ">")})

    wanted = [m_cols[c] for c in ("person_id", "measurement_concept_id", "measurement_date", "measurement_datetime",
                                  "value_as_number", "unit_concept_id", "unit_source_value", "operator_concept_id",
                                  "range_high")
              if c in m_cols]
    scan = meas.filter(_code(meas[m_cols["measurement_concept_id"]]).isin(list(concept_analyte))).select(*wanted)

    def shape(m):
        ts = _to_ts(m[m_cols["measurement_date"]])
        if "measurement_datetime" in m_cols:
            ts = _to_ts(m[m_cols["measurement_datetime"]]).coalesce(ts)
        unit_id = _code(m[m_cols["unit_concept_id"]])
        unit = unit_id.substitute(unit_code, else_=ibis.null(dt.string)) if unit_code else ibis.null(dt.string)
        if "unit_source_value" in m_cols:
            unit = unit.coalesce(_empty_as_null(_text(m[m_cols["unit_source_value"]])))
        if "operator_concept_id" in m_cols:  # "=" is no comparator: mapped to null like an unknown operator
            comparator = _code(m[m_cols["operator_concept_id"]]).substitute(
                {k: v for k, v in operators.items() if v != "="}, else_=ibis.null(dt.string))
        else:
            comparator = ibis.null(dt.string)
        value_col = m[m_cols["value_as_number"]]
        return m.select(
            person_id=_person_id(m[m_cols["person_id"]]),
            ts=ts,
            analyte=_code(m[m_cols["measurement_concept_id"]]).substitute(concept_analyte,
                                                                            else_=ibis.null(dt.string)),
            value=_to_float(value_col),
            value_given=_given(value_col),
            unit=unit,
            comparator=comparator,
            ref_high=_to_float(m[m_cols["range_high"]]) if "range_high" in m_cols else ibis.null(dt.float64),
        )

    notes = [f"OMOP: {len(concept_analyte)} LOINC measurement concepts resolved through CONCEPT",
             f"OMOP: {len(unit_code)} unit concepts; operator concepts honoured"]
    events = _omop_events(tables, concept, notes)
    rows_read = meas.count()
    return LabSource(scan=scan, shape=shape, rows_read=rows_read, events=events, notes=notes,
                     births=_omop_births(tables),
                     mapping={"measurement_concepts": {str(k): v for k, v in sorted(concept_analyte.items())}})


def _omop_births(tables: _OmopTables):
    """PERSON's year of birth (for the child thresholds of the TLS criteria), or None without PERSON."""
    person = tables.get("person", required=False)
    if person is None:
        return None
    have = {c.lower(): c for c in person.columns}
    if "person_id" not in have or "year_of_birth" not in have:
        return None
    return person.select(person_id=_id_text(person[have["person_id"]]),
                         year_of_birth=_to_int(person[have["year_of_birth"]]))


def treatment_vocabulary() -> dict[str, dict[str, Any]]:
    """The cytoreduction names of ``screening/data/treatments.toml``."""
    text = resources.files("leukos.screening").joinpath("data", "treatments.toml").read_text("utf-8")
    return tomllib.loads(text)


def _omop_events(tables: _OmopTables, concept, notes: list[str]):
    import ibis

    vocab = treatment_vocabulary()
    drug = tables.get("drug_exposure", required=False)
    proc = tables.get("procedure_occurrence", required=False)
    if drug is None and proc is None:
        notes.append("OMOP: no DRUG_EXPOSURE or PROCEDURE_OCCURRENCE: time to cytoreduction not assessed")
        return None
    ancestor = tables.get("concept_ancestor", required=False)
    parts = []
    for table, tname, kind_wanted, id_col, date_col, dt_col in (
        (drug, "DRUG_EXPOSURE", "drug", "drug_concept_id", "drug_exposure_start_date", "drug_exposure_start_datetime"),
        (proc, "PROCEDURE_OCCURRENCE", "procedure", "procedure_concept_id", "procedure_date", "procedure_datetime"),
    ):
        if table is None:
            continue
        ids: dict[int, str] = {}
        for kind, rec in vocab.items():
            if rec["kind"] != kind_wanted:
                continue
            names = [n.lower() for n in rec["names"]]

            def pred(c, names=names):
                low = c.concept_name.lower()
                cond = low.contains(names[0])
                for n in names[1:]:
                    cond = cond | low.contains(n)
                return cond

            for r in _concept_frame(tables.backend, concept, pred):
                if r["concept_id"] is not None:
                    ids.setdefault(r["concept_id"], kind)
        if ancestor is not None and ids:
            a_cols = _columns(ancestor, ("ancestor_concept_id", "descendant_concept_id"), "CONCEPT_ANCESTOR")
            anc = ancestor.select(a=_to_int(ancestor[a_cols["ancestor_concept_id"]]),
                                  d=_to_int(ancestor[a_cols["descendant_concept_id"]]))
            for r in tables.backend.rows(anc.filter(anc.a.isin(list(ids)))):
                ids.setdefault(r["d"], ids[r["a"]])
        if not ids:
            notes.append(f"OMOP: no cytoreduction concepts found for {tname}")
            continue
        cols = _columns(table, ("person_id", id_col, date_col), tname)
        t = table.filter(_to_int(table[cols[id_col]]).isin(list(ids)))
        ts = _to_ts(t[cols[date_col]])
        if dt_col in cols:
            ts = _to_ts(t[cols[dt_col]]).coalesce(ts)
        parts.append(t.select(person_id=_text(t[cols["person_id"]]).strip(), ts=ts,
                              kind=_to_int(t[cols[id_col]]).substitute(ids, else_=ibis.null("string"))))
        notes.append(f"OMOP: {len(ids)} cytoreduction concepts matched in {tname}")
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else ibis.union(*parts)


# --------------------------------------------------------------------------------------------
# MIMIC-IV hosp.labevents + d_labitems


def _read_mimic(backend, path: Path, kb: KnowledgeBase) -> LabSource:
    import ibis
    import ibis.expr.datatypes as dt

    if path.is_dir():
        lab_file = _find_file(path, "labevents")
        item_file = _find_file(path, "d_labitems")
        if lab_file is None:
            raise SourceError(ErrorDetail("labevents", str(path), "a labevents.csv(.gz) or labevents.parquet",
                                          "put the MIMIC-IV hosp tables into the folder"))
    else:
        lab_file, item_file = path, _find_file(path.parent, "d_labitems")
    labs = backend.read(lab_file, table_name="mimic_labevents")
    l_cols = _columns(labs, ("subject_id", "itemid", "charttime"), "labevents")
    if "valuenum" not in l_cols and "value" not in l_cols:
        raise SourceError(ErrorDetail("labevents.valuenum", None, "a valuenum or value column", "add it"))
    if item_file is None:
        raise SourceError(ErrorDetail("d_labitems", str(path), "d_labitems beside labevents (item labels)",
                                      "copy d_labitems.csv(.gz) from MIMIC-IV hosp into the folder"))
    items = backend.read(item_file, table_name="mimic_d_labitems")
    i_cols = _columns(items, ("itemid", "label"), "d_labitems")
    sel = {"itemid": _to_int(items[i_cols["itemid"]]), "label": _text(items[i_cols["label"]])}
    if "fluid" in i_cols:
        sel["fluid"] = _text(items[i_cols["fluid"]])
    if "loinc_code" in i_cols:
        sel["loinc_code"] = _text(items[i_cols["loinc_code"]])
    item_rows = backend.rows(items.select(**sel))
    by_loinc = _analyte_by_loinc(kb)
    item_analyte: dict[int, str] = {}
    for r in item_rows:
        fluid = (r.get("fluid") or "blood").lower()
        if r["itemid"] is None or fluid not in ("blood", ""):
            continue
        name = by_loinc.get((r.get("loinc_code") or "").strip()) or match_name(r["label"] or "", kb)
        if name:
            item_analyte[r["itemid"]] = name
    if "wbc" not in item_analyte.values():
        raise SourceError(ErrorDetail("d_labitems", None, "an item for the white cell count (label such as "
                                      "'White Blood Cells' or 'WBC Count', fluid Blood)",
                                      "check that d_labitems is the MIMIC-IV hosp table"))
    wanted = [l_cols[c] for c in ("subject_id", "itemid", "charttime", "valuenum", "value", "valueuom",
                                  "ref_range_upper") if c in l_cols]
    scan = labs.filter(_code(labs[l_cols["itemid"]]).isin(list(item_analyte))).select(*wanted)

    def shape(t):
        if "valuenum" in l_cols:
            value = _to_float(t[l_cols["valuenum"]])
            given = _given(t[l_cols["valuenum"]])
            if "value" in l_cols:
                given = given | _given(t[l_cols["value"]])
        else:
            value, given = _to_float(t[l_cols["value"]]), _given(t[l_cols["value"]])
        return t.select(
            person_id=_person_id(t[l_cols["subject_id"]]),
            ts=_to_ts(t[l_cols["charttime"]]),
            analyte=_code(t[l_cols["itemid"]]).substitute(item_analyte, else_=ibis.null(dt.string)),
            value=value,
            value_given=given,
            unit=_empty_as_null(_text(t[l_cols["valueuom"]])) if "valueuom" in l_cols else ibis.null(dt.string),
            comparator=ibis.null(dt.string),
            ref_high=(_to_float(t[l_cols["ref_range_upper"]]) if "ref_range_upper" in l_cols
                      else ibis.null(dt.float64)),
        )

    return LabSource(scan=scan, shape=shape, rows_read=labs.count(),
                     notes=[f"MIMIC: {len(item_analyte)} itemids mapped through d_labitems"],
                     mapping={"itemids": {str(k): v for k, v in sorted(item_analyte.items())}})


# --------------------------------------------------------------------------------------------
# long table


def parse_column_mapping(text: str | None) -> dict[str, str]:
    """``person=subject,time=charttime`` -> {"person": "subject", "time": "charttime"}."""
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in TABLE_COLUMNS or not value.strip():
            raise SourceError(ErrorDetail("--columns", part, f"ROLE=COLUMN with ROLE one of {', '.join(TABLE_COLUMNS)}",
                                          "e.g. --columns person=subject_id,time=charttime,name=label"))
        out[key] = value.strip()
    return out


def _read_table(backend, path: Path, kb: KnowledgeBase, mapping: dict[str, str]) -> LabSource:
    import ibis
    import ibis.expr.datatypes as dt

    table = backend.read(path, table_name="long_labs")
    have = {c.lower(): c for c in table.columns}
    defaults = {"person": ("person_id", "person", "patient_id", "subject_id"),
                "time": ("time", "ts", "datetime", "charttime", "date"),
                "code": ("code", "loinc", "loinc_code"), "name": ("name", "analyte", "label", "test"),
                "value": ("value", "value_as_number", "valuenum", "result"), "unit": ("unit", "units", "valueuom")}
    cols: dict[str, str | None] = {}
    for role in TABLE_COLUMNS:
        if role in mapping:
            if mapping[role].lower() not in have:
                raise SourceError(ErrorDetail(f"--columns {role}", mapping[role], f"a column of {path.name}",
                                              f"columns found: {', '.join(table.columns)}"))
            cols[role] = have[mapping[role].lower()]
        else:
            cols[role] = next((have[c] for c in defaults[role] if c in have), None)
    missing = [r for r in ("person", "time", "value") if cols[r] is None]
    if cols["code"] is None and cols["name"] is None:
        missing.append("code or name")
    if missing:
        raise SourceError([ErrorDetail(f"column for {r}", None, f"a column giving the {r}",
                                       f"map it with --columns {r.split()[0]}=YOUR_COLUMN "
                                       f"(columns found: {', '.join(table.columns)})") for r in missing])
    analyte = ibis.null(dt.string)
    if cols["code"] is not None:
        analyte = _text(table[cols["code"]]).strip().substitute(_analyte_by_loinc(kb), else_=ibis.null(dt.string))
    if cols["name"] is not None:
        names = {}
        for words, name in _analyte_by_text(kb).items():
            names[" ".join(words)] = name
        for name in SCREEN_ANALYTES:
            names.setdefault(name, name)
        # Normalise the name in the engine the same way match_name does for the simple cases:
        # lower case and single spaces. Word-order variants are matched via the text synonyms.
        low = _text(table[cols["name"]]).lower().strip()
        by_name = low.substitute({**{k: v for k, v in names.items()},
                                  **{t.lower(): n for n in SCREEN_ANALYTES for t in kb.analyte(n).text}},
                                 else_=ibis.null(dt.string))
        analyte = analyte.coalesce(by_name)
    scan = table.mutate(_analyte=analyte).filter(lambda t: t._analyte.notnull())
    scan = scan.select(*dict.fromkeys(c for c in (*cols.values(), "_analyte") if c))

    def shape(t):
        return t.select(
            person_id=_person_id(t[cols["person"]]),
            ts=_to_ts(t[cols["time"]]),
            analyte=t._analyte,
            value=_to_float(t[cols["value"]]),
            value_given=_given(t[cols["value"]]),
            unit=_empty_as_null(_text(t[cols["unit"]])) if cols["unit"] else ibis.null(dt.string),
            comparator=ibis.null(dt.string),
            ref_high=ibis.null(dt.float64),
        )

    return LabSource(scan=scan, shape=shape, rows_read=table.count(),
                     notes=[f"table: columns {', '.join(f'{k}={v}' for k, v in cols.items() if v)}"],
                     mapping={"columns": {k: v for k, v in cols.items() if v}})
