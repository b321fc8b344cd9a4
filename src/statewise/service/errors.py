"""One mapping from statewise's errors to HTTP answers, so a user's mistake is never a 500.

Every error body is ``{"error": code, "message": text}``; messages come from the engine and
store, which never include secrets. A store that is briefly unreachable answers 503 with
``Retry-After``: the request changed nothing and may be sent again.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from statewise.errors import (
    DefinitionError,
    InvalidEventError,
    NotFoundError,
    StaleLeaseError,
    StatewiseError,
    TaskError,
    TransientStoreError,
    VersionConflictError,
)

RETRY_AFTER_SECONDS = 2

_STATUS: tuple[tuple[type[StatewiseError], int], ...] = (
    (NotFoundError, 404),
    (InvalidEventError, 409),
    (TaskError, 409),
    (VersionConflictError, 409),
    (StaleLeaseError, 409),
    (DefinitionError, 422),
    (TransientStoreError, 503),
)


def status_of(error: StatewiseError) -> int:
    """The HTTP status a statewise error answers with (400 for the rest)."""
    return next((code for kind, code in _STATUS if isinstance(error, kind)), 400)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    async def statewise_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StatewiseError)
        status = status_of(exc)
        return JSONResponse(
            {"error": getattr(exc, "code", "statewise"), "message": str(exc)},
            status_code=status,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None,
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        codes = {401: "unauthorised", 403: "forbidden", 404: "not_found"}
        return JSONResponse(
            {"error": codes.get(exc.status_code, "http"), "message": str(exc.detail)},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        ]
        return JSONResponse(
            {"error": "invalid_request", "message": "; ".join(problems)}, status_code=422
        )

    app.add_exception_handler(StatewiseError, statewise_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
