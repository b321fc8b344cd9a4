"""The one place where pydantic-ai, provider and HTTP errors become statewise errors.

Everything an agent run raises passes through :func:`translated`, which decides who has to act:

* waiting helps (rate limits, overload, 5xx, timeouts, dropped connections): TransientError,
  carrying the provider's Retry-After so the next attempt honours it;
* the model's reply was unusable (schema violations after the in-run retries, too many tool
  rounds, truncated output): InvalidOutputError;
* nothing will change by retrying (bad key, unknown model, rejected request, exhausted quota,
  a template or configuration mistake): PermanentError;
* the server refused a parameter or feature of the request (llama.cpp's 500 on a forced
  ``tool_choice``, its "Input should be 'text' or 'json_object'" on ``json_schema``, vLLM's
  400 when auto tool choice needs a server flag, Ollama's "does not support tools"), whatever
  the status: UnsupportedRequestError, naming the server's message. An outage never reads
  like that, so a plain 5xx stays transient;
* anything else was not meant to happen (a bug in a tool): CommandDefectError, a defect that
  fails the item.

Every message is scrubbed of secrets before it leaves: the values of credential-like
environment variables and anything shaped like an API key. The original exception is not
chained, because its text (an SDK's error body, a URL) may hold the key. What the failed run
still cost is attached as ``usage`` for the audit trail.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
from pydantic_ai.exceptions import (
    ConcurrencyLimitExceeded,
    ContentFilterError,
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelContextWindowExceededError,
    ModelFeatureUnsupportedError,
    ModelHTTPError,
    ModelNotFoundError,
    ModelQuotaExceededError,
    ModelRateLimitError,
    ModelRequestRejectedError,
    ModelRequestTimeout,
    ModelServerError,
    ModelUnavailableError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
    UserError,
)

from statewise.errors import (
    CommandDefectError,
    CommandError,
    InvalidOutputError,
    PermanentError,
    StatewiseError,
    StoreError,
    TimedOutError,
    TransientError,
    UnsupportedRequestError,
)

REDACTED = "[redacted]"
# Names of environment variables whose values are credentials.
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|CREDENTIALS?)$", re.IGNORECASE)
_MIN_SECRET = 8
# Shapes of keys, for secrets that did not come from the environment.
_KEY_SHAPES = re.compile(
    r"\b(?:sk|pk|rk|gsk|xai|key|sess)-[A-Za-z0-9_\-]{8,}"
    r"|\bBearer\s+[A-Za-z0-9_\-\.=]{8,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bAIza[0-9A-Za-z_\-]{20,}"
    r"|(?<=[?&]key=)[^&\s'\"]+"
    r"|(?<=[?&]token=)[^&\s'\"]+"
    r"|(?<=[?&]api_key=)[^&\s'\"]+",
    re.IGNORECASE,
)
UNSUPPORTED = "the server does not support this request: "
_TRANSIENT_STATUS = frozenset({408, 409, 425, 429})
# What servers say when they refuse a request's parameter or feature (see the module docstring).
_UNSUPPORTED = re.compile(
    r"not supported|unsupported|does not support|not implemented|input should be"
    r"|must be one of|requires --|--enable-|\b(?:tool_choice|response_format|json_schema"
    r"|max_completion_tokens|guided_json|parallel_tool_calls)\b",
    re.IGNORECASE,
)
_SPECIFIC_REJECTIONS = (
    ModelAuthenticationError,
    ModelNotFoundError,
    ModelContextWindowExceededError,
)
# Statuses that carry rate limits and quotas: their wording is about the account, never a feature.
_ACCOUNT_STATUS = frozenset({401, 402, 403, 429})
_SERVER_ERROR = 500

FailureUsage = Callable[[str], dict[str, Any]]
FailureDetail = Callable[[], str | None]


def scrub(text: str, variables: Collection[str] = ()) -> str:
    """``text`` without credential values from the environment or key-shaped strings.

    A variable is a credential if its name says so (``*_KEY``, ``*_TOKEN``, ...) or it is
    one of ``variables`` (the ones agents name in ``settings.api_key_env``).
    """
    for name, value in os.environ.items():
        secret = name in variables or _SECRET_NAME.search(name)
        if secret and len(value) >= _MIN_SECRET and value in text:
            text = text.replace(value, REDACTED)
    return _KEY_SHAPES.sub(REDACTED, text)


@contextmanager
def translated(
    agent: str,
    model: str,
    usage: FailureUsage,
    detail: FailureDetail = lambda: None,
    secrets: Collection[str] = (),
) -> Iterator[None]:
    """Turn whatever an agent run raises into the statewise error that says who must act.

    ``usage`` is called with the outcome (the error's code) to build the audit record of the
    failed run from what had been exchanged so far; ``detail`` may explain an invalid output
    (the last validation error the model was shown); ``secrets`` names more environment
    variables whose values must never appear.
    """
    try:
        yield
    except Exception as exc:
        error_class, message, retry_after = classify(exc)
        if not message.startswith("agent "):
            message = f"agent {agent!r} ({model}): {message}"
        if error_class is InvalidOutputError and not isinstance(exc, CommandError):
            explained = detail()
            message += f"; last problem: {explained}" if explained else ""
        raise error_class(
            scrub(message, secrets), retry_after=retry_after, usage=usage(error_class.code)
        ) from None


def classify(exc: Exception) -> tuple[type[CommandError], str, float | None]:
    """The statewise error class, message and Retry-After for a foreign (or own) exception."""
    if isinstance(exc, CommandError):
        return type(exc), exc.message, exc.retry_after
    if isinstance(exc, ModelAPIError):
        return _classify_api_error(exc)
    if isinstance(exc, ContentFilterError):
        return PermanentError, f"the provider's content filter refused: {exc.message}", None
    if isinstance(exc, UsageLimitExceeded):
        return (
            InvalidOutputError,
            f"the run needed more model requests than max_tool_rounds and the output retries "
            f"allow: {exc.message.split('. ')[0]}",
            None,
        )
    if isinstance(exc, UnexpectedModelBehavior):
        return InvalidOutputError, f"the model's reply was unusable: {exc.message}", None
    if isinstance(exc, ConcurrencyLimitExceeded | StoreError):
        return TransientError, str(exc), None
    if isinstance(exc, UserError | StatewiseError | ImportError):
        return PermanentError, str(exc), None
    if isinstance(exc, TimeoutError | httpx2.TimeoutException):
        return TimedOutError, f"{type(exc).__name__}: {exc}", None
    if isinstance(exc, ConnectionError | httpx2.TransportError):
        return TransientError, f"{type(exc).__name__}: {exc}", None
    return CommandDefectError, f"{type(exc).__name__}: {exc}", None


def _classify_api_error(exc: ModelAPIError) -> tuple[type[CommandError], str, float | None]:
    """Provider errors by pydantic-ai's categories, falling back on the HTTP status."""
    described = _describe(exc)
    if isinstance(exc, ModelRateLimitError):
        wait = f" (retry after {exc.retry_after:g}s)" if exc.retry_after is not None else ""
        return TransientError, f"rate limited{wait}: {described}", exc.retry_after
    if isinstance(exc, ModelQuotaExceededError):
        return PermanentError, f"quota or billing exhausted: {described}", None
    if _refuses_a_feature(exc) or isinstance(exc, ModelFeatureUnsupportedError):
        return (
            UnsupportedRequestError,
            f"the server does not support this request: {described}",
            None,
        )
    if isinstance(exc, ModelRequestRejectedError):
        return PermanentError, f"request rejected: {described}", None
    if isinstance(exc, ModelRequestTimeout):  # a timeout, so `on_timeout: previous` applies
        return TimedOutError, f"provider timed out: {described}", exc.retry_after
    transient = (ModelUnavailableError, ModelServerError, ModelConnectionError)
    if isinstance(exc, transient):
        return TransientError, f"provider unavailable: {described}", exc.retry_after
    if isinstance(exc, ModelHTTPError):
        status = exc.status_code
        retryable = status in _TRANSIENT_STATUS or status >= _SERVER_ERROR
        error_class = TransientError if retryable else PermanentError
        return error_class, described, exc.retry_after
    # No status and no category: a reply that could not be decoded, a broken stream.
    return TransientError, f"provider error: {described}", exc.retry_after


def _refuses_a_feature(exc: ModelAPIError) -> bool:
    """Whether an HTTP error's own message says a parameter or feature is unsupported."""
    if not isinstance(exc, ModelHTTPError) or exc.status_code in _ACCOUNT_STATUS:
        return False
    if isinstance(exc, _SPECIFIC_REJECTIONS):  # pydantic-ai already said what is wrong
        return False
    message = _body_message(exc.body) or (exc.body if isinstance(exc.body, str) else None)
    return bool(message and _UNSUPPORTED.search(message))


def _describe(exc: ModelAPIError) -> str:
    if isinstance(exc, ModelHTTPError):
        return f"HTTP {exc.status_code}: {_body_message(exc.body) or exc.message}"
    return exc.message


def _body_message(body: object) -> str | None:
    """The provider's own error message, the most useful part of an error body."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):  # Ollama's native shape: {"error": "..."}
            return inner
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return None
