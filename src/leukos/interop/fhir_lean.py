"""A lean FHIR R4 validator for the plain shapes of the resources leukos reads most (Observation, Patient).

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

Covered (R4B, hl7.org/fhir/R4B):
- Observation: resourceType, id, meta, identifier, status (required), category, code (required), subject,
  effectiveDateTime, issued, valueQuantity, referenceRange (low, high, text), interpretation,
  dataAbsentReason
- Patient: resourceType, id, meta, identifier, name, gender, birthDate, active
- Meta (versionId, lastUpdated, source, profile, security, tag), Identifier (use, type, system,
  value), HumanName (use, text, family, given, prefix, suffix)
- Bundle shell (entries without their resources): resourceType, id, type, total, timestamp, entry.fullUrl
- CodeableConcept (coding, text), Coding (system, version, code, display, userSelected),
  Reference (reference, type, display), Quantity/SimpleQuantity (value, comparator, unit, system, code)
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

__all__ = ["lean_valid"]

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


# Verdicts of the primitive patterns on strings already seen: systems, codes, displays and units
# repeat across a Bundle's resources and across calls. A pure function of the string; bounded in
# entries and in the length of the strings kept.
_MEMO_MAX = 4096
_MEMO_CHARS = 256


def _memo_matcher(pattern: re.Pattern[str]) -> Callable[[Any], bool]:
    seen: dict[str, bool] = {}

    def check(v: Any) -> bool:
        if type(v) is not str:
            return False
        ok = seen.get(v)
        if ok is None:
            ok = pattern.fullmatch(v) is not None
            if len(v) <= _MEMO_CHARS:
                if len(seen) >= _MEMO_MAX:
                    seen.clear()
                seen[v] = ok
        return ok
    return check


_string = _memo_matcher(_STRING)
_code = _memo_matcher(_CODE)
_uri = _memo_matcher(_URI)
_id = _memo_matcher(_ID)


def _calendar_ok(v: str) -> bool:
    if len(v) < 10:
        return True  # year or year-month: the pattern is the whole rule
    try:
        dt.date(int(v[:4]), int(v[5:7]), int(v[8:10]))
    except ValueError:
        return False
    return True


@lru_cache(maxsize=8192)  # the same times recur across a patient's results and across calls
def _time_ok(pattern: re.Pattern[str], v: str) -> bool:
    return pattern.fullmatch(v) is not None and _calendar_ok(v)


def _date(v: Any) -> bool:
    return type(v) is str and _time_ok(_DATE, v)


def _datetime(v: Any) -> bool:
    return type(v) is str and _time_ok(_DATETIME, v)


def _instant(v: Any) -> bool:
    return type(v) is str and _time_ok(_INSTANT, v)


_MAX_DOUBLE = 1.7976931348623157e308


def _decimal(v: Any) -> bool:
    # The text of every int and every finite float matches _DECIMAL (Python writes no leading zeros,
    # "inf" or "nan" for them), so the pattern itself need not run; an int beyond a double is refused.
    t = type(v)
    return (t is float and math.isfinite(v)) or (t is int and -_MAX_DOUBLE <= v <= _MAX_DOUBLE)


def _boolean(v: Any) -> bool:
    return type(v) is bool


def _obj(v: Any, fields: dict[str, Callable[[Any], bool]], required: tuple[str, ...] = ()) -> bool:
    if type(v) is not dict or not v:
        return False
    for k, item in v.items():
        check = fields.get(k)
        if check is None or not check(item):
            return False
    for k in required:  # plain loops: this runs for every element of every resource
        if k not in v:
            return False
    return True


def _list_of(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    def ok(v: Any) -> bool:
        if type(v) is not list or not v:
            return False
        for i in v:
            if not check(i):
                return False
        return True
    return ok


_CODING = {"system": _uri, "version": _string, "code": _code, "display": _string, "userSelected": _boolean}


def _coding(v: Any) -> bool:
    return _obj(v, _CODING)


_CONCEPT = {"coding": _list_of(_coding), "text": _string}


def _concept(v: Any) -> bool:
    return _obj(v, _CONCEPT)


_REFERENCE = {"reference": _string, "type": _uri, "display": _string}


def _reference(v: Any) -> bool:
    return _obj(v, _REFERENCE)


_META = {"versionId": _id, "lastUpdated": lambda v: _instant(v),
         "source": _uri, "profile": _list_of(_uri), "security": _list_of(_coding), "tag": _list_of(_coding)}


def _meta(v: Any) -> bool:
    return _obj(v, _META)


_IDENTIFIER_USE = frozenset({"usual", "official", "temp", "secondary", "old"})
_NAME_USE = frozenset({"usual", "official", "temp", "nickname", "anonymous", "old", "maiden"})
_IDENTIFIER = {"use": lambda u: type(u) is str and u in _IDENTIFIER_USE, "type": _concept, "system": _uri,
               "value": _string}
_HUMAN_NAME = {"use": lambda u: type(u) is str and u in _NAME_USE, "text": _string, "family": _string,
               "given": _list_of(_string), "prefix": _list_of(_string), "suffix": _list_of(_string)}


def _identifier(v: Any) -> bool:
    return _obj(v, _IDENTIFIER)


def _human_name(v: Any) -> bool:
    return _obj(v, _HUMAN_NAME)

_QUANTITY = {"value": _decimal, "comparator": lambda c: type(c) is str and c in _COMPARATOR, "unit": _string,
             "system": _uri, "code": _code}
_SIMPLE_QUANTITY = {k: f for k, f in _QUANTITY.items() if k != "comparator"}


def _quantity(v: Any) -> bool:
    return _obj(v, _QUANTITY)


def _simple_quantity(v: Any) -> bool:
    return _obj(v, _SIMPLE_QUANTITY)


_RANGE_ITEM = {"low": _simple_quantity, "high": _simple_quantity, "text": _string}


def _range_item(v: Any) -> bool:
    return _obj(v, _RANGE_ITEM)


_OBSERVATION = {
    "resourceType": lambda v: v == "Observation",
    "id": _id,
    "meta": _meta,
    "identifier": _list_of(_identifier),
    "status": lambda v: type(v) is str and v in _OBS_STATUS,
    "category": _list_of(_concept),
    "code": _concept,
    "subject": _reference,
    "effectiveDateTime": _datetime,
    "issued": _instant,
    "valueQuantity": _quantity,
    "referenceRange": _list_of(_range_item),
    "interpretation": _list_of(_concept),
    "dataAbsentReason": _concept,
}
_PATIENT = {
    "resourceType": lambda v: v == "Patient",
    "id": _id,
    "meta": _meta,
    "identifier": _list_of(_identifier),
    "name": _list_of(_human_name),
    "gender": lambda v: type(v) is str and v in _GENDER,
    "birthDate": _date,
    "active": _boolean,
}
_BUNDLE_TYPES = frozenset({"document", "message", "transaction", "transaction-response", "batch", "batch-response",
                           "history", "searchset", "collection"})
# Bundle entries arrive here without their resource (validated on their own); R4B accepts {}.
_BUNDLE_SHELL = {
    "resourceType": lambda v: v == "Bundle",
    "id": _id,
    "type": lambda v: type(v) is str and v in _BUNDLE_TYPES,
    "total": lambda v: type(v) is int and 0 <= v <= 2_147_483_647,
    "timestamp": _instant,
    "entry": lambda v: type(v) is list and all(i == {} or _obj(i, {"fullUrl": _uri}) for i in v),
}
_RESOURCES = {"Observation": (_OBSERVATION, ("status", "code")), "Patient": (_PATIENT, ()),
              "Bundle": (_BUNDLE_SHELL, ("type",))}


def lean_valid(resource: Any) -> bool:
    """True only if ``resource`` is an Observation, Patient or Bundle shell (entries without their
    resources) of the plain shape above and valid R4."""
    if type(resource) is not dict:
        return False
    spec = _RESOURCES.get(resource.get("resourceType"))  # type: ignore[arg-type]
    if spec is None:
        return False
    fields, required = spec
    if "dataAbsentReason" in resource and "valueQuantity" in resource:
        return False  # R4 invariant obs-6; left to the full path
    return _obj(resource, fields, required)
