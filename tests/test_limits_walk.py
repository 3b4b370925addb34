"""check_tree refuses exactly what a plain recursive reading of its rules refuses, naming the same place
(depth, element count, non-finite numbers, lone surrogates, long strings), in the same walk order."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leukos.errors import CaseFormatError
from leukos.interop import limits
from leukos.interop.limits import check_tree


def _reference(data, name="input"):
    """The rules of check_tree read plainly (a path list per node): the answer to compare with."""
    count = 0
    stack = [(data, [])]
    while stack:
        node, path = stack.pop()
        count += 1
        if count > limits.MAX_ELEMENTS:
            return ("count",)
        if isinstance(node, dict):
            if len(path) >= limits.MAX_DEPTH:
                return ("deep",)
            for k, v in node.items():
                if isinstance(k, str) and limits._bad_text(k):
                    return ("surrogate", limits._field(name, path))
                stack.append((v, path + [k]))
        elif isinstance(node, list):
            if len(path) >= limits.MAX_DEPTH:
                return ("deep",)
            stack.extend((v, path + [i]) for i, v in enumerate(node))
        elif isinstance(node, str):
            if len(node) > limits.MAX_STRING_CHARS:
                return ("long", limits._field(name, path))
            if limits._bad_text(node):
                return ("surrogate", limits._field(name, path))
        elif isinstance(node, float):
            if not math.isfinite(node):
                return ("finite", limits._field(name, path))
        elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > limits._MAX_DOUBLE:
            return ("finite", limits._field(name, path))
    return None


def _answer(data):
    try:
        check_tree(data, name="doc")
    except CaseFormatError as exc:
        d = exc.details[0]
        if "levels" in d.expected:
            return ("deep",)
        if "values in one document" in d.expected:
            return ("count",)
        if "characters" in d.expected:
            return ("long", d.field)
        if "surrogate" in d.expected or "Unicode" in d.expected:
            return ("surrogate", d.field)
        return ("finite", d.field)
    return None


_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.just(10**400), st.floats(),
                    st.text(max_size=4), st.just("a\ud800b"), st.just("é"))
_DOCS = st.recursive(_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=3), st.just("\udc00")), inner,
                                                 max_size=4)), max_leaves=40)


@settings(max_examples=800, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(_DOCS)
def test_walk_answers_as_the_plain_reading(doc):
    assert _answer(doc) == _reference(doc, "doc")


def _nested(depth):
    doc: object = 1
    for i in range(depth):
        doc = {"a": doc} if i % 2 else [doc]
    return doc


@pytest.mark.parametrize("depth", [limits.MAX_DEPTH - 1, limits.MAX_DEPTH, limits.MAX_DEPTH + 1])
def test_depth_bound_is_the_same(depth):
    assert _answer(_nested(depth)) == _reference(_nested(depth), "doc")


def test_long_string_and_count_bounds(monkeypatch):
    doc = {"x": [1, {"y": "z" * (limits.MAX_STRING_CHARS + 1)}]}
    assert _answer(doc) == _reference(doc, "doc") == ("long", "x[1].y")
    monkeypatch.setattr(limits, "MAX_ELEMENTS", 5)
    assert _answer([1, 2, 3, 4, 5]) == _reference([1, 2, 3, 4, 5], "doc") == ("count",)
