"""Running one declared agent for one item: render, call the model, validate, account, remember.

An :class:`AgentRunner` is built once per agent when agents are registered (parsing its model
string, compiling its templates, checking its settings and tools, so mistakes surface at
start-up) and is then called once per attempt with the item's :class:`CommandContext`. Each
call:

1. reads the item's stored conversations, if the agent keeps one or its templates read them;
2. renders the instructions and the input;
3. answers from the response cache, if enabled and the identical request was seen before;
4. runs a pydantic-ai ``Agent`` over the provider's real client, with the history, the tools,
   a request limit derived from ``max_tool_rounds``, and the schema check (or the registered
   output model's validation) that feeds every violation back to the model;
5. keeps the cached reply, and returns the output with the audit record of the run and the
   pruned conversation it proposes to keep. The attempt writes no conversation itself: the step
   that accepts its result saves it in that step's transaction, so an attempt that is ignored,
   lost in a crash or cancelled leaves no trace in the stored conversations.

Every failure leaves through :func:`statewise.ai.failures.translated`, with the audit record of
what the failed run had already used. An attempt stopped from outside (its timeout, or the
runner cancelling a branch whose join was met) cannot raise; for it, the run registers a usage
probe (``CommandContext.track_usage``) that reports the same record.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, cast

from pydantic import BaseModel
from pydantic_ai import Agent, capture_run_messages
from pydantic_ai.exceptions import ModelAPIError, UsageLimitExceeded
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryFeedbackPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.instrumented import InstrumentationSettings, InstrumentedModel
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import UsageLimits

from statewise.ai import cache, conversations
from statewise.ai.failures import classify, translated
from statewise.ai.limits import limited
from statewise.ai.models import (
    API_KEY_ENV,
    BASE_URL,
    OUTPUT_MODE,
    ModelRef,
    build_model,
    endpoint,
    model_settings,
    parse_model,
)
from statewise.ai.prompts import Prompts, Rendered
from statewise.ai.schema import (
    AUTO,
    OUTPUT_MODES,
    OUTPUT_TOOL,
    check_mode,
    check_output,
    mode_profile,
    output_model,
    output_spec,
)
from statewise.ai.settings import AISettings
from statewise.ai.tools import agent_tools, tool_calls
from statewise.ai.usage import (
    PriceTable,
    Tokens,
    count_tokens,
    instructions_version,
    usage_record,
)
from statewise.contract import CommandContext, CommandRegistry, CommandResult
from statewise.definition.model import AgentSpec
from statewise.errors import (
    BudgetExceededError,
    TimedOutError,
    UnsupportedRequestError,
)
from statewise.store.base import Store

JSON = Any
OK = "ok"
# An agent stops itself this long (at most a tenth of its budget) before its attempt's
# timeout, so it can still report what the attempt spent.
_DEADLINE_MARGIN = 0.25
# Characters of the model's reply an invalid-output error shows.
REPLY_SHOWN = 500


@dataclass(slots=True)
class _Exchange:
    """The messages one run added, visible to the failure handler while the run is going.

    ``requests`` holds how long each model request took, inside its provider slot;
    ``queued`` sums the waits for a slot, apart from it; ``deadline`` is when the attempt
    stops itself (``time.perf_counter``), which bounds each request's own timeout.
    """

    history_length: int = 0
    captured: list[ModelMessage] = field(default_factory=list)
    requests: list[float] = field(default_factory=list)
    mode: str | None = None
    queued: float = 0.0
    waiting_since: float | None = None
    deadline: float | None = None

    @property
    def model_seconds(self) -> float:
        return sum(self.requests)

    @property
    def new(self) -> list[ModelMessage]:
        return self.captured[self.history_length :]


_RUNNING: ContextVar[_Exchange | None] = ContextVar("statewise_agent_exchange", default=None)

# The output mode ``auto`` found working, by (endpoint, model), for this process.
_WORKING_MODES: dict[tuple[str | None, str], str] = {}


def _auto_order(remembered: str | None) -> tuple[str, ...]:
    """The modes ``auto`` tries: from the one that worked last, wrapping around."""
    start = OUTPUT_MODES.index(remembered) if remembered in OUTPUT_MODES else 0
    return OUTPUT_MODES[start:] + OUTPUT_MODES[:start]


class _QueuedModel(WrapperModel):
    """Notes when a request starts waiting for its provider's limiter (it sits outside it)."""

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        exchange = _RUNNING.get()
        if exchange is not None:
            exchange.waiting_since = time.perf_counter()
        return await self.wrapped.request(messages, model_settings, model_request_parameters)


