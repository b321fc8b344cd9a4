"""``GET /metrics``: the Prometheus exposition of one service, as a FastAPI router.

The service mounts it with the dependencies it authorises requests by (a scraper carries a
viewer's token like any other reader). The store is read on the request's own event loop
(see :mod:`statewise.observe.snapshot`), so a scrape can never block the loop on the store.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from statewise.observe.metrics import Metrics


def metrics_router(metrics: Metrics, path: str = "/metrics") -> APIRouter:
    """A router serving ``metrics`` at ``path`` in the text or OpenMetrics format asked for."""
    router = APIRouter()

    @router.get(
        path,
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
    )
    async def scrape(request: Request) -> Response:
        body, content_type = await metrics.render(request.headers.get("accept", ""))
        return Response(body, media_type=content_type)

    return router
