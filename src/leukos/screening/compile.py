"""Compile the shared rule definitions (:mod:`leukos.rules.definitions`) to ibis expressions.

The per-patient engine evaluates a definition in Python; here the same definition becomes an
expression over one row per episode, so DuckDB and Spark evaluate exactly the rule ``assess``
evaluates. Three-valued logic maps onto SQL's: a NULL boolean is "cannot be decided", and
SQL's OR is the three-valued OR of :func:`leukos.rules._common.any3`.

Column convention of the row (``cols``): for each input analyte ``A`` the columns
``A_v`` (value in the canonical unit), ``A_c`` (comparator or null), ``A_ref`` (upper reference
limit or null), ``A_base`` (baseline value or null) and ``child`` (boolean or null).
"""

from __future__ import annotations

from leukos.knowledge import KnowledgeBase
from leukos.rules.definitions import (
    TLS_INPUTS,
    AboveReference,
    AnyOf,
    ByAge,
    Change,
    Compare,
    CountRule,
    Predicate,
    limit,
)

__all__ = ["compile_predicate", "compile_count", "compare_expr", "above_expr"]


def _null():
    import ibis

    return ibis.null("boolean")


def above_expr(value, comparator, thr, *, inclusive: bool):
    """:func:`leukos.rules._common.above` as an expression (censored results placed where they can be)."""
    import ibis

    c = comparator.coalesce("")
    at = value == thr
    return ibis.cases(
        (value.isnull(), _null()),
        (c == "", (value >= thr) if inclusive else (value > thr)),
        (c.isin([">", ">="]), ibis.ifelse((value > thr) | (at & ((c == ">") | ibis.literal(inclusive))),
                                          ibis.literal(True), _null())),
        else_=ibis.ifelse((value < thr) | (at & ((c == "<") | ibis.literal(not inclusive))),
                          ibis.literal(False), _null()),
    )


def compare_expr(p: Compare, value, comparator, kb: KnowledgeBase):
    """A :class:`Compare` over given value and comparator columns."""
    thr = limit(kb, p)
    if p.met_when == "above":
        return above_expr(value, comparator, thr, inclusive=p.inclusive)
    return ~above_expr(value, comparator, thr, inclusive=not p.inclusive)


class _Row:
    """Resolves (possibly virtual) input names to the columns of one analyte."""

    def __init__(self, t):
        self.t = t

    def cols(self, name: str):
        options = TLS_INPUTS.get(name, (name,))
        t = self.t
        v, c, ref, base = (t[f"{options[-1]}_{s}"] for s in ("v", "c", "ref", "base"))
        for a in reversed(options[:-1]):  # the first present analyte wins
            has = t[f"{a}_v"].notnull()
            v, c = has.ifelse(t[f"{a}_v"], v), has.ifelse(t[f"{a}_c"], c)
            ref, base = has.ifelse(t[f"{a}_ref"], ref), has.ifelse(t[f"{a}_base"], base)
        return v, c, ref, base


def compile_predicate(p: Predicate, t, kb: KnowledgeBase):
    """An ibis boolean expression (null = cannot be decided) for predicate ``p`` over table ``t``."""
    import ibis

    row = _Row(t)
    if isinstance(p, Compare):
        v, c, _, _ = row.cols(p.input)
        return compare_expr(p, v, c, kb)
    if isinstance(p, AboveReference):
        v, c, ref, _ = row.cols(p.input)
        return ibis.ifelse(ref.isnull(), _null(), above_expr(v, c, ref, inclusive=False))
    if isinstance(p, Change):
        v, _, _, base = row.cols(p.input)
        frac = float(kb.value(p.param))
        change = (v - base) / base
        hit = (change <= -frac) if p.falling else (change >= frac)
        return ibis.ifelse(v.isnull() | base.isnull() | (base == 0), ibis.literal(False), hit)
    if isinstance(p, AnyOf):
        out = None
        for part in p.parts:
            e = compile_predicate(part, t, kb)
            out = e if out is None else (out | e)
        return out
    if isinstance(p, ByAge):
        a, ch = compile_predicate(p.adult, t, kb), compile_predicate(p.child, t, kb)
        unknown = a if p.when_unknown == "adult" else ibis.ifelse(a == ch, a, _null())
        child = t["child"]
        return ibis.cases((child.isnull(), unknown), (child, ch), else_=a)
    raise TypeError(f"not a predicate: {p!r}")


def compile_count(values: dict[str, object], rule: CountRule, kb: KnowledgeBase):
    """(criteria met as int64, the three-valued "at least n met") from compiled criteria."""
    import ibis

    n = int(kb.value(rule.min_met_param))
    met = sum(ibis.ifelse(v.coalesce(False), 1, 0) for v in values.values())
    unknown = sum(ibis.ifelse(v.isnull(), 1, 0) for v in values.values())
    verdict = ibis.cases((met >= n, True), (met + unknown < n, False), else_=_null())
    return met.cast("int64"), verdict
