"""A lean FHIR R4 validator for the plain shapes of the resources leukos reads most (Observation, Patient,
Condition).

Validating every laboratory Observation with the ``fhir.resources`` R4B models costs most of a CDS
call. Most Observations an EHR sends use a handful of elements with plain data types, and for those
the R4 rules are short: the element names of the resource, the data types' element names, and the
regular expressions of the primitive types (as ``fhir_core`` applies them). :func:`lean_valid`
checks exactly those and answers ``True`` only when it can show the resource is valid R4; for
anything else — an element or data-type element outside the list below, ``extension``,
``contained``, a value that fails a rule — it answers ``False`` and the caller validates the resource
with the R4B models, which also name the exact problem. So the lean path never accepts what the
R4B models would refuse (tests/test_fhir_lean.py checks this on generated resources) and never
reports an error itself.

The grammar below is a table (:data:`_TYPES`); it is compiled once, at import, into one plain
function per data type, because the checks run for every element of every resource of every call
(tests/test_fhir_lean.py checks the compiled functions against a direct reading of the table).

Covered (R4B, hl7.org/fhir/R4B):
- Observation: resourceType, id, meta, identifier, status (required), category, code (required), subject,
  effectiveDateTime, issued, valueQuantity, referenceRange (low, high, text), interpretation,
  dataAbsentReason
- Patient: resourceType, id, meta, identifier, name, gender, birthDate, active
- Condition: resourceType, id, meta, identifier, clinicalStatus, verificationStatus, category, severity, code,
  bodySite, subject (required), encounter, onsetDateTime, abatementDateTime, recordedDate, recorder, asserter
  (the R4 invariants con-3/4/5 are not checked by the R4B models either)
- Meta (versionId, lastUpdated, source, profile, security, tag), Identifier (use, type, system,
  value), HumanName (use, text, family, given, prefix, suffix)
- Bundle shell: resourceType, id, type, total, timestamp, entry.fullUrl (entry.resource is validated on its own)
- CodeableConcept (coding, text), Coding (system, version, code, display, userSelected),
  Reference (reference, type, display), Quantity/SimpleQuantity (value, comparator, unit, system, code)
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from typing import Any

__all__ = ["CallMemo", "lean_valid"]

# fhir_core.types regular expressions (R4B primitive types)
_STRING = re.compile(r"[ \r\n\t\S]+")
_CODE = re.compile(r"[^\s]+(\s[^\s]+)*")
_URI = re.compile(r"\S+")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_DATE = re.compile(_YEAR + r"(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?")
_DATETIME = re.compile(_YEAR + r"(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:"
                       r"([0-5][0-9])(\.[0-9]+)?(Z|([+\-])((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?")
_INSTANT = re.compile(_YEAR + r"-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:"
                      r"([0-5][0-9])(\.[0-9]+)?(Z|([+\-])((0[0-9]|1[0-3]):[0-5][0-9]|14:00))")

_OBS_STATUS = frozenset({"registered", "preliminary", "final", "amended", "corrected", "cancelled",
                         "entered-in-error", "unknown"})
_GENDER = frozenset({"male", "female", "other", "unknown"})
_COMPARATOR = frozenset({"<", "<=", ">=", ">"})


# The grammar, as data: element name -> kind. A kind is a primitive type name (see _PRIMITIVE_EXPR), a
# data type (a key of _TYPES), ("list", kind) for a non-empty array, ("enum", name of a value set in
# _ENUMS), ("const", text), ("call", "string" or "uri") for a string or uri that may name the patient
# (references, names, identifier values, entry URLs: checked with this call's memo only, never kept
# between calls), "entries" (Bundle.entry), or "elsewhere" (an element this grammar does not look at
# because it is validated on its own: Bundle.entry.resource). _TYPES are compiled once
# into one plain function per data type (see _compile): no per-element dispatch through closures.
_IDENTIFIER_USE = frozenset({"usual", "official", "temp", "secondary", "old"})
_NAME_USE = frozenset({"usual", "official", "temp", "nickname", "anonymous", "old", "maiden"})
_BUNDLE_TYPES = frozenset({"document", "message", "transaction", "transaction-response", "batch", "batch-response",
                           "history", "searchset", "collection"})
_ENUMS = {"observation_status": _OBS_STATUS, "gender": _GENDER, "comparator": _COMPARATOR,
          "identifier_use": _IDENTIFIER_USE, "name_use": _NAME_USE, "bundle_type": _BUNDLE_TYPES}

Kind = Any
_PRIVATE_STRING = ("call", "string")
_PRIVATE_URI = ("call", "uri")
_TYPES: dict[str, tuple[dict[str, Kind], tuple[str, ...]]] = {  # name -> (elements, required elements)
    "Coding": ({"system": "uri", "version": "string", "code": "code", "display": "string",
                "userSelected": "boolean"}, ()),
    # CodeableConcept.text is what the clinician or the EHR typed (a diagnosis, a result's name as
    # written): patient text, not vocabulary. Coding.display is the code system's own wording.
    "CodeableConcept": ({"coding": ("list", "Coding"), "text": _PRIVATE_STRING}, ()),
    "Reference": ({"reference": _PRIVATE_STRING, "type": "uri", "display": _PRIVATE_STRING}, ()),
    "Meta": ({"versionId": "id", "lastUpdated": "instant", "source": _PRIVATE_URI, "profile": ("list", "uri"),
              "security": ("list", "Coding"), "tag": ("list", "Coding")}, ()),
    "Identifier": ({"use": ("enum", "identifier_use"), "type": "CodeableConcept", "system": "uri",
                    "value": _PRIVATE_STRING}, ()),
    "HumanName": ({"use": ("enum", "name_use"), "text": _PRIVATE_STRING, "family": _PRIVATE_STRING,
                   "given": ("list", _PRIVATE_STRING), "prefix": ("list", _PRIVATE_STRING),
                   "suffix": ("list", _PRIVATE_STRING)}, ()),
    "Quantity": ({"value": "decimal", "comparator": ("enum", "comparator"), "unit": "string", "system": "uri",
                  "code": "code"}, ()),
    "SimpleQuantity": ({"value": "decimal", "unit": "string", "system": "uri", "code": "code"}, ()),
    "ObservationReferenceRange": ({"low": "SimpleQuantity", "high": "SimpleQuantity", "text": "string"}, ()),
    "Observation": ({
        "resourceType": ("const", "Observation"),
        "id": "id",
        "meta": "Meta",
        "identifier": ("list", "Identifier"),
        "status": ("enum", "observation_status"),
        "category": ("list", "CodeableConcept"),
        "code": "CodeableConcept",
        "subject": "Reference",
        "effectiveDateTime": "dateTime",
        "issued": "instant",
        "valueQuantity": "Quantity",
        "referenceRange": ("list", "ObservationReferenceRange"),
        "interpretation": ("list", "CodeableConcept"),
        "dataAbsentReason": "CodeableConcept",
    }, ("status", "code")),
    "Patient": ({
        "resourceType": ("const", "Patient"),
        "id": "id",
        "meta": "Meta",
        "identifier": ("list", "Identifier"),
        "name": ("list", "HumanName"),
        "gender": ("enum", "gender"),
        "birthDate": "date",
        "active": "boolean",
    }, ()),
    # One choice of onset[x] and of abatement[x] each, so R4B's "one of many" rule holds by construction.
    "Condition": ({
        "resourceType": ("const", "Condition"),
        "id": "id",
        "meta": "Meta",
        "identifier": ("list", "Identifier"),
        "clinicalStatus": "CodeableConcept",
        "verificationStatus": "CodeableConcept",
        "category": ("list", "CodeableConcept"),
        "severity": "CodeableConcept",
        "code": "CodeableConcept",
        "bodySite": ("list", "CodeableConcept"),
        "subject": "Reference",
        "encounter": "Reference",
        "onsetDateTime": "dateTime",
        "abatementDateTime": "dateTime",
        "recordedDate": "dateTime",
        "recorder": "Reference",
        "asserter": "Reference",
    }, ("subject",)),
    # A Bundle entry's resource is validated on its own (by type), so the shell's check passes over it:
    # an entry is then valid exactly when it is without its resource (R4B accepts {}).
    "BundleEntry": ({"fullUrl": _PRIVATE_URI, "resource": "elsewhere"}, ()),
    "Bundle": ({
        "resourceType": ("const", "Bundle"),
        "id": "id",
        "type": ("enum", "bundle_type"),
        "total": "unsignedInt",
        "timestamp": "instant",
        "entry": "entries",
    }, ("type",)),
}

# Strings already proved valid, for the vocabulary elements only: systems, codes, displays and units
# repeat across a Bundle's resources and across calls and patients. Ids, times, and the strings and
# uris marked ("call", ...) in the grammar name a patient or an event: they are never kept between
# calls (kept, they only held patient data: on a cohort of different patients they never repeated).
# Only valid strings are kept (a refused one is checked again: rare), bounded in entries and in the
# length of the strings kept.
_MEMO_MAX = 4096
_MEMO_CHARS = 256
_STRING_PATTERNS = {"string": _STRING, "code": _CODE, "uri": _URI, "id": _ID}
_TIME_PATTERNS = {"date": _DATE, "dateTime": _DATETIME, "instant": _INSTANT}
_REMEMBERED = frozenset({"string", "code", "uri"})
_CALL_STRINGS = ("string", "uri")  # the primitive types a ("call", type) element may name


class CallMemo:
    """The times and patient strings of one import already proved valid, per primitive type: a memo
    living in one call only.

    One patient's results share a few collection and issue times (22 Observations, 3 + 3 times) and
    one subject reference, and the full check of a time (its pattern and its calendar date) costs ten
    times a set lookup. The memo belongs to the caller's import (:func:`lean_valid`'s ``memo``) and
    dies with it, so no patient's time, reference or name outlives the call that sent it.
    """

    __slots__ = ("date", "dateTime", "instant", "string", "uri")

    def __init__(self) -> None:
        self.date: set[str] = set()
        self.dateTime: set[str] = set()  # noqa: N815 - named as the FHIR type, as the grammar names it
        self.instant: set[str] = set()
        self.string: set[str] = set()
        self.uri: set[str] = set()


def _calendar_ok(v: str) -> bool:
    if len(v) < 10:
        return True  # year or year-month: the pattern is the whole rule
    try:
        dt.date(int(v[:4]), int(v[5:7]), int(v[8:10]))
    except ValueError:
        return False
    return True


def _full_check(pattern: re.Pattern[str], calendar: bool) -> Callable[[str], bool]:
    """The whole rule of a primitive string type: its pattern, and for a full date a real calendar day."""
    if not calendar:
        return lambda v: pattern.fullmatch(v) is not None
    return lambda v: pattern.fullmatch(v) is not None and _calendar_ok(v)


def _slow_check(full: Callable[[str], bool], valid: set[str]) -> Callable[[str], bool]:
    """The full check of a vocabulary string not yet in ``valid`` (which it then joins if valid and short)."""
    def check(v: str) -> bool:
        ok = full(v)
        if ok and len(v) <= _MEMO_CHARS:
            if len(valid) >= _MEMO_MAX:
                valid.clear()
            valid.add(v)
        return ok
    return check


def _call_check(full: Callable[[str], bool]) -> Callable[[str, set[str]], bool]:
    """The full check of a time or an id not yet in this call's ``seen`` (which it then joins if valid)."""
    def check(v: str, seen: set[str]) -> bool:
        ok = full(v)
        if ok:
            seen.add(v)
        return ok
    return check


