"""Patient and procedure registry on a real database (SQLite by default, PostgreSQL by URL).

Not part of the core: it stores what the core computes and feeds the core's follow-up
(:mod:`leukos.followup`) with plain values. ``open_registry(settings, kb)`` migrates the schema
on first use and returns a :class:`Registry`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leukos.registry.settings import RegistrySettings

if TYPE_CHECKING:
    from leukos.knowledge import KnowledgeBase
    from leukos.registry.store import Registry

__all__ = ["RegistrySettings", "open_registry"]


def open_registry(settings: RegistrySettings, kb: KnowledgeBase | None = None) -> Registry:
    """The registry at ``settings`` (schema created or upgraded to the newest migration)."""
    from leukos.knowledge import load_knowledge
    from leukos.registry.db import make_engine, upgrade
    from leukos.registry.store import Registry

    engine = make_engine(settings)
    upgrade(engine)
    return Registry(engine, kb or load_knowledge())
