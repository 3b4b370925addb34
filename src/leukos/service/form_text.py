"""Read a posted HTML form as text, refusing what is not UTF-8 instead of guessing.

The pages are UTF-8, and a browser sends their forms in UTF-8. Starlette's form parser does not
check: a percent-escape that is not UTF-8 (``ward=A%FFB``) becomes the replacement character "�",
and a raw byte that is not UTF-8 is read as Latin-1 ("ÿ"), in both encodings of a form. Either way
the page would assess, or the registry would store, text that nobody typed. :func:`read_form`
parses the form as Starlette does, after checking every field's name and value in the raw body;
:func:`unreadable_fields` is that check.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from starlette.datastructures import FormData
from starlette.requests import Request

from leukos.service.deps import service_state

__all__ = ["read_form", "unreadable_fields"]

_PART_NAME = re.compile(rb'name="([^"]*)"')
_NON_ASCII = re.compile(rb"%[89a-fA-F]|[\x80-\xff]")  # a byte beyond ASCII, percent-escaped or raw


def _text(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _shown(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")[:60]


def _urlencoded(body: bytes) -> list[str]:
    if _NON_ASCII.search(body) is None:  # the usual form: nothing beyond ASCII, escaped or raw
        return []
    bad: list[str] = []
    for pair in body.split(b"&"):
        name, _, value = pair.partition(b"=")
        name_b, value_b = (unquote_to_bytes(x.replace(b"+", b" ")) for x in (name, value))
        if _text(name_b) is None or _text(value_b) is None:
            bad.append(_shown(name_b))
    return bad


def _multipart(body: bytes, content_type: str) -> list[str]:
    if _text(body) is not None:
        return []
    boundary = re.search(r'boundary="?([^";]+)"?', content_type)
    if boundary is None:
        return ["(the form)"]
    bad: list[str] = []
    for part in body.split(b"--" + boundary.group(1).encode("latin-1")):
        if _text(part) is None:
            name = _PART_NAME.search(part.split(b"\r\n\r\n", 1)[0])
            bad.append(_shown(name.group(1)) if name else "(the form)")
    return bad


def unreadable_fields(body: bytes, content_type: str) -> list[str]:
    """The names of the fields of a form body whose name or value is not UTF-8 text (``[]`` if none).

    A name that is itself not UTF-8 is shown with "�" where its bad bytes are."""
    if content_type.startswith("multipart/form-data"):
        return _multipart(body, content_type)
    return _urlencoded(body)


async def read_form(request: Request) -> tuple[FormData, list[str]]:
    """The form, and the names of its fields that are not UTF-8 text (their values are not to be used).

    The check runs in the pages' worker pool: a body of the largest size allowed takes tens of
    milliseconds, which the event loop must not spend."""
    body = await request.body()  # read once: the form parser below reads the same bytes
    unreadable = await service_state(request).page_pool.run(unreadable_fields, body,
                                                         request.headers.get("content-type", ""))
    return await request.form(), unreadable
