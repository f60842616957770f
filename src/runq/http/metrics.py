"""/metrics in the Prometheus text format."""

from __future__ import annotations

from litestar import Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .deps import BrokerDep


@get("/metrics", include_in_schema=False, media_type=CONTENT_TYPE_LATEST)
async def metrics(broker: BrokerDep) -> Response[bytes]:
    """Counters and histograms as this broker saw them; depths and workers for the
    whole cluster, read from the store at the scrape."""
    m = broker.metrics
    m.set_depths(await broker.store.counts())
    workers = await broker.cluster.workers()
    m.workers.set(len(workers))
    m.slots.set(sum(w.concurrency for w in workers))
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
