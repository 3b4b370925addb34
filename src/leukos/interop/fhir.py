"""FHIR R4 input: a Bundle with Patient, Observations, Conditions and MedicationRequests -> :class:`Case`.

The Bundle maps into the same frozen :class:`~leukos.domain.case.Case` as the leukos case format
(docs/case-format.md), so every rule sees one model. Mapping, in short:

* **Observation** (LOINC, UCUM; the LOINC codes are in the knowledge data): the LOINC code selects the analyte through
  ``kb.analytes[name].loinc``; otherwise ``code.text`` / ``coding.display`` is matched against the
  analyte's synonyms (only when the Observation has no LOINC code: an unknown LOINC code names
  another test) and the match is noted. Units go through the same converter as the case format
  (alias table, dimension check, plausibility). Status preliminary/final/amended/corrected is used;
  entered-in-error, cancelled, registered and unknown are skipped with a note. ``comparator`` and
  ``referenceRange[0]`` are kept; every value of an analyte is kept as a time-sorted series (the
  latest is current; values without a time sort first). Results of one analyte at the same time
  that disagree follow :mod:`leukos.interop.conflicts` (the latest conflicting: not assessed). Body weight/height set the patient's
  weight_kg/height_cm; BCR-ABL1 and PML-RARA results set ``findings.genetics``.
* **Patient**: gender -> sex, birthDate -> birth_date (left out, with a note, when it gives no age of
  0-130 years at the time of the results: :mod:`leukos.interop.age`). Names and identifiers are never read.
* **Condition** (SNOMED CT, ICD-10-CM): diagnoses, symptoms (the symptom vocabulary of
  ``kb.symptoms``), organomegaly, lymphadenopathy, infection, solid tumour, pregnancy; text fallback
  with a note. No symptom Condition leaves ``symptoms`` as None (not recorded), never "none".
* **MedicationRequest**: names matched as whole words (no RxNorm in the reference) ->
  ``findings.treatment`` / ``findings.drugs``.

The code tables live in ``knowledge/data/fhir_codes.toml`` with the source of each row.

Validation
----------
Every resource that is read (Patient, Observation, Condition, MedicationRequest, Medication) and
the Bundle shell are validated with the ``fhir.resources.R4B`` models (never the default R5 models;
see docs/service.md), except Observations, Patients, Conditions and Bundle shells of the plain shape that
:mod:`leukos.interop.fhir_lean` proves valid with the R4 rules of the few elements they use (anything
else, and anything it cannot prove valid, goes to the R4B models). To stay fast, complex elements that repeat within a Bundle (the same
``code``, ``category``, ``subject``, ``referenceRange`` ...) are validated once per Bundle and the
validated element is reused: validation of a data type does not depend on where it sits, so the
result is identical to validating every resource in full. A resource that fails is validated
again in full so that the error paths are exact. What is not read is not validated beyond a known
``resourceType``, and is noted: resources of other types, and Observations whose well-formed
``code`` carries no LOINC code or text that leukos uses (a malformed ``code`` is validated, so that
it is reported rather than skipped). Measured (benchmarks/bench_fhir.py): about 0.45x the CPU
time of validating the Bundle with ``Bundle.model_validate`` alone, mapping included. Unknown top-level elements of a read
resource (R5 or vendor elements) are ignored with a note; unknown elements inside data types are
errors (they usually hide a misspelt element that would change a value).

Every problem is collected and raised once as a :class:`~leukos.errors.FhirInputError` (or
:class:`~leukos.errors.UnitError` / :class:`~leukos.errors.ImplausibleValueError` when all the
problems are of that kind), each naming the path (``entry[3].resource.valueQuantity.value``), the
value, what was expected and the fix. Values of the Patient resource are never echoed. During a
CDS call (``leave_out_unusable``) a result whose value is implausible, or whose unit is missing or
does not convert, is left out and said instead (:mod:`leukos.interop.unusable`).

References
----------
HL7 FHIR R4B, https://hl7.org/fhir/R4B/ ; the code sources in knowledge/data/references/fhir.toml.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import tomllib
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from leukos.domain.case import (
    Case,
    Diagnosis,
    Findings,
    GeneticResult,
    Immunophenotype,
    Infection,
    LabValue,
    Patient,
    Sex,
    SolidTumor,
)
from leukos.errors import ErrorDetail, FhirInputError, ImplausibleValueError, LeukosUserError, UnitError
from leukos.interop.age import implausible_age, unusable_birth_date_note
from leukos.interop.case_format import converter_for
from leukos.interop.conflicts import resolve_same_time
from leukos.interop.fhir_lean import CallMemo, lean_valid
from leukos.interop.limits import UnitBudget, check_tree
from leukos.interop.unusable import UNUSABLE_MARK, Unusable, leave_out_measurement, leave_out_results
from leukos.knowledge import KnowledgeBase, load_knowledge

__all__ = ["case_from_fhir", "warm_tables", "SUPPORTED_BUNDLE_TYPES", "READ_RESOURCE_TYPES"]

SUPPORTED_BUNDLE_TYPES = ("collection", "searchset", "transaction")
READ_RESOURCE_TYPES = ("Patient", "Observation", "Condition", "MedicationRequest", "Medication")

# Value sets of FHIR R4 (hl7.org/fhir/R4B/valueset-*.html); R4B models check only the code syntax.
OBSERVATION_STATUS = ("registered", "preliminary", "final", "amended", "corrected", "cancelled",
                      "entered-in-error", "unknown")
OBSERVATION_USED = ("preliminary", "final", "amended", "corrected")
MEDREQ_STATUS = ("active", "on-hold", "cancelled", "completed", "entered-in-error", "stopped", "draft", "unknown")
MEDREQ_USED = ("active", "completed")
GENDER = ("male", "female", "other", "unknown")
COMPARATORS = ("<", "<=", ">=", ">")
CONDITION_SKIP_CLINICAL = ("inactive", "resolved", "remission")
CONDITION_SKIP_VERIFICATION = ("refuted", "entered-in-error")
CONDITION_TENTATIVE = ("unconfirmed", "provisional", "differential")

# Elements whose values may identify the patient: never echoed in an error.
_PRIVATE = frozenset({"identifier", "name", "telecom", "address", "photo", "contact", "display", "birthDate",
                      "text", "note", "patient", "subject", "link"})

_SPACES = re.compile(r"\s+")
_SEMANTIC_TAG = re.compile(r"\s*\((disorder|finding|disease|situation|morphologic abnormality)\)$")


# ---------------------------------------------------------------------------------------------
# Code tables
# ---------------------------------------------------------------------------------------------


def _norm(text: str) -> str:
    """Lower-case, single-spaced, without a SNOMED semantic tag: the key of every text match."""
    return _SEMANTIC_TAG.sub("", _SPACES.sub(" ", text.strip().lower()))


@dataclass(frozen=True)
class _Concept:
    """What a Condition code means for the case."""

    kind: str  # diagnosis | symptom | finding | remission | recognised
    target: str  # Diagnosis code, symptom term, or finding target
    value: str | None = None  # organism, tumour site, immunophenotype
    label: str = ""


@dataclass(frozen=True)
class _Tables:
    systems: Mapping[str, str]
    ucum: str  # systems["ucum"] and systems["loinc"]: read for every Observation
    loinc: str
    analyte_by_loinc: Mapping[str, str]
    # LOINC -> (analyte, genetics row, body row) for the codes in any of the three tables (None where a
    # table has no row): an Observation's code is looked up once, not once per table
    loinc_uses: Mapping[str, tuple[str | None, Mapping[str, Any] | None, Mapping[str, Any] | None]]
    analyte_by_text: Mapping[str, str]
    condition_by_code: Mapping[tuple[str, str], _Concept]  # (system key, code)
    condition_by_text: Mapping[str, _Concept]
    pregnancy_prefixes: tuple[str, ...]
    precedence: tuple[str, ...]
    genetics: Mapping[str, Mapping[str, Any]]  # LOINC -> row
    result_codes: Mapping[str, Any]
    body: Mapping[str, Mapping[str, Any]]  # LOINC -> row
    medications: tuple[tuple[str, str, re.Pattern[str]], ...]  # (target, term, pattern)
    labels: Mapping[str, str]  # analyte -> its label (how notes about conflicting results name it)
    units: Mapping[str, str]  # unit code -> how people write it (how those notes write a result's unit)


@lru_cache(maxsize=1)
def _code_file() -> dict[str, Any]:
    text = resources.files("leukos.knowledge").joinpath("data", "fhir_codes.toml").read_text("utf-8")
    return tomllib.loads(text)


# Keyed by the analyte and symptom tables the code tables derive from: site overrides of
# parameters (KnowledgeBase.with_overrides) share them, so they share the code tables too.
_TABLES: dict[tuple[int, int], tuple[Any, Any, _Tables]] = {}
_TABLES_KEPT = 8


def _tables(kb: KnowledgeBase) -> _Tables:
    key = (id(kb.analytes), id(kb.symptoms))
    hit = _TABLES.get(key)
    if hit is not None and hit[0] is kb.analytes and hit[1] is kb.symptoms:
        return hit[2]
    data = _code_file()
    by_loinc: dict[str, str] = {}
    by_text: dict[str, str] = {}
    for name, a in kb.analytes.items():
        for code in a.loinc:
            by_loinc.setdefault(code, name)
        for t in a.text:
            by_text.setdefault(_norm(t), name)
    cond: dict[tuple[str, str], _Concept] = {}
    cond_text: dict[str, _Concept] = {}

    def add(concept: _Concept, snomed: Iterable[str], icd: Iterable[str], text: Iterable[str]) -> None:
        for c in snomed:
            cond.setdefault(("snomed", c), concept)
        for c in icd:
            cond.setdefault(("icd10cm", c.upper()), concept)
        for t in text:
            cond_text.setdefault(_norm(t), concept)

    for row in data["diagnosis"]:
        add(_Concept("diagnosis", row["concept"], row.get("immunophenotype"), row["concept"]),
            row["snomed"], row["icd10cm"], row.get("text", ()))
    for row in data["finding"]:
        add(_Concept("finding", row["target"], row.get("value"), row["target"]),
            row["snomed"], row["icd10cm"], row.get("text", ()))
    for term, s in kb.symptoms.items():
        add(_Concept("symptom", term, None, s.label), s.snomed, s.icd10cm, (*s.synonyms, s.label, term))
    for row in data.get("recognised", ()):
        add(_Concept("recognised", row["what"], row["hint"], row["what"]), row["snomed"], row["icd10cm"], ())
    for c in data["remission"]["icd10cm"]:
        cond.setdefault(("icd10cm", c), _Concept("remission", c))
    meds = []
    for row in data["medication"]:
        alternatives = "|".join(re.escape(n.lower()) for n in sorted(row["names"], key=len, reverse=True))
        meds.append((row["target"], row["term"], re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])")))
    genetics = {row["loinc"]: row for row in data["genetics"]}
    body = {row["loinc"]: row for row in data["body"]}
    tables = _Tables(
        systems=MappingProxyType(dict(data["systems"])),
        ucum=data["systems"]["ucum"],
        loinc=data["systems"]["loinc"],
        analyte_by_loinc=MappingProxyType(by_loinc),
        loinc_uses=MappingProxyType({c: (by_loinc.get(c), genetics.get(c), body.get(c))
                                     for c in (*by_loinc, *genetics, *body)}),
        analyte_by_text=MappingProxyType(by_text),
        condition_by_code=MappingProxyType(cond),
        condition_by_text=MappingProxyType(cond_text),
        pregnancy_prefixes=tuple(data["pregnancy_prefixes"]["icd10cm"]),
        precedence=tuple(data["diagnosis_precedence"]["order"]),
        genetics=MappingProxyType(genetics),
        result_codes=MappingProxyType(dict(data["result_codes"])),
        body=MappingProxyType(body),
        medications=tuple(meds),
        labels=MappingProxyType({name: a.label for name, a in kb.analytes.items()}),
        units=kb.unit_display,
    )
    while len(_TABLES) >= _TABLES_KEPT:
        _TABLES.pop(next(iter(_TABLES)))
    _TABLES[key] = (kb.analytes, kb.symptoms, tables)
    return tables


# ---------------------------------------------------------------------------------------------
# R4B validation with a per-Bundle cache of validated data-type elements
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=512)  # bounded: the key is the request's resourceType text (R4B has about 150 types)
def _model(resource_type: str):
    """The R4B model class of a resource type, or None if R4B has no such resource."""
    from fhir.resources.R4B import get_fhir_model_class
    from fhir.resources.R4B.resource import Resource

    try:
        cls = get_fhir_model_class(resource_type)
    except (ValueError, KeyError, AttributeError, ImportError):
        return None
    return cls if isinstance(cls, type) and issubclass(cls, Resource) else None


def warm_tables(kb: KnowledgeBase) -> None:
    """Build, before the first import, what an import builds on first use: the code tables of ``kb`` and
    the R4B models of the resources read (loaded when a resource is not of the lean validator's plain shape)."""
    _tables(kb)
    for resource_type in (*READ_RESOURCE_TYPES, "Bundle"):
        _model(resource_type)


# Elements that rarely repeat within a Bundle (values, times, identifiers) or hold resources.
_NOT_REUSED = frozenset({"contained", "extension", "modifierExtension", "identifier", "text", "issued", "note",
                         "component"})


@cache
def _layout(cls) -> tuple[frozenset[str], Mapping[str, tuple[Any, bool]]]:
    """Allowed top-level keys of a model, and its complex elements: alias -> (model class, is list)."""
    allowed = {"resourceType"}
    complex_: dict[str, tuple[Any, bool]] = {}
    for name, f in cls.model_fields.items():
        alias = f.alias or name
        allowed.add(alias)
        klass, many = _complex_type(f.annotation)
        if klass is not None and alias not in _NOT_REUSED and not alias.startswith(("value", "effective")):
            complex_[alias] = (klass, many)
    return frozenset(allowed), MappingProxyType(complex_)


def _complex_type(annotation: Any) -> tuple[Any, bool]:
    many = False
    stack = [annotation]
    while stack:
        t = stack.pop()
        get_klass = getattr(t, "get_model_klass", None)
        if get_klass is not None:
            try:
                return get_klass(), many
            except Exception:  # a type the factory cannot resolve: validate it in place
                return None, False
        origin = typing.get_origin(t)
        if origin in (list, typing.List):  # noqa: UP006 - the R4B annotations use typing.List
            many = True
        stack.extend(typing.get_args(t))
    return None, False


_SHARED_ELEMENTS: dict[tuple[Any, str], Any] = {}
_SHARED_MAX = 20_000  # validated data-type elements kept across imports (a few MB at most)
# The data types whose validated elements are kept across imports: vocabulary (codes, categories,
# statuses) repeats across Bundles and names no patient. Every other element (a reference, a name, an
# address, a telecom, an identifier, a quantity, a period) may name the patient or hold a value: it
# is reused within its own import only.
_SHARED_TYPES = frozenset({"CodeableConcept", "Coding"})


class _Validator:
    """Validates resources with R4B, reusing validated elements that repeat within one Bundle."""

    def __init__(self, *, reuse: bool = True) -> None:
        # Vocabulary elements are shared by every import in this process (bounded). Safe to share:
        # a validated element depends only on its data. The rest lives as long as this validator.
        self._shared = _SHARED_ELEMENTS if reuse else {}
        self._own: dict[tuple[Any, str], Any] = {}
        self._reuse = reuse  # False: validate every resource in full (the benchmark's baseline)

    def _element(self, klass, item: Any):
        # repr of JSON data (str, int, float, bool, None, list, dict) is equal only for equal data
        # (1, 1.0 and True differ), so equal keys validate identically. Different key order
        # only costs a miss.
        cache = self._shared if klass.__name__ in _SHARED_TYPES else self._own
        key = (klass, repr(item))
        hit = cache.get(key)
        if hit is None:
            hit = klass.model_validate(item)
            if cache is self._shared and len(cache) >= _SHARED_MAX:
                cache.clear()
            cache[key] = hit
        return hit

    def validate(self, cls, resource: dict) -> list[dict]:
        """Return the pydantic errors of ``resource`` under ``cls`` (empty when valid)."""
        from pydantic import ValidationError

        _, complex_ = _layout(cls)
        fast = dict(resource)
        try:
            if not self._reuse:
                raise ValueError("reuse disabled")
            for alias, v in resource.items():
                spec = complex_.get(alias)
                if spec is None or v is None:
                    continue
                klass, many = spec
                if many:
                    if isinstance(v, list):
                        fast[alias] = [self._element(klass, i) if isinstance(i, dict) else i for i in v]
                elif isinstance(v, dict):
                    fast[alias] = self._element(klass, v)
            cls.model_validate(fast)
            return []
        except (ValidationError, TypeError, ValueError):
            pass
        try:  # again in full, for exact error paths
            cls.model_validate(resource)
        except ValidationError as exc:
            return list(exc.errors(include_url=False))
        except (TypeError, ValueError) as exc:  # fhir_core raising outside pydantic
            return [{"loc": (), "msg": str(exc), "type": "value_error", "input": None}]
        return []


# ---------------------------------------------------------------------------------------------
# The import
# ---------------------------------------------------------------------------------------------


def _loc_path(prefix: str, loc: Iterable[Any]) -> str:
    out = prefix
    for p in loc:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p in ("root", "__root__") or not isinstance(p, str):
            continue
        else:
            out += f".{p}" if out else p
    return out or "(document)"


def _pydantic_detail(prefix: str, err: Mapping[str, Any], *, private: bool, rtype: str) -> ErrorDetail:
    loc = tuple(err.get("loc") or ())
    path = _loc_path(prefix, loc)
    kind = err.get("type", "")
    value = err.get("input")
    if private or any(p in _PRIVATE for p in loc if isinstance(p, str)):
        value = "(not shown: may identify the patient)"
    elif isinstance(value, (dict, list)):
        value = "(" + type(value).__name__ + ")"
    spec = f"https://hl7.org/fhir/R4B/{rtype.lower()}.html" if rtype else "https://hl7.org/fhir/R4B/"
    if kind == "missing":
        return ErrorDetail(path, "(missing)", "a required element", f"add it (see {spec})")
    if kind == "extra_forbidden":
        return ErrorDetail(path, loc[-1] if loc else value, "an element defined by FHIR R4 at this place",
                           f"remove it or correct its spelling (see {spec})")
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ").rstrip(".")
    if value is None:
        value = "(missing)"
    return ErrorDetail(path, value, f"valid FHIR R4: {msg}", f"correct the element (see {spec})")


class _Import:
    """State of one Bundle import: problems, notes, and the pieces of the case."""

    def __init__(self, kb: KnowledgeBase):
        self.kb = kb
        self.t = _tables(kb)
        self.conv = converter_for(kb)
        self.units = UnitBudget()
        self.lean = True
        self.lean_memo = CallMemo()  # times and patient strings this import has proved valid (lean validator)
        # time text -> its instant, for this import only: one patient's results share a few times
        self.times: dict[str, dt.datetime | None] = {}
        self.problems: list[ErrorDetail] = []
        self.kinds: set[type[LeukosUserError]] = set()
        self.notes: list[str] = []
        self.labs: dict[str, list[LabValue]] = {}
        self.body: dict[str, tuple[dt.datetime | None, float]] = {}
        self.genetics: dict[str, list[tuple[GeneticResult, str]]] = {}
        self.diagnoses: list[tuple[str, str | None, str]] = []  # (Diagnosis, immunophenotype, source)
        self.symptoms: list[str] = []
        self.flags: dict[str, Any] = {}
        self.drugs: list[str] = []
        self.treatment: list[str] = []
        self.obs_times: list[dt.datetime] = []
        self.skipped_codes: dict[str, int] = {}
        self.first_subject: str | None = None
        self.patient_ref: str | None = None  # Patient/<id> of the Bundle's Patient, when it has an id
        self.full_urls: dict[int, str] = {}
        # (analyte, unit) -> factor of the units already converted in this import: a pure function of
        # the pair (a refused unit is not kept, so that each use of it is reported at its own place)
        self.factors: dict[tuple[str, str], float] = {}
        # During a CDS call (leave_out): results that cannot be used are left out and said
        # (leukos.interop.unusable) instead of refusing the call; analyte / body target -> those results
        self.leave_out = False
        self.unusable: dict[str, list[Unusable]] = {}
        self.unusable_body: dict[str, list[Unusable]] = {}

    # -- bookkeeping --------------------------------------------------------------------------
    def problem(self, detail: ErrorDetail, kind: type[LeukosUserError] = FhirInputError) -> None:
        self.problems.append(detail)
        self.kinds.add(kind)

    def unit_ok(self, unit: str, field: str) -> bool:
        """False (and a problem recorded) when the request's unit budget refuses ``unit``."""
        if unit in self.units.seen:  # already admitted: the budget's own first answer
            return True
        problem = self.units.check(unit, field)
        if problem is not None:
            self.problem(problem, UnitError)
        return problem is None

    def note(self, text: str) -> None:
        self.notes.append(text)

    def cannot_use(self, into: dict[str, list[Unusable]], key: str, time: dt.datetime | None, why: str,
                   details: Iterable[ErrorDetail], kind: type[LeukosUserError]) -> None:
        """A result that cannot be used: left out and said during a CDS call (``leave_out``), else
        the problems that refuse the import."""
        if self.leave_out:
            into.setdefault(key, []).append(Unusable(time, why))
            return
        for d in details:
            self.problem(d, kind)

    def factor(self, analyte: str, unit: str, field: str) -> float:
        """``conv.factor`` remembered for this import (raises :class:`UnitError` as it does)."""
        key = (analyte, unit)
        f = self.factors.get(key)
        if f is None:
            f = self.factors[key] = self.conv.factor(analyte, unit, field=field)
        return f

    def ref(self, rtype: str, res: Mapping[str, Any], i: int) -> str:
        """How notes and sources name a resource: ``Observation/<id>``, else its fullUrl, else its entry."""
        rid = res.get("id")
        if isinstance(rid, str) and rid:
            return f"{rtype}/{rid}"
        url = self.full_urls.get(i)
        return f"{rtype} ({url})" if url else f"{rtype} at entry[{i}]"

    def skip_observation(self, loincs: list[str]) -> None:
        key = ", ".join(loincs) if loincs else "no LOINC code"
        self.skipped_codes[key] = self.skipped_codes.get(key, 0) + 1

    def note_skipped_observations(self, shown: int = 12) -> None:
        """One note for all Observations with codes leukos does not use (a Bundle has many)."""
        if not self.skipped_codes:
            return
        items = [f"LOINC {k}" if k != "no LOINC code" else k for k in self.skipped_codes]
        items = [f"{it} (x{n})" if n > 1 else it for it, n in zip(items, self.skipped_codes.values(), strict=True)]
        more = f" and {len(items) - shown} more" if len(items) > shown else ""
        total = sum(self.skipped_codes.values())
        self.note(f"{total} Observation(s) with codes leukos does not use skipped: {', '.join(items[:shown])}{more}")

    def raise_if_problems(self) -> None:
        if not self.problems:
            return
        cls = self.kinds.pop() if len(self.kinds) == 1 else FhirInputError
        raise cls(self.problems, title=FhirInputError.default_title if cls is FhirInputError else None)


def case_from_fhir(data: Any, kb: KnowledgeBase | None = None, *, leave_out_unusable: bool = False,
                   _reuse_validated: bool = True, _tree_checked: bool = False) -> Case:
    """Map a FHIR R4 Bundle (parsed JSON) into a :class:`~leukos.domain.case.Case`.

    Parameters
    ----------
    data
        A ``Bundle`` of type collection, searchset or transaction, as parsed JSON (``dict``).
    kb
        The knowledge base whose analytes (LOINC codes, canonical units, plausibility) and symptom
        vocabulary are used; the bundled one by default.
    leave_out_unusable
        False (REST, CLI): a result whose value is implausible or whose unit is missing or cannot be
        converted refuses the import, as below. True (a CDS call, where nobody can correct the record
        and a refused call shows no card): such a result is left out and said in ``import_notes``,
        by the rule of :mod:`leukos.interop.unusable`.

    Returns
    -------
    Case
        With ``source="fhir"``; lab values in canonical units with ``source="fhir:Observation/<id>"``;
        ``import_notes`` listing what was skipped and every match made from text rather than a code.

    Raises
    ------
    FhirInputError, UnitError, ImplausibleValueError
        With every problem found at once, each naming the element path, the value, the expectation
        and the fix. Nothing partial is returned.

    Examples
    --------
    >>> bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
    ...     "resourceType": "Observation", "id": "w1", "status": "final",
    ...     "code": {"coding": [{"system": "http://loinc.org", "code": "6690-2"}]},
    ...     "effectiveDateTime": "2026-03-01T08:00:00Z",
    ...     "valueQuantity": {"value": 180, "unit": "10*3/uL", "system": "http://unitsofmeasure.org",
    ...                       "code": "10*3/uL"}}}]}
    >>> case_from_fhir(bundle).value("wbc")
    180.0
    """
    kb = kb or load_knowledge()
    if not _tree_checked:  # callers that parsed with leukos.interop.limits have done this walk
        check_tree(data, name="(document)")
    imp = _Import(kb)
    imp.lean = _reuse_validated  # False: every resource through the R4B models (benchmark baseline)
    imp.leave_out = leave_out_unusable
    entries = _check_bundle(data, imp)
    imp.raise_if_problems()
    imp.full_urls = {i: e["fullUrl"] for i, e in entries if isinstance(e.get("fullUrl"), str) and e["fullUrl"]}

    validator = _Validator(reuse=_reuse_validated)
    by_type: dict[str, list[tuple[int, dict]]] = {t: [] for t in READ_RESOURCE_TYPES}
    ignored: dict[str, int] = {}
    for i, entry in entries:
        res = entry.get("resource")
        if res is None:
            method = (entry.get("request") or {}).get("method") if isinstance(entry.get("request"), dict) else None
            imp.note(f"entry[{i}] has no resource" + (f" (request {method})" if isinstance(method, str) else "")
                     + ": skipped")
            continue
        if not isinstance(res, dict):
            imp.problem(ErrorDetail(f"entry[{i}].resource", type(res).__name__, "a FHIR resource (JSON object)",
                                    "put the resource object in entry.resource"))
            continue
        rtype = res.get("resourceType")
        read = by_type.get(rtype) if type(rtype) is str else None  # the types read have an R4B model
        if read is None:
            cls = _model(rtype) if isinstance(rtype, str) else None
            if cls is None:
                imp.problem(ErrorDetail(f"entry[{i}].resource.resourceType",
                                        rtype if isinstance(rtype, str) else repr(rtype),
                                        "a FHIR R4 resource type", "correct the resourceType"))
                continue
            if rtype not in by_type:
                ignored[rtype] = ignored.get(rtype, 0) + 1
                continue
            read = by_type[rtype]
        if rtype == "Observation":
            unused = _unused_observation(res, imp.t)
            if unused is not None:  # not read, so not validated (its code is well-formed and unmapped)
                imp.skip_observation(unused)
                continue
        if _reuse_validated and lean_valid(res, imp.lean_memo):  # the usual case; its elements are all R4 elements
            read.append((i, res))
            continue
        cls = _model(rtype)
        allowed, _ = _layout(cls)
        if not allowed.issuperset(res):
            unknown = [k for k in res if k not in allowed]
            res = {k: v for k, v in res.items() if k in allowed}
            imp.note(f"{imp.ref(rtype, res, i)}: element(s) {', '.join(sorted(map(str, unknown)))} not in FHIR R4; ignored")
        errors = [] if _reuse_validated and lean_valid(res, imp.lean_memo) else validator.validate(cls, res)
        for err in errors:
            imp.problem(_pydantic_detail(f"entry[{i}].resource", err, private=rtype == "Patient", rtype=rtype))
        if not errors:
            by_type[rtype].append((i, res))
    for rtype, n in sorted(ignored.items()):
        imp.note(f"{n} {rtype} resource(s) not used")
    imp.note_skipped_observations()
    imp.raise_if_problems()

    full_urls = imp.full_urls
    patient_id, patient = _patient(by_type["Patient"], full_urls, imp)
    if patient_id is not None and patient_id[0]:
        imp.patient_ref = f"Patient/{patient_id[0]}"
    medications = {imp.ref("Medication", r, i): r for i, r in by_type["Medication"]}
    for i, r in by_type["Medication"]:
        if i in full_urls:
            medications[full_urls[i]] = r
    own = imp.patient_ref
    for i, r in by_type["Observation"]:
        subject = r.get("subject")
        if own is None or type(subject) is not dict or subject.get("reference") != own:  # else: this patient's
            _check_subject(r, i, patient_id, full_urls, imp)
        _observation(i, r, imp)
    for i, r in by_type["Condition"]:
        _check_subject(r, i, patient_id, full_urls, imp)
        _condition(i, r, imp)
    for i, r in by_type["MedicationRequest"]:
        _check_subject(r, i, patient_id, full_urls, imp)
        _medication_request(i, r, medications, imp)
    imp.raise_if_problems()
    return _build(data, patient, imp)


def _check_bundle(data: Any, imp: _Import) -> list[tuple[int, dict]]:
    if not isinstance(data, dict):
        imp.problem(ErrorDetail("(document)", type(data).__name__, "a FHIR Bundle (JSON object)",
                                'send {"resourceType": "Bundle", "type": "collection", "entry": [...]}'))
        return []
    rtype = data.get("resourceType")
    if rtype != "Bundle":
        if isinstance(rtype, str) and _model(rtype) is not None:
            imp.problem(ErrorDetail("resourceType", rtype, "Bundle",
                                    f'wrap the {rtype} in a Bundle: {{"resourceType": "Bundle", "type": "collection", '
                                    f'"entry": [{{"resource": <the {rtype}>}}]}}'))
        else:
            imp.problem(ErrorDetail("resourceType", rtype if isinstance(rtype, str) else repr(rtype),
                                    "Bundle", "send a FHIR R4 Bundle of type collection, searchset or transaction"))
        return []
    btype = data.get("type")
    if btype not in SUPPORTED_BUNDLE_TYPES:
        imp.problem(ErrorDetail("type", btype if isinstance(btype, str) else repr(btype),
                                f"one of {', '.join(SUPPORTED_BUNDLE_TYPES)}",
                                "send the resources as a Bundle of type collection"))
    raw_entries = data.get("entry", [])
    if not isinstance(raw_entries, list):
        imp.problem(ErrorDetail("entry", type(raw_entries).__name__, "a list of entries", "make entry a JSON array"))
        return []
    # The shell (the Bundle without its entries' resources; each resource is validated on its own).
    # The lean check passes over entry.resource, so it answers for the shell without building it.
    if not (imp.lean and lean_valid(data, imp.lean_memo)):
        shell = dict(data)
        shell["entry"] = [{k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else e
                          for e in raw_entries]
        for err in _Validator(reuse=False).validate(_model("Bundle"), shell):
            imp.problem(_pydantic_detail("", err, private=False, rtype="Bundle"))
    return [(i, e) for i, e in enumerate(raw_entries) if isinstance(e, dict)]


def _check_subject(res: dict, i: int, patient_id: tuple[str | None, str | None] | None,
                   full_urls: Mapping[int, str], imp: _Import) -> None:
    """A Bundle is one patient: a resource about another patient is an error, not a silent mix.

    With a Patient resource, every ``subject`` must reference it (``Patient/<id>``, an absolute
    URL ending so, or its fullUrl). Without one, all subjects must be the same reference.
    """
    subject = res.get("subject")
    ref = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(ref, str) or not ref:
        return
    if ref == imp.patient_ref:  # the usual reference (Patient/<id>): one of the accepted forms below
        return
    field_ = f"entry[{i}].resource.subject.reference"
    if patient_id is None:
        first = imp.first_subject
        if first is None:
            imp.first_subject = ref
        elif ref != first:
            imp.problem(ErrorDetail(field_, ref, f"the same subject as the other resources ({first})",
                                    "send one patient per Bundle, with its Patient resource"))
        return
    pid, full_url = patient_id
    own = {f"Patient/{pid}" if pid else None, full_url} - {None}
    if ref in own or (pid and ref.endswith(f"/Patient/{pid}")):
        return
    imp.problem(ErrorDetail(field_, ref, f"a reference to the Bundle's Patient ({', '.join(sorted(own))})",
                            "send one patient per Bundle"))


# -- Patient -------------------------------------------------------------------------------------


def _patient(items: list[tuple[int, dict]], full_urls: Mapping[int, str], imp: _Import):
    if not items:
        imp.note("no Patient resource: sex and birth date not recorded")
        return None, {}
    if len(items) > 1:
        imp.problem(ErrorDetail("entry", f"{len(items)} Patient resources (entries "
                                + ", ".join(str(i) for i, _ in items) + ")",
                                "exactly one Patient", "send one patient per Bundle"))
        return None, {}
    i, p = items[0]
    out: dict[str, Any] = {}
    gender = p.get("gender")
    if gender is not None:
        if gender not in GENDER:
            imp.problem(ErrorDetail(f"entry[{i}].resource.gender", gender, f"one of {', '.join(GENDER)}",
                                    "use the FHIR administrative-gender code"))
        elif gender in ("male", "female"):
            out["sex"] = Sex(gender)
        else:
            imp.note(f"{imp.ref('Patient', p, i)}: gender {gender!r} is not used by the rules: sex not recorded")
    birth = p.get("birthDate")
    if isinstance(birth, str):
        parsed = _date(birth)
        if parsed is None:
            imp.problem(ErrorDetail(f"entry[{i}].resource.birthDate", "(not shown: may identify the patient)",
                                    "a date YYYY, YYYY-MM or YYYY-MM-DD", "correct the birth date"))
        else:
            out["birth_date"] = parsed
            if len(birth) < 10:
                imp.note(f"{imp.ref('Patient', p, i)}: partial birthDate; the first day of the period is used, "
                         "so the age may be up to a year too high")
    pid = p.get("id") if isinstance(p.get("id"), str) else None
    return ((pid, full_urls.get(i)) if pid or full_urls.get(i) else None), out


# -- Observation --------------------------------------------------------------------------------


_LAB_FIELDS = ("analyte", "value", "unit", "given", "time", "comparator", "reference_low", "reference_high", "source",
               "unit_given")
if tuple(f.name for f in dataclasses.fields(LabValue)) != _LAB_FIELDS or hasattr(LabValue, "__post_init__"):
    raise ImportError("leukos.interop.fhir._lab_value no longer matches LabValue: update it")  # pragma: no cover
_new_object = object.__new__


def _lab_value(analyte: str, value: float, unit: str, given: str, time: dt.datetime | None, comparator: str | None,
               low: float | None, high: float | None, source: str) -> LabValue:
    """A :class:`LabValue` with every field set, as ``LabValue(...)`` makes it, at a third of the cost.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` (about 1 us per
    value, one per laboratory result of every call); filling the instance's ``__dict__`` in field order
    gives the same object (equality, hash, repr, pickling). The check above keeps the two in step.
    """
    lab = _new_object(LabValue)
    lab.__dict__.update(analyte=analyte, value=value, unit=unit, given=given, time=time, comparator=comparator,
                        reference_low=low, reference_high=high, source=source, unit_given=True)
    return lab


def _codings(concept: Any) -> list[dict]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or () if isinstance(c, dict)]


def _texts(concept: Any) -> list[str]:
    out = []
    if isinstance(concept, dict):
        if isinstance(concept.get("text"), str):
            out.append(concept["text"])
        out += [c["display"] for c in _codings(concept) if isinstance(c.get("display"), str)]
    return out


def _unused_observation(r: dict, t: _Tables) -> list[str] | None:
    """The LOINC codes of an Observation that leukos certainly does not use, else None.

    None when the code maps (by LOINC or text) or when ``code`` is not well-formed: such a
    resource is validated, so that a malformed code is reported instead of silently skipped.
    """
    concept = r.get("code")
    if not isinstance(concept, dict) or not isinstance(concept.get("text", ""), str):
        return None
    codings = concept.get("coding", [])
    if not isinstance(codings, list):
        return None
    loincs = []
    loinc_system, uses = t.loinc, t.loinc_uses
    for c in codings:
        if not isinstance(c, dict):
            return None
        system, code = c.get("system", ""), c.get("code", "")
        if not (isinstance(system, str) and isinstance(code, str) and isinstance(c.get("display", ""), str)):
            return None
        if system == loinc_system and code:
            if code in uses:
                return None
            loincs.append(code)
    # the texts of the concept (not of its last coding's code): a result coded only in another system
    # is matched by its text in _observation, so it must not be skipped here
    if not loincs and any(_norm(text) in t.analyte_by_text for text in _texts(concept)):
        return None
    return loincs


def _context(ref: str, loinc: str | None) -> str:
    """What an error about an Observation's value adds to its path (built only for an error or a first use)."""
    return f" ({ref}, LOINC {loinc})" if loinc else f" ({ref})"


def _entry(i: int) -> str:
    """The path of entry ``i``'s resource, as errors name it (built only for an error or a first use)."""
    return f"entry[{i}].resource"


def _observation(i: int, r: dict, imp: _Import) -> None:
    t = imp.t
    status = r.get("status")
    if status not in OBSERVATION_STATUS:
        imp.problem(ErrorDetail(f"{_entry(i)}.status", status, f"one of {', '.join(OBSERVATION_STATUS)}",
                                "use the FHIR observation-status code"))
        return
    loinc_system, uses = t.loinc, t.loinc_uses
    loincs = []  # the LOINC codes of code.coding, in order
    analyte = loinc = gene_row = body_row = None  # the first code of each table
    concept = r.get("code")
    for c in (concept.get("coding") or ()) if isinstance(concept, dict) else ():
        if isinstance(c, dict) and c.get("system") == loinc_system and isinstance(code := c.get("code"), str):
            loincs.append(code)
            hit = uses.get(code)
            if hit is not None:
                if analyte is None and hit[0] is not None:
                    analyte, loinc = hit[0], code
                if gene_row is None:
                    gene_row = hit[1]
                if body_row is None:
                    body_row = hit[2]
    if loinc is None and loincs:
        loinc = loincs[0]
    via_text = None
    # Text only when there is no LOINC code at all: an unknown LOINC code names another test
    # (urine "Leukocytes" is not the blood count), so its display must not be matched.
    if not loincs:
        for text in _texts(concept):
            name = t.analyte_by_text.get(_norm(text))
            if name is not None:
                analyte, via_text = name, text
                break
    if analyte is None and gene_row is None and body_row is None:
        imp.skip_observation(loincs)
        return
    rid = r.get("id")
    ref = f"Observation/{rid}" if type(rid) is str and rid else imp.ref("Observation", r, i)  # as imp.ref names it
    if status not in OBSERVATION_USED:
        imp.note(f"{ref}: status {status}; ignored")
        return
    if r.get("dataAbsentReason") is not None:
        reason = next((c.get("code") for c in _codings(r["dataAbsentReason"])), None) or "given"
        imp.note(f"{ref}: dataAbsentReason {reason}; not recorded")
        return
    first_time = r.get("effectiveDateTime")  # the usual time, already read for an earlier result of this call
    time = imp.times.get(first_time) if type(first_time) is str else None
    if time is None:
        time = _obs_time(r, imp.times)
    if gene_row is not None:
        _genetics(r, gene_row, ref, imp)
        return
    vq = r.get("valueQuantity")
    if not isinstance(vq, dict) or (given_value := vq.get("value")) is None:
        imp.note(f"{ref}: no valueQuantity value; not recorded")
        return
    value = _number(given_value)
    if value is None:
        imp.problem(ErrorDetail(f"{_entry(i)}.valueQuantity.value{_context(ref, loinc)}", given_value, "a number",
                                "give the value"))
        return
    code = vq.get("code")
    if type(code) is str and code in imp.units.seen and vq.get("system") in (None, t.ucum):
        unit, unit_field = code, "code"  # a UCUM code this call has admitted (so not blank): as _unit_of reads it
    else:
        unit, unit_field = _unit_of(vq, t.ucum)
    if unit is not None and unit not in imp.units.seen and not imp.unit_ok(
            unit, f"{_entry(i)}.valueQuantity.{unit_field}{_context(ref, loinc)}"):
        return
    if body_row is not None:
        _body(r, body_row, value, unit, unit_field, _entry(i), ref, _context(ref, loinc), time, imp)
        return
    comparator = vq.get("comparator")
    if comparator is not None and comparator not in COMPARATORS:
        imp.problem(ErrorDetail(f"{_entry(i)}.valueQuantity.comparator{_context(ref, loinc)}", comparator,
                                f"one of {' '.join(COMPARATORS)}", "use a FHIR quantity-comparator code"))
        return
    a = imp.kb.analytes[analyte]
    if unit is None and a.kind != "ratio":
        imp.cannot_use(imp.unusable, analyte, time, f"{ref} gives {value:.12g} without a unit", [ErrorDetail(
            f"{_entry(i)}.valueQuantity.code{_context(ref, loinc)}", None,
            f"a UCUM unit for {a.label.lower()} (canonical {a.unit})",
            f'add "system": "{t.ucum}", "code": "{a.unit}" (or the unit the laboratory reported)')], FhirInputError)
        return
    try:
        factor = 1.0 if unit is None else imp.factors.get((analyte, unit)) or imp.factor(
            analyte, unit, f"{_entry(i)}.valueQuantity.{unit_field}{_context(ref, loinc)}")
    except UnitError as exc:
        imp.cannot_use(imp.unusable, analyte, time, f"{ref} gives {value:.12g} in the unit “{unit}”, which does "
                       f"not convert to {imp.kb.unit_display.get(a.unit, a.unit)}", exc.details, UnitError)
        return
    canonical = value * factor
    low_bound, high_bound = a.plausible
    if not (low_bound <= canonical <= high_bound and math.isfinite(canonical)):  # else check_plausible passes
        try:
            imp.conv.check_plausible(analyte, canonical,
                                     field=f"{_entry(i)}.valueQuantity.value{_context(ref, loinc)}",
                                     given=(value, unit))
        except ImplausibleValueError as exc:
            shown = f"{value:.12g} {imp.kb.unit_display.get(unit, unit)}" if unit else f"{value:.12g}"
            imp.cannot_use(imp.unusable, analyte, time, f"{ref} gives {shown}, which is not a plausible result "
                           "(check its unit)", exc.details, ImplausibleValueError)
            return
    low = high = None
    ranges = r.get("referenceRange")
    if isinstance(ranges, list) and ranges and isinstance(ranges[0], dict):
        low, high = _reference_range(ranges[0], analyte, unit, factor, ref, i, imp)
        if low is not None and high is not None and low >= high:
            if imp.leave_out:  # a CDS call: the result stands without the range, as below
                _range_not_used(imp, ref, f"the lower limit, {low:.4g}, is not below the upper limit, {high:.4g} "
                                          f"{imp.kb.unit_display.get(a.unit, a.unit)}")
                low = high = None
            else:
                imp.problem(ErrorDetail(f"{_entry(i)}.referenceRange[0].low.value", low,
                                        "less than referenceRange[0].high", "check that the two limits are not swapped"))
                return
    if via_text is not None:
        imp.note(f"{ref}: matched to {analyte} from the text {via_text!r}, not from a LOINC code")
    given = f"{comparator or ''}{value:g} {unit}" if unit else f"{comparator or ''}{value:g}"
    imp.labs.setdefault(analyte, []).append(_lab_value(analyte, canonical, a.unit, given, time, comparator, low, high,
                                                       f"fhir:{ref}"))
    if time is not None:
        imp.obs_times.append(time)


def _unit_of(q: Mapping[str, Any], ucum: str) -> tuple[str | None, str]:
    """UCUM ``code`` when the system is UCUM (``ucum``, or absent), else the human ``unit``."""
    code = q.get("code")
    if isinstance(code, str) and code.strip() and q.get("system") in (None, ucum):
        return code, "code"
    unit = q.get("unit")
    if isinstance(unit, str) and unit.strip():
        return unit, "unit"
    if isinstance(code, str) and code.strip():
        return code, "code"
    return None, "code"


def _range_not_used(imp: _Import, ref: str, why: str) -> None:
    """During a CDS call, a reference range that cannot be used leaves the result without it (what the
    range decides is then not assessed, never assumed normal); said with the findings on every card."""
    imp.note(f"{ref}: its reference range {UNUSABLE_MARK} ({why}), so the result is judged without it; "
             "correct the range in the laboratory system.")


def _given_text(value: Any) -> str:
    """A value as a note quotes it: a number as written (no float noise), anything else in quotes."""
    if type(value) in (int, float):
        return f"{value:.12g}"
    return f"“{value}”"


def _reference_range(first: dict, analyte: str, unit: str | None, factor: float, ref: str, i: int, imp: _Import):
    """``referenceRange[0]`` (``first``) in the canonical unit; ``factor`` converts the result's own ``unit``."""
    ucum = imp.t.ucum
    out: list[float | None] = []
    for key in ("low", "high"):
        q = first.get(key)
        if not isinstance(q, dict) or (value := q.get("value")) is None:
            out.append(None)
            continue
        v = value if type(value) is float and _isfinite(value) else _number(value)  # as _number reads a float
        if v is None or (v <= 0 if key == "high" else v < 0):
            expected = "a finite number above 0" if key == "high" else "a finite number of at least 0"
            if imp.leave_out:  # a CDS call: the result stands without the range (judged as if none were given)
                _range_not_used(imp, ref, f"the {'upper' if key == 'high' else 'lower'} limit is "
                                          f"{_given_text(value)}; expected {expected}")
                return None, None
            imp.problem(ErrorDetail(f"{_entry(i)}.referenceRange[0].{key}.value", value if v is not None else str(value),
                                    expected, "copy the reference limit from the laboratory report, or leave the range out"))
            return None, None
        if unit is not None and q.get("code") == unit and q.get("system") in (None, ucum):
            out.append(v * factor)  # the usual limit: the result's own UCUM code (_unit_of reads it as below)
            continue
        u = _unit_of(q, ucum)[0] or unit
        if u is None:
            out.append(v)  # v * 1.0
            continue
        if u == unit:  # the usual case: the result's own unit, admitted and converted just before
            out.append(v * factor)
            continue
        if u not in imp.units.seen and not imp.unit_ok(u, f"{_entry(i)}.referenceRange[0].{key}.unit"):
            return None, None
        try:  # this limit's own factor: the result's (``factor``) still converts the other limit
            own = imp.factors.get((analyte, u)) or imp.factor(analyte, u, "referenceRange")
        except UnitError:
            imp.note(f"{ref}: referenceRange[0].{key} unit {u!r} not convertible; reference range not used")
            return None, None
        out.append(v * own)
    return out[0], out[1]


def _body(r, row, value, unit, unit_field, base, ref, ctx, time, imp: _Import) -> None:
    target = row["target"]
    field_ = f"{base}.valueQuantity"
    if unit is None:
        imp.cannot_use(imp.unusable_body, target, time, f"{ref} gives {value:.12g} without a unit", [ErrorDetail(
            f"{field_}.code{ctx}", None, f"a UCUM unit convertible to {row['unit']}",
            f"add the unit, e.g. {row['unit']}")], UnitError)
        return
    factor = _body_factor(unit, row["unit"])
    if factor is None:
        imp.cannot_use(imp.unusable_body, target, time, f"{ref} gives {value:.12g} in the unit “{unit}”, which "
                       f"does not convert to {row['unit']}", [ErrorDetail(
                           f"{field_}.{unit_field}{ctx}", unit, f"a UCUM unit convertible to {row['unit']}",
                           "use kg or [lb_av] for weight, cm or [in_i] for height")], UnitError)
        return
    v = value * factor
    lo, hi = row["plausible"]
    if not (lo <= v <= hi):
        imp.cannot_use(imp.unusable_body, target, time, f"{ref} gives {value:.12g} {unit}, which is not a plausible "
                       "measurement (check its unit)", [ErrorDetail(
                           f"{field_}.value{ctx}", f"{value:g} {unit}",
                           f"between {lo:g} and {hi:g} {row['unit']} (a plausibility bound)",
                           "check the value and its unit")], ImplausibleValueError)
        return
    prev = imp.body.get(target)
    if prev is None or (time is not None and (prev[0] is None or time >= prev[0])):
        imp.body[target] = (time, v)


_BODY_LABELS = {"weight_kg": "Weight", "height_cm": "Height"}  # how notes name a body measurement
_BODY_ALIASES = {"lb": "[lb_av]", "lbs": "[lb_av]", "in": "[in_i]", "inch": "[in_i]", "inches": "[in_i]"}


@lru_cache(maxsize=64)
def _body_factor(unit: str, target: str) -> float | None:
    from lark.exceptions import LarkError
    from pint.errors import DimensionalityError, PintError

    from leukos.units import _ureg

    u = _BODY_ALIASES.get(unit.strip(), unit.strip())
    try:
        ureg = _ureg()
        return float((ureg.from_ucum(u) / ureg.from_ucum(target)).to("dimensionless").magnitude)
    except (PintError, LarkError, DimensionalityError, ValueError, AttributeError, TypeError):
        return None


def _genetics(r: dict, row: Mapping[str, Any], ref: str, imp: _Import) -> None:
    rc = imp.t.result_codes
    gene = row["gene"]
    result: GeneticResult | None = None
    if row["kind"] in ("ratio", "log_ratio"):
        vq = r.get("valueQuantity")
        value = _number(vq.get("value")) if isinstance(vq, dict) else None
        comparator = vq.get("comparator") if isinstance(vq, dict) else None
        if value is not None and comparator not in ("<", "<="):
            if row["kind"] == "log_ratio" or value > 0:
                result = GeneticResult.POSITIVE
        if result is None:
            imp.note(f"{ref}: quantitative {gene} result not read as negative (below the detection limit is not "
                     "absent); give a qualitative result")
            return
    else:
        result = _qualitative(r, rc)
        if result is None:
            imp.note(f"{ref}: {gene} result not recognised as positive or negative; not recorded")
            return
        if result is GeneticResult.NEGATIVE and row.get("positive_only"):
            imp.note(f"{ref}: a negative LOINC {row['loinc']} does not exclude {gene}: {row.get('note', '')}")
            return
    imp.genetics.setdefault(gene, []).append((result, ref))


def _qualitative(r: dict, rc: Mapping[str, Any]) -> GeneticResult | None:
    vcc = r.get("valueCodeableConcept")
    for c in _codings(vcc):
        if c.get("system") == "http://snomed.info/sct":
            if c.get("code") in rc["positive_snomed"]:
                return GeneticResult.POSITIVE
            if c.get("code") in rc["negative_snomed"]:
                return GeneticResult.NEGATIVE
    texts = _texts(vcc) + ([r["valueString"]] if isinstance(r.get("valueString"), str) else [])
    for text in texts:
        n = _norm(text)
        if n in rc["negative_text"]:
            return GeneticResult.NEGATIVE
        if n in rc["positive_text"]:
            return GeneticResult.POSITIVE
    for concept in r.get("interpretation") or ():
        for c in _codings(concept):
            if c.get("code") in rc["positive_interpretation"]:
                return GeneticResult.POSITIVE
            if c.get("code") in rc["negative_interpretation"]:
                return GeneticResult.NEGATIVE
    return None


# -- Condition ----------------------------------------------------------------------------------


def _status_code(concept: Any) -> str | None:
    return next((c.get("code") for c in _codings(concept) if isinstance(c.get("code"), str)), None)


def _condition(i: int, r: dict, imp: _Import) -> None:
    t = imp.t
    ref = imp.ref("Condition", r, i)
    clinical = _status_code(r.get("clinicalStatus"))
    verification = _status_code(r.get("verificationStatus"))
    if clinical in CONDITION_SKIP_CLINICAL:
        imp.note(f"{ref}: clinicalStatus {clinical}; ignored")
        return
    if clinical is None and any(k.startswith("abatement") and r[k] is not None for k in r):
        imp.note(f"{ref}: abatement given without clinicalStatus; taken as resolved and ignored")
        return
    if verification in CONDITION_SKIP_VERIFICATION:
        imp.note(f"{ref}: verificationStatus {verification}; ignored")
        return
    concept = None
    codes = []
    for c in _codings(r.get("code")):
        system, code = c.get("system"), c.get("code")
        if not isinstance(code, str):
            continue
        key = "snomed" if system == t.systems["snomed"] else "icd10cm" if system == t.systems["icd10cm"] else None
        if key is None:
            continue
        codes.append(code)
        concept = t.condition_by_code.get((key, code.upper() if key == "icd10cm" else code))
        if concept is None and key == "icd10cm" and code.upper().startswith(t.pregnancy_prefixes):
            concept = _Concept("finding", "pregnancy", None, "pregnancy")
        if concept is not None:
            break
    via_text = None
    if concept is None:
        for text in _texts(r.get("code")):
            concept = t.condition_by_text.get(_norm(text))
            if concept is not None:
                via_text = text
                break
    if concept is None:
        if codes:
            imp.note(f"{ref}: code {', '.join(codes)} not used by leukos; skipped")
        else:
            imp.note(f"{ref}: no SNOMED CT or ICD-10-CM code and no known text; skipped")
        return
    if concept.kind == "recognised":
        imp.note(f"{ref}: {concept.target} recognised; {concept.value}")
        return
    if concept.kind == "remission":
        imp.note(f"{ref}: ICD-10-CM {concept.target} is 'in remission'; ignored like clinicalStatus remission")
        return
    if via_text is not None:
        imp.note(f"{ref}: matched to {concept.target} from the text {via_text!r}, not from a code")
    if concept.kind == "diagnosis":
        if verification in CONDITION_TENTATIVE:
            if concept.target != "APL":
                imp.note(f"{ref}: {concept.target} is {verification}; not used as a known diagnosis")
                return
            imp.note(f"{ref}: APL is {verification}; used as the diagnosis because suspected APL "
                     "contraindicates leukapheresis")
        imp.diagnoses.append((concept.target, concept.value, ref))
    elif concept.kind == "symptom":
        imp.symptoms.append(concept.target)
    else:
        _finding(concept, imp)


def _finding(concept: _Concept, imp: _Import) -> None:
    target = concept.target
    if target == "hepatosplenomegaly":
        imp.flags["splenomegaly"] = imp.flags["hepatomegaly"] = True
    elif target in ("splenomegaly", "hepatomegaly", "lymphadenopathy", "pregnancy"):
        imp.flags[target] = True
    elif target == "infection":
        prev = imp.flags.get("infection")
        # a named organism is more telling than sepsis of unknown cause
        if prev is None or prev == "sepsis":
            imp.flags["infection"] = concept.value
    elif target == "solid_tumor":
        imp.flags.setdefault("solid_tumor", concept.value)


# -- MedicationRequest --------------------------------------------------------------------------


def _medication_request(i: int, r: dict, medications: Mapping[str, dict], imp: _Import) -> None:
    ref = imp.ref("MedicationRequest", r, i)
    status = r.get("status")
    if status not in MEDREQ_STATUS:
        imp.problem(ErrorDetail(f"entry[{i}].resource.status", status, f"one of {', '.join(MEDREQ_STATUS)}",
                                "use the FHIR medicationrequest-status code"))
        return
    if status not in MEDREQ_USED:
        imp.note(f"{ref}: status {status}; ignored")
        return
    texts = _texts(r.get("medicationCodeableConcept"))
    mref = r.get("medicationReference")
    if isinstance(mref, dict):
        if isinstance(mref.get("display"), str):
            texts.append(mref["display"])
        target = medications.get(mref.get("reference")) if isinstance(mref.get("reference"), str) else None
        if target is not None:
            texts += _texts(target.get("code"))
    hits = []
    for text in texts:
        low = text.lower()
        for kind, term, pattern in imp.t.medications:
            if pattern.search(low) and (kind, term) not in hits:
                hits.append((kind, term))
    if not hits:
        imp.note(f"{ref}: medication not one leukos uses; skipped")
        return
    for kind, term in hits:
        (imp.treatment if kind == "treatment" else imp.drugs).append(term)
    imp.note(f"{ref}: matched to {', '.join(t for _, t in hits)} by name (no RxNorm codes in the leukos tables)")


# -- values and times ---------------------------------------------------------------------------


_isfinite = math.isfinite


def _number(v: Any) -> float | None:
    if type(v) is float:  # the usual case; the same answer as below
        return v if math.isfinite(v) else None
    if isinstance(v, bool) or v is None:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return x if math.isfinite(x) else None


def _date(text: str) -> dt.date | None:
    try:
        if len(text) == 4:
            return dt.date(int(text), 1, 1)
        if len(text) == 7:
            return dt.date(int(text[:4]), int(text[5:7]), 1)
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


def _datetime(text: Any) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    return _datetime_text(text)


_NOT_READ: Any = object()


def _datetime_text(text: str) -> dt.datetime | None:
    if len(text) <= 10:
        d = _date(text)
        return None if d is None else dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC)
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.astimezone(dt.UTC) if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _obs_time(r: dict, times: dict[str, dt.datetime | None]) -> dt.datetime | None:
    """When an Observation was made; ``times`` is the import's memo of time texts already read."""
    first = r.get("effectiveDateTime")
    if type(first) is str:  # the usual case: the first candidate below (as _datetime reads it)
        t = times.get(first, _NOT_READ)
        if t is _NOT_READ:
            t = times[first] = _datetime_text(first)
        if t is not None:
            return t
    period = r.get("effectivePeriod")
    for candidate in (r.get("effectiveDateTime"), period.get("start") if isinstance(period, dict) else None,
                      r.get("effectiveInstant"), r.get("issued")):
        t = _datetime(candidate)
        if t is not None:
            return t
    return None