_MAX_DOUBLE = 1.7976931348623157e308


def _decimal(v: Any) -> bool:
    # The text of every int and every finite float matches _DECIMAL (Python writes no leading zeros,
    # "inf" or "nan" for them), so the pattern itself need not run; an int beyond a double is refused.
    t = type(v)
    return (t is float and _isfinite(v)) or (t is int and -_MAX_DOUBLE <= v <= _MAX_DOUBLE)


_isfinite = math.isfinite

# Python expressions of the primitive checks of the value named @ (names are bound in _namespace).
_PRIMITIVE_EXPR = {
    **{name: f"(type(@) is str and (@ in _ok_{name} or _slow_{name}(@)))" for name in _STRING_PATTERNS
       if name in _REMEMBERED},
    "id": "(type(@) is str and _full_id(@))",
    # a time: this call's memo (the variable _seen_<type>, bound from the CallMemo at the function's start)
    **{name: f"(type(@) is str and (@ in _seen_{name} or _call_{name}(@, _seen_{name})))" for name in _TIME_PATTERNS},
    "decimal": "((type(@) is float and _isfinite(@)) or (type(@) is int and -_MAX_DOUBLE <= @ <= _MAX_DOUBLE))",
    "boolean": "(type(@) is bool)",
    "unsignedInt": "(type(@) is int and 0 <= @ <= 2147483647)",
    "elsewhere": "True",
}


