"""The assessment rules. ``assess(case, kb)`` runs them all; each module is one rule family."""

from leukos.rules._common import threshold
from leukos.rules.engine import assess

__all__ = ["assess", "threshold"]
