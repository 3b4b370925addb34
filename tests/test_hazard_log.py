"""Every control in docs/hazard-log.yaml names tests that exist."""

from __future__ import annotations

import ast

import yaml

from tests.conftest import REPO


def _test_names(path):
    tree = ast.parse(path.read_text("utf-8"))
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def test_every_hazard_has_existing_tests():
    hazards = yaml.safe_load((REPO / "docs" / "hazard-log.yaml").read_text("utf-8"))
    assert hazards
    for hz in hazards:
        assert hz["control"] and hz["tests"], hz["id"]
        for node in hz["tests"]:
            file, name = node.split("::")
            assert name in _test_names(REPO / file), f"{hz['id']}: {node} not found"
