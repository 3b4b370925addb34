"""The assessment: what the rules found, each part with its working and citations
(docs/outputs.md). Frozen values; ``to_dict`` gives the JSON contract."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

__all__ = [
    "Artefact",
    "Assessment",
    "DicResult",
    "DifferentialEntry",
    "HyperleukocytosisResult",
    "LeukapheresisResult",
    "LeukostasisResult",
    "RankedDiagnosis",
    "Recommendation",
    "TlsResult",
    "jsonable",
]

DISCLAIMER = ("leukos supports clinical decisions; it does not replace clinical judgement. "
              "It is not a medical device.")


def _frozen_map() -> Mapping[str, Any]:
    return MappingProxyType({})


def jsonable(obj: Any) -> Any:
    """Convert domain values (dataclasses, enums, mappings, datetimes) to JSON-ready data."""
    t = type(obj)  # exact built-in types first (most of a working): same result as the general branches below
    if t is str or t is int or t is float or t is bool or obj is None:
        return obj
    if t is dict or t is MappingProxyType:  # scalar members copied in place: no call per leaf
        out = {}
        for k, v in obj.items():
            tv = type(v)
            out[k if type(k) is str else str(k)] = v if (
                tv is str or tv is float or tv is int or tv is bool or v is None) else jsonable(v)
        return out
    if t is list or t is tuple:
        return [v if (type(v) is str or type(v) is float or type(v) is int or v is None) else jsonable(v)
                for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if hasattr(obj, "to_dict"):
            return obj.to_dict()
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, float) and obj.is_integer() and abs(obj) < 1e15:
        return obj
    return obj


def _plain(obj: Any) -> dict[str, Any]:
    return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


@dataclass(frozen=True)
class HyperleukocytosisResult:
    present: bool | None
    threshold_10e9_per_l: float
    wbc_10e9_per_l: float | None
    absolute_blasts_10e9_per_l: float | None
    lineage_notes: tuple[str, ...] = ()
    working: Mapping[str, Any] = field(default_factory=_frozen_map)
    citations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True)
class LeukostasisResult:
    grade: int | None
    label: str | None
    organ_grades: Mapping[str, int | None]
    applicable: bool | None
    unverified: bool = True
    notes: tuple[str, ...] = ()
    working: Mapping[str, Any] = field(default_factory=_frozen_map)
    citations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True)
class TlsResult:
    laboratory: bool | None
    clinical: bool | None
    criteria_met: tuple[str, ...]
    criteria_not_assessed: tuple[str, ...]
    risk: str | None
    definition: str
    notes: tuple[str, ...] = ()
    working: Mapping[str, Any] = field(default_factory=_frozen_map)
    citations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True)
class DicResult:
    isth_score: int | None
    score_range: tuple[int, int]
    overt: bool | None
    items: Mapping[str, int | None]
    notes: tuple[str, ...] = ()
    working: Mapping[str, Any] = field(default_factory=_frozen_map)
    citations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True)
class Artefact:
    code: str
    lab: str
    message: str
    action: str
    working: Mapping[str, Any] = field(default_factory=_frozen_map)
    citations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True)
class LeukapheresisResult:
    indicated: bool | None
    asfa_category: str | None
    urgency: str
    contraindications: tuple[str, ...] = ()
    apl_suspected: bool = False
    notes: tuple[str, ...] = ()
    unverified: bool = False
    cautions: tuple[str, ...] = ()  # to settle before a leukapheresis (DIC, low platelets)
    working: Mapping[str, Any] = field(default_factory=_frozen_map)
    citations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True)
class Recommendation:
    code: str
    priority: int  # 1 = act now, 2 = today, 3 = routine / information
    text: str
    citations: tuple[str, ...] = ()
    unverified: bool = False

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True)
class RankedDiagnosis:
    """One diagnosis of the differential as ranked, NOT explained: its place, likelihood and score.

    The head of a :class:`DifferentialEntry` (same code, rank, likelihood, label and score: both are
    built by ``leukos.rules.differential.explanation.head``), without the for/against, next tests,
    what would change it and working. ``settings`` are the edition settings (key -> value) the
    diagnosis was read under. An assessment holds these only when asked for the ranking alone
    (``assess(..., explain_differential=False)``: the CDS cards, which never show the differential);
    it then says so (``Assessment.differential_explained`` is False) and is never an answer.
    """

    code: str
    rank: int
    likelihood: str  # high | moderate | low
    label: str = ""
    score: float = 0.0
    settings: Mapping[str, Any] = field(default_factory=_frozen_map)

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True)
class DifferentialEntry:
    """One ranked diagnosis of the differential (rules/differential.py).

    ``score`` is the sum of the criterion points (``working["points"]``); ``unverified`` lists
    the unverified (U) criteria, thresholds and choices the entry rests on; ``notes`` carries
    caveats (e.g. the APL safety note) and findings the case format cannot carry.
    """

    code: str
    rank: int
    likelihood: str  # high | moderate | low
    supporting: tuple[str, ...] = ()
    against: tuple[str, ...] = ()
    next_tests: tuple[str, ...] = ()
    features_used: Mapping[str, Any] = field(default_factory=_frozen_map)
    would_change: tuple[str, ...] = ()
    citations: tuple[str, ...] = ()
    label: str = ""
    score: float = 0.0
    unverified: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    working: Mapping[str, Any] = field(default_factory=_frozen_map)

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True)
class Assessment:
    """The result of :func:`leukos.rules.assess` (docs/outputs.md, ``leukos assess --format json``)."""

    leukos_version: str
    ruleset_version: str
    case_id: str | None
    headline: str
    urgency: str  # emergent | urgent | routine
    wbc_10e9_per_l: float | None
    absolute_blasts_10e9_per_l: float | None
    hyperleukocytosis: HyperleukocytosisResult
    leukostasis: LeukostasisResult
    differential: tuple[DifferentialEntry, ...] | tuple[RankedDiagnosis, ...]
    tls: TlsResult
    dic: DicResult
    artefacts: tuple[Artefact, ...]
    leukapheresis: LeukapheresisResult
    recommendations: tuple[Recommendation, ...]
    missing_data: tuple[str, ...]
    not_assessed: tuple[str, ...]
    warnings: tuple[str, ...]
    settings: Mapping[str, Any] = field(default_factory=_frozen_map)
    references: Mapping[str, Any] = field(default_factory=_frozen_map)
    disclaimer: str = DISCLAIMER
    # False: ``differential`` is ranked but not explained (RankedDiagnosis entries) and ``references``
    # lack the differential's; everything else is as in the full assessment. Not part of the JSON.
    differential_explained: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract (docs/outputs.md); refused for an assessment whose differential was
        ranked but not explained: that is a working value of the CDS cards, never an answer."""
        if not self.differential_explained:
            raise ValueError("this assessment's differential was ranked but not explained "
                             "(assess(..., explain_differential=False)): assess the case in full to report it")
        d = _plain(self)
        del d["differential_explained"]
        return d
