"""Words and layout for people: the assessment and the plan as a clinician reads them.

Shared by the web page, the CDS cards and the CLI. Everything here *formats* values the
assessment or the plan already hold; nothing decides or recomputes a finding. Labels come from one place: ``labels.toml`` beside this
module for the UI's own words, and the knowledge data (labs.toml, symptoms.toml, units.toml,
rules/differential.toml, parameter keys) for the clinical vocabulary. Code names quoted in
rule texts (``findings.known_diagnosis``, ``labs.creatinine.reference_high``) are replaced by
labels at render time by :func:`clinical_text`.
"""

from __future__ import annotations

import functools
import re
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leukos.domain.assessment import jsonable
from leukos.knowledge import KnowledgeBase

__all__ = ["Labels", "labels", "clinical_text", "unit_text", "fmt_num", "Node", "working_tree",
           "dose_for_weight", "order_sheet", "OrderSheet", "band_text", "cite_short", "citation_text",
           "working_rows", "Row", "organ_grades_text"]

_LABELS_FILE = Path(__file__).with_name("labels.toml")

# Code-name pieces that are abbreviations or units when a name is spelt out word by word.
_ABBREV = {"wbc": "WBC", "ica": "ionised calcium", "tbv": "TBV", "ecv": "ECV", "ac": "AC", "asfa": "ASFA",
           "ldh": "LDH", "inr": "INR", "apl": "APL", "rbc": "RBC", "pt": "PT", "uln": "ULN", "hb": "Hb",
           "acd": "ACD", "cd34": "CD34", "cd3": "CD3", "e0": "E0", "ce1": "CE1", "ce2": "CE2", "tls": "TLS",
           "dic": "DIC", "isth": "ISTH", "g": "G", "csf": "CSF", "pb": "blood", "cml": "CML", "cll": "CLL",
           "aml": "AML", "all": "ALL", "cnl": "CNL", "emh": "EMH", "plr": "PLR", "lap": "LAP", "vd": "Vd",
           "pct": "%", "pao2": "PaO2", "spo2": "SpO2", "iv": "IV", "mpn": "MPN"}
_SUFFIX_UNITS = (("_10e9_per_l", " (×10⁹/L)"), ("_mmol_per_l", " (mmol/L)"), ("_mg_per_kg_per_min", " (mg/kg/min)"),
                 ("_ml_per_min", " (mL/min)"), ("_mmol_per_h", " (mmol/h)"), ("_g_per_dl", " (g/dL)"),
                 ("_l_per_kg", " (L/kg)"), ("_ml", " (mL)"), ("_min", " (min)"), ("_pct", " (%)"), ("_kg", " (kg)"),
                 ("_cm", " (cm)"), ("_h", " (h)"), ("_l", " (L)"), ("_s", " (s)"))
# Plain-text spellings of units inside rule texts -> how people write them, each with a piece of
# text every match contains (the pattern is not run over a text without it: same result).
_TEXT_UNITS = (("10^9/L", re.compile(r"\s?x\s?10\^9/L"), " ×10⁹/L"), ("10^3/uL", re.compile(r"\s?x\s?10\^3/uL"), " ×10³/µL"),
               ("10*9/L", re.compile(r"10\*9/L"), "×10⁹/L"), ("10*3/uL", re.compile(r"10\*3/uL"), "×10³/µL"),
               ("mm[Hg]", re.compile(r"mm\[Hg\]"), "mmHg"), ("{INR}", re.compile(r"\{INR\}"), ""),
               ("umol/L", re.compile(r"\bumol/L"), "µmol/L"), ("ug/mL", re.compile(r"\bug/mL"), "µg/mL"),
               (">=", re.compile(r">="), "≥"), ("<=", re.compile(r"<="), "≤"), ("->", re.compile(r"\s->\s"), " → "))
_CODE = re.compile(r"`?(?<![\w/.:#@-])([a-z][a-z0-9]*(?:[._][a-z0-9]+)+)(?![\w/@-])`?")
_UPPER_CODE = re.compile(r"\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\b")
_PLAIN_ABBREV_WORDS = ("ldh", "inr", "wbc", "tls", "dic")
_PLAIN_ABBREV = re.compile(rf"\b(?:{'|'.join(_PLAIN_ABBREV_WORDS)})\b")
_CITE_BRACKET = re.compile(r"\[([a-z][a-z0-9_]*(?:,\s*[a-z][a-z0-9_]*)*)\]")
_CLI_USE = re.compile(r"\b([Uu])se `leukos [a-z]+` for ([^.;]+)")
_CLI_HINT = re.compile(r"(?:[:;,]\s*)?(?:plan it with|run)\s+`leukos [a-z]+`", re.I)


@dataclass(frozen=True)
class Labels:
    """The label table (labels.toml) joined with the knowledge base's own vocabulary."""

    words: Mapping[str, str]
    sections: Mapping[str, Mapping[str, str]]
    kb: KnowledgeBase
    # Memos of pure functions of (this kb, argument): rule texts, code names and citation keys repeat
    # from call to call. Each is cleared when it reaches _TEXT_CACHE_MAX entries. They outlive the call,
    # so they hold knowledge only: a text with a patient's value or words is never kept (_knowledge_words_only).
    text_cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False)  # clinical_text
    word_cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False)  # word
    cite_cache: dict[Any, str] = field(default_factory=dict, compare=False, repr=False)  # cite_short
    # Other presenters' values that depend only on this kb (e.g. service.views' citation views), by name.
    derived: dict[str, dict[Any, Any]] = field(default_factory=dict, compare=False, repr=False)

    def text(self, value: Any) -> str:
        """:func:`clinical_text` of ``value`` with these labels."""
        return _words(value, self)

    def vocabulary(self) -> frozenset[str]:
        """Every number and word written in the knowledge base, the label table and the text literals of
        the rules' and presenters' own code (see :func:`_words`)."""
        found = self.derived.get("vocabulary")
        if found is None:
            collected: set[str] = set(_code_tokens())
            _tokens_in(self.kb, collected)
            _tokens_in(self.words, collected)
            _tokens_in(self.sections, collected)
            found = self.derived["vocabulary"] = {"all": frozenset(collected)}
        return found["all"]

    def section(self, name: str) -> Mapping[str, str]:
        return self.sections.get(name, {})

    def diagnosis(self, code: str | None) -> str:
        if not code:
            return "none known"
        d = self.kb.tables.get("differential", {}).get("diagnoses", {}).get(code)
        if d and d.get("label"):
            return d["label"]
        return self.section("diagnosis").get(code) or code.replace("_", " ")

    def word(self, name: str) -> str:
        """The label of a code name; unknown names are spelt out, never shown raw."""
        return _remembered(self.word_cache, name, self._word)

    def _word(self, name: str) -> str:
        if name in self.words:
            return self.words[name]
        kb = self.kb
        if name in kb.analytes:
            return kb.analytes[name].label
        if name in kb.symptoms:
            return kb.symptoms[name].label
        diff = kb.tables.get("differential", {})
        for table in ("features", "tests"):
            rec = diff.get(table, {}).get(name)
            if rec:
                return rec.get("label") or rec.get("short") or rec.get("text") or _spell(name)
        parts = name.split(".")
        if len(parts) > 1:
            if parts[0] == "labs" and parts[1] in kb.analytes:
                rest = " ".join(self.word(p) for p in parts[2:])
                return kb.analytes[parts[1]].label + (f" ({rest})" if rest else "")
            if parts[0] == "symptoms" and parts[1] in kb.symptoms:
                return kb.symptoms[parts[1]].label
            if name in kb.parameters:  # a knowledge parameter: its file and name, spelt out
                return f"{_spell(parts[-1])} ({_spell(parts[0])} setting)"
            head = ".".join(parts[:-1])
            if head in self.words or head in ("findings", "labs", "patient"):
                return self.word(parts[-1]) if head in ("findings", "labs", "patient") else \
                    f"{self.words[head]}, {self.word(parts[-1])}"
            return " ".join(self.word(p) for p in parts if p not in ("findings", "labs", "patient"))
        return _spell(name)


