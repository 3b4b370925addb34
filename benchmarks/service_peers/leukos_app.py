"""leukos as the benchmark runs it: ``uvicorn --factory benchmarks.service_peers.leukos_app:app``.

Authentication off (the peers have none), audit trail on (as deployed) in ``LEUKOS_BENCH_DIR``,
start-up objects frozen out of the cyclic GC and the serving GC thresholds set, as ``leukos serve``
does (:func:`leukos.service.app.settle_gc`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def app():
    from leukos.service.app import create_app, settle_gc
    from leukos.service.settings import ServiceSettings

    state = Path(os.environ.get("LEUKOS_BENCH_DIR") or tempfile.mkdtemp(prefix="leukos-bench-"))
    settings = ServiceSettings.from_env(os.environ, auth_disabled=True, audit_log_path=state / "audit.jsonl",
                                        data_dir=state)  # other LEUKOS_* (e.g. LEUKOS_WORKERS) apply
    service = create_app(settings)
    settle_gc()
    return service
