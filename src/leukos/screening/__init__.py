"""Population screening of lab data for hyperleukocytosis episodes (DuckDB and Spark through ibis).

An adapter package: it may import duckdb, ibis and pyspark; the core never imports it.
"""

from leukos.screening.engine import FORMATS, ScreenOptions, ScreenResult, screen
from leukos.screening.episodes import EPISODE_COLUMNS, EXCLUSION_REASONS, ScreenParams

__all__ = ["FORMATS", "ScreenOptions", "ScreenResult", "screen", "EPISODE_COLUMNS", "EXCLUSION_REASONS",
           "ScreenParams"]
