"""The trivial rule both peers answer with (stdlib only; a benchmark stand-in, not clinical logic).

Newest final WBC Observation (LOINC 6690-2, 26464-8 or 804-5, a count per volume) above 100 ×10⁹/L
→ one critical card; otherwise no cards. It reads JSON dicts and validates nothing: it is the
floor of what a CDS service must do per request, not a service one could deploy.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

WBC_LOINC = frozenset({"6690-2", "26464-8", "804-5"})
TO_10E9_PER_L = {"10*3/uL": 1.0, "10*9/L": 1.0, "/nL": 1.0, "10*3/mm3": 1.0, "/uL": 1e-3, "/mm3": 1e-3}
THRESHOLD_10E9_PER_L = 100.0  # benchmark stand-in


def _resources(prefetch: dict[str, Any] | None):
    for value in (prefetch or {}).values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            for entry in value.get("entry") or ():
                if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                    yield entry["resource"]
        elif isinstance(value, dict):
            yield value


def cards(prefetch: dict[str, Any] | None) -> list[dict[str, Any]]:
    newest = None
    for r in _resources(prefetch):
        if r.get("resourceType") != "Observation" or r.get("status") not in ("final", "amended", "corrected"):
            continue
        if not any(c.get("system") == "http://loinc.org" and c.get("code") in WBC_LOINC
                   for c in (r.get("code") or {}).get("coding") or ()):
            continue
        q = r.get("valueQuantity") or {}
        factor = TO_10E9_PER_L.get(q.get("code") or q.get("unit"))
        if factor is None or not isinstance(q.get("value"), (int, float)):
            continue
        try:
            when = datetime.fromisoformat(str(r.get("effectiveDateTime")).replace("Z", "+00:00"))
        except ValueError:
            continue
        if newest is None or when > newest[0]:
            newest = (when, q["value"] * factor)
    if newest is None or newest[1] <= THRESHOLD_10E9_PER_L:
        return []
    return [{"uuid": str(uuid.uuid4()), "summary": f"WBC {newest[1]:g} x10^9/L above {THRESHOLD_10E9_PER_L:g}",
             "indicator": "critical", "source": {"label": "benchmark floor"}}]
