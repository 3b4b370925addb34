"""Differential diagnosis of extreme leukocytosis: the slot in the assessment.

Filled by the 'Differential diagnosis…' issue. Until then the assessment says that the
differential was not assessed (see rules/engine.py), rather than presenting an empty list as
a finding.
"""

from __future__ import annotations

from leukos.domain.assessment import DifferentialEntry
from leukos.domain.case import Case
from leukos.knowledge import KnowledgeBase

__all__ = ["differential", "IMPLEMENTED"]

IMPLEMENTED = False


def differential(case: Case, kb: KnowledgeBase) -> tuple[DifferentialEntry, ...]:
    """Ranked differential diagnosis (not implemented yet: returns no entries)."""
    return ()