def _namespace() -> dict[str, Any]:
    ns: dict[str, Any] = {"_isfinite": _isfinite, "_MAX_DOUBLE": _MAX_DOUBLE}
    for name, pattern in _STRING_PATTERNS.items():
        full = _full_check(pattern, calendar=False)
        if name in _REMEMBERED:
            valid: set[str] = set()
            ns[f"_ok_{name}"] = valid
            ns[f"_slow_{name}"] = _slow_check(full, valid)
        else:
            ns[f"_full_{name}"] = full
    for name, pattern in _TIME_PATTERNS.items():
        ns[f"_call_{name}"] = _call_check(_full_check(pattern, calendar=True))
    for name in _CALL_STRINGS:
        ns[f"_call_{name}"] = _call_check(_full_check(_STRING_PATTERNS[name], calendar=False))
    for name, values in _ENUMS.items():
        ns[f"_enum_{name}"] = values
    return ns


def _expr(kind: Kind, var: str) -> str:
    """The Python expression that is True when the value named ``var`` is valid of a primitive ``kind``."""
    if isinstance(kind, str):
        return _PRIMITIVE_EXPR[kind].replace("@", var)
    tag, arg = kind
    if tag == "enum":
        return f"(type({var}) is str and {var} in _enum_{arg})"
    if tag == "const":
        return f"({var} == {arg!r})"
    if tag == "call" and arg in _CALL_STRINGS:
        return f"(type({var}) is str and ({var} in _seen_{arg} or _call_{arg}({var}, _seen_{arg})))"
    raise ValueError(f"no expression for {kind!r}")