def _spell(name: str) -> str:
    """``ica_baseline_default_mmol_per_l`` -> ``ionised calcium baseline default (mmol/L)``."""
    unit = ""
    for suffix, text in _SUFFIX_UNITS:
        if name.endswith(suffix) and len(name) > len(suffix):
            name, unit = name[: -len(suffix)], text
            break
    words = [_ABBREV.get(w, w) for w in re.split(r"[_.]", name) if w]
    return " ".join(words) + unit


@functools.lru_cache(maxsize=1)
def _label_file() -> dict[str, Any]:
    return tomllib.loads(_LABELS_FILE.read_text("utf-8"))


_BY_KB: dict[int, Labels] = {}


def labels(kb: KnowledgeBase) -> Labels:
    """The labels for this knowledge base (kept per knowledge base; each Labels holds its kb alive)."""
    lab = _BY_KB.get(id(kb))
    if lab is None or lab.kb is not kb:
        data = dict(_label_file())
        words = dict(data.pop("words"))
        lab = Labels(words=words, sections={k: dict(v) for k, v in data.items()}, kb=kb)
        if len(_BY_KB) > 16:
            _BY_KB.clear()
        _BY_KB[id(kb)] = lab
    return lab


def unit_text(kb: KnowledgeBase, ucum: str | None) -> str:
    """How a UCUM unit is written for people (units.toml [display]); unknown units as given."""
    if not ucum:
        return ""
    return kb.unit_display.get(ucum, ucum)


def fmt_num(v: Any) -> str:
    """A number as a clinician writes it: no float noise, no trailing zeros."""
    t = type(v)  # exact float and int first (nearly every call): same result as the general branches
    if t is float:
        return _fmt_float(v)
    if t is int:
        return str(v)
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _fmt_float(v)
    return str(v)


def urgency_key(a: Any) -> str:
    """The assessment's urgency as its badge says it (labels.toml [urgency]): "not_assessed", not
    "routine", when hyperleukocytosis could not be assessed (no or a censored white cell count) and
    nothing urgent was found: nothing found is not the same as nothing there."""
    if a.hyperleukocytosis.present is None and a.urgency == "routine":
        return "not_assessed"
    return a.urgency


def urgency_label(a: Any, kb: KnowledgeBase) -> str:
    key = urgency_key(a)
    return labels(kb).section("urgency").get(key, key)


def organ_grades_text(organ_grades: Mapping[str, int | None], kb: KnowledgeBase) -> str:
    """Leukostasis organ grades in words: "pulmonary 2, neurological not recorded, other 0" (an organ
    whose symptoms were not recorded is said so, never shown as a blank or a program value)."""
    lab = labels(kb)
    return ", ".join(f"{lab.word(organ)} {'not recorded' if g is None else g}" for organ, g in organ_grades.items())


def _fmt_float(v: float) -> str:
    if v != v:
        return "not available"
    if v in (_INF, -_INF):  # e.g. a refused 1e400, quoted back to the user: never int() of it
        return "infinite" if v > 0 else "minus infinite"
    i = int(v)
    if v == i and -1e6 < v < 1e6:
        return str(i)
    return f"{v:.4g}" if -1000 < v < 1000 else f"{v:.0f}"


_INF = float("inf")
_TEXT_CACHE_MAX = 8192  # rule texts repeat from call to call; a pure function of (kb, text)


def clinical_text(text: Any, kb: KnowledgeBase) -> str:
    """A text of the assessment with code names, CLI hints and unit spellings put into words."""
    return _words(text, labels(kb))


def _words(text: Any, lab: Labels) -> str:
    """:func:`clinical_text` with the labels of the knowledge base already at hand."""
    if type(text) is str:
        hit = lab.text_cache.get(text)
        if hit is not None:
            return hit
    if text is None:
        return "not recorded"
    if not isinstance(text, str):
        return fmt_num(text)
    if not _knowledge_words_only(text, lab):
        return _clinical_text(text, lab)  # holds a patient's value: worded afresh, never remembered
    return _remembered(lab.text_cache, text, lambda t: _clinical_text(t, lab))


_TOKEN = re.compile(r"[0-9]+(?:\.[0-9]+)?|[^\W\d_]+")  # a number, or a word (a run of letters)


def _knowledge_words_only(text: str, lab: Labels) -> bool:
    """Whether every number and every word of ``text`` is one leukos itself holds: in the knowledge
    base, the label table, or a text literal of the code that writes the cards (:func:`_code_tokens`).

    The memo of worded texts outlives the call, so it may hold knowledge only: a rule's text, a
    recommendation, a label. A text with a patient's value in it (a card's summary "WBC 258, blasts
    218 ×10⁹/L", a working line with the laboratory's own upper limit) has a number the knowledge
    does not hold; a patient's free text (an organism as entered) has a word it does not hold. Both
    are worded afresh on every call. A knowledge text with a number or word made from the knowledge
    (a threshold converted to another unit) is worded afresh too: a cost, not an error. A patient's
    text can be kept only when each of its numbers and words is the knowledge's own (WBC exactly 100).
    """
    return lab.vocabulary().issuperset(_TOKEN.findall(text))


