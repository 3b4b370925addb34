"""The core is a leaf: domain, units, knowledge, rules, apheresis and the presenter that words their results
for people (``leukos.present``, shared by the CLI, the web page and the CDS cards) import no CLI, web, database or
FHIR library. Checked twice: statically over the source, and at run time in a fresh interpreter."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "leukos"
CORE = ["domain", "units.py", "knowledge", "rules", "apheresis", "followup", "errors.py", "present"]
FORBIDDEN = ("typer", "rich", "click", "fastapi", "starlette", "jinja2", "uvicorn", "httpx", "duckdb", "ibis",
             "pyspark", "pandas", "pyarrow", "fhir", "fhir_core", "yaml", "leukos.cli", "leukos.service",
             "leukos.screening", "leukos.interop", "matplotlib", "plotly", "sqlite3", "requests")


def _core_files():
    for item in CORE:
        path = SRC / item
        yield from ([path] if path.is_file() else sorted(path.rglob("*.py")))


def _imports(path: Path):
    tree = ast.parse(path.read_text("utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_core_sources_import_no_surface_library():
    offenders = []
    for path in _core_files():
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                offenders.append(f"{path.relative_to(SRC)}: import {name}")
    assert offenders == []


def test_core_at_run_time_loads_no_surface_library():
    code = (
        "import sys, json\n"
        "import leukos.rules, leukos.domain, leukos.units, leukos.knowledge, leukos.present\n"
        "from leukos.knowledge import load_knowledge\n"
        "from leukos.rules import assess\n"
        "from leukos.domain.case import Case\n"
        "assess(Case(), load_knowledge())\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out)
    bad = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert bad == []


def test_the_check_can_fail(tmp_path):
    """The static scan really recognises a forbidden import."""
    p = tmp_path / "x.py"
    p.write_text("import typer\nfrom fhir.resources.R4B import bundle\n")
    assert list(_imports(p)) == ["typer", "fhir.resources.R4B"]