# -- the case -----------------------------------------------------------------------------------


def _build(data: dict, patient_fields: dict[str, Any], imp: _Import) -> Case:
    # values without a time first, then by time; same-time disagreements: leukos.interop.conflicts
    if imp.unusable:  # a CDS call's results that cannot be used: leukos.interop.unusable
        imp.notes.extend(leave_out_results(imp.labs, imp.unusable, imp.t.labels))
    for target, bad in imp.unusable_body.items():
        kept, notes = leave_out_measurement(imp.body.get(target), bad, _BODY_LABELS.get(target, target))
        imp.body.pop(target, None)
        if kept is not None:
            imp.body[target] = kept
        imp.notes.extend(notes)
    labs, conflict_notes = resolve_same_time(imp.labs, imp.t.labels, imp.t.units)
    imp.notes.extend(conflict_notes)
    genetics: dict[str, GeneticResult] = {}
    for gene, results in imp.genetics.items():
        kinds = {res for res, _ in results}
        if len(kinds) > 1:
            imp.note(f"{gene}: positive and negative results ({', '.join(ref for _, ref in results)}); "
                     "positive is used")
        genetics[gene] = GeneticResult.POSITIVE if GeneticResult.POSITIVE in kinds else GeneticResult.NEGATIVE
    diagnosis = immuno = None
    if imp.diagnoses:
        found = {d for d, _, _ in imp.diagnoses}
        ranked = sorted(found, key=lambda d: imp.t.precedence.index(d) if d in imp.t.precedence else 99)
        diagnosis = ranked[0]
        if len(found) > 1:
            imp.note(f"several diagnoses coded ({', '.join(ranked)}); {diagnosis} used (APL first, then acute before chronic leukaemia)")
        immunos = {im for d, im, _ in imp.diagnoses if d == diagnosis and im}
        if len(immunos) == 1:
            immuno = immunos.pop()
    weight = imp.body.get("weight_kg")
    height = imp.body.get("height_cm")
    as_of = _datetime(data.get("timestamp"))
    if as_of is None and imp.obs_times:
        as_of = max(imp.obs_times)
    birth_date = patient_fields.get("birth_date")
    if implausible_age(birth_date, as_of) is not None:  # the record's slip: left out, said, the rest assessed
        birth_date = None
        imp.note(unusable_birth_date_note())
    patient = Patient(
        birth_date=birth_date,
        sex=patient_fields.get("sex"),
        weight_kg=None if weight is None else round(weight[1], 3),
        height_cm=None if height is None else round(height[1], 2),
        pregnant=True if imp.flags.get("pregnancy") else None,
    )
    infection = imp.flags.get("infection")
    tumour = imp.flags.get("solid_tumor")
    findings = Findings(
        known_diagnosis=Diagnosis(diagnosis) if diagnosis else None,
        immunophenotype=Immunophenotype(immuno) if immuno else None,
        genetics=MappingProxyType(genetics),
        splenomegaly=imp.flags.get("splenomegaly"),
        hepatomegaly=imp.flags.get("hepatomegaly"),
        lymphadenopathy=imp.flags.get("lymphadenopathy"),
        solid_tumor=SolidTumor(present=True, site=tumour) if tumour else SolidTumor(),
        infection=Infection(present=True, organism=None if infection == "sepsis" else infection)
        if infection else Infection(),
        drugs=tuple(dict.fromkeys(imp.drugs)) if imp.drugs else None,
        treatment=tuple(dict.fromkeys(imp.treatment)) if imp.treatment else None,
    )
    bid = data.get("id")
    return Case(
        id=bid if isinstance(bid, str) else None,
        as_of=as_of,
        patient=patient,
        labs=MappingProxyType(labs),
        symptoms=tuple(dict.fromkeys(imp.symptoms)) if imp.symptoms else None,
        findings=findings,
        source="fhir",
        import_notes=tuple(imp.notes),
    )