_CODE_PACKAGES = ("leukos.domain", "leukos.rules", "leukos.present")
# The cards' titles and lines: read when the service has loaded them (never imported from here).
_CODE_MODULES = ("leukos.service.views", "leukos.service.cds.cards")


@functools.lru_cache(maxsize=1)
def _code_tokens() -> frozenset[str]:
    """The numbers and words of every text literal in the code that writes what the cards and pages
    say (:data:`_CODE_PACKAGES`, :data:`_CODE_MODULES`; some advice is still written in the rules'
    code, not in the knowledge data). Read from each module's compiled code as its loader gives it,
    never from a running module's state, so no value that passed through the program is among them."""
    import importlib
    import importlib.util
    import pkgutil
    import types

    found: set[str] = set()

    def walk(code: types.CodeType) -> None:
        for c in code.co_consts:
            if type(c) is str:
                found.update(_TOKEN.findall(c))
            elif isinstance(c, types.CodeType):
                walk(c)
            elif type(c) in (tuple, frozenset):
                found.update(t for x in c if type(x) is str for t in _TOKEN.findall(x))

    modules: list[str] = [m for m in _CODE_MODULES if m in sys.modules]
    for name in _CODE_PACKAGES:
        package = importlib.import_module(name)
        names = [name, *(info.name for info in pkgutil.walk_packages(package.__path__, name + "."))]
        modules += names
    for module in modules:  # compiled, not run: finding a module imports only its packages
        spec = importlib.util.find_spec(module)
        code = spec.loader.get_code(module) if spec is not None and spec.loader is not None else None
        if code is not None:
            walk(code)
    return frozenset(found)


