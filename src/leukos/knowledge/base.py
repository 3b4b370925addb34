"""Loader and value types of the knowledge base."""

from __future__ import annotations

import functools
import math
import tomllib
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from types import MappingProxyType
from typing import Any, TypeVar

from leukos.errors import ErrorDetail, LeukosUserError

__all__ = ["Analyte", "Citation", "KnowledgeBase", "Parameter", "Symptom", "load_knowledge"]

STATUSES = ("V", "P", "U")
SYMPTOM_PLACEMENTS = ("table", "closest_row", "ungraded")


def end_sentence(text: str) -> str:
    """``text`` ending in exactly one sentence mark: a full stop is added unless it ends in . ? or !."""
    t = text.rstrip()
    return t if t.endswith((".", "?", "!")) else f"{t}."


@dataclass(frozen=True)
class Citation:
    """One entry of the citation registry (``data/references/*.toml``).

    The record is always the primary publication, guideline or label. ``authors`` may be empty
    when they were not seen (then "authors" is among ``unverified``). ``read_via`` records, in the
    data only, the secondary page that was actually read when the primary itself was not: the
    output then says that the primary was checked only through a secondary source, and never
    shows that page as a source.
    """

    key: str
    authors: str
    title: str
    venue: str
    year: int
    doi: str | None = None
    url: str | None = None
    unverified: tuple[str, ...] = ()
    note: str | None = None
    read_via: str | None = None

    @property
    def short(self) -> str:
        if not self.authors:
            return f"{self.venue} ({self.year})" if str(self.year) not in self.venue else self.venue
        first = self.authors.split(",")[0].strip()
        return f"{first} {self.year}, {self.venue}"

    @property
    def title_sentence(self) -> str:
        """The title ending in one full stop (a title ending in ? or ! keeps its own mark)."""
        return end_sentence(self.title)

    @property
    def link(self) -> str | None:
        if self.doi:
            return f"https://doi.org/{self.doi}"
        return self.url

    def to_dict(self) -> dict[str, Any]:
        d = {
            "key": self.key,
            "authors": self.authors or None,
            "title": self.title,
            "venue": self.venue,
            "year": self.year,
            "doi": self.doi,
            "url": self.url,
        }
        if self.unverified:
            d["unverified_fields"] = list(self.unverified)
        if self.read_via:
            d["checked_only_through_a_secondary_source"] = True
        return d


@dataclass(frozen=True)
class Parameter:
    """A threshold, coefficient or setting, with its unit and provenance."""

    key: str
    value: Any
    unit: str
    status: str
    citations: tuple[str, ...]
    note: str = ""
    deviation: str = ""
    choices: tuple[Any, ...] = ()
    overridden_from: Any = None
    # The same threshold as the source also prints it in another unit (e.g. 8 mg/dL = 476 umol/L).
    also: tuple[float, str] | None = None
    # A laboratory-specific limit that no source fixes: no default value; the rule that needs it
    # reports 'not assessed' until the site sets it (load_knowledge overrides, `--set`).
    site_required: bool = False

    @property
    def configured(self) -> bool:
        return not self.site_required or self.overridden
    @property
    def unverified(self) -> bool:
        return self.status == "U"

    @property
    def overridden(self) -> bool:
        return self.overridden_from is not None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"value": self.value, "unit": self.unit, "status": self.status,
                             "citations": list(self.citations)}
        if self.note:
            d["note"] = self.note
        if self.deviation:
            d["deviation"] = self.deviation
        if self.choices:
            d["choices"] = list(self.choices)
        if self.also:
            d["also_printed_as"] = {"value": self.also[0], "unit": self.also[1]}
        if self.site_required:
            d["site_required"] = True
            d["configured"] = self.configured
        if self.overridden:
            d["overridden_from"] = self.overridden_from
        return d


@dataclass(frozen=True)
class Analyte:
    """A laboratory quantity of the case format with its canonical unit."""

    name: str
    label: str
    unit: str
    kind: str
    plausible: tuple[float, float]
    loinc: tuple[str, ...] = ()
    text: tuple[str, ...] = ()
    molar_mass_g_per_mol: float | None = None
    valence: int | None = None


@dataclass(frozen=True)
class Symptom:
    """A term of the symptom vocabulary (docs/case-format.md) with its coding and grading."""

    term: str
    organ: str
    label: str
    grade: int | None
    grade_basis: str
    snomed: tuple[str, ...] = ()
    icd10cm: tuple[str, ...] = ()
    synonyms: tuple[str, ...] = ()
    # table: the grading table names the term; closest_row: placed by the closest row (status U);
    # ungraded: no plausible link to leukostasis (listed, never graded)
    placement: str = "table"
    placement_citations: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        """V/P/U of the placement: U throughout, because the grading table itself is unverified."""
        return "U"


_T = TypeVar("_T")


