"""The web pages' work cannot hold up an EHR's CDS call (bulkhead).

Probe (2026-12-03): with one pool for everything, eight clients printing PDF reports (about a second
of CPU each) took every worker, and a CDS patient-view call that answers in 6 ms alone waited 7.8 s
(median; 9.9 s at worst). The pages now have their own pool. Here the pages' work is made to wait on
an event, so that whether the CDS call is answered does not depend on how fast the machine is: with
every page worker busy and more page calls queued, the CDS call is answered 200 (before, it waited
for a worker until its wall time ran out: 503). Then the pages are let go and are answered too.
"""

from __future__ import annotations

import threading

import httpx
import pytest

import leukos.service.ui as ui
from leukos.service.settings import ServiceSettings

from .conftest import EXAMPLES
from .fhir_data import patient_view_request
from .live import serve

PAGE_CALLS = 7  # more than the pages' workers (2) and more than the CDS pool's (4) as well


def test_a_cds_call_is_answered_while_every_page_worker_is_busy(monkeypatch):
    release = threading.Event()
    entered = threading.Semaphore(0)
    real_case = ui._case

    def held_case(*args, **kwargs):
        entered.release()
        release.wait(60)
        return real_case(*args, **kwargs)

    monkeypatch.setattr(ui, "_case", held_case)
    settings = ServiceSettings(auth_disabled=True, examples_dir=EXAMPLES, request_timeout_s=20)
    page_codes: list[int] = []
    with serve(settings) as url:
        def page() -> None:
            r = httpx.post(f"{url}/ui/assess", data={"example": "01-aml-leukostasis.yaml"}, timeout=60)
            page_codes.append(r.status_code)

        pages = [threading.Thread(target=page) for _ in range(PAGE_CALLS)]
        for t in pages:
            t.start()
        try:
            for _ in range(2):  # every page worker is now holding a call; the rest are queued
                assert entered.acquire(timeout=30), "the page calls never reached the pages' workers"
            cds = httpx.post(f"{url}/cds-services/leukos-patient-view",
                             json=patient_view_request("01-aml-leukostasis.yaml"), timeout=15)
            assert cds.status_code == 200 and cds.json()["cards"], cds.text[:300]
            assert not release.is_set() and len(page_codes) == 0  # the pages were still held meanwhile
        finally:
            release.set()
            for t in pages:
                t.join(timeout=90)
    assert page_codes == [200] * PAGE_CALLS


def test_the_pages_pool_has_its_own_threads():
    s = ServiceSettings(auth_disabled=True)
    assert (s.workers, s.page_workers) == (4, 2)
    with pytest.raises(ValueError):
        ServiceSettings(auth_disabled=True, page_workers=0)
