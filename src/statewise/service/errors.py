"""One mapping from statewise's errors to HTTP answers, so a user's mistake is never a 500.

Every error body is ``{"error": code, "message": text}``. Messages come from the engine and
store, which never include secrets; a store's own failure is not echoed at all (it can name
the database, its host, a file path or a table), only logged, and answered in general terms.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from statewise.errors import (
    DefinitionError,
    InvalidEventError,
    InvalidInputError,
    NotFoundError,
    StaleLeaseError,
    StatewiseError,
    StoreError,
    TaskError,
    VersionConflictError,
)

_STATUS: tuple[tuple[type[StatewiseError], int], ...] = (
    (NotFoundError, 404),
    (InvalidEventError, 409),
    (TaskError, 409),
    (VersionConflictError, 409),
    (StaleLeaseError, 409),
    (DefinitionError, 422),
    (InvalidInputError, 422),
)


logger = logging.getLogger("statewise.service")
# Store errors whose messages are about the request (an item moved meanwhile, a version edited).
_PUBLIC_STORE_ERRORS = (StaleLeaseError, VersionConflictError)
STORE_FAILED = "the store could not complete this request; the service log has the details"


def public_message(error: Exception) -> str:
    """What an answer may say about ``error``: its message, but not a store's own failure.

    That one is logged here, in full, and answered in general terms.
    """
    if isinstance(error, StoreError) and not isinstance(error, _PUBLIC_STORE_ERRORS):
        logger.error("the store failed: %s", error)
        return STORE_FAILED
    return str(error)


def status_of(error: StatewiseError) -> int:
    """The HTTP status a statewise error answers with (400 for the rest)."""
    return next((code for kind, code in _STATUS if isinstance(error, kind)), 400)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    async def statewise_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StatewiseError)
        return JSONResponse(
            {"error": getattr(exc, "code", "statewise"), "message": public_message(exc)},
            status_code=status_of(exc),
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
