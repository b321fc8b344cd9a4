"""One mapping from statewise's errors to HTTP answers, so a user's mistake is never a 500.

Every error body is ``{"error": code, "message": text}``. Messages come from the engine and
store, which never include secrets; a store's own failure is not echoed at all (it can name
the database, its host, a file path or a table), only logged, and answered in general terms.
A store that is briefly unreachable answers 503 with ``Retry-After``: the request changed
nothing and may be sent again.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from statewise.errors import (
    ConflictError,
    DefinitionError,
    ExternalProgramError,
    InvalidEventError,
    InvalidInputError,
    NotFoundError,
    StaleLeaseError,
    StatewiseError,
    StoreError,
    TaskError,
    TransientStoreError,
    VersionConflictError,
)
from statewise.inputs import BODY_BYTES_ENV

RETRY_AFTER_SECONDS = 2

_STATUS: tuple[tuple[type[StatewiseError], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),
    (InvalidEventError, 409),
    (TaskError, 409),
    (VersionConflictError, 409),
    (StaleLeaseError, 409),
    (DefinitionError, 422),
    (InvalidInputError, 422),
    (TransientStoreError, 503),
    # The service's host lacks a program (Graphviz), or it broke: not the request's fault.
    (ExternalProgramError, 501),
)
# Starlette's own HTTP errors too (a body that cannot be parsed, one too large), so that
# every refusal has the same shape.
_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorised",
    403: "forbidden",
    404: "not_found",
    413: "too_large",
}


logger = logging.getLogger("statewise.service")
# Store errors whose messages are about the request (an item moved meanwhile, a version edited).
_PUBLIC_STORE_ERRORS = (StaleLeaseError, VersionConflictError)
STORE_FAILED = "the store could not complete this request; the service log has the details"
STORE_UNAVAILABLE = (
    f"the store is briefly unavailable (locked, or its connection dropped); nothing changed: "
    f"send the request again in {RETRY_AFTER_SECONDS} s"
)


def public_message(error: Exception) -> str:
    """What an answer may say about ``error``: its message, but not a store's own failure.

    That one is logged here, in full, and answered in general terms.
    """
    if isinstance(error, TransientStoreError):
        logger.warning("the store is unavailable: %s", error)
        return STORE_UNAVAILABLE
    if isinstance(error, StoreError) and not isinstance(error, _PUBLIC_STORE_ERRORS):
        logger.error("the store failed: %s", error)
        return STORE_FAILED
    return str(error)


def status_of(error: StatewiseError) -> int:
    """The HTTP status a statewise error answers with (400 for the rest)."""
    return next((code for kind, code in _STATUS if isinstance(error, kind)), 400)


def too_large(max_body_bytes: int) -> str:
    """What a 413 says: the limit, and where it is set."""
    return (
        f"the request body is larger than the limit of {max_body_bytes:,} bytes "
        f"(statewise serve --max-body-bytes, ${BODY_BYTES_ENV})"
    )


def _message(exc: HTTPException) -> str:
    """The detail, and for a body the parser could not read, why (nesting, a long number)."""
    cause = exc.__cause__
    if exc.status_code != 400 or cause is None:
        return str(exc.detail)
    why = "it is nested too deep" if isinstance(cause, RecursionError) else str(cause)
    return f"the request body cannot be read as JSON: {why}"


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    async def statewise_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StatewiseError)
        status = status_of(exc)
        return JSONResponse(
            {"error": getattr(exc, "code", "statewise"), "message": public_message(exc)},
            status_code=status,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None,
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return JSONResponse(
            {"error": _HTTP_CODES.get(exc.status_code, "http"), "message": _message(exc)},
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
