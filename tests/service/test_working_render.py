"""The cards' working: the outline the cards render is the tree the page shows, and the card's line
budget cuts it as a walk of that tree does (including the cut, which realistic workings never reach)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leukos.knowledge import load_knowledge
from leukos.present import Node, working_outline, working_tree
from leukos.service.cds.cards import _working_md

KB = load_knowledge()


def _as_outline(node: Node):
    return (node.label, node.text, tuple(_as_outline(k) for k in node.children))


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
def test_outline_is_the_tree_and_the_budget_cuts_alike(working, budget):
    tree = working_tree(working, KB)
    outline = working_outline(working, KB)
    assert outline == _as_outline(tree)
    assert _working_md(outline, budget) == _md_of_tree(tree, 0, [budget])


def test_a_long_working_is_cut_at_sixty_lines():
    working = {f"step_{i}": {"threshold": {"value": i, "unit": "mL", "status": "U", "source": ["leukos_operational"]},
                             "parts": {"a": 1, "b": {"c": [1, 2]}}} for i in range(40)}
    lines = _working_md(working_outline(working, KB))
    assert lines == _md_of_tree(working_tree(working, KB))
    assert sum(1 for line in lines if not line.strip().startswith("- …")) == 60
    assert lines[-1] == "- …"
