"""The web UI's CPU work (parse, assess, plan, simulate, report) runs in the pages' bounded worker pool.

Brief: "CPU-bound work never runs on the async event loop". The assessment of a UI request is held
inside the worker until the health check has answered: if the handler ran it on the event loop,
the health check could not answer meanwhile (the hold would end by its timeout instead).
"""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

import leukos.service.ui as ui
from leukos.service.app import create_app
from leukos.service.settings import ServiceSettings

from .conftest import BASE, EXAMPLES, needs_engine

ROUTES = [("/ui/assess", {"example": "01-aml-leukostasis.yaml"}),
          ("/ui/report?format=html", {"example": "01-aml-leukostasis.yaml"})]


@pytest.mark.parametrize("url,data", ROUTES, ids=["assess", "report-html"])
def test_health_answers_while_a_ui_assessment_runs_in_the_pool(tmp_path, monkeypatch, url, data):
    needs_engine()
    app = create_app(ServiceSettings(auth_disabled=True, examples_dir=EXAMPLES, audit_log_path=tmp_path / "a.jsonl"))
    entered, release = threading.Event(), threading.Event()
    seen: dict[str, object] = {}
    real = ui.result_context

    def held(*args, **kw):
        seen["thread"] = threading.current_thread().name
        entered.set()
        seen["released"] = release.wait(10)  # False: nobody released it (the event loop was blocked)
        return real(*args, **kw)

    monkeypatch.setattr(ui, "result_context", held)

    async def scenario():
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url=BASE, timeout=30) as c:
            page = asyncio.create_task(c.post(url, data=data))
            for _ in range(500):
                if entered.is_set() or page.done():
                    break
                await asyncio.sleep(0.01)
            health = await c.get("/api/health")
            release.set()
            return health, await page

    health, page = asyncio.run(scenario())
    assert health.status_code == 200
    assert seen.get("released") is True, "the UI assessment blocked the event loop"
    assert str(seen["thread"]).startswith("leukos-pages"), seen["thread"]  # the pages' own bounded pool
    assert page.status_code == 200 and "leukapheresis" in page.text.lower()
