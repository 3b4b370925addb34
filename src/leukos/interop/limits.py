"""Bounded parsing of untrusted JSON and YAML: the limits every surface (CLI, REST, CDS Hooks) shares.

A case or a CDS request is a few kilobytes of shallow data. Anything far from that is refused with a
:class:`~leukos.errors.CaseFormatError` naming the place, before any rule or validator sees it:

- YAML anchors/aliases: at most :data:`MAX_YAML_ALIASES` alias uses (a 531-byte "billion laughs"
  expands to gigabytes when it is copied or validated; ordinary cases use none);
- nesting deeper than :data:`MAX_DEPTH` (10,000 nested brackets used to raise RecursionError → 500);
  request bodies read by :func:`loads_json_bytes` (CDS Hooks) are bounded by its faster parser at
  :data:`FAST_MAX_DEPTH` instead (FHIR extensions nest legitimately);
- more than :data:`MAX_ELEMENTS` values in one document (aliases counted as expanded);
- numbers that are not finite doubles (``NaN``, ``Infinity``, ``1e400``, integers beyond 1.8e308):
  they are not measurements, and NaN compares false with every threshold;
- text that is not Unicode scalar values (a lone surrogate such as ``\\ud800``): it cannot be written
  as UTF-8 to a report, a log or the audit trail;
- distinct unit strings per request (:class:`UnitBudget`): parsing an unknown unit costs
  milliseconds, so 400 long invented units blocked the server for half a minute.

These are software limits (leukos_operational), not clinical numbers.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from leukos.errors import CaseFormatError, ErrorDetail, UnitError

__all__ = ["MAX_DEPTH", "MAX_ELEMENTS", "MAX_YAML_ALIASES", "MAX_DISTINCT_UNITS", "MAX_UNIT_CHARS",
           "MAX_STRING_CHARS", "FAST_MAX_DEPTH", "loads_json", "loads_json_bytes", "loads_yaml", "check_tree", "UnitBudget", "json_path"]

MAX_DEPTH = 64
MAX_ELEMENTS = 100_000
MAX_YAML_ALIASES = 32
MAX_STRING_CHARS = 65_536
MAX_DISTINCT_UNITS = 48
MAX_UNIT_CHARS = 48
_MAX_DOUBLE = 1.7976931348623157e308


def json_path(parts: list[Any] | tuple[Any, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _field(name: str, parts: list[Any]) -> str:
    """The place in the document, as the case-format errors name it (``labs.wbc``); the document's name
    only for the document itself."""
    return json_path(parts) or name


# A JSON number that may not be a finite double: a 3-digit exponent (1e400 parses to inf), or a run of
# 200+ digits (a 400-digit integer parses to a Python int that float() cannot take; 200 digits with a
# 2-digit exponent stay below 1e308). The pattern runs on the body with every digit mapped to "0", "E"
# to "e" and every other character a number cannot be followed by (letters, _ . " -) to "a": one
# C-level translate, then a search with a literal start (the plain regex on the raw body cost as much
# as parsing it). Text such as a uuid "…3e953b…" is not followed by a delimiter a number can be.
_NUM_FROM = b"0123456789E" + bytes(c for c in range(256) if chr(c) in
                                   "ABCDFGHIJKLMNOPQRSTUVWXYZabcdfghijklmnopqrstuvwxyz_.\"-")
_NUM_TABLE = bytes.maketrans(_NUM_FROM, b"0" * 10 + b"e" + b"a" * (len(_NUM_FROM) - 11))
_EXPONENT_3 = re.compile(rb"0e\+?000+(?![0ae])")  # on the translated body
_LONG_DIGITS = b"0" * 200


def _maybe_not_finite(raw: bytes) -> bool:
    """True if ``raw`` may hold a number beyond a finite double (then the full check decides)."""
    t = raw.translate(_NUM_TABLE)
    return _LONG_DIGITS in t or _EXPONENT_3.search(t) is not None


FAST_MAX_DEPTH = 200  # the bound of pydantic-core's JSON parser (jiter)


def loads_json_bytes(raw: bytes, *, name: str = "input") -> Any:
    """Fast path for request bodies: pydantic-core's JSON parser, then the full check only if needed.

    The parser refuses NaN/Infinity, lone surrogates and nesting beyond :data:`FAST_MAX_DEPTH`; a body
    shorter than :data:`MAX_STRING_CHARS` cannot hold a longer string or more than :data:`MAX_ELEMENTS`
    values; an exponent of three digits (``1e400``) or a run of 200 digits (an integer beyond a double)
    sends the body to the full check. Any refusal is re-parsed by :func:`loads_json`, which names the
    exact place. The parser's process-wide string cache keeps keys only (element names): values are
    patient data, which should not outlive the call, and with a different patient per call caching them
    cost more than it saved (119 -> 97 us per benchmark body).
    """
    from pydantic_core import from_json

    if len(raw) < MAX_STRING_CHARS and not _maybe_not_finite(raw):
        try:
            return from_json(raw, allow_inf_nan=False, cache_strings="keys")
        except ValueError:
            pass
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CaseFormatError(ErrorDetail(name, f"byte {exc.start}", "UTF-8 JSON", "send UTF-8 text")) from None
    return loads_json(text, name=name)


def loads_json(text: str, *, name: str = "input") -> Any:
    """``json.loads`` with the limits of this module checked on the result."""
    try:
        data = json.loads(text, parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise CaseFormatError(ErrorDetail(name, f"line {exc.lineno}, column {exc.colno}",
                                          "valid JSON", f"fix the JSON syntax there: {exc.msg}")) from None
    except RecursionError:
        raise CaseFormatError(_too_deep(name)) from None
    except ValueError as exc:  # e.g. an integer literal beyond Python's digit limit
        raise CaseFormatError(ErrorDetail(name, "(a number)", "numbers of ordinary size",
                                          f"check the numbers in the document ({str(exc)[:80]})")) from None
    check_tree(data, name=name)
    return data


def _yaml_loader():
    import yaml

    class BoundedSafeLoader(yaml.SafeLoader):
        """SafeLoader that refuses more than MAX_YAML_ALIASES alias uses and deep nesting."""

        aliases = 0
        depth = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_YAML_ALIASES:
                    event = self.peek_event()
                    raise _Refused(ErrorDetail(
                        "", f"line {event.start_mark.line + 1}: alias number {self.aliases}",
                        f"at most {MAX_YAML_ALIASES} YAML aliases (*name) per document",
                        "write the values out; a case needs no anchors"))
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise _Refused(_too_deep(""))
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return BoundedSafeLoader


class _Refused(Exception):
    def __init__(self, detail: ErrorDetail):
        super().__init__(detail.expected)
        self.detail = detail


_LOADER = None


def loads_yaml(text: str, *, name: str = "input") -> Any:
    """``yaml.safe_load`` with an alias bound and a depth bound, then :func:`check_tree`."""
    global _LOADER
    import yaml

    if _LOADER is None:
        _LOADER = _yaml_loader()
    loader = None
    try:
        loader = _LOADER(text)
        data = loader.get_single_data()
    except _Refused as exc:
        d = exc.detail
        raise CaseFormatError(ErrorDetail(name, d.value, d.expected, d.fix)) from None
    except RecursionError:
        raise CaseFormatError(_too_deep(name)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CaseFormatError(ErrorDetail(name, where, "valid JSON or YAML",
                                          f"fix the syntax there: {problem}")) from None
    except ValueError as exc:  # a huge integer literal
        raise CaseFormatError(ErrorDetail(name, "(a number)", "numbers of ordinary size",
                                          f"check the numbers in the document ({str(exc)[:80]})")) from None
    finally:
        if loader is not None:
            loader.dispose()
    check_tree(data, name=name)
    return data


def _too_deep(name: str) -> ErrorDetail:
    return ErrorDetail(name, f"more than {MAX_DEPTH} levels of nesting", f"at most {MAX_DEPTH} levels",
                       "send a case or a FHIR Bundle as documented; they are a few levels deep")


def _bad_text(s: str) -> bool:
    if s.isascii():
        return False
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _shown(s: str) -> str:
    return s[:40].encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")


def check_tree(data: Any, *, name: str = "input") -> None:
    """Walk parsed data once (iteratively) and raise :class:`CaseFormatError` at the first breach.

    Checks depth, element count, finite numbers, Unicode text and string length.
    """
    count = 0
    # (node, path link, depth): a link is (parent link, key) or None, so that no path is built
    # unless an error names it
    stack: list[tuple[Any, Any, int]] = [(data, None, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        node, link, depth = pop()
        count += 1
        if count > MAX_ELEMENTS:
            raise CaseFormatError(ErrorDetail(name, f"more than {MAX_ELEMENTS} values",
                                              f"at most {MAX_ELEMENTS} values in one document",
                                              "send one patient's case or one CDS request per call"))
        t = type(node)
        if t is str:  # the exact JSON types first, in one test each; anything else below as before
            if len(node) > MAX_STRING_CHARS:
                raise CaseFormatError(ErrorDetail(_field(name, _path(link)), f"{len(node)} characters",
                                                  f"text of at most {MAX_STRING_CHARS} characters",
                                                  "shorten the text"))
            if not node.isascii() and _bad_text(node):
                raise CaseFormatError(_surrogate(_field(name, _path(link)), node))
        elif t is dict or (t is not list and t is not float and t is not int and t is not bool
                           and isinstance(node, dict)):
            if depth >= MAX_DEPTH:
                raise CaseFormatError(_too_deep(name))
            for k, v in node.items():
                if isinstance(k, str) and not k.isascii() and _bad_text(k):
                    raise CaseFormatError(_surrogate(_field(name, _path(link)), k))
                push((v, (link, k), depth + 1))
        elif t is list or (t is not float and t is not int and t is not bool and isinstance(node, list)):
            if depth >= MAX_DEPTH:
                raise CaseFormatError(_too_deep(name))
            deeper = depth + 1
            for i, v in enumerate(node):
                push((v, (link, i), deeper))
        elif t is float:
            if not math.isfinite(node):
                raise CaseFormatError(_not_finite(_field(name, _path(link)), node))
        elif t is int:
            if abs(node) > _MAX_DOUBLE:
                raise CaseFormatError(_not_finite(_field(name, _path(link)), node))
        elif t is bool or node is None:
            continue
        elif isinstance(node, str):
            if len(node) > MAX_STRING_CHARS:
                raise CaseFormatError(ErrorDetail(_field(name, _path(link)), f"{len(node)} characters",
                                                  f"text of at most {MAX_STRING_CHARS} characters",
                                                  "shorten the text"))
            if _bad_text(node):
                raise CaseFormatError(_surrogate(_field(name, _path(link)), node))
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise CaseFormatError(_not_finite(_field(name, _path(link)), node))
        elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > _MAX_DOUBLE:
            raise CaseFormatError(_not_finite(_field(name, _path(link)), node))


def _path(link: Any) -> list[Any]:
    """The keys from the document to a node, from its link (see :func:`check_tree`)."""
    parts: list[Any] = []
    while link is not None:
        link, key = link
        parts.append(key)
    parts.reverse()
    return parts


def _surrogate(field: str, s: str) -> ErrorDetail:
    return ErrorDetail(field, _shown(s), "Unicode text (no lone surrogate code points such as \\ud800)",
                       "send the text as valid UTF-8; an unpaired \\ud800-\\udfff escape is not a character")


class _Typed(float):
    """A non-finite number from JSON text, with the text as it was written (``1e400``, ``NaN``), so
    that the error quotes what was sent. Only :func:`check_tree` sees one: it refuses every
    non-finite number, so none is ever returned."""

    typed: str


def _typed(x: float, text: str) -> float:
    t = _Typed(x)
    t.typed = text
    return t


def _float(text: str) -> float:
    x = float(text)
    return x if math.isfinite(x) else _typed(x, text)


def _constant(text: str) -> float:  # NaN, Infinity, -Infinity: not JSON, but Python's parser reads them
    return _typed(float(text), text)


_NOT_MEASURED = "leave the field out (or null) if it was not measured"


def _not_finite(field: str, x: float | int) -> ErrorDetail:
    """The error for a number that is not a finite double, quoting it as written where that is known."""
    if isinstance(x, int):  # beyond a double: quote its start and its length, not the whole number
        if x.bit_length() < 14_000:  # str() refuses ints of more than 4,300 digits (sys.get_int_max_str_digits)
            text = str(x)
            shown = f"{text[:12]}… (a number of {len(text.lstrip('-'))} digits)"
        else:
            shown = f"a number of about {int(x.bit_length() * math.log10(2)) + 1} digits"
        return ErrorDetail(field, shown, "a finite number",
                           f"the number is far too large to be a measurement: check it; {_NOT_MEASURED}")
    typed = getattr(x, "typed", None)
    if math.isnan(x):
        return ErrorDetail(field, typed or "NaN", "a finite number", f"send the measured value; {_NOT_MEASURED}")
    if typed is not None and typed.lstrip("-") != "Infinity":  # written as a number: it overflowed
        return ErrorDetail(field, typed[:40], "a finite number",
                           f"the number is far too large to be a measurement: check it; {_NOT_MEASURED}")
    return ErrorDetail(field, typed or ("-" if x < 0 else "") + "Infinity (or a number beyond ±1.8e308)",
                       "a finite number", f"send the measured value; {_NOT_MEASURED}")


class UnitBudget:
    """Distinct unit strings seen in one request, bounded in number and length."""

    def __init__(self, limit: int = MAX_DISTINCT_UNITS, max_chars: int = MAX_UNIT_CHARS):
        self.limit, self.max_chars = limit, max_chars
        self.seen: set[str] = set()

    def check(self, unit: str, field: str) -> ErrorDetail | None:
        """None if ``unit`` may be parsed; else the problem to report (the unit is then not parsed)."""
        if unit in self.seen:
            return None
        if len(unit) > self.max_chars:
            return ErrorDetail(field, unit[:40] + "…", f"a unit of at most {self.max_chars} characters (UCUM)",
                               "send the UCUM code of the unit, e.g. 10*9/L")
        if len(self.seen) >= self.limit:
            return ErrorDetail(field, unit, f"at most {self.limit} different units in one request",
                               "send one patient's results with the units the laboratory reported")
        self.seen.add(unit)
        return None

    def require(self, unit: str, field: str) -> None:
        problem = self.check(unit, field)
        if problem is not None:
            raise UnitError(problem)
