"""Operations: ``GET /metrics`` (Prometheus) and ``POST /v1/models/reload`` (check the model now)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials

from serve import metrics
from serve.auth import AdminDep, bearer_scheme, principal_for
from serve.deps import ReloaderDep, ServiceDep
from serve.schemas import ERRORS

router = APIRouter(tags=["operations"])


def metrics_access(
    service: ServiceDep, credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme)
) -> None:
    """A key with the role analyst (or admin), unless ``PODSKAZKA_METRICS_PUBLIC=true``."""
    if service.settings.metrics_public:
        return
    principal = principal_for(service, credentials.credentials if credentials else None)
    if not principal.has("analyst"):
        raise HTTPException(403, f"the key {principal.key_id!r} lacks the role 'analyst' needed for /metrics")


@router.get("/metrics", dependencies=[Depends(metrics_access)], responses=ERRORS, response_class=Response)
def prometheus_metrics() -> Response:
    """Prometheus metrics in the text format (role analyst; see README «Operating it»)."""
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


@router.post("/v1/models/reload", responses=ERRORS)
async def reload_model(reloader: ReloaderDep, _: AdminDep) -> dict[str, Any]:
    """Check the model source now (role admin): load, verify and smoke-test a changed bundle and swap
    it in; a failure keeps the old model and is returned in ``error``. With several server processes
    this reaches the one that answers; the others see the change within their poll interval."""
    if reloader is None:
        raise HTTPException(404, "this server was given its model directly; there is nothing to reload")
    return await reloader.check(force=True)