class _TimedModel(WrapperModel):
    """Times each request from when it is sent, apart from its wait for a slot.

    It sits inside the provider's limiter, so the recorded latency is the calls themselves:
    not the wait for a slot behind other items (recorded apart, as ``queued``), not the
    agent's tools, not the model's load. The request's own timeout starts here too: the
    configured one, cut to what the attempt has left at the moment it is sent. A request cut
    off is cancelled with its connection, which closes, so the server stops generating.
    """

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        began = time.perf_counter()
        exchange = _RUNNING.get()
        if exchange is not None and exchange.waiting_since is not None:
            exchange.queued += began - exchange.waiting_since
            exchange.waiting_since = None
        if exchange is not None and exchange.deadline is not None:
            left = max(exchange.deadline - began, 0.0)
            configured = (model_settings or {}).get("timeout")
            chosen = left if not isinstance(configured, int | float) else min(configured, left)
            model_settings = cast(ModelSettings, {**(model_settings or {}), "timeout": chosen})
        try:
            return await self.wrapped.request(messages, model_settings, model_request_parameters)
        finally:
            if exchange is not None:
                exchange.requests.append(time.perf_counter() - began)


class AgentRunner:
    """One declared agent, ready to run for any item; see the module docstring."""

    def __init__(
        self,
        spec: AgentSpec,
        registry: CommandRegistry,
        store: Store,
        settings: AISettings,
        prices: PriceTable,
    ) -> None:
        self.spec = spec
        self.ref: ModelRef = parse_model(settings.model_for(spec.name, spec.model), spec.name)
        self._store = store
        self._settings = settings
        self._prices = prices
        self._prompts = Prompts(spec)
        self._model_settings = model_settings(spec, settings)
        # An endpoint of one's own gets `auto`: which modes a server supports is not knowable
        # from its name. A hosted provider keeps `tool`, the mode it supports best.
        default = AUTO if spec.settings.get(BASE_URL) else "tool"
        mode = check_mode(spec.name, str(spec.settings.get(OUTPUT_MODE) or default))
        self._mode = mode
        # `output: NAME` is a registered pydantic model, found now so a missing one fails here.
        self._model_class: type[BaseModel] | None = None
        self._schema: Mapping[str, Any] | None = None
        if isinstance(spec.output, str):
            self._model_class = output_model(registry, spec.name, spec.output)
        else:
            self._schema = spec.output
        self._shape = self._model_class or self._schema
        self._auto = mode == AUTO and self._shape is not None and not self.ref.runs_locally
        self._endpoint = (
            (None, self.ref.name)
            if self.ref.runs_locally
            else (endpoint(spec, self.ref, settings), self.ref.name)
        )
        self._instructions = instructions_version(spec.instructions)
        # What shapes the reply, for the cache key: a class by its name and its JSON Schema.
        self._cached_shape = self._schema
        if self._model_class is not None:
            shape = self._model_class.model_json_schema()
            self._cached_shape = {"model": spec.output, "schema": shape}
        self._tools = agent_tools(registry, spec.tools)
        # What the model calls itself, once it is built; until then, the configured name.
        self._model_name = str(self.ref)
        key_variable = spec.settings.get(API_KEY_ENV)
        self._secret_variables = frozenset({str(key_variable)} if key_variable else ())
        self._limits = UsageLimits(request_limit=spec.max_tool_rounds + settings.output_retries + 1)
        # The model's client and limiter belong to the event loop that uses them.
        self._agents: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, Agent[None, Any]]
        ] = weakref.WeakKeyDictionary()
        # What a retry's `adjust` entry changed, recorded with each run (None: nothing).
        self.adjustment: Mapping[str, JSON] | None = None

    async def __call__(self, ctx: CommandContext) -> CommandResult:
        """Run the agent for one attempt; see the module docstring for the steps."""
        await self._model_loaded()
        exchange = _Exchange()
        running = _RUNNING.set(exchange)
        try:
            return await self._attempt(ctx, exchange)
        finally:
            _RUNNING.reset(running)

    async def _attempt(self, ctx: CommandContext, exchange: _Exchange) -> CommandResult:
        def failed(outcome: str) -> dict[str, JSON]:
            return self._usage(
                exchange.new,
                exchange.model_seconds,
                outcome=outcome,
                mode=exchange.mode,
                queued=exchange.queued,
            )

        ctx.track_usage(failed)
        with translated(
            self.spec.name,
            str(self.ref),
            failed,
            lambda: _explained(exchange),
            secrets=self._secret_variables,
        ):
            stored = await self._stored_conversations(ctx)
            rendered = self._prompts.render(ctx, conversations.transcripts(stored))
            history = self._history(stored)
            key = self._cache_key(rendered, history)
            hit = None if key is None else await cache.lookup(self._store, key)
            if hit is not None:
                usage = self._usage([], 0.0, cached=True)
                return CommandResult(hit.value, usage, self._kept(history, hit.messages))
            value, new = await self._run_in_time(ctx, rendered, history, exchange)
            if key is not None:
                await cache.remember(self._store, key, value, new)
            usage = self._usage(
                new, exchange.model_seconds, mode=exchange.mode, queued=exchange.queued
            )
            return CommandResult(value, usage, self._kept(history, new))

    async def _model_loaded(self) -> None:
        """Load the local model's encoder before the clock starts, off the event loop.

        Loading takes seconds once per process; counted in the first call's latency it would
        make that call look hundreds of times slower than the rest. It is reported on its own
        (``embeddings.load_seconds``) instead.
        """
        if self.ref.runs_locally:
            from statewise.ai import embeddings

            if embeddings.load_seconds() is None:
                await asyncio.to_thread(embeddings.default_encoder)

    async def _stored_conversations(self, ctx: CommandContext) -> dict[str, str]:
        """The item's conversations, read only when this agent needs them."""
        if not (self.spec.conversation or self._prompts.reads_conversations):
            return {}
        return await self._store.conversations(ctx.workflow, ctx.key)

    def _history(self, stored: dict[str, str]) -> list[ModelMessage]:
        """The agent's own conversation with the item, if it keeps one."""
        if not self.spec.conversation:
            return []
        return conversations.load(self.spec.name, stored.get(self.spec.name))

    def _cache_key(self, rendered: Rendered, history: Sequence[ModelMessage]) -> str | None:
        if not self._settings.cache:
            return None
        return cache.cache_key(
            str(self.ref), rendered.instructions, rendered.input, self._cached_shape, history
        )

    async def _run_in_time(
        self,
        ctx: CommandContext,
        rendered: Rendered,
        history: list[ModelMessage],
        exchange: _Exchange,
    ) -> tuple[JSON, list[ModelMessage]]:
        """Run within the attempt's timeout, stopping just before it on our own.

        Stopping ourselves (instead of being cancelled by the worker at the deadline) lets the
        failure carry the usage of the responses already received, so the audit trail
        accounts for every model call even when an attempt times out. The item's budgets
        bound the run's tokens (``ctx.tokens_left``) through pydantic-ai's usage limits.
        """
        limits = self._limits
        if ctx.tokens_left is not None:
            limits = replace(limits, total_tokens_limit=ctx.tokens_left)
        remaining = ctx.remaining()
        if remaining is None:
            return await self._run(rendered, history, exchange, limits)
        budget = max(remaining - min(_DEADLINE_MARGIN, remaining / 10), 0.0)
        exchange.deadline = time.perf_counter() + budget
        try:
            async with asyncio.timeout(budget):
                return await self._run(rendered, history, exchange, limits)
        except TimeoutError:
            raise TimedOutError(
                f"the attempt ran out of time after {budget:.2f}s (its command timeout)"
            ) from None

    async def _run(
        self,
        rendered: Rendered,
        history: list[ModelMessage],
        exchange: _Exchange,
        limits: UsageLimits,
    ) -> tuple[JSON, list[ModelMessage]]:
        """One run in the agent's output mode, or in the first ``auto`` finds the server takes.

        Under ``auto`` a mode the server refuses (an UnsupportedRequestError: a parameter or
        feature it does not support) moves on to the next; the mode that answered is
        remembered for the endpoint and model, and recorded in the audit. Any other failure
        is the run's.
        """
        if not self._auto:
            return await self._run_in_mode(self._mode, rendered, history, exchange, limits)
        order = _auto_order(_WORKING_MODES.get(self._endpoint))
        refusals: list[str] = []
        for mode in order:
            try:
                ran = await self._run_in_mode(mode, rendered, history, exchange, limits)
            except ModelAPIError as exc:
                error_class, message, _ = classify(exc)
                if error_class is not UnsupportedRequestError:
                    raise
                refusals.append(f"{mode}: {message}")
                continue
            _WORKING_MODES[self._endpoint] = mode
            return ran
        raise UnsupportedRequestError(
            f"output_mode auto: the server refused every mode ({'; '.join(refusals)})"
        )

    async def _run_in_mode(
        self,
        mode: str,
        rendered: Rendered,
        history: list[ModelMessage],
        exchange: _Exchange,
        limits: UsageLimits,
    ) -> tuple[JSON, list[ModelMessage]]:
        """One pydantic-ai run in ``mode``; ``exchange`` sees its messages even if it fails."""
        agent = self._agent(mode)
        exchange.mode = mode
        with capture_run_messages() as captured:
            exchange.captured, exchange.history_length = captured, len(history)
            try:
                result = await agent.run(
                    rendered.input,
                    instructions=rendered.instructions or None,
                    message_history=history or None,
                    usage_limits=limits,
                )
            except UsageLimitExceeded:
                _over_allowance(limits.total_tokens_limit, exchange)
                raise
        output = result.output
        if isinstance(output, BaseModel):  # a registered output model: stored as JSON
            output = output.model_dump(mode="json")
        return output, result.new_messages()

    def _agent(self, mode: str) -> Agent[None, Any]:
        """The pydantic-ai agent of the running event loop and ``mode``, built on first use."""
        built = self._agents.setdefault(asyncio.get_running_loop(), {})
        if mode not in built:
            built[mode] = self._build_agent(mode)
        return built[mode]

    def _traced(self, model: Model) -> Model:
        """The model with GenAI-convention spans per call, when a tracer provider is set."""
        provider = self._settings.tracer_provider
        if provider is None:
            return model
        settings = InstrumentationSettings(tracer_provider=provider, include_content=False)
        return InstrumentedModel(model, settings)

    def _build_agent(self, mode: str) -> Agent[None, Any]:
        model = build_model(self.spec, self.ref, self._settings, profile=mode_profile(mode))
        self._model_name = f"{self.ref.provider}:{model.model_name}"
        retries = self._settings.output_retries
        agent: Agent[None, Any] = Agent(
            self._traced(_QueuedModel(limited(_TimedModel(model), self.ref, self._settings))),
            output_type=output_spec(self.spec.name, self._shape, mode),
            tools=self._tools,
            retries={"output": retries, "tools": retries},
            model_settings=self._model_settings,
            name=self.spec.name,
        )
        schema = self._schema
        if schema is not None:

            def conforms(output: dict[str, JSON]) -> dict[str, JSON]:
                return check_output(schema, output)

            agent.output_validator(conforms)
        return agent

    def _kept(self, history: list[ModelMessage], new: list[ModelMessage]) -> dict[str, str] | None:
        """The conversation to keep with this run's messages, pruned to the budget, by agent."""
        if not self.spec.conversation:
            return None
        kept = conversations.new_history(history, new, self._settings.conversation_token_budget)
        return {self.spec.name: conversations.dump(kept)}

    def _usage(
        self,
        messages: Sequence[ModelMessage],
        latency: float,
        *,
        cached: bool = False,
        outcome: str = OK,
        mode: str | None = None,
        queued: float = 0.0,
    ) -> dict[str, JSON]:
        """The audit record of one run (a cache hit used no tokens and cost nothing).

        ``mode`` is the output mode the run used (under ``auto``, the one it found).
        """
        tokens = Tokens() if cached else count_tokens(messages)
        record = usage_record(
            agent=self.spec.name,
            provider=self.ref.provider,
            model=self._answered_by(messages),
            tokens=tokens,
            cost=0.0 if cached else self._prices.cost(self.ref, tokens),
            latency=latency,
            tool_calls=tool_calls(messages, self.spec.tools),
            cached=cached,
            outcome=outcome,
            instructions=self._instructions,
            output_mode=self.ref.output_mode(self.spec, mode or self._mode),
            queued=queued,
        )
        if self.adjustment is not None:  # a retry's declared change (statewise.ai.adjustments)
            record["adjustment"] = dict(self.adjustment)
        return record

    def _answered_by(self, messages: Sequence[ModelMessage]) -> str:
        """``provider:model`` as the model named itself, else as the built model names itself.

        The audit trail then names the model that answered (``local:all-MiniLM-L6-v2``, a
        dated OpenAI snapshot) rather than only the alias the workflow asked for.
        """
        for message in reversed(messages):
            if isinstance(message, ModelResponse) and message.model_name:
                return f"{self.ref.provider}:{message.model_name}"
        return self._model_name


