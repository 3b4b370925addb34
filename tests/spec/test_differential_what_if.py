"""The cheap what-if behind ``would_change`` agrees with re-ranking the whole differential.

``rank_if_present`` scores again only the diagnoses that read the feature and counts instead of
sorting; the reference here is the straightforward recomputation, ``score_all(ctx, {feature: True})``,
for every listed diagnosis and every unknown feature, on the bundled examples and the published
validation cases, with the default knowledge base and with a laboratory that configured its limits.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from leukos.interop.case_format import load_case_text
from leukos.knowledge import load_knowledge
from leukos.rules.differential import ranking
from leukos.rules.differential.ranking import context, rank_if_present, score_all
from tests.conftest import EXAMPLES, REPO
from tests.spec.test_differential import SITE


def _cases() -> list[tuple[str, bytes]]:
    out = [(p.name, p.read_bytes()) for p in sorted(EXAMPLES.glob("*")) if p.suffix in (".yaml", ".yml", ".json")]
    for line in (REPO / "data" / "validation" / "published_cases.jsonl").read_text().splitlines():
        row = json.loads(line)
        out.append((row["id"], json.dumps(row["case"]).encode()))
    return out


CASES = _cases()


@pytest.mark.parametrize("incremental", [True, False], ids=["incremental", "rescored"])
@pytest.mark.parametrize("settings", [{}, SITE], ids=["defaults", "site-limits"])
def test_rank_if_present_equals_full_reranking(settings, incremental, monkeypatch):
    if not incremental:  # the path for non-integral weights (scores summed again in row order)
        real = ranking._compile
        monkeypatch.setattr(ranking, "_compile", lambda dx: dataclasses.replace(real(dx), exact=False))
        monkeypatch.setattr(ranking, "_COMPILED", {})
    kb = load_knowledge(settings)
    compared = changed = 0
    for name, raw in CASES:
        ctx = context(load_case_text(raw, kb), kb)
        ranked = score_all(ctx)
        unknown = sorted(f for f, v in ctx.vals.items() if v is None)
        for feature in unknown:
            again = score_all(ctx, {feature: True})
            for rank, s in enumerate(ranked, start=1):
                ref = next(((x.band, i) for i, x in enumerate(again, start=1) if x.dx.code == s.dx.code), None)
                got = rank_if_present(ctx, ranked, s.dx.code, feature)
                assert got == ref, (name, s.dx.code, feature)
                compared += 1
                changed += ref is not None and ref != (s.band, rank)
    assert compared > 1000 and changed > 50  # the comparison covered many cases, and many that move
