"""Neither the web pages nor the REST API can hold up an EHR's CDS call (bulkheads).

Probes (2026-12-03): with one pool for everything, a CDS patient-view call that answers in 6-7 ms
alone waited 7.8 s (median; 9.9 s at worst) while eight clients printed PDF reports (about a second
of CPU each), and 1.2 s while eight clients ran /api/simulate. The pages and the REST API now have
pools of their own. Here their work is made to wait on an event, so that whether the CDS call is
answered does not depend on how fast the machine is: with every worker of the other surface busy
and more of its calls queued, the CDS call is answered 200 (before, it waited for a worker until the
test gave up). Then the held calls are let go and are answered too.
"""

from __future__ import annotations

import threading

import httpx
import pytest

import leukos.service.api as api
import leukos.service.ui as ui
from leukos.service.settings import ServiceSettings

from .conftest import EXAMPLES
from .fhir_data import patient_view_request
from .live import serve

HELD = 7  # more than the surface's workers (2) and more than the CDS pool's (4) as well
EXAMPLE = "01-aml-leukostasis.yaml"
CASE = (EXAMPLES / EXAMPLE).read_bytes()


def _page(url: str) -> httpx.Response:
    return httpx.post(f"{url}/ui/assess", data={"example": EXAMPLE}, timeout=60)


def _rest(url: str) -> httpx.Response:
    return httpx.post(f"{url}/api/simulate", content=CASE, headers={"Content-Type": "application/yaml"}, timeout=60)


@pytest.mark.parametrize("module, held_fn, call", [(ui, "_case", _page), (api, "_case", _rest)],
                         ids=["web pages", "REST API"])
def test_a_cds_call_is_answered_while_every_worker_of_another_surface_is_busy(monkeypatch, module, held_fn, call):
    release = threading.Event()
    entered = threading.Semaphore(0)
    real = getattr(module, held_fn)

    def held(*args, **kwargs):
        entered.release()
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, held_fn, held)
    settings = ServiceSettings(auth_disabled=True, examples_dir=EXAMPLES, request_timeout_s=20)
    codes: list[int] = []
    with serve(settings) as url:
        threads = [threading.Thread(target=lambda: codes.append(call(url).status_code)) for _ in range(HELD)]
        for t in threads:
            t.start()
        try:
            for _ in range(2):  # every worker of that surface is now holding a call; the rest are queued
                assert entered.acquire(timeout=30), "the held calls never reached their workers"
            cds = httpx.post(f"{url}/cds-services/leukos-patient-view", json=patient_view_request(EXAMPLE), timeout=15)
            assert cds.status_code == 200 and cds.json()["cards"], cds.text[:300]
            assert not release.is_set() and len(codes) == 0  # the other surface's calls were still held meanwhile
        finally:
            release.set()
            for t in threads:
                t.join(timeout=90)
    assert codes == [200] * HELD


def test_each_surface_has_its_own_threads():
    s = ServiceSettings(auth_disabled=True)
    assert (s.workers, s.api_workers, s.page_workers) == (4, 2, 2)
    for name in ("api_workers", "page_workers"):
        with pytest.raises(ValueError):
            ServiceSettings(auth_disabled=True, **{name: 0})
