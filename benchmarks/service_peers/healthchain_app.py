"""The peer: the trivial rule as a HealthChain CDS Hooks service, written the way HealthChain's gateway
documentation shows (CDSHooksService + HealthChainAPI). Needs ``healthchain`` (its pins conflict with
leukos's, so install it in its own virtualenv). Endpoint: ``POST /cds/cds-services/bench-wbc``.
"""

from __future__ import annotations

from benchmarks.service_peers.trivial_rule import cards
from healthchain.gateway import CDSHooksService, HealthChainAPI
from healthchain.models import CDSRequest, CDSResponse
from healthchain.models.responses.cdsresponse import Card

cds = CDSHooksService()


@cds.hook("patient-view", id="bench-wbc")
def bench_wbc(request: CDSRequest) -> CDSResponse:
    return CDSResponse(cards=[Card(**c) for c in cards(request.prefetch)])


app = HealthChainAPI(title="benchmark peer")
app.register_service(cds, path="/cds")
