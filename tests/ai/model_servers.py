"""OpenAI-compatible model servers as they really behave: llama.cpp, Ollama, vLLM and OpenAI.

Each :class:`ServerBehaviour` is a handler for :class:`servers.FakeProvider` (the same socket
and protocol machinery the other AI tests use) that accepts and rejects what that server
accepts and rejects, with its own wording, and answers with a model that cooperates: it
returns ``sample`` as the tool call's arguments or as the JSON content. Where each behaviour
comes from:

* **llama.cpp** (llama-cpp-python's server, as observed in issue 17 with 0.3.36): a forced
  ``tool_choice`` fails with a 500 whose message is an assertion on the choice; a
  ``json_schema`` response format fails with a 500 "Input should be 'text' or 'json_object'"
  (the C++ llama-server of 2024 said "response_format type must be one of \"text\" or
  \"json_object\"", ik_llama.cpp issue 778); ``max_completion_tokens`` is ignored and
  ``max_tokens`` honoured, so with no ``max_tokens`` the model generates until its context is
  full (about 3,750 tokens in issue 17); usage is reported exactly.
* **Ollama** (docs/openai.md, "Supported request fields"; issues 5793 and 6027): the API key
  is "required but ignored"; ``tool_choice`` is not a supported field and is ignored; a model
  whose template declares no tools answers any request with ``tools`` with a 400
  "<model> does not support tools"; ``response_format`` (JSON mode and schemas) works;
  ``max_tokens`` is honoured and ``max_completion_tokens`` is not a field it reads.
* **vLLM** (docs "Tool Calling"; issue 9986): ``tool_choice: auto`` needs the server started
  with ``--enable-auto-tool-choice --tool-call-parser``, else a 400 "\"auto\" tool choice
  requires --enable-auto-tool-choice and --tool-call-parser to be set"; ``required`` and
  named tool choices work through guided decoding; ``json_schema`` and ``json_object`` work;
  both token fields are honoured.
* **OpenAI** (API reference, Chat Completions): every mode works; the limit is
  ``max_completion_tokens``, and ``max_tokens`` still works for the non-reasoning models
  (deprecated); a request without a key is a 401.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .servers import Received, Reply, error, openai_completion, openai_text, openai_tool_call

# Tokens a server generates when nothing it reads limits the reply (issue 17: about 3,750).
RUNAWAY_TOKENS = 3750
NATURAL_TOKENS = 12


@dataclass(frozen=True)
class ServerBehaviour:
    """What one server accepts, as a FakeProvider handler; see the module docstring."""

    name: str
    sample: dict[str, Any]
    forced_tool_choice: Reply | None = None
    auto_tool_choice: Reply | None = None
    any_tools: Reply | None = None
    json_schema: Reply | None = None
    token_fields: tuple[str, ...] = ("max_tokens", "max_completion_tokens")
    needs_key: bool = False

    def __call__(self, received: Received) -> Reply:
        """The server's answer to one chat-completions request."""
        body = received.body if isinstance(received.body, dict) else {}
        refused = self._refusal(received, body)
        if refused is not None:
            return refused
        limit = next((body[f] for f in self.token_fields if body.get(f) is not None), None)
        generated = RUNAWAY_TOKENS if limit is None else min(limit, NATURAL_TOKENS)
        usage = {
            "prompt_tokens": 40,
            "completion_tokens": generated,
            "total_tokens": 40 + generated,
        }
        finish = "length" if limit is not None and limit < NATURAL_TOKENS else "stop"
        if body.get("tools") and body.get("tool_choice") != "none":
            tool = body["tools"][0]["function"]["name"]
            return openai_tool_call(tool, self.sample, usage=usage)
        wants_json = body.get("response_format") is not None or _asks_for_json(body)
        content = json.dumps(self.sample) if wants_json else "Hello from " + self.name
        if finish == "length":
            return openai_completion(
                {"role": "assistant", "content": content[:limit]},
                finish_reason="length",
                usage=usage,
            )
        return openai_text(content, usage=usage)

    def _refusal(self, received: Received, body: dict[str, Any]) -> Reply | None:
        if self.needs_key and not received.headers.get("authorization", "").startswith(
            "Bearer sk-"
        ):
            return error(401, "You didn't provide an API key.")
        if body.get("tools"):
            choice = body.get("tool_choice", "auto")
            if self.any_tools is not None:
                return self.any_tools
            if choice == "auto" and self.auto_tool_choice is not None:
                return self.auto_tool_choice
            if choice not in ("auto", "none") and self.forced_tool_choice is not None:
                return self.forced_tool_choice
        response_format = body.get("response_format") or {}
        if response_format.get("type") == "json_schema" and self.json_schema is not None:
            return self.json_schema
        return None


def _asks_for_json(body: dict[str, Any]) -> bool:
    """Whether the prompt asks for JSON (pydantic-ai's prompted mode puts the schema there)."""
    return "json" in json.dumps(body.get("messages", [])).lower()


def llama_cpp(sample: dict[str, Any]) -> ServerBehaviour:
    """llama-cpp-python's OpenAI-compatible server (see the module docstring)."""
    return ServerBehaviour(
        "llama.cpp",
        sample,
        forced_tool_choice=error(
            500, "AssertionError: tool_choice must be 'auto' (got 'required')"
        ),
        json_schema=error(
            500,
            "1 validation error for CreateChatCompletionRequest\nresponse_format.type\n"
            "  Input should be 'text' or 'json_object' [type=literal_error]",
        ),
        token_fields=("max_tokens",),
    )


def ollama(sample: dict[str, Any], model: str = "smollm2:135m") -> ServerBehaviour:
    """Ollama's ``/v1`` endpoint serving a model without tool support."""
    return ServerBehaviour(
        "Ollama",
        sample,
        any_tools=error(400, f"registry.ollama.ai/library/{model} does not support tools"),
        token_fields=("max_tokens",),
    )


def vllm(sample: dict[str, Any]) -> ServerBehaviour:
    """vLLM's server started without ``--enable-auto-tool-choice``."""
    return ServerBehaviour(
        "vLLM",
        sample,
        auto_tool_choice=error(
            400,
            '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser '
            "to be set",
        ),
    )


def openai_api(sample: dict[str, Any]) -> ServerBehaviour:
    """OpenAI's own Chat Completions API."""
    return ServerBehaviour("OpenAI", sample, needs_key=True)