def _check_lines(kind: Kind, var: str, level: int) -> list[str]:
    """Statements that ``return False`` unless the value named ``var`` is valid of ``kind``. Data types
    are written out in place (their own variables per nesting level), so that validating a resource
    is one function call."""
    if isinstance(kind, str) and kind in _TYPES:
        elements, required = _TYPES[kind]
        key, item = f"k{level}", f"x{level}"
        lines = [f"if type({var}) is not dict or not {var}:", "    return False", f"for {key}, {item} in {var}.items():"]
        for i, (element, element_kind) in enumerate(elements.items()):
            lines.append(f"    {'if' if i == 0 else 'elif'} {key} == {element!r}:")
            lines += ["        " + line for line in _check_lines(element_kind, item, level + 1)]
        lines += ["    else:", "        return False"]
        for r in required:
            lines += [f"if {r!r} not in {var}:", "    return False"]
        return lines
    if isinstance(kind, tuple) and kind[0] == "list":
        each = f"y{level}"
        return [f"if type({var}) is not list or not {var}:", "    return False", f"for {each} in {var}:",
                *("    " + line for line in _check_lines(kind[1], each, level + 1))]
    if kind == "entries":  # entries: {}, or fullUrl and/or a resource (not looked at here)
        each = f"y{level}"
        return [f"if type({var}) is not list:", "    return False", f"for {each} in {var}:",
                f"    if {each} != {{}}:", *("        " + line for line in _check_lines("BundleEntry", each, level + 1))]
    return [f"if not {_expr(kind, var)}:", "    return False"]


def _memo_binding(body: list[str]) -> str:
    """Binds the sets of this call's memo that ``body`` reads (``_seen_<type>``) to local variables."""
    text = "\n".join(body)
    used = [name for name in CallMemo.__slots__ if f"_seen_{name}" in text]
    return "; ".join(f"_seen_{name} = memo.{name}" for name in used) or "pass"


def _compile() -> dict[str, Callable[[Any, CallMemo], bool]]:
    """One function per entry of _TYPES: a dict, not empty, every element known and valid, the required
    elements present; the data types it holds are checked in the same function (no call per element)."""
    lines: list[str] = []
    for name in _TYPES:
        body = _check_lines(name, "v", 0)
        lines += [f"def _v_{name}(v, memo):", f"    {_memo_binding(body)}", *("    " + line for line in body),
                  "    return True"]
    ns = _namespace()
    exec(compile("\n".join(lines), f"<{__name__} compiled grammar>", "exec"), ns)  # noqa: S102 - our own table
    return {name: ns[f"_v_{name}"] for name in _TYPES}


_VALIDATORS = _compile()
_RESOURCES = {rtype: _VALIDATORS[rtype] for rtype in ("Observation", "Patient", "Condition", "Bundle")}


def lean_valid(resource: Any, memo: CallMemo | None = None) -> bool:
    """True only if ``resource`` is an Observation, Patient, Condition or Bundle shell of the plain shape
    above and valid R4. For a Bundle, the resources of its entries are not looked at: the answer is the
    answer for the Bundle without them (each resource is validated on its own). ``memo``: the times
    this call has already proved valid (one per import; a fresh one when not given)."""
    if type(resource) is not dict:
        return False
    rtype = resource.get("resourceType")
    check = _RESOURCES.get(rtype) if type(rtype) is str else None
    if check is None:
        return False
    if "dataAbsentReason" in resource and "valueQuantity" in resource:
        return False  # R4 invariant obs-6; left to the full path
    return check(resource, CallMemo() if memo is None else memo)