def _over_allowance(allowance: int | None, exchange: _Exchange) -> None:
    """Raise BudgetExceededError if the run stopped because it used the tokens it was allowed.

    pydantic-ai raises one error for every usage limit; the run's own token count tells the
    item's budget (a distinct kind, routed to ``on_exceeded``) from too many requests (an
    invalid output, which is retried).
    """
    if allowance is None:
        return
    tokens = count_tokens(exchange.new)
    used = tokens.input + tokens.output
    if used > allowance:
        raise BudgetExceededError(
            f"the run was stopped after {used:,} tokens: its item's budget allowed "
            f"{allowance:,} more"
        )


def _explained(exchange: _Exchange) -> str | None:
    """Why the output was invalid: the last problem the model was shown, and what it replied.

    The reply is what an operator needs to see (a small model echoing the schema back, a
    refusal, a truncated object); it is cut to ``REPLY_SHOWN`` characters to stay readable.
    """
    feedback, reply = _last_feedback(exchange), _last_reply(exchange)
    if feedback is not None:
        feedback = _cut(feedback)  # a validation error may quote the whole reply again
    if reply is None:
        return feedback
    said = f"the model replied: {_cut(reply)!r}"
    return f"{feedback}; {said}" if feedback else said


def _cut(text: str) -> str:
    """``text`` cut to ``REPLY_SHOWN`` characters, saying how long it was."""
    if len(text) <= REPLY_SHOWN:
        return text
    return f"{text[:REPLY_SHOWN]}... ({len(text):,} characters)"


def _last_reply(exchange: _Exchange) -> str | None:
    """The text or tool-call arguments of the model's last response, if it gave one."""
    for message in reversed(exchange.new):
        if not isinstance(message, ModelResponse):
            continue
        said = [part.content for part in message.parts if isinstance(part, TextPart)]
        said += [
            part.args_as_json_str() for part in message.parts if isinstance(part, ToolCallPart)
        ]
        return "\n".join(said) or None
    return None


def _last_feedback(exchange: _Exchange) -> str | None:
    """The last validation error the model was shown, to explain an invalid-output failure."""
    for message in reversed(exchange.new):
        if not isinstance(message, ModelRequest):
            continue
        for part in message.parts:
            if isinstance(part, RetryFeedbackPart):
                return part.model_response()
            if isinstance(part, ToolReturnPart) and part.tool_name == OUTPUT_TOOL:
                text = part.model_response_str()
                if "error" in text.lower():
                    return text
    return None