def _tokens_in(value: Any, found: set[str], depth: int = 0) -> None:
    """The numbers and words of ``value`` (texts, numbers, keys, nested containers and records) added to
    ``found``; numbers as written in texts and as :func:`fmt_num` writes them."""
    if depth > 40:
        return
    t = type(value)
    if t is str:
        found.update(_TOKEN.findall(value))
    elif t is bool or value is None:
        return
    elif t is int or t is float:
        found.add(fmt_num(value))
        found.update(_TOKEN.findall(repr(value)))
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _tokens_in(k, found, depth + 1)
            _tokens_in(v, found, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            _tokens_in(v, found, depth + 1)
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            if not name.startswith("_"):
                _tokens_in(getattr(value, name), found, depth + 1)


def _remembered(cache: dict[Any, str], key: Any, compute: Callable[[Any], str]) -> str:
    """``compute(key)``, remembered in ``cache`` (cleared when it reaches :data:`_TEXT_CACHE_MAX`)."""
    hit = cache.get(key)
    if hit is None:
        if len(cache) >= _TEXT_CACHE_MAX:
            cache.clear()
        hit = cache[key] = compute(key)
    return hit


def _has_any(s: str, pieces: tuple[str, ...]) -> bool:
    """Whether ``s`` holds one of ``pieces``: substring tests, cheaper than a pattern's search."""
    for piece in pieces:
        if piece in s:
            return True
    return False


# Every substitution of _clinical_text needs one of these characters in the text, or one of the pieces
# below (the plain abbreviations; the unit spellings with none of the characters): a text with neither
# is its own words.
_MARKS = "`[._^*{=><"
_UNMARKED = re.compile(f"[^{re.escape(_MARKS)}]*")
_UNMARKED_PIECES = _PLAIN_ABBREV_WORDS + tuple(p for p, _, _ in _TEXT_UNITS if not any(c in p for c in _MARKS))


_LOWER_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_LOWER_ALNUM_CHARS = frozenset(_LOWER_ALNUM)
_LOWER_CHARS = frozenset(_LOWER_ALNUM[:26])


def _may_hold_code(s: str) -> bool:
    """Whether ``_CODE`` may match in ``s``: a code name starts with a lower-case letter after no
    letter or digit, runs over letters and digits to its first "." or "_", and has a letter or digit
    after it. A number's decimal point ("219.891 ×10⁹/L", a patient's value) is none: its run of
    digits starts with a digit. Each "." and "_" is looked at, not every character."""
    for sep in "._":
        i = s.find(sep, 1)
        while i != -1:
            if s[i + 1:i + 2] in _LOWER_ALNUM_CHARS:
                head = s[:i]
                run = len(head) - len(head.rstrip(_LOWER_ALNUM))  # the letters and digits just before
                if run and head[-run] in _LOWER_CHARS:
                    return True
            i = s.find(sep, i + 1)
    return False


def _upper(m: re.Match) -> str:
    return m.group(0).upper()


def _clinical_text(text: str, lab: Labels) -> str:
    """The substitutions in order. A pattern is run only over a text holding the character or piece
    every match of it contains (a backtick, "[", "." or "_", a unit's spelling): the same result,
    without running a dozen patterns over texts that have nothing to change, such as a laboratory
    result's source or a patient's value (each is worded afresh on every call). A text with none of
    those characters and pieces at all is returned at once (one scan and a few substring tests)."""
    if _UNMARKED.fullmatch(text) is not None and not _has_any(text, _UNMARKED_PIECES):
        return text
    s = text
    if "`" in s:
        s = _CLI_USE.sub(lambda m: f"{'T' if m.group(1) == 'U' else 't'}he leukapheresis plan below gives {m.group(2)}", s)
        s = _CLI_HINT.sub(" (see the leukapheresis plan below)", s)
    if "[" in s:
        s = _CITE_BRACKET.sub(lambda m: _cite_bracket(m, lab.kb), s)
    if ("." in s or "_" in s) and _may_hold_code(s):
        s = _CODE.sub(lambda m: lab.word(m.group(1)) if ("_" in m.group(1) or m.group(1).split(".")[0]
                                                         in ("labs", "findings", "patient", "symptoms"))
                      else m.group(0), s)
    if _has_any(s, _PLAIN_ABBREV_WORDS):
        s = _PLAIN_ABBREV.sub(_upper, s)
    if "_" in s:
        s = _UPPER_CODE.sub(lambda m: lab.diagnosis(m.group(1)), s)
    for piece, pattern, repl in _TEXT_UNITS:
        if piece in s:
            s = pattern.sub(repl, s)
    return s.replace("`", "")


_INTERNAL = re.compile(r"shared/|reference notes|\.toml|\.md\b|apheresis\.md|clinical\.md|leukos knowledge base", re.I)


def _first_author(c) -> str:
    a = (c.authors or "").strip()
    if not a or a.startswith("("):
        return c.title.split(":")[0][:60]
    return a.split(",")[0].replace(" et al.", "").strip()


def _internal(c) -> bool:
    return c.key.startswith("leukos_") or bool(_INTERNAL.search(c.venue or ""))


def cite_short(kb: KnowledgeBase, keys: Any) -> str:
    """Author-year labels of citation keys (never internal file names)."""
    return _cite_with(labels(kb), keys)


def _cite_with(lab: Labels, keys: Any) -> str:
    """:func:`cite_short` with the labels of the knowledge base already at hand. Remembered only when
    every key is a citation key (knowledge): a source that is not one, such as a laboratory result's
    ``fhir:Observation/<id>``, is the patient's own and is worded afresh (a memo of those would hold
    patient data and miss for every new patient)."""
    citations = lab.kb.citations
    if type(keys) is str:  # one key (a source): the usual case
        if keys not in citations:  # e.g. a laboratory result's own source (never remembered)
            return _clinical_text(keys, lab)  # what _cite_short says of one key it does not know
        hit = lab.cite_cache.get((keys,))
        if hit is not None:
            return hit
        keys = (keys,)
    elif isinstance(keys, str):
        keys = (keys,)
    memo_key = tuple(keys) if isinstance(keys, (list, tuple)) and all(type(k) is str for k in keys) else None
    if memo_key is None or not all(k in citations for k in memo_key):
        return _cite_short(lab.kb, keys)
    hit = lab.cite_cache.get(memo_key)
    if hit is not None:
        return hit
    return _remembered(lab.cite_cache, memo_key, lambda k: _cite_short(lab.kb, k))


def _cite_short(kb: KnowledgeBase, keys: Any) -> str:
    out: list[str] = []
    for k in dict.fromkeys(keys or ()):
        c = kb.citations.get(k)
        if c is None:  # not a citation key: its words (a string afresh, unremembered: it may be the patient's)
            text = _clinical_text(k, labels(kb)) if type(k) is str else clinical_text(k, kb)
        elif _internal(c):
            text = "leukos derivation or software choice"
        else:
            text = f"{_first_author(c)} {c.year}"
        if text not in out:
            out.append(text)
    return "; ".join(out)


def _cite_bracket(m: re.Match, kb: KnowledgeBase) -> str:
    keys = [k.strip() for k in m.group(1).split(",")]
    if all(k in kb.citations for k in keys):
        return f"({cite_short(kb, keys)})"
    return m.group(0)


def citation_text(kb: KnowledgeBase, key: str) -> str:
    """A full reference for people: authors, title, venue (a venue naming internal notes is left out)."""
    c = kb.citations.get(key)
    if c is None:
        return f"{clinical_text(key, kb)} (not in the citation registry)"
    if _internal(c):
        return f"{c.title} ({c.year}): a leukos software choice or derivation, documented in its knowledge data."
    authors = c.authors.rstrip(".")
    venue = (c.venue or "").rstrip(".")
    year = "" if str(c.year) in venue else f" {c.year}."
    return f"{authors}. {c.title_sentence} {venue}.{year}"


# --------------------------------------------------------------------------------------------
# "Why?": the working of a finding as labelled rows

@dataclass(frozen=True)
class Node:
    label: str
    text: str = ""
    children: tuple[Node, ...] = field(default_factory=tuple)


_QUANTITY_KEYS = frozenset({"unit", "status", "given", "source"})


def _is_quantity(d: Mapping[str, Any]) -> bool:
    if "value" not in d:
        return False
    t = type(d["value"])
    if t is dict:
        return False
    # a scalar or list value skips the (slow) Mapping ABC check: same answer; any other value is
    # judged by its JSON form (a dataclass is a mapping there)
    if t not in _SCALAR_TYPES and t is not list and isinstance(jsonable(d["value"]), Mapping):
        return False
    return not _QUANTITY_KEYS.isdisjoint(d.keys())


# A quantity of the knowledge base (a threshold or a setting: value, unit, V/P/U status, citations, no
# patient value) reads the same for every patient: its text is remembered per kb, keyed by the exact
# types and values of those elements (1, 1.0 and True read differently).
_SETTING_KEYS = frozenset({"value", "unit", "status", "source"})


def _setting_key(d: Mapping[str, Any]) -> tuple | None:
    if not _SETTING_KEYS.issuperset(d):
        return None
    absent = _SETTING_KEYS  # a marker no JSON value equals
    value, unit, status, source = (d.get("value", absent), d.get("unit", absent), d.get("status", absent),
                                   d.get("source", absent))
    ts = type(source)
    if ts is list or ts is tuple:
        if not _STR.issuperset(map(type, source)):
            return None
        source = tuple(source)
    elif ts not in _KEY_TYPES:
        return None
    tv, tu, tst = type(value), type(unit), type(status)
    if not _KEY_TYPES.issuperset((tv, tu, tst)):
        return None  # e.g. a list value: worded each time, not remembered
    return (tv, value, tu, unit, tst, status, ts, source)


def _quantity_text(d: Mapping[str, Any], kb: KnowledgeBase, lab: Labels | None = None) -> str:
    lab = lab or labels(kb)
    key = _setting_key(d)
    if key is None:
        return _quantity_words(d, kb, lab)
    memo = lab.derived.setdefault("settings", {})
    hit = memo.get(key)
    if hit is None:
        if len(memo) >= _TEXT_CACHE_MAX:
            memo.clear()
        hit = memo[key] = _quantity_words(d, kb, lab)
    return hit


def _quantity_words(d: Mapping[str, Any], kb: KnowledgeBase, lab: Labels) -> str:
    if type(d) is dict and _RESULT_KEYS.issuperset(d):
        line = _result_words(d, kb, lab)
        if line is not None:
            return line
    if not _SCALAR_TYPES.issuperset(map(type, d.values())):
        d = jsonable(d)  # members that are not plain scalars read as their JSON form
    v = d["value"]
    ucum = d.get("unit")
    unit = kb.unit_display.get(ucum, ucum) if ucum else ""  # unit_text
    if type(v) is float:  # a measured value (the usual case): fmt_num without the call
        text = _fmt_float(v)
    elif isinstance(v, str):
        methods = lab.section("tbv_method")
        text = methods[v] if v in methods else _words(v, lab)
    else:
        text = fmt_num(v)
    out = f"{text} {unit}".strip()
    given = d.get("given")
    if given:
        entered = _entered_words(str(given), lab)  # the patient's: worded afresh, not remembered
        if entered.replace(" ", "") != out.replace(" ", ""):
            out += f" (entered as {entered})"
    lo, hi = d.get("reference_low"), d.get("reference_high")
    if type(lo) is float and type(hi) is float:  # the usual laboratory range: fmt_num without the calls
        out += f"; laboratory range {_fmt_float(lo)}–{_fmt_float(hi)}"
    elif lo is not None and hi is not None:
        out += f"; laboratory range {fmt_num(lo)}–{fmt_num(hi)}"
    elif hi is not None:
        out += f"; laboratory upper limit {fmt_num(hi)}"
    elif lo is not None:
        out += f"; laboratory lower limit {fmt_num(lo)}"
    status = d.get("status")
    if status:
        out += f" · status {status}: {lab.section('status').get(status, status)}"
    source = d.get("source")
    if source:
        out += f" · source: {_cite_with(lab, source)}"
    return out


# The members of a laboratory result as the working holds it (LabValue.to_working); comparator and
# time are not part of its line.
_RESULT_KEYS = frozenset({"value", "unit", "given", "comparator", "time", "reference_low", "reference_high", "source"})


def _result_words(d: dict[str, Any], kb: KnowledgeBase, lab: Labels) -> str | None:
    """A laboratory result's line (value, entered as, laboratory range, source) as the general steps of
    :func:`_quantity_words` word it, in one expression: the line of ~15 results a call, each worded
    afresh (it is the patient's). ``None`` unless the members it reads are plain: a float value, text
    unit and entry, float limits, a text source (no status: a result has none); the general steps
    then word it."""
    v, ucum, given = d["value"], d.get("unit"), d.get("given")
    lo, hi, source = d.get("reference_low"), d.get("reference_high"), d.get("source")
    if (type(v) is not float or type(ucum) is not str or type(given) is not str
            or not (lo is None or type(lo) is float) or not (hi is None or type(hi) is float)
            or not (source is None or type(source) is str)):
        return None
    out = f"{_fmt_float(v)} {kb.unit_display.get(ucum, ucum) if ucum else ''}".strip()
    entered = _entered_words(given, lab) if given else None
    if entered is not None and entered.replace(" ", "") == out.replace(" ", ""):
        entered = None  # the value as entered reads as the value: said once
    if hi is None:
        limits = "" if lo is None else f"; laboratory lower limit {_fmt_float(lo)}"
    else:
        limits = (f"; laboratory upper limit {_fmt_float(hi)}" if lo is None
                  else f"; laboratory range {_fmt_float(lo)}–{_fmt_float(hi)}")
    if not source:
        cited = ""
    else:  # a result's own source (not a citation key: the usual case) is worded afresh, as _cite_with does
        cited = f" · source: {_clinical_text(source, lab) if source not in kb.citations else _cite_with(lab, source)}"
    return f"{out}{'' if entered is None else f' (entered as {entered})'}{limits}{cited}"


# A value as entered is "<number> <unit>" (leukos.interop writes f"{value:g} {unit}"). No pattern of
# _clinical_text can match into such a number (digits, one point, a leading minus: no letter and no
# piece of a pattern) or take away the space after it, so its words are the number followed by the
# words of " <unit>": those are worded once per knowledge base, for every unit the knowledge names.
_ENTERED = re.compile(r"(-?[0-9]+(?:\.[0-9]+)?)( .+)", re.S)


def _entered_words(given: str, lab: Labels) -> str:
    """``_clinical_text(given, lab)``, the unit's words looked up rather than worked out."""
    m = _ENTERED.fullmatch(given)
    if m is not None:
        unit = _entered_units(lab).get(m.group(2))
        if unit is not None:
            return m.group(1) + unit
    return _clinical_text(given, lab)


def _entered_units(lab: Labels) -> dict[str, str]:
    """" <unit>" -> its words after a number, for the units of the knowledge base (a pure function of it)."""
    table = lab.derived.get("entered_units")
    if table is None:
        kb = lab.kb
        units = {*kb.unit_display, *kb.unit_aliases, *kb.unit_aliases.values(),
                 *(u for offered in kb.unit_offers.values() for u in offered)}
        table = lab.derived["entered_units"] = {f" {u}": _clinical_text(f"0 {u}", lab)[1:] for u in units}
    return table


Row = tuple[int, str, str]  # (depth, label, text): one row of a working; text "" when members follow


def working_rows(obj: Any, kb: KnowledgeBase) -> list[Row]:
    """The rows under ``obj`` in reading order, each with its depth (0 for ``obj``'s own members):
    the one layout of a working. The page nests them (:func:`working_tree`); the CDS cards indent
    them as Markdown. ``obj`` may be the assessment's own working: any value that is not a plain
    dict, list or scalar reads as its JSON form (:func:`leukos.domain.assessment.jsonable`), so
    the rows are those of the working's JSON, without copying it."""
    rows: list[Row] = []
    _text_or_members(obj, labels(kb), 0, rows)
    return rows


def working_tree(obj: Any, kb: KnowledgeBase, label: str = "") -> Node:
    """A nested, labelled view of a ``working`` mapping (never JSON): :func:`working_rows` nested."""
    rows: list[Row] = []
    text = _text_or_members(obj, labels(kb), 0, rows)
    return Node(label, text, _nest(rows, 0, 0)[0])


def _nest(rows: list[Row], i: int, depth: int) -> tuple[tuple[Node, ...], int]:
    """The nodes of the rows from ``i`` on at ``depth`` (each with its deeper rows), and the next index."""
    kids = []
    while i < len(rows) and rows[i][0] == depth:
        _, label, text = rows[i]
        children, i = _nest(rows, i + 1, depth + 1)
        kids.append(Node(label, text, children))
    return tuple(kids), i


_SOURCE_KEYS = ("source", "citations")
_SCALARS = (str, int, float, bool, type(None))
_SCALAR_TYPES = frozenset(_SCALARS)
_STR = frozenset({str})
_KEY_TYPES = _SCALAR_TYPES | {frozenset}  # a setting key's elements: scalars, or absent (the marker)


# The diagnosis a piece of advice followed (leukos.rules.management.WorkingDiagnosis in the working):
# one line in words, not its four members (whose "source" is no citation).
_FOLLOWED_KEYS = frozenset({"code", "source", "likelihood", "advice_group"})


def _followed_diagnosis(d: Mapping[str, Any], lab: Labels) -> str:
    """E.g. "Acute myeloid leukaemia (stated in the case); advice for acute leukaemia"."""
    code, source, likelihood, group = d["code"], d["source"], d["likelihood"], d["advice_group"]
    if not code:
        return "none known"
    basis = lab.section("diagnosis_source").get(source) if type(source) is str else None
    said = [basis or ("source " + _words(source, lab) if source else "source not recorded")]
    if likelihood and source != "known":
        said.append(f"likelihood {_words(likelihood, lab)}")
    out = f"{lab.diagnosis(code)} ({', '.join(said)})"
    return f"{out}; advice for {lab.word(group)}" if group else out


# One criterion's points in a differential's working ({"feature", "weight", "status"}): one line.
_POINT_KEYS = frozenset({"feature", "weight", "status"})


def _point_words(d: Mapping[str, Any], lab: Labels) -> str:
    """E.g. "Auer rods: 2 points · status U: unverified"."""
    feature, weight, status = d["feature"], d["weight"], d["status"]
    name = _words(lab.word(feature) if type(feature) is str else feature, lab)
    points = f"{fmt_num(weight)} point{'' if weight in (1, -1) else 's'}"
    if type(status) is str and status in lab.section("status"):
        return f"{name}: {points} · status {status}: {lab.section('status')[status]}"
    return f"{name}: {points}" + (f" · status {_words(status, lab)}" if status else "")


def _text_or_members(obj: Any, lab: Labels, depth: int, rows: list[Row]) -> str:
    """The text of ``obj``'s row; for a mapping or list with members, "" once the rows of its members
    (at ``depth``, each followed by its own members) are appended to ``rows``."""
    t = type(obj)
    if t in _SCALARS:  # not a container: the common leaf, without the (slow) Mapping ABC check
        return _words(obj, lab)
    if t is dict or (t is not list and isinstance(obj, Mapping)):  # plain dicts and lists skip the ABC check
        if "value" in obj and _is_quantity(obj):
            return _quantity_text(obj, lab.kb, lab)
        if not obj:
            return "none"
        if obj.keys() == _FOLLOWED_KEYS:
            return _followed_diagnosis(obj, lab)
        if obj.keys() == _POINT_KEYS:
            return _point_words(obj, lab)
        words, texts = lab.word_cache, lab.text_cache
        for k, v in obj.items():
            tv = type(v)
            if k in _SOURCE_KEYS and (tv is str or tv is list or tv is tuple or isinstance(v, (list, tuple, str))):
                rows.append((depth, "sources", _cite_with(lab, v if tv is str or _STR.issuperset(map(type, v))
                                                          else jsonable(v))))
                continue
            name = k if type(k) is str else str(k)
            label = words.get(name) or lab.word(name)
            # The usual members first, as _text_or_members(v, ...) would word them, without the call:
            # a text (remembered), a number, another scalar, a quantity.
            if tv is str:
                rows.append((depth, label, texts.get(v) or _words(v, lab)))
            elif tv is float:
                rows.append((depth, label, _fmt_float(v)))
            elif v is None:
                rows.append((depth, label, "not recorded"))  # as _words(None): missing, never assumed
            elif tv in _SCALARS:
                rows.append((depth, label, _words(v, lab)))
            elif tv is dict and "value" in v and _is_quantity(v):  # a measured value ("given") is no setting
                rows.append((depth, label, _quantity_words(v, lab.kb, lab) if "given" in v
                             else _quantity_text(v, lab.kb, lab)))
            else:
                at = len(rows)
                rows.append((depth, label, ""))  # its row comes before its members' rows
                text = _text_or_members(v, lab, depth + 1, rows)
                if text:
                    rows[at] = (depth, label, text)
        return ""
    if t is list or t is tuple:
        if not obj:
            return "none"
        if not _SCALAR_TYPES.issuperset(map(type, obj)):
            obj = jsonable(obj)  # members that are not plain scalars read as their JSON form
            if any(isinstance(x, (Mapping, list, tuple)) for x in obj):
                for i, x in enumerate(obj, 1):
                    at = len(rows)
                    rows.append((depth, str(i), ""))
                    text = _text_or_members(x, lab, depth + 1, rows)
                    if text:
                        rows[at] = (depth, str(i), text)
                return ""
        return "; ".join([_words(x, lab) for x in obj])
    as_json = jsonable(obj)  # a dataclass, enum, date, other sequence...: as its JSON form reads
    if as_json is not obj:
        return _text_or_members(as_json, lab, depth, rows)
    return _words(obj, lab)


# --------------------------------------------------------------------------------------------
# Doses worked out for the patient's weight

_PER_KG = re.compile(r"(\d+(?:[.,]\d+)?)(?:\s*[-–]\s*(\d+(?:[.,]\d+)?))?\s*mg/kg(/day|/d)?")


def dose_for_weight(text: str, weight_kg: float | None) -> str | None:
    """The mg/kg doses a recommendation states, multiplied out for the weight (None if none)."""
    if not weight_kg or not text:
        return None
    out = []
    for m in _PER_KG.finditer(text):
        lo = float(m.group(1).replace(",", "."))
        hi = float(m.group(2).replace(",", ".")) if m.group(2) else None
        per = m.group(3) or ""

        def mg(x: float) -> str:
            total = x * weight_kg
            return f"{total / 1000:.3g} g" if total >= 1000 else f"{total:.3g} mg"

        dose = f"{mg(lo)}–{mg(hi)}" if hi is not None else mg(lo)
        out.append(f"{m.group(0)} × {fmt_num(weight_kg)} kg = {dose}{'/day' if per else ''}")
    return "; ".join(out) if out else None


# --------------------------------------------------------------------------------------------
# The leukapheresis order sheet (what `leukos plan` prints, as labelled rows)

def band_text(d: Mapping[str, Any] | None, unit: str = "") -> str:
    if not d:
        return "not available"
    u = f" {unit}" if unit else ""
    if "p05" in d and "p95" in d and d["p05"] == d["p95"] == d.get("median"):
        return f"{fmt_num(d['median'])}{u}"
    if "p05" in d and "p95" in d:
        return f"{fmt_num(d['median'])}{u} (90 % band {fmt_num(d['p05'])}–{fmt_num(d['p95'])}{u})"
    if "p05" in d:
        return f"{fmt_num(d['median'])}{u} (5th percentile {fmt_num(d['p05'])}{u})"
    return f"{fmt_num(d['median'])}{u}"


def _hm(minutes: float) -> str:
    m = round(minutes)
    return f"{m} min ({m // 60} h {m % 60:02d} min)"


@dataclass(frozen=True)
class OrderSheet:
    reference_only: bool
    status: str
    rows: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]
    calcium: tuple[dict[str, Any], ...]
    checklist: tuple[dict[str, str], ...]
    warnings: tuple[str, ...]
    unverified: tuple[str, ...]
    references: str


