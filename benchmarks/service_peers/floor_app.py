"""The floor: a bare FastAPI app answering patient-view with the trivial rule (pydantic request model,
no validation of the resources, no audit, no auth). ``uvicorn benchmarks.service_peers.floor_app:app``."""

from __future__ import annotations

from typing import Any

from benchmarks.service_peers.trivial_rule import cards
from fastapi import FastAPI
from pydantic import BaseModel


class CdsRequest(BaseModel):
    hook: str
    hookInstance: str
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None


app = FastAPI()


@app.post("/cds-services/{service_id}")
async def patient_view(service_id: str, req: CdsRequest) -> dict[str, Any]:
    return {"cards": cards(req.prefetch)}
