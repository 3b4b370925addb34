"""The DuckDB plan of a screening run: the same ibis expressions, compiled to SQL once, run as SQL.

:mod:`leukos.screening.episodes` defines the cleaning, the semi-join and the episode logic once,
as ibis expressions that DuckDB and Spark both run. On DuckDB, building those expressions over
bound tables and letting ibis compile them query by query costs a second of Python per run (the
episode expression alone compiles to ~80 kB of SQL). Here they are built over *named*
placeholder tables whose schemas are known before the data is read, compiled to SQL text while
the engine scans (DuckDB releases the GIL), and then run on the DuckDB connection:

1. ``CREATE TEMP TABLE obs AS <the filtered scan>``: the one read of the lab table;
2. the distinct (analyte, unit) pairs -> unit factors (Python, :mod:`leukos.screening.factors`)
   -> a small temp table;
3. the counts (exclusions by reason, duplicates, persons, unknown units): one aggregate over
   ``obs`` joined to the factors;
4. ``CREATE TEMP TABLE valid AS <usable rows of the persons with a WBC above the threshold>``;
5. the episodes of ``valid`` (a few thousand rows at most): the stages of the episode expression
   (WBC episodes, chemistry per episode, everything joined) each into a small temp table, then
   the last one fetched as Arrow. Compiling the stages one by one costs ibis half the time of
   compiling the whole expression at once (its rewrites grow faster than the expression),
   and that compilation competes with the scan for the same cores.

Nothing here is clinical logic: the SQL is ibis's compilation of the shared expressions, so
DuckDB and Spark (which keeps running the expressions through ibis) evaluate the same thing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

__all__ = ["DuckPlan", "compile_plan", "FACTOR_SCHEMA"]

FACTOR_SCHEMA = {"f_analyte": "string", "f_unit": "string", "factor": "float64", "low": "float64",
                 "high": "float64"}


@dataclass(frozen=True)
class DuckPlan:
    """The SQL statements of one run and the temp tables they read and write."""

    obs_table: str
    factor_table: str
    valid_table: str
    counts_sql: str
    valid_sql: str
    stages: tuple[tuple[str, str], ...]  # (temp table, SQL) of the episode stages, run in this order
    episodes_sql: str
    episodes_schema: Any  # pyarrow.Schema the episodes are cast to (as ibis's to_pyarrow would)


def table_names() -> tuple[str, str, str]:
    """Fresh temp-table names (a connection may be reused by several runs)."""
    tag = uuid.uuid4().hex[:12]
    return f"leukos_obs_{tag}", f"leukos_unit_factors_{tag}", f"leukos_valid_{tag}"


def compile_plan(con, names: tuple[str, str, str], obs_schema, params, events=None, births=None) -> DuckPlan:
    """Compile counts, semi-join and episodes (:mod:`leukos.screening.episodes`) over named tables.

    ``con`` is the ibis DuckDB backend (its compiler and dialect); ``obs_schema`` the schema of
    the observations in the common shape; ``events``/``births`` ibis tables bound to ``con`` or None.
    """
    import ibis

    from leukos.screening.counts import counts_expr
    from leukos.screening.episodes import clean_observations, episodes, screened_persons

    obs_name, factor_name, valid_name = names
    obs = ibis.table(obs_schema, name=obs_name)
    factors = ibis.table(FACTOR_SCHEMA, name=factor_name)
    clean = clean_observations(obs, factors, params)
    valid = screened_persons(clean, params, obs=obs, factors=factors)
    staged: list[tuple[str, Any]] = []

    def stage(name: str, table):
        staged.append((f"{valid_name}_{name}", table))
        return ibis.table(table.schema(), name=staged[-1][0])

    ep = episodes(ibis.table(valid.schema(), name=valid_name), params, events, births=births, stage=stage)
    return DuckPlan(obs_table=obs_name, factor_table=factor_name, valid_table=valid_name,
                    counts_sql=str(con.compile(counts_expr(clean, persons_of=obs))), valid_sql=str(con.compile(valid)),
                    stages=tuple((name, str(con.compile(table))) for name, table in staged),
                    episodes_sql=str(con.compile(ep)), episodes_schema=ep.schema().to_pyarrow())