def order_sheet(plan: Mapping[str, Any], kb: KnowledgeBase, *, indicated: bool | None) -> OrderSheet:
    """Rows of the order sheet from the plan's own values (``ProcedurePlan.to_dict()``). ``indicated``: the
    assessment's answer, ``None`` when it could not decide (the sheet is then for reference only, and says why)."""
    lab = labels(kb)
    L = lab.section("order_sheet")
    w = plan.get("working", {})
    fl = w.get("flows", {})
    tbv = w.get("tbv", {})
    pr = plan.get("predicted", {}) or {}
    rows: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []  # (label, what to do, the working)
    rows.append((L["device"], (fl.get("device_label") or lab.word(str(plan.get("device", ""))),), ()))
    method = lab.section("tbv_method").get(plan.get("tbv_method", ""), lab.word(str(plan.get("tbv_method", ""))))
    rows.append((L["tbv"], (f"{fmt_num(plan['tbv_l'])} L by the {method}",), (clinical_text(tbv.get("formula", ""), kb),)))
    rows.append((L["volume"], (f"{fmt_num(plan['volume_to_process_l'])} L whole blood = "
                               f"{fmt_num(plan['blood_volumes_processed'])} × TBV",), ()))
    rows.append((L["flows"], (f"inlet {fmt_num(plan['inlet_flow_ml_per_min'])} mL/min; whole blood "
                              f"{fmt_num(plan.get('whole_blood_flow_ml_per_min'))} mL/min",),
                 (clinical_text(fl.get("flows", ""), kb), clinical_text(fl.get("whole_blood_flow", ""), kb))))
    rows.append((L["anticoagulant"], (f"ACD-A {fmt_num(plan['acd_a_ml_per_min'])} mL/min; inlet:AC ratio "
                                      f"{fmt_num(plan['inlet_to_ac_ratio'])}:1",), ()))
    cit, lim = plan.get("citrate_mg_per_kg_per_min"), plan.get("citrate_limit_mg_per_kg_per_min")
    if cit is not None and lim is not None:
        where = "at or below" if cit <= lim else "ABOVE"
        rows.append((L["citrate"], (f"{cit:.2f} mg/kg/min: {where} the symptom-free limit of {lim:.2f} mg/kg/min",),
                     (clinical_text(fl.get("citrate_dose", ""), kb), clinical_text(fl.get("citrate_returned", ""), kb))))
    cp = plan.get("calcium_prophylaxis") or {}
    sel = next((o for o in cp.get("options", []) if o.get("mode") == cp.get("selected")), None)
    if sel:
        n = sel["nadir_ionized_calcium_mmol_per_l"]
        thr = kb.parameters.get("apheresis.ica_symptom_threshold_mmol_per_l")
        rows.append((L["calcium"], (f"planned: {sel['description']}",
                                    f"predicted lowest ionised calcium {fmt_num(n.get('median'))} mmol/L"
                                    + (f", 5th percentile {fmt_num(n['p05'])} mmol/L" if "p05" in n else "")
                                    + (f" (symptoms below {fmt_num(thr.value)} mmol/L)" if thr else ""),
                                    "other options in the calcium table below"), ()))
    rows.append((L["ecv"], (f"{fmt_num(plan.get('extracorporeal_volume_ml'))} mL = {fmt_num(plan.get('ecv_pct_tbv'))} % of "
                            f"TBV; red-cell prime: {'YES' if plan.get('prime_with_rbc') else 'no'}",),
                 (clinical_text(w.get("ecv", ""), kb),)))
    rows.append((L["duration"], (_hm(plan["duration_min"]),), (clinical_text(fl.get("duration", ""), kb),)))
    if "post_wbc_10e9_per_l" in pr:
        rows.append((L["post_wbc"], (f"{band_text(pr['post_wbc_10e9_per_l'], '×10⁹/L')}; fall "
                                     f"{band_text(pr.get('pct_reduction'), '%')}",
                                     f"'After' is the {str(pr.get('at', 'end of the procedure')).removeprefix('the ')}; the count "
                                     "rebounds from the marrow and tissues over the next hours."),
                     (("Simulated from these device settings (it also gives the sessions to the target); "
                       f"the estimate checked against published sessions is under “{L['outcome_model']}”.",)
                      if pr.get("wbc_outcome_model") else ())))
    others = []
    if pr.get("platelets_post_10e9_per_l"):
        others.append(f"platelets {band_text(pr['platelets_post_10e9_per_l'], '×10⁹/L')}")
    if pr.get("hemoglobin_post_g_per_dl"):
        others.append(f"haemoglobin {band_text(pr['hemoglobin_post_g_per_dl'], 'g/dL')}")
    if pr.get("nadir_ionized_calcium_mmol_per_l"):
        others.append(f"lowest ionised calcium {band_text(pr['nadir_ionized_calcium_mmol_per_l'], 'mmol/L')}")
    if others:
        rows.append((L["post_other"], tuple(others), ()))
    if pr.get("product_volume_ml"):
        rows.append((L["product"], (f"volume {band_text(pr['product_volume_ml'], 'mL')}; cells "
                                    f"{band_text(pr.get('product_cells_10e9'), '×10⁹')}",), ()))
    st = plan.get("sessions_to_target")
    if st and st.get("median") == 0:
        rows.append((L["sessions"], (f"none: the count is already at or below the target of "
                                     f"{fmt_num(st['target_wbc_10e9_per_l'])} ×10⁹/L",), ()))
    elif st:
        probs = ", ".join(f"{i}: {fmt_num(p)} %" for i, p in enumerate(st.get("probability_by_session", []), 1))
        rows.append((L["sessions"], (
            f"median {fmt_num(st['median'])} sessions (90 % band {fmt_num(st['p05'])} to {fmt_num(st['p95'])}), "
            f"one every {fmt_num(st.get('interval_h', 24))} h, to reach ≤ {fmt_num(st['target_wbc_10e9_per_l'])} ×10⁹/L",
            f"chance the target is reached by session {probs}"), (clinical_text(st.get("criterion", ""), kb),)))
    rows += _outcome_rows(plan, L, kb) + _collection_rows(plan.get("collection"), L, kb)
    access = [x for x in plan.get("warnings", []) if "access" in x.lower() or "catheter" in x.lower()]
    access += [f"{c['watch']}; {c['action']}" for c in plan.get("checklist", []) if "access" in c.get("risk", "").lower()]
    if access:
        rows.append((L["access"], tuple(clinical_text(x, kb) for x in access), ()))
    calcium = tuple({"selected": o.get("mode") == cp.get("selected"), "description": clinical_text(o["description"], kb),
                     "dose": f"{o['calcium_mmol_per_h']:.2f} mmol/h",
                     "nadir": band_text(o["nadir_ionized_calcium_mmol_per_l"], "mmol/L"),
                     "sources": cite_short(kb, o.get("citations", []))}
                    for o in cp.get("options", []))
    checklist = tuple({k: clinical_text(c.get(k, ""), kb) for k in ("risk", "watch", "threshold", "action")}
                      for c in plan.get("checklist", []))
    device, device_label = str(plan.get("device", "")), fl.get("device_label") or ""
    unverified = tuple(clinical_text(x.replace(f"device {device}:", f"{device_label}:") if device and device_label
                                     else x, kb) for x in plan.get("unverified", []))
    warnings = tuple(clinical_text(x, kb) for x in plan.get("warnings", []) if x not in access)
    reference_only = not indicated or not plan.get("recommended", True) or bool(plan.get("contraindications"))
    status = ("Indicated by the assessment: for review and signature by the responsible physician" if not reference_only
              else "FOR REFERENCE ONLY: the assessment could not decide whether leukapheresis is indicated "
                   "(see what could not be assessed)" if indicated is None
              else "FOR REFERENCE ONLY: leukapheresis is not indicated by the assessment")
    return OrderSheet(reference_only, status, tuple(rows), calcium, checklist, warnings, unverified,
                      cite_short(kb, plan.get("citations", [])))


