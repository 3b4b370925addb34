"""The differential ranked without its explanation (``assess(..., explain_differential=False)``, used for
the CDS cards) gives the same answer as the full assessment everywhere but the differential's explanation.

For every published validation case and every bundled example, under the default knowledge base and
under a site configuration that sets the laboratory limits and picks other editions: the same ranks,
codes, likelihoods, labels and scores; the same working diagnosis; and every other part of the
assessment (headline, urgency, leukapheresis verdict and APL gate, recommendations, missing data,
warnings, settings) identical as JSON. The ranked-only assessment says what it is and cannot be
reported.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from leukos.domain.assessment import Assessment, DifferentialEntry, RankedDiagnosis, jsonable
from leukos.interop.case_format import case_from_dict, load_case_text
from leukos.knowledge import load_knowledge
from leukos.rules import assess
from leukos.rules._common import Gaps
from leukos.rules.differential import differential, ranked
from leukos.rules.management import working_diagnosis

from .test_differential import SITE as LAB_LIMITS

REPO = Path(__file__).resolve().parents[2]
PUBLISHED = REPO / "data" / "validation" / "published_cases.jsonl"
EXAMPLES = REPO / "examples"

# A laboratory that configured the site-required limits and chose other editions (test inputs).
SITE = {
    **LAB_LIMITS,
    "differential.cml_phase_system": "ELN",
    "differential.cnl_criteria": "WHO2016",
    "differential.plr_high_criteria": "kasuga",
    "differential.plr_leukocytosis_min": 30,
}
KBS = {"default": load_knowledge(), "site": load_knowledge(SITE)}


def _cases() -> list[tuple[str, str, object]]:
    out = []
    for line in PUBLISHED.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            out.append((f"published:{rec['id']}", "dict", rec["case"]))
    for p in sorted(EXAMPLES.iterdir()):
        if p.suffix in (".yaml", ".yml", ".json"):
            out.append((f"example:{p.name}", "text", (p.read_bytes(), p.name)))
    assert len(out) >= 60 + 14, "the validation set and the examples are all here"
    return out


CASES = _cases()


def _load(kind: str, data: object, kb):
    if kind == "dict":
        return case_from_dict(data)  # type: ignore[arg-type]
    text, name = data  # type: ignore[misc]
    return load_case_text(text, kb, name=name)


def _head(e: DifferentialEntry | RankedDiagnosis) -> tuple:
    return (e.rank, e.code, e.likelihood, e.label, e.score)


_NOT_COMPARED = {"differential", "references", "differential_explained"}


def differences(case, kb, full: Assessment, cheap: Assessment) -> list[str]:
    """What the ranked-only assessment says differently from the full one (empty: the same answer)."""
    out = []
    if [_head(e) for e in full.differential] != [_head(e) for e in cheap.differential]:
        out.append(f"ranking: {[_head(e) for e in full.differential]} != {[_head(e) for e in cheap.differential]}")
    wd_full = working_diagnosis(case, full.differential, Gaps(kb))
    wd_cheap = working_diagnosis(case, cheap.differential, Gaps(kb))
    if wd_full != wd_cheap:
        out.append(f"working diagnosis: {wd_full} != {wd_cheap}")
    for f in dataclasses.fields(Assessment):
        if f.name in _NOT_COMPARED:
            continue
        a = json.dumps(jsonable(getattr(full, f.name)))
        b = json.dumps(jsonable(getattr(cheap, f.name)))
        if a != b:
            out.append(f"{f.name}: {a[:200]} != {b[:200]}")
    # references: the cheap one lacks exactly what only the differential's explanation cites
    diff_cited = {k for e in full.differential for k in e.citations}
    if not set(cheap.references) <= set(full.references):
        out.append(f"references not in the full assessment: {set(cheap.references) - set(full.references)}")
    if not set(full.references) - set(cheap.references) <= diff_cited:
        out.append("references missing that are not the differential's: "
                   f"{set(full.references) - set(cheap.references) - diff_cited}")
    return out


@pytest.mark.parametrize("kb_name", sorted(KBS))
@pytest.mark.parametrize("name, kind, data", CASES, ids=[c[0] for c in CASES])
def test_ranked_only_assessment_gives_the_same_answer(name, kind, data, kb_name):
    kb = KBS[kb_name]
    case = _load(kind, data, kb)
    full = assess(case, kb)
    cheap = assess(case, kb, explain_differential=False)
    assert full.differential_explained is True and cheap.differential_explained is False
    assert all(isinstance(e, DifferentialEntry) for e in full.differential)
    assert all(type(e) is RankedDiagnosis for e in cheap.differential)
    assert differences(case, kb, full, cheap) == []
    # the headline, urgency, verdict and APL gate explicitly (also inside the comparison above)
    assert (cheap.headline, cheap.urgency) == (full.headline, full.urgency)
    assert cheap.leukapheresis == full.leukapheresis
    assert cheap.recommendations == full.recommendations


def test_the_cases_exercise_the_ranking():
    """The equivalence above is not vacuous: the cases list diagnoses at every likelihood, CML in
    each phase, leading diagnoses from the differential of every advice group (the leukemoid ones
    change the advice and headline), cases with no working diagnosis, and APL suspected and not."""
    kb = KBS["site"]
    seen_bands, codes, groups, apl = set(), set(), set(), set()
    for _, kind, data in CASES:
        case = _load(kind, data, kb)
        a = assess(case, kb, explain_differential=False)
        seen_bands |= {e.likelihood for e in a.differential}
        codes |= {e.code for e in a.differential}
        wd = working_diagnosis(case, a.differential, Gaps(kb))
        groups.add((wd.source, wd.group))
        apl.add(a.leukapheresis.apl_suspected)
    assert seen_bands == {"low", "moderate", "high"}
    assert {"CML_CP", "CML_AP", "CML_BP", "APL", "CNL", "LEUKEMOID_PARANEOPLASTIC", "EMH"} <= codes
    assert {("differential", g) for g in ("leukemoid", "acute_leukaemia", "chronic_leukaemia", "tissue")} <= groups
    assert (None, None) in groups and apl == {True, False}


def test_the_comparison_fails_when_the_ranking_differs():
    """A ranked-only differential that ranked one diagnosis differently is reported as a difference."""
    kb = KBS["default"]
    case = load_case_text((EXAMPLES / "06-leukemoid-reaction.yaml").read_bytes(), kb, name="06")
    full = assess(case, kb)
    cheap = assess(case, kb, explain_differential=False)
    assert differences(case, kb, full, cheap) == []
    top, *rest = cheap.differential
    lower = dataclasses.replace(top, likelihood="low" if top.likelihood != "low" else "moderate")
    assert any(d.startswith("ranking") for d in differences(case, kb, full, dataclasses.replace(
        cheap, differential=(lower, *rest))))
    if rest:  # two diagnoses swapped
        swapped = (dataclasses.replace(rest[0], rank=1), dataclasses.replace(top, rank=2), *rest[1:])
        found = differences(case, kb, full, dataclasses.replace(cheap, differential=swapped))
        assert any(d.startswith("ranking") for d in found) and any(d.startswith("working") for d in found)


def test_ranked_only_assessment_cannot_be_reported():
    kb = KBS["default"]
    case = load_case_text((EXAMPLES / "01-aml-leukostasis.yaml").read_bytes(), kb, name="01")
    cheap = assess(case, kb, explain_differential=False)
    with pytest.raises(ValueError, match="ranked but not explained"):
        cheap.to_dict()
    with pytest.raises(ValueError, match="ranked but not explained"):
        jsonable(cheap)
    for e in cheap.differential:  # no explanation to read by mistake: the attributes are absent, not empty
        assert not hasattr(e, "supporting") and not hasattr(e, "would_change") and not hasattr(e, "working")
    full = assess(case, kb).to_dict()
    assert "differential_explained" not in full  # the JSON contract (docs/outputs.md) is unchanged


@pytest.mark.parametrize("name, kind, data", CASES[::7], ids=[c[0] for c in CASES[::7]])
def test_explained_entries_are_built_on_the_ranking(name, kind, data):
    """``ranked`` gives the ranking and the explained entries from one scoring; ``differential`` is the
    explained part."""
    kb = KBS["site"]
    case = _load(kind, data, kb)
    ranking, entries = ranked(case, kb)
    assert entries == differential(case, kb)
    assert [_head(e) for e in entries] == [_head(r) for r in ranking]
    assert [dict(e.working.get("settings", {})) for e in entries] == [dict(r.settings) for r in ranking]
    alone, none = ranked(case, kb, explain=False)
    assert none is None and alone == ranking
