"""What ``summary.json`` counts: rows per (analyte, exclusion), duplicates, persons, unknown units.

One aggregate over the cleaned rows (one compilation, one pass), shared by both engines.
"""

from __future__ import annotations

__all__ = ["counts_expr", "counts_from_rows"]


def counts_expr(clean, persons_of=None):
    """Rows per (analyte, exclusion, unknown unit), with the duplicates split off the usable rows and
    the distinct persons, as one ibis expression over ``clean`` (:func:`clean_observations`).

    A usable row repeated (same person, analyte, time, value, comparator) is counted once as
    used and the repeats as ``duplicate``. The unit is kept in the grouping only for
    ``unknown_unit`` rows, which gives the unknown units without a second pass.

    ``persons_of``: the table ``clean`` was cleaned from (same rows, same ``person_id``): the
    persons are counted there, so that the engine need not keep the cleaned rows for a second
    pass.
    """
    import ibis

    ok = clean.exclusion.isnull()
    keyed = clean.select(analyte=clean.analyte, exclusion=ok.ifelse("", clean.exclusion),
                         unit_k=(clean.exclusion == "unknown_unit").ifelse(clean.unit, ibis.null("string")),
                         person_id=ok.ifelse(clean.person_id, ibis.null(clean.person_id.type())),
                         ts=ok.ifelse(clean.ts, ibis.null("timestamp")),
                         value=ok.ifelse(clean.value, ibis.null("float64")),
                         comparator=ok.ifelse(clean.comparator, ibis.null("string")))
    groups = keyed.group_by(["analyte", "exclusion", "unit_k", "person_id", "ts", "value", "comparator"]).aggregate(
        n=keyed.count())
    # Excluded rows need not be distinct: group them by (analyte, exclusion, unit_k) only.
    groups = groups.mutate(first=ibis.ifelse(groups.exclusion == "", 1, groups.n))
    per = groups.group_by(["analyte", "exclusion", "unit_k"]).aggregate(n=groups.first.sum(), all_n=groups.n.sum())
    src = clean if persons_of is None else persons_of
    persons = src.aggregate(persons=src.person_id.nunique())
    return per.cross_join(persons)


def counts_from_rows(rows: list[dict]) -> tuple[list[dict], int, list[dict]]:
    """(rows per (analyte, exclusion), distinct persons, unconvertible (analyte, unit) pairs) from the
    rows of :func:`counts_expr`. No rows means no screening rows at all (the cross join is empty)."""
    n_persons = int(rows[0]["persons"]) if rows else 0
    merged: dict[tuple, dict] = {}
    unknown: dict[tuple, int] = {}
    for r in rows:
        key = (r["analyte"], r["exclusion"])
        m = merged.setdefault(key, {"n": 0, "all_n": 0})
        # DuckDB's sum is a 128-bit integer, which reaches Python as a Decimal: counts are ints.
        m["n"] += int(r["n"])
        m["all_n"] += int(r["all_n"])
        if r["exclusion"] == "unknown_unit":
            unknown[(r["analyte"], r["unit_k"])] = unknown.get((r["analyte"], r["unit_k"]), 0) + int(r["all_n"])
    out = []
    for (analyte, exclusion), r in merged.items():
        if exclusion == "":
            out.append({"analyte": analyte, "exclusion": None, "n": r["n"]})
            if r["all_n"] > r["n"]:
                out.append({"analyte": analyte, "exclusion": "duplicate", "n": r["all_n"] - r["n"]})
        else:
            out.append({"analyte": analyte, "exclusion": exclusion, "n": r["all_n"]})
    unknown_rows = [{"analyte": a, "unit": u, "n": n} for (a, u), n in unknown.items()]
    return out, n_persons, unknown_rows
