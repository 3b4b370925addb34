"""The card's working block: the first 3000 characters of the JSON, encoded only as far as needed."""

from __future__ import annotations

import json

import pytest

from leukos.service.cds.cards import _working_md


def _reference(working, limit=3000):
    text = json.dumps(working, indent=1, ensure_ascii=False, default=str)
    if len(text) > limit:
        text = text[:limit] + "\n…"
    return "```json\n" + text + "\n```"


@pytest.mark.parametrize("working", [
    {},
    {"score": 3.5, "points": [{"feature": "wbc", "weight": 2}], "note": "ß µ"},
    {"rows": [{"i": i, "text": "x" * (i % 37), "when": object.__name__} for i in range(400)]},
    {"exact": "y" * 2983},  # the JSON text is just around the limit
    {"exact": "y" * 2984},
    {"exact": "y" * 2985},
])
def test_working_block_equals_truncated_json_dumps(working):
    assert _working_md(working) == _reference(working)
    assert _working_md(working, limit=50) == _reference(working, limit=50)
