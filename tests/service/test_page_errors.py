"""Errors around the pages clinicians open are pages, never the API's JSON (leukos.service.page_errors).

A form too large, a form the framework cannot read, an address that is not a page, a bug: each was
answered on the web form's address with the API's JSON ({"error": ..., "details": [...]} or
{"detail": "Method Not Allowed"}). The API and CDS addresses keep their JSON."""

from __future__ import annotations

import re

import pytest


def _visible(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.S)).split())


@pytest.mark.parametrize("method, url, kw, status, says", [
    ("POST", "/ui/assess", {"data": {f"f{i}": "x" for i in range(1200)}}, 400, "Too many fields"),
    ("POST", "/ui/assess", {"data": {"paste": "x" * 1_200_000}}, 413, "A form can carry at most 1 MB"),
    ("GET", "/ui/assess", {}, 405, "This address is not a page"),
    ("GET", "/ui/no-such-page", {}, 404, "There is no page at this address"),
])
def test_an_error_on_a_page_address_is_a_page(dev_client, method, url, kw, status, says):
    r = dev_client.request(method, url, **kw)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("text/html"), r.text[:200]
    text = _visible(r.text)
    assert says in text and "Back to the assessment form" in text
    assert '{"' not in r.text and "details" not in text and "null" not in text


def test_a_bug_on_a_page_is_a_page_and_the_api_keeps_its_json(dev_client, monkeypatch):
    import leukos.service.ui as ui

    def broken(*a, **k):
        raise RuntimeError("a bug")

    monkeypatch.setattr(ui, "result_context", broken)
    r = dev_client.post("/ui/assess", data={"lab_wbc": "250", "unit_wbc": "10*9/L"})
    assert r.status_code == 500 and r.headers["content-type"].startswith("text/html")
    assert "leukos failed on this request" in _visible(r.text) and "a bug" not in _visible(r.text)
    api = dev_client.post("/api/assess", content=b"x" * 1_200_000, headers={"content-type": "application/json"})
    assert api.status_code == 413 and api.json()["error"] == "RequestTooLarge"
    assert dev_client.get("/api/no-such").json()["error"] == "NotFound"