def _outcome_rows(plan: Mapping[str, Any], L: Mapping[str, str], kb: KnowledgeBase) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """The validated outcome model's prediction and, after a recorded session, this patient's next one."""
    rows: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
    oc = (plan.get("predicted") or {}).get("wbc_outcome_model")
    if oc:
        rows.append((L["outcome_model"], (
            f"at {fmt_num(oc['blood_volumes'])} × TBV: fall {band_text(oc['pct_fall'], '%')}",
            f"WBC at the end of the run {band_text(oc['end_of_run_wbc_10e9_per_l'], '×10⁹/L')}",
            f"WBC next morning {band_text(oc['next_morning_wbc_10e9_per_l'], '×10⁹/L')}",
            clinical_text(oc.get("validated", ""), kb)), tuple(clinical_text(x, kb) for x in oc.get("working", ()))))
    up = plan.get("patient_update")
    if up:
        ob, own, pop = up["observed"], up["next_session_this_patient"], up["next_session_population"]
        rows.append((L["patient_update"], (
            f"completed session: {fmt_num(ob['pre_wbc_10e9_per_l'])} → {fmt_num(ob['post_wbc_10e9_per_l'])} ×10⁹/L at "
            f"{fmt_num(ob['blood_volumes'])} × TBV (expected for a typical patient: "
            f"{band_text(up['completed_session_population_band'], '×10⁹/L')})",
            f"next session at {fmt_num(own['blood_volumes'])} × TBV from {fmt_num(own['pre_wbc_10e9_per_l'])} ×10⁹/L: "
            f"fall {band_text(own['pct_fall'], '%')}; end of run {band_text(own['end_of_run_wbc_10e9_per_l'], '×10⁹/L')}",
            f"for a typical patient it would be {band_text(pop['end_of_run_wbc_10e9_per_l'], '×10⁹/L')}",
            *(clinical_text(x, kb) for x in up.get("warnings", ()))),
            tuple(clinical_text(x, kb) for x in own.get("working", ()))))
    return rows


