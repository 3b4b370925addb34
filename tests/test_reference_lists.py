"""A reference list names each publication once. Two citation keys of the knowledge base may cite one
publication for different statements (``ganzel2012`` for the practice review, ``blood_rev_transfusion``
for its red-cell transfusion statement, read only in secondary summaries): the card, the page and the
CLI list it once, unverified when either use is, and never show a citation key."""

from __future__ import annotations

import dataclasses
import re

from typer.testing import CliRunner

from leukos.cli.main import app, register
from leukos.knowledge import load_knowledge
from leukos.service.views import cite
from tests.conftest import EXAMPLES

KB = load_knowledge()
TWO_KEYS = ("ganzel2012", "blood_rev_transfusion")


def test_the_two_keys_cite_one_publication():
    a, b = (KB.citations[k] for k in TWO_KEYS)
    assert (a.short, a.title_sentence, a.link) == (b.short, b.title_sentence, b.link)


def test_a_card_lists_one_publication_once_and_unverified_if_either_use_is():
    # the first key made fully verified (a copy of the knowledge base): only the second use is unverified
    first = dataclasses.replace(KB.citations[TWO_KEYS[0]], unverified=())
    kb = dataclasses.replace(KB, citations={**KB.citations, TWO_KEYS[0]: first})
    assert not cite(kb, TWO_KEYS[:1])[0].unverified
    (view,) = cite(kb, TWO_KEYS)
    assert view.key == TWO_KEYS[0] and view.unverified
    (again,) = cite(kb, tuple(reversed(TWO_KEYS)))
    assert again.unverified and again.text == view.text
    views = cite(KB, ("rollig2015", *TWO_KEYS, "rollig2015"))
    assert [v.key for v in views] == ["rollig2015", "ganzel2012"]


def test_the_cli_lists_each_publication_once_without_citation_keys():
    register()
    r = CliRunner().invoke(app, ["assess", str(EXAMPLES / "01-aml-leukostasis.yaml"), "--explain"])
    assert r.exit_code == 0, r.output
    refs = " ".join(r.output.split("References", 1)[1].split())
    assert refs.count("Hyperleukocytosis, leukostasis and leukapheresis: practice management") == 1
    assert "red-cell transfusion statement" in refs  # the second key's unverified part is kept
    assert ".." not in refs.replace("...", "")
    for key in KB.citations:
        assert not re.search(rf"\b{re.escape(key)}\b", refs), key
    assert re.search(r"\b1\. Ganzel C", refs)
