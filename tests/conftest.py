"""Shared fixtures: the knowledge base and a small case builder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from leukos.interop.case_format import case_from_dict
from leukos.knowledge import load_knowledge

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session")
def kb():
    return load_knowledge()


def make_case(labs: dict[str, Any] | None = None, symptoms: list[str] | None = None, **top: Any):
    """Build a Case from case-format fragments (symptoms=None means 'not recorded')."""
    doc: dict[str, Any] = {"labs": labs or {}}
    if symptoms is not None:
        doc["symptoms"] = symptoms
    doc.update(top)
    return case_from_dict(doc)
