"""The knowledge base: thresholds, criteria, vocabularies and citations, as data.

Every number a rule uses lives in a TOML file under ``data/`` with its unit, its citation
keys and a verification status (V seen in a source, P partly seen, U unverified).
:func:`load_knowledge` reads them once; rules receive the
resulting :class:`KnowledgeBase` as an argument and never read files themselves.
"""

from leukos.knowledge.base import (
    Analyte,
    Citation,
    KnowledgeBase,
    Parameter,
    Symptom,
    load_knowledge,
)

__all__ = ["Analyte", "Citation", "KnowledgeBase", "Parameter", "Symptom", "load_knowledge"]
