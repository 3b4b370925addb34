"""The short cuts of leukos.present's wording give the very words of the long way.

``_clinical_text`` runs a substitution only over a text holding a piece every match of it contains;
these tests run every substitution over every text, as it was written before the short cut, and
compare on the texts the knowledge base holds and on texts made to hit each pattern.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from leukos import present
from leukos.knowledge import load_knowledge

KB = load_knowledge()


def _every_substitution(text: str) -> str:
    """``_clinical_text`` without its short cuts: every pattern over every text."""
    lab = present.labels(KB)
    s = present._CLI_USE.sub(lambda m: f"{'T' if m.group(1) == 'U' else 't'}he leukapheresis plan below gives "
                             f"{m.group(2)}", text)
    s = present._CLI_HINT.sub(" (see the leukapheresis plan below)", s)
    s = present._CITE_BRACKET.sub(lambda m: present._cite_bracket(m, KB), s)
    s = present._CODE.sub(lambda m: lab.word(m.group(1)) if ("_" in m.group(1) or m.group(1).split(".")[0]
                                                             in ("labs", "findings", "patient", "symptoms"))
                          else m.group(0), s)
    s = present._PLAIN_ABBREV.sub(lambda m: m.group(0).upper(), s)
    s = present._UPPER_CODE.sub(lambda m: lab.diagnosis(m.group(1)), s)
    for _, pattern, repl in present._TEXT_UNITS:
        s = pattern.sub(repl, s)
    return s.replace("`", "")


def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict) or hasattr(obj, "items"):
        for k, v in obj.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            yield from _strings(x)


def _units() -> set[str]:
    return {*KB.unit_display, *KB.unit_aliases, *KB.unit_aliases.values(), *(u for us in KB.unit_offers.values()
                                                                            for u in us)}


_MADE = [
    "Use `leukos plan` for the volumes; run `leukos plan`", "see [ganzel2012, rollig2015] and [not_a_key]",
    "findings.known_diagnosis and labs.creatinine.reference_high", "wbc > 100 x10^9/L", "WBC>=100 x 10^3/uL",
    "ldh, inr, tls and dic", "APL_SUSPECTED or CML_CP", "K <= 6 mmol/L -> recheck", "2 {INR}", "7 mm[Hg]",
    "30 umol/L", "0.5 ug/mL", "10*9/L", "10*3/uL", "fhir:Observation/p7-lab-003", "fhir:Observation/wbc-1.ldh_2",
    "Observation/a.b_c", "case", "differential", "typed", "", " ", "`", "[", "_", ".", "a.b", "x_y",
]


@pytest.mark.parametrize("text", sorted({*_strings(KB.tables), *(p.note for p in KB.parameters.values()),
                                         *KB.parameters, *_MADE, *_units()}))
def test_clinical_text_is_every_substitution(text):
    assert present._clinical_text(text, present.labels(KB)) == _every_substitution(text)


@pytest.mark.parametrize("a, b", list(itertools.product(_MADE[:16], repeat=2)))
def test_clinical_text_of_joined_texts_is_every_substitution(a, b):
    for text in (a + " " + b, a + b):
        assert present._clinical_text(text, present.labels(KB)) == _every_substitution(text)


@pytest.mark.parametrize("unit", sorted(_units() | {"x10^9/L", "-> x", "umol/L-", "cells", "mm Hg", ""}))
def test_a_value_as_entered_reads_as_every_substitution_says(unit):
    """``_entered_words`` looks the unit's words up (knowledge units) instead of running the patterns."""
    lab = present.labels(KB)
    for number in ("0", "262.1", "-5", "10", "1.5e+06", ">262", "<=0.5", "1,5", "12.", ".5", "1 2"):
        given = f"{number} {unit}"
        assert present._entered_words(given, lab) == _every_substitution(given), given



def test_the_memo_of_worded_texts_keeps_knowledge_never_a_patients_value():
    """The memo outlives the call: a text with a number the knowledge does not hold (a patient's
    value) is worded the same but not kept; a knowledge text is kept."""
    lab = present.labels(KB)
    patient_text = "Hyperleukocytosis: WBC 258.37, blasts 218.91 x10^9/L; leukostasis not graded"
    free_text = "Quokkabacter zebrensis"  # an organism as entered: words the knowledge does not hold
    knowledge_text = "WBC > 100 x10^9/L"
    for text in (patient_text, free_text, knowledge_text):
        assert lab.text(text) == _every_substitution(text)
    assert patient_text not in lab.text_cache and free_text not in lab.text_cache
    assert knowledge_text in lab.text_cache


def test_advice_written_in_the_rules_code_counts_as_knowledge():
    """Some advice is written in the rules' code, not in the knowledge data: its words are read from
    the compiled code (text literals only), so it is remembered too; nothing a call held is."""
    lab = present.labels(KB)
    advice = "Laboratory TLS present: hydration, urate lowering; involve nephrology early."
    assert {"nephrology", "hydration", "urate"} <= present._code_tokens()
    assert lab.text(advice) == _every_substitution(advice)
    assert advice in lab.text_cache
    assert lab.text("Quokkabacter zebrensis") and "Quokkabacter" not in lab.vocabulary()
