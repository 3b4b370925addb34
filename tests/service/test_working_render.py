"""The cards' working: the rows the cards render are the tree the page shows, the card's line budget
cuts them as a walk of that tree does (including the cut, which realistic workings never reach), and
an assessment's own working (tuples, read-only mappings, dataclasses, enums, dates) reads exactly as
its JSON form (``jsonable``), which the views no longer copy."""

from __future__ import annotations

import dataclasses
import datetime
import enum
from types import MappingProxyType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leukos.domain.assessment import jsonable
from leukos.knowledge import load_knowledge
from leukos.present import Node, working_rows, working_tree
from leukos.service.cds.cards import _working_md

KB = load_knowledge()


def _rows_of_tree(node: Node, depth: int = 0) -> list[tuple[int, str, str]]:
    out = []
    for kid in node.children:
        out.append((depth, kid.label, kid.text))
        out += _rows_of_tree(kid, depth + 1)
    return out


def _md_of_tree(node: Node, depth: int = 0, budget: list[int] | None = None) -> list[str]:
    """The card's Markdown read off the page's tree, walked recursively: the reference."""
    budget = budget if budget is not None else [60]
    out: list[str] = []
    for kid in node.children:
        if budget[0] <= 0:
            out.append("  " * depth + "- …")
            break
        budget[0] -= 1
        out.append("  " * depth + f"- {kid.label}" + (f": {kid.text}" if kid.text else ""))
        out += _md_of_tree(kid, depth + 1, budget)
    return out


_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False,
                                                                                 min_value=-1e9, max_value=1e9),
                    st.sampled_from(["wbc", "labs.ldh.reference_high", "x >= 3", "10*9/L", "[ganzel2012]", ""]))
_KEYS = st.sampled_from(["wbc", "threshold_10e9_per_l", "organ_grades", "findings.known_diagnosis", "a", "b", "c"])
_QUANTITIES = st.builds(
    lambda v, extra: {"value": v, **extra}, _LEAVES,
    st.dictionaries(st.sampled_from(["unit", "status", "given", "reference_low", "reference_high", "time"]),
                    st.one_of(st.sampled_from(["10*9/L", "mmol/L", "V", "U", "260 10*3/uL", ""]),
                              st.floats(0, 1e4), st.integers(0, 500)), max_size=4))
_SOURCES = st.one_of(st.lists(st.sampled_from(["ganzel2012", "rollig2015", "leukos_operational", "not_a_key"]),
                              max_size=3), st.sampled_from(["ganzel2012", "fhir:Observation/lab-1"]))


def _mapping(inner):
    return st.builds(lambda d, cite: {**d, **cite}, st.dictionaries(_KEYS, inner, max_size=6),
                     st.one_of(st.just({}), st.builds(lambda s: {"source": s}, _SOURCES),
                               st.builds(lambda s: {"citations": s}, _SOURCES)))


WORKINGS = st.recursive(st.one_of(_LEAVES, _QUANTITIES), lambda inner: st.one_of(st.lists(inner, max_size=5), _mapping(inner)), max_leaves=80)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(_mapping(WORKINGS), st.integers(0, 70))
def test_rows_are_the_tree_and_the_budget_cuts_alike(working, budget):
    tree = working_tree(working, KB)
    assert working_rows(working, KB) == _rows_of_tree(tree)
    assert _working_md(working, KB, budget) == _md_of_tree(tree, 0, [budget])


def test_a_long_working_is_cut_at_sixty_lines():
    working = {f"step_{i}": {"threshold": {"value": i, "unit": "mL", "status": "U", "source": ["leukos_operational"]},
                             "parts": {"a": 1, "b": {"c": [1, 2]}}} for i in range(40)}
    lines = _working_md(working, KB)
    assert lines == _md_of_tree(working_tree(working, KB))
    assert sum(1 for line in lines if not line.strip().startswith("- …")) == 60
    assert lines[-1] == "- …"


class _Grade(enum.Enum):
    TWO = 2


@dataclasses.dataclass(frozen=True)
class _Part:
    value: float
    unit: str
    when: datetime.date


def _native(x, in_quantity: bool = False):
    """The same data as an assessment may hold it: tuples, read-only mappings, and now and then a
    dataclass, an enum or a date where the JSON has a mapping, a number or a string (a quantity's
    own fields stay JSON scalars: a mapping as its unit would be an error either way)."""
    if isinstance(x, dict):
        quantity = "value" in x
        d = {k: _native(v, quantity) for k, v in x.items()}
        if d.get("status") == "U":
            d["status"] = _Status.U
        return MappingProxyType(d) if len(d) % 2 else d
    if isinstance(x, list):
        return tuple(_native(v) for v in x) if len(x) % 2 else [_native(v) for v in x]
    if x == 2 and type(x) is int:
        return _Grade.TWO
    if x in (0, 3) and type(x) is int and not in_quantity:
        return _Part(3.5, "mL", datetime.date(2026, 3, 1))
    return x


class _Status(str, enum.Enum):
    U = "U"


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(_mapping(WORKINGS), st.integers(0, 70))
def test_a_working_reads_as_its_json_form(working, budget):
    raw = _native(working)
    assert working_rows(raw, KB) == working_rows(jsonable(raw), KB)
    assert working_tree(raw, KB) == working_tree(jsonable(raw), KB)
    assert _working_md(raw, KB, budget) == _md_of_tree(working_tree(jsonable(raw), KB), 0, [budget])


def test_a_reference_line_is_the_citation_it_is_given():
    """The card's reference lines are remembered per kb for the views' own citations; a different
    view of the same key (not from ``cite``) is worded from what it says, not from memory."""
    from leukos.present import labels
    from leukos.service.cds.cards import _reference_lines
    from leukos.service.views import CitationView, cite

    lab = labels(KB)
    (own,) = cite(KB, ["ganzel2012"])
    first = _reference_lines((own,), lab)
    assert _reference_lines((own,), lab) == first and own.text in first[0]
    other = CitationView("ganzel2012", "Another wording", None, False)
    assert _reference_lines((other,), lab) == ["- Another wording"]
    assert _reference_lines((own,), lab) == first