def _collection_rows(c: Mapping[str, Any] | None, L: Mapping[str, str],
                     kb: KnowledgeBase) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """Target, volume needed, days and expected yield of a PBSC or CAR-T collection."""
    if not c:
        return []
    lo, hi = c["volume_needed_range_l"]
    rows: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [(L["collection_target"], (
        f"{c['target']} from {fmt_num(c['precount_per_ul'])} {c['marker']} cells/µL",
        f"whole blood to process {fmt_num(lo)}–{fmt_num(hi)} L ({fmt_num(c['blood_volumes_needed'])} × TBV) at a "
        f"collection efficiency (CE2) of {fmt_num(c['ce2'] * 100)} % (published {fmt_num(c['ce2_range'][0] * 100)}–"
        f"{fmt_num(c['ce2_range'][1] * 100)} %)",
        "one session reaches the target" if c["one_session_reaches_target"]
        else f"one session does NOT reach the target: {fmt_num(c['sessions_needed'])} sessions needed"),
        (clinical_text(c.get("formula", ""), kb), *(clinical_text(n, kb) for n in c.get("notes", ()))))]
    md = c.get("multi_day_plan")
    if md:
        probs = ", ".join(f"day {i}: {fmt_num(v)} %" for i, v in enumerate(md["probability_by_day_pct"], 1))
        rows.append((L["collection_days"], (
            f"{fmt_num(md['volume_per_day_l'])} L per day ({fmt_num(md['blood_volumes_per_day'])} × TBV, "
            f"{_hm(md['duration_per_day_min'])}); median {fmt_num(md['days_needed_median'])} days",
            f"chance the target is reached by {probs}"), tuple(clinical_text(x, kb) for x in md.get("working", ()))))
    rows.append((L["collection_yield"], (f"{c['expected_yield']} at {fmt_num(c['planned_blood_volumes'])} × TBV "
                                         "in the planned session",), ()))
    return rows