@dataclass(frozen=True)
class KnowledgeBase:
    """Everything the rules know, loaded from data. Immutable; overrides make a new one."""

    ruleset_version: str
    citations: Mapping[str, Citation]
    parameters: Mapping[str, Parameter]
    analytes: Mapping[str, Analyte]
    unit_aliases: Mapping[str, str]
    symptoms: Mapping[str, Symptom]
    tables: Mapping[str, Any] = field(default_factory=dict)
    # units.toml [offered] (analyte -> UCUM units a form offers, canonical first) and [display]
    unit_offers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    unit_display: Mapping[str, str] = field(default_factory=dict)
    # Values derived from this knowledge base alone (see ``derived``); never copied by ``replace``.
    _derived: dict[Hashable, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def derived(self, key: Hashable, build: Callable[[KnowledgeBase], _T]) -> _T:
        """``build(self)``, computed once per knowledge base (it is immutable) and then reused.

        For what the rules read on every call and that depends on the knowledge alone (a threshold
        in the canonical unit, a rule in words, a compiled table). ``key`` names the derivation:
        the same key must always mean the same ``build``. The result is shared: never mutate it.
        """
        try:
            return self._derived[key]
        except KeyError:
            return self._derived.setdefault(key, build(self))

    def param(self, key: str) -> Parameter:
        try:
            return self.parameters[key]
        except KeyError:
            raise KeyError(f"no knowledge parameter {key!r}") from None

    def value(self, key: str) -> Any:
        return self.param(key).value

    def table(self, name: str) -> Any:
        return self.tables[name]

    def citation(self, key: str) -> Citation:
        return self.citations[key]

    def analyte(self, name: str) -> Analyte:
        return self.analytes[name]

    def field_label(self, name: str) -> str:
        """The reader's name of a case-format field path (``creatinine``, ``labs.ldh.reference_high``,
        ``findings.known_diagnosis``): analyte labels from labs.toml, other fields from
        rules/field_labels.toml; an unknown path is returned as given. Each path is worked out once
        per knowledge base (the paths are the rules' own, a few dozen; at most 1024 are kept)."""
        known: dict[str, str] = self.derived("field_label.known", lambda kb: {})
        label = known.get(name)
        if label is None:
            label = self._field_label(name)
            if len(known) < 1024:
                known[name] = label
        return label

    def _field_label(self, name: str) -> str:
        labels = self.tables.get("field_labels", {}).get("labels", {})
        if name in labels:
            return labels[name]
        parts = name.split(".")
        if parts[0] == "labs" and len(parts) >= 2:
            parts = parts[1:]
        if parts[0] in self.analytes:
            label = self.analytes[parts[0]].label
            if len(parts) == 2 and parts[1] in labels:
                return f"{label}: {labels[parts[1]]}"
            if len(parts) == 1:
                return label
        return name

    def with_overrides(self, overrides: Mapping[str, Any]) -> KnowledgeBase:
        """Return a knowledge base with some parameter values replaced (site settings).

        Raises :class:`LeukosUserError` for an unknown key or a value outside the
        parameter's declared choices.
        """
        if not overrides:
            return self
        params = dict(self.parameters)
        problems = []
        for key, value in overrides.items():
            if key not in params:
                import difflib

                close = difflib.get_close_matches(key, params, n=3)
                problems.append(ErrorDetail(key, value, "a knowledge parameter key",
                                            f"use one of {close}" if close else "see `leukos rules --params`"))
                continue
            p = params[key]
            if p.choices and value not in p.choices:
                problems.append(ErrorDetail(key, value, f"one of {list(p.choices)}", "choose one of the listed values"))
                continue
            if isinstance(p.value, (int, float)) and not isinstance(p.value, bool):
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    problems.append(ErrorDetail(key, value, f"a number in {p.unit}", "give a number"))
                    continue
                if not math.isfinite(value):  # NaN compares false with every limit: it would silently turn rules off
                    problems.append(ErrorDetail(key, value, f"a finite number in {p.unit}",
                                                f"give the site's value as a number, e.g. {p.value}"))
                    continue
            params[key] = replace(p, value=value, overridden_from=p.value)
        if problems:
            raise LeukosUserError(problems, title="Invalid knowledge-base overrides")
        return replace(self, parameters=MappingProxyType(params))


def _read_toml(name: str) -> dict[str, Any]:
    return tomllib.loads(resources.files("leukos.knowledge").joinpath("data", name).read_text("utf-8"))


def _iter_data(folder: str) -> list[str]:
    root = resources.files("leukos.knowledge").joinpath("data", folder)
    return sorted(p.name for p in root.iterdir() if p.name.endswith(".toml"))


# Files of rule parameters: each has [params.NAME] tables and may have other sections,
# kept as raw tables under its file stem.
def _rule_files() -> list[str]:
    root = resources.files("leukos.knowledge").joinpath("data", "rules")
    return sorted(p.name for p in root.iterdir() if p.name.endswith(".toml"))


@functools.lru_cache(maxsize=1)
def _load_default() -> KnowledgeBase:
    citations: dict[str, Citation] = {}
    for name in _iter_data("references"):
        for key, rec in _read_toml(f"references/{name}").items():
            if key in citations:
                raise ValueError(f"citation key {key!r} defined twice (references/{name})")
            citations[key] = Citation(
                key=key,
                authors=rec["authors"],
                title=rec["title"],
                venue=rec["venue"],
                year=int(rec["year"]),
                doi=rec.get("doi"),
                url=rec.get("url"),
                unverified=tuple(rec.get("unverified", ())),
                note=rec.get("note"),
                read_via=rec.get("read_via"),
            )

    analytes = {
        name: Analyte(
            name=name,
            label=rec["label"],
            unit=rec["unit"],
            kind=rec["kind"],
            plausible=(float(rec["plausible"][0]), float(rec["plausible"][1])),
            loinc=tuple(rec.get("loinc", ())),
            text=tuple(rec.get("text", ())),
            molar_mass_g_per_mol=rec.get("molar_mass_g_per_mol"),
            valence=rec.get("valence"),
        )
        for name, rec in _read_toml("labs.toml").items()
    }

    units = _read_toml("units.toml")

    symptom_data = dict(_read_toml("symptoms.toml"))
    placement_citations = symptom_data.pop("placement_citations")
    symptoms = {
        term: Symptom(
            term=term,
            organ=rec["organ"],
            label=rec["label"],
            grade=rec.get("grade"),
            grade_basis=rec.get("grade_basis", ""),
            snomed=tuple(rec.get("snomed", ())),
            icd10cm=tuple(rec.get("icd10cm", ())),
            synonyms=tuple(rec.get("synonyms", ())),
            placement=rec["placement"],
            placement_citations=tuple(placement_citations[rec["placement"]]),
        )
        for term, rec in symptom_data.items()
    }

    parameters: dict[str, Parameter] = {}
    tables: dict[str, Any] = {}
    for name in _rule_files():
        stem = name.removesuffix(".toml")
        data = _read_toml(f"rules/{name}")
        for pname, rec in data.pop("params", {}).items():
            key = f"{stem}.{pname}"
            parameters[key] = Parameter(
                key=key,
                value=rec["value"],
                unit=rec["unit"],
                status=rec["status"],
                citations=tuple(rec["citations"]),
                note=rec.get("note", ""),
                deviation=rec.get("deviation", ""),
                choices=tuple(rec.get("choices", ())),
                also=(float(rec["also"]["value"]), rec["also"]["unit"]) if "also" in rec else None,
                site_required=bool(rec.get("site_required", False)),
            )
        tables[stem] = data

    meta = _read_toml("ruleset.toml")
    kb = KnowledgeBase(
        ruleset_version=meta["ruleset_version"],
        citations=MappingProxyType(citations),
        parameters=MappingProxyType(parameters),
        analytes=MappingProxyType(analytes),
        unit_aliases=MappingProxyType(dict(units["aliases"])),
        symptoms=MappingProxyType(symptoms),
        tables=MappingProxyType(tables),
        unit_offers=MappingProxyType({k: tuple(v) for k, v in units.get("offered", {}).items()}),
        unit_display=MappingProxyType(dict(units.get("display", {}))),
    )
    _check(kb)
    # The differential rules file is checked here, when the knowledge loads, not at first use.
    from leukos.knowledge.differential_rules import differential_rules

    differential_rules(kb)
    return kb


def _check(kb: KnowledgeBase) -> None:
    """Fail loudly on a broken knowledge base: a developer error, not a user error."""
    for p in kb.parameters.values():
        if p.status not in STATUSES:
            raise ValueError(f"{p.key}: status {p.status!r} not in {STATUSES}")
        if not p.citations:
            raise ValueError(f"{p.key}: no citation")
        for c in p.citations:
            if c not in kb.citations:
                raise ValueError(f"{p.key}: unknown citation key {c!r}")
        if p.choices and p.value not in p.choices:
            raise ValueError(f"{p.key}: default {p.value!r} not among choices")
    for s in kb.symptoms.values():
        if s.placement not in SYMPTOM_PLACEMENTS:
            raise ValueError(f"symptom {s.term}: placement {s.placement!r} not in {SYMPTOM_PLACEMENTS}")
        if (s.grade is None) != (s.placement == "ungraded"):
            raise ValueError(f"symptom {s.term}: a grade goes with placement table/closest_row, none with ungraded")
        for c in s.placement_citations:
            if c not in kb.citations:
                raise ValueError(f"symptom {s.term}: unknown citation key {c!r}")
    for name, units in kb.unit_offers.items():
        if name not in kb.analytes or not units or units[0] != kb.analytes[name].unit:
            raise ValueError(f"units.toml [offered] {name}: not an analyte, or the canonical unit is not listed first")


def load_knowledge(overrides: Mapping[str, Any] | None = None) -> KnowledgeBase:
    """Load the bundled knowledge base, optionally with site overrides of parameters.

    Examples
    --------
    >>> kb = load_knowledge()
    >>> kb.param("hyperleukocytosis.wbc_threshold").unit
    '10*9/L'
    """
    kb = _load_default()
    return kb.with_overrides(overrides) if overrides else kb
