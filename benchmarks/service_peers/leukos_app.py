"""leukos as the benchmark runs it: ``uvicorn --factory benchmarks.service_peers.leukos_app:app``.

Authentication off by default (the peers have none); otherwise as a deployment runs it: audit trail on, and
``LEUKOS_DATA_DIR`` (the state folder, ``LEUKOS_BENCH_DIR``) and ``LEUKOS_PUBLIC_BASE_URL`` set, both
required outside development mode. So every patient-view asks the follow-up registry in that folder
whether the patient is registered (the benchmark's patients are not: no extra card), and card links
are built on the configured base URL. With ``LEUKOS_BENCH_JWKS`` (a JWKS file) and
``LEUKOS_BENCH_ISSUER`` set, authentication is on, as deployed: every call must carry a CDS client
JWT from that issuer, signed with a key of that file, for this endpoint, never used before
(``bench_service.py --auth`` mints them). Start-up objects are frozen out of the cyclic GC and the
serving GC thresholds set after the start-up warm-up, as ``leukos serve`` does
(:func:`leukos.service.app.warm_up`, :func:`leukos.service.app.settle_gc`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def app():
    from leukos.registry.settings import RegistrySettings
    from leukos.service.app import create_app, settle_gc, warm_up
    from leukos.service.settings import ServiceSettings

    state = Path(os.environ.get("LEUKOS_BENCH_DIR") or tempfile.mkdtemp(prefix="leukos-bench-"))
    jwks = os.environ.get("LEUKOS_BENCH_JWKS")
    auth = {"auth_disabled": False, "jwks_path": Path(jwks), "trusted_issuers": (os.environ["LEUKOS_BENCH_ISSUER"],)} \
        if jwks else {"auth_disabled": True}
    settings = ServiceSettings.from_env(os.environ, **auth, audit_log_path=state / "audit.jsonl",
                                        data_dir=state,  # other LEUKOS_* (e.g. LEUKOS_WORKERS) apply
                                        public_base_url=os.environ.get("LEUKOS_PUBLIC_BASE_URL", "http://127.0.0.1"))
    service = create_app(settings)
    # As LEUKOS_DATA_DIR does in a deployment: the registry in that folder is configured, so asked.
    service.state.registry_settings = RegistrySettings.from_env({"LEUKOS_DATA_DIR": str(state)})
    warm_up(service)
    settle_gc()
    return service
