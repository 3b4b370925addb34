"""Reading a case from a path or stdin, with a size limit and user-facing errors."""

from __future__ import annotations

import sys
from pathlib import Path

from leukos.domain.case import Case
from leukos.errors import CaseFormatError, ErrorDetail
from leukos.interop.case_format import MAX_CASE_BYTES, load_case_text
from leukos.knowledge import KnowledgeBase

__all__ = ["read_case", "read_bytes", "parse_overrides"]


def read_bytes(source: str) -> tuple[bytes, str]:
    """Read at most MAX_CASE_BYTES + 1 bytes from a path or '-' (stdin); never the whole of a huge file."""
    if source == "-":
        data = sys.stdin.buffer.read(MAX_CASE_BYTES + 1)
        return data, "stdin"
    path = Path(source)
    if not path.exists():
        raise CaseFormatError(ErrorDetail("CASE", source, "an existing file (or - for stdin)", "check the path"))
    if path.is_dir():
        raise CaseFormatError(ErrorDetail("CASE", source, "a file, not a folder", "name one case file"))
    with path.open("rb") as fh:
        return fh.read(MAX_CASE_BYTES + 1), path.name


def read_case(source: str, kb: KnowledgeBase) -> Case:
    data, name = read_bytes(source)
    return load_case_text(data, kb, name=name)


def parse_overrides(pairs: list[str] | None) -> dict[str, object]:
    """``--set key=value`` pairs; values parsed as int, float, or text."""
    out: dict[str, object] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise CaseFormatError(ErrorDetail("--set", pair, "key=value, e.g. hyperleukocytosis.wbc_threshold=50",
                                              "write the parameter key, '=', and the value"))
        key, raw = pair.split("=", 1)
        value: object = raw
        for conv in (int, float):
            try:
                value = conv(raw)
                break
            except ValueError:
                continue
        out[key.strip()] = value
    return out
