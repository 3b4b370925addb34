"""Golden guard: ``assess`` gives byte-for-byte the answers recorded before its speed-ups.

Recorded (``tests/data/assess_golden.json.xz``) from the code before the assessment was made cheaper,
for every published validation case, every bundled example and the case the CDS benchmark request
imports (``benchmarks/service_peers/request.py`` through the CDS prefetch and ``case_from_fhir``),
under the bundled knowledge base and a site configuration that sets the laboratory limits and picks
other editions: the full assessment as JSON (``to_dict``, key order kept) and the ranked-only
assessment (``explain_differential=False``) field by field (its differential as ranked heads, its
references as JSON). A refactoring of the rules that changes any byte of either fails here.

Regenerate only from code whose answers are known right (never to make this test pass)::

    PYTHONPATH=src python -m tests.test_assess_golden --write
"""

from __future__ import annotations

import dataclasses
import json
import lzma
import sys
from pathlib import Path

import pytest

from leukos.domain.assessment import Assessment, jsonable
from leukos.interop.case_format import case_from_dict
from leukos.knowledge import load_knowledge
from leukos.rules import assess
from tests.spec.test_differential_ranking_only import SITE, _cases, _load

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "data" / "assess_golden.json.xz"

# SITE: the laboratory of the ranked-only equivalence test (limits set, other editions chosen).
KBS = {"default": load_knowledge(), "site": load_knowledge(SITE)}


def cases() -> list[tuple[str, str, object]]:
    """(name, kind, data) of every recorded case, in a fixed order: the published validation cases,
    the examples, and the case of the CDS benchmark request."""
    return [*_cases(), ("benchmark:patient-view", "cds", None)]


def load(kind: str, data: object, kb):
    if kind != "cds":
        return _load(kind, data, kb)
    sys.path.insert(0, str(REPO))
    from benchmarks.service_peers.request import patient_view_request

    from leukos.interop.fhir import case_from_fhir
    from leukos.service.cds.prefetch import bundle_from_prefetch
    return case_from_fhir(bundle_from_prefetch(patient_view_request()["prefetch"]), kb)


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def record(case, kb) -> dict[str, str]:
    """The full and the ranked-only assessment of ``case`` as canonical JSON text."""
    full = assess(case, kb)
    cheap = assess(case, kb, explain_differential=False)
    ranked: dict[str, object] = {}
    for f in dataclasses.fields(Assessment):
        v = getattr(cheap, f.name)
        if f.name == "differential":
            v = [{"code": e.code, "rank": e.rank, "likelihood": e.likelihood, "label": e.label, "score": e.score,
                  "settings": dict(e.settings)} for e in v]
        ranked[f.name] = jsonable(v)
    return {"full": _dumps(full.to_dict()), "ranked": _dumps(ranked)}


def generate() -> dict[str, dict[str, str]]:
    out = {}
    for kb_name, kb in KBS.items():
        for name, kind, data in cases():
            out[f"{kb_name}|{name}"] = record(load(kind, data, kb), kb)
    return out


def _golden() -> dict[str, dict[str, str]]:
    return json.loads(lzma.decompress(GOLDEN.read_bytes()).decode("utf-8"))


GOLD = _golden() if GOLDEN.exists() else {}
CASES = cases()


def test_every_case_is_recorded():
    assert len(CASES) >= 60 + 14 + 1
    assert sorted(GOLD) == sorted(f"{k}|{name}" for k in KBS for name, _, _ in CASES)


@pytest.mark.parametrize("kb_name", sorted(KBS))
@pytest.mark.parametrize("name, kind, data", CASES, ids=[c[0] for c in CASES])
def test_assessment_is_byte_identical_to_the_recording(name, kind, data, kb_name):
    kb = KBS[kb_name]
    got = record(load(kind, data, kb), kb)
    want = GOLD[f"{kb_name}|{name}"]
    assert got["full"] == want["full"]
    assert got["ranked"] == want["ranked"]


def test_the_recording_is_not_vacuous():
    """The recorded answers carry the differential explained, warnings, settings and references."""
    full = [json.loads(v["full"]) for v in GOLD.values()]
    assert sum(1 for a in full if a["differential"]) > 100
    assert any(a["warnings"] for a in full) and any(a["settings"] for a in full)
    assert all(a["references"] for a in full)
    assert any(e["would_change"] for a in full for e in a["differential"])


@pytest.mark.parametrize("kb_name", sorted(KBS))
def test_cml_phase_reading_the_features_equals_computing_it_alone(kb_name):
    """The ranking's heads read the CML phase from the features already computed; the same phase as
    ``cml_phase(case, kb)`` computing every fact and measure itself, under every phase system."""
    from leukos.rules.differential.cml_phase import cml_phase
    from leukos.rules.differential.features import Features, checked_rules

    seen = set()
    for system in ("WHO2016", "ELN", "WHO2022", "ICC2022"):
        kb = KBS[kb_name].with_overrides({"differential.cml_phase_system": system})
        for _, kind, data in CASES:
            case = load(kind, data, kb)
            alone = cml_phase(case, kb)
            assert cml_phase(case, kb, Features(case, kb, checked_rules(kb))) == alone
            seen.add(alone.phase)
    assert seen == {"CP", "AP", "BP", None}


def test_derived_counts_are_worked_in_both_directions():
    """The derivation shown for a count derived from a percentage and for a percentage derived from a
    count (the recordings carry only the first); the text as the code before the speed-ups wrote it."""
    from leukos.rules.differential.quantities import derivation

    c = case_from_dict({"labs": {"wbc": 85.1, "monocytes_abs": 19.57, "basophils_pct": 3, "eosinophils_abs": ">2"}})
    assert derivation(c, ("monocytes", "basophils", "eosinophils", "neutrophils")) == (
        "derived: monocytes 23 % = 19.6 x10^9/L / WBC 85.1 x10^9/L x 100; "
        "basophils 2.55 x10^9/L = WBC 85.1 x10^9/L x 3 % / 100; "
        "eosinophils >= 2.35 % = >= 2 x10^9/L / WBC 85.1 x10^9/L x 100")
    c = case_from_dict({"labs": {"wbc": ">1000", "monocytes_abs": 19.57}})
    assert derivation(c, ("monocytes",)) == "derived: monocytes 0-1.96 % = 19.6 x10^9/L / WBC >= 1e+03 x10^9/L x 100"


def test_three_valued_or_and_follow_their_definitions():
    """``any3``/``all3`` (one pass) against their definitions, for every sequence of up to four values
    (True, False, None and values that are neither), given as a list or as an iterator run to its end."""
    import itertools

    from leukos.rules._common import all3, any3

    def any3_def(vals):
        return True if any(v is True for v in vals) else False if all(v is False for v in vals) else None

    def all3_def(vals):
        return True if all(v is True for v in vals) else False if any(v is False for v in vals) else None

    for n in range(5):
        for t in itertools.product((True, False, None, 0, 1), repeat=n):
            assert any3(list(t)) is any3_def(t) and all3(list(t)) is all3_def(t), t
            read: list[object] = []
            assert any3(read.append(v) or v for v in t) is any3_def(t) and read == list(t)
            read = []
            assert all3(read.append(v) or v for v in t) is all3_def(t) and read == list(t)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python -m tests.test_assess_golden --write")
    GOLDEN.write_bytes(lzma.compress(_dumps(generate()).encode("utf-8"), preset=9 | lzma.PRESET_EXTREME))
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)")
