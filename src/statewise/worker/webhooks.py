"""Sending a state's webhook: the built-in command ``webhook:DESTINATION``.

A state with ``webhook: {to: cms, payload: copy}`` runs the command ``webhook:cms`` on entry,
through the same durable outbox as every command: leased, fenced, retried by the state's
``retry:``. One attempt POSTs ``{"workflow", "version", "key", "state", "event_id",
"payload"}`` to the destination's URL, signed as alert deliveries are
(``statewise.observe.delivery``), with an ``Idempotency-Key`` that is the same on every
attempt of one visit, so a receiver that saw an attempt whose answer was lost ignores the
retry. Its parts are percent-encoded, so any item key is a valid header value.

How the answer is classified: 2xx is delivered; 5xx, 408, 429 and no answer at all (timeout,
connection refused) are transient and retried (a timeout as ``TimedOutError``, which a state's
``retry: {on_timeout: previous}`` routes on); any other status is permanent (``on: error``),
as is a URL variable that is unset: retrying cannot set it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from statewise.contract import JSON, CommandContext, CommandRegistry
from statewise.definition.model import Definition, Webhook, webhook_command
from statewise.errors import CommandError, PermanentError, TimedOutError, TransientError
from statewise.observe.delivery import (
    Answer,
    DestinationError,
    address,
    post,
    signed_request,
)
from statewise.store.base import Store

IDEMPOTENCY_HEADER = "Idempotency-Key"
HTTP_TIMEOUT = 30.0
"""Seconds one POST may take when the state's retry policy sets no shorter timeout."""
_TRANSIENT_STATUSES = frozenset({408, 425, 429})
_RESPONSE_CHARS = 1000
_MISSING = object()


def idempotency_key(workflow: str, key: str, state: str, visit: int) -> str:
    """``<workflow>/<key>/<state>/<visit>``, each part percent-encoded (UTF-8).

    The same for every attempt of one visit; a key holding ``/``, ``%``, NUL or non-ASCII
    text stays one unambiguous, ASCII-only part.
    """
    parts = (workflow, key, state, str(visit))
    return "/".join(quote(part, safe="") for part in parts)


class WebhookCommand:
    """The command ``webhook:NAME``: sends the webhook of the item's own workflow's state.

    Workflows (and versions of one workflow) may each declare a destination ``NAME`` with its
    own address, and each state its own payload, so the definition is looked up per item.
    """

    def __init__(self, name: str, store: Store) -> None:
        self.name = name
        self._store = store
        self._definitions: dict[tuple[str, int], Definition] = {}

    def add(self, definition: Definition) -> None:
        """Send the webhooks of this definition's states (workflow name and version)."""
        self._definitions[(definition.name, definition.version)] = definition

    async def __call__(self, ctx: CommandContext) -> JSON:
        """POST this visit's webhook once; its result, or the error that classifies it."""
        definition = await self._definition_for(ctx)
        state = definition.states.get(ctx.state)
        hook = None if state is None else state.webhook
        if hook is None:
            raise PermanentError(
                f"state {ctx.state!r} of {definition.ref} sends no webhook to {self.name!r}"
            )
        destination = definition.destinations[hook.to]
        try:
            url, secret = address(destination)
        except DestinationError as exc:
            raise PermanentError(f"webhook to {hook.to!r} cannot be sent: {exc}") from None
        key = idempotency_key(ctx.workflow, ctx.key, ctx.state, ctx.visit)
        body = {
            "workflow": ctx.workflow,
            "version": definition.version,
            "key": ctx.key,
            "state": ctx.state,
            "event_id": key,
            "payload": _payload(ctx.context, hook),
        }
        request = signed_request(url, secret, body, ctx.now, {IDEMPOTENCY_HEADER: key})
        left = ctx.remaining()
        answer = await post(request, HTTP_TIMEOUT if left is None else min(left, HTTP_TIMEOUT))
        if answer.delivered:
            return {"status": answer.status, "idempotency_key": key, "response": _read(answer)}
        raise _failure(hook, answer)

    async def _definition_for(self, ctx: CommandContext) -> Definition:
        versions = {v: d for (w, v), d in self._definitions.items() if w == ctx.workflow}
        if len(versions) == 1:
            return next(iter(versions.values()))
        if not versions:
            raise PermanentError(
                f"workflow {ctx.workflow!r} sends no webhook to {self.name!r}; only "
                f"{', '.join(sorted({w for w, _ in self._definitions}))} do"
            )
        item = await self._store.get_item(ctx.workflow, ctx.key)
        if item.version not in versions:
            raise PermanentError(
                f"workflow {ctx.workflow}@{item.version} is not loaded by this worker"
            )
        return versions[item.version]


def _payload(context: Mapping[str, JSON], hook: Webhook) -> JSON:
    found: Any = context
    for part in hook.payload.split("."):
        found = found.get(part, _MISSING) if isinstance(found, Mapping) else _MISSING
        if found is _MISSING:
            raise PermanentError(
                f"the webhook's payload `{hook.payload}` is not in the item's context (no "
                f"`{part}` there); it is sent only once a stage before has stored it"
            )
    return found


def _read(answer: Answer) -> JSON:
    """The receiver's answer: its JSON when it sent JSON, else its text, cut short."""
    text = answer.body.decode("utf-8", errors="replace")
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text[:_RESPONSE_CHARS]


def _failure(hook: Webhook, answer: Answer) -> CommandError:
    status = answer.status
    said = _read(answer)
    detail = f"; it said: {str(said)[:200]}" if said is not None else ""
    message = f"webhook to {hook.to!r} failed: {answer.error or f'HTTP {status}'}{detail}"
    if answer.timed_out:
        return TimedOutError(message)
    if status is None or status >= 500 or status in _TRANSIENT_STATUSES:
        return TransientError(message)
    return PermanentError(message)


def register_webhooks(
    registry: CommandRegistry,
    definitions: Iterable[Definition],
    store: Store,
    skip: frozenset[str] = frozenset(),
) -> None:
    """Register ``webhook:NAME`` for every destination some state sends a webhook to.

    ``skip`` names commands already given another way (a test's fake).
    """
    commands: dict[str, WebhookCommand] = {}
    for definition in definitions:
        for state in definition.states.values():
            if state.webhook is None:
                continue
            name = webhook_command(state.webhook.to)
            if name in skip:
                continue
            command = commands.get(name)
            if command is None:
                command = commands[name] = WebhookCommand(name, store)
                registry.register(name, command)
            command.add(definition)
