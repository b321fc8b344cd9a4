"""Rendering an agent's instructions and input from the item's context.

Templates are Jinja2 in a sandbox: a workflow file is data, and rendering it must not reach
Python attributes or call arbitrary methods. Undefined variables are errors (``StrictUndefined``)
rather than silently empty text, because a prompt that quietly lost the customer's message is
worse than a failed step; the error names the variable and lists what the template could use.

A template sees every context key at the top level, plus these names (which win over context
keys of the same name):

* ``context``: the whole context, for keys that are not valid identifiers;
* ``item``: ``{key, workflow, state, attempt, branch, input}`` of the current attempt;
* ``conversations``: every agent's stored conversation with this item, as a list of
  ``{role, text}`` per agent name, so a supervisor can read what a specialist said.

The ``json`` filter writes a value as indented JSON (``{{ classification | json }}``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, UndefinedError, meta
from jinja2.sandbox import SandboxedEnvironment

from statewise.contract import CommandContext
from statewise.definition.model import AgentSpec
from statewise.errors import ConfigurationError, PermanentError

JSON = Any
Transcript = list[dict[str, str]]
CONVERSATIONS = "conversations"


@dataclass(frozen=True, slots=True)
class Rendered:
    """The system prompt and the user message of one attempt."""

    instructions: str
    input: str


def _environment() -> SandboxedEnvironment:
    environment = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False)
    environment.filters["json"] = _to_json
    return environment


def _to_json(value: JSON) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


KNOWLEDGE = "knowledge"


class Prompts:
    """An agent's two templates, compiled once when the agent is registered."""

    def __init__(self, spec: AgentSpec) -> None:
        self._agent = spec.name
        environment = _environment()
        try:
            self._instructions = environment.from_string(spec.instructions)
            self._input = None if spec.input is None else environment.from_string(spec.input)
            # The names each template reads, so an undefined one is named by statewise itself.
            self._reads = {
                which: frozenset(meta.find_undeclared_variables(environment.parse(source)))
                for which, source in (("instructions", spec.instructions), ("input", spec.input))
                if source is not None
            }
        except TemplateError as exc:
            raise ConfigurationError(f"agent {spec.name!r}: invalid template: {exc}") from None
        used = frozenset().union(*self._reads.values())
        self.reads_conversations = CONVERSATIONS in used
        self._knowledge = [{"title": d.title, "text": d.text} for d in spec.knowledge]
        self._appends_knowledge = bool(self._knowledge) and KNOWLEDGE not in used

    def render(self, ctx: CommandContext, conversations: Mapping[str, Transcript]) -> Rendered:
        """Both templates over the item's context; the input defaults to the context as JSON.

        An agent's knowledge base is quoted to the model: under ``knowledge`` for templates
        that place it themselves, otherwise appended to the instructions.
        """
        variables = {**template_variables(ctx, conversations), KNOWLEDGE: self._knowledge}
        instructions = self._render("instructions", self._instructions, variables)
        if self._appends_knowledge:
            documents = "\n\n".join(f"## {d['title']}\n{d['text']}" for d in self._knowledge)
            instructions += f"\n\nAnswer from this knowledge base:\n\n{documents}"
        if self._input is None:
            return Rendered(instructions, _to_json(dict(ctx.context)))
        return Rendered(instructions, self._render("input", self._input, variables))

    def _render(self, which: str, template: Template, variables: dict[str, JSON]) -> str:
        try:
            return template.render(variables).strip()
        except UndefinedError as exc:
            raise PermanentError(self._undefined(which, variables, str(exc.message))) from None
        except TemplateError as exc:  # the sandbox refused something, or a filter failed
            raise PermanentError(
                f"agent {self._agent!r}: the {which} template failed: {exc}"
            ) from None

    def _undefined(self, which: str, variables: Mapping[str, JSON], detail: str) -> str:
        """Why rendering met an undefined value, naming the variables statewise sees missing.

        Jinja's own description is appended: only it names a missing field of a variable that
        exists (``customer.email``).
        """
        missing = sorted(self._reads[which] - variables.keys())
        what = (
            f"`{'`, `'.join(missing)}`, which {'is' if len(missing) == 1 else 'are'} not defined"
            if missing
            else "a field or element that is not there"
        )
        available = ", ".join(sorted(variables)) or "none"
        return (
            f"agent {self._agent!r}: the {which} template uses {what} ({detail}); "
            f"available: {available}"
        )


def template_variables(
    ctx: CommandContext, conversations: Mapping[str, Transcript]
) -> dict[str, JSON]:
    """What a template can refer to; see the module docstring."""
    item = {
        "key": ctx.key,
        "workflow": ctx.workflow,
        "state": ctx.state,
        "attempt": ctx.attempt,
        "branch": ctx.branch,
        "input": ctx.input,
    }
    return {
        **ctx.context,
        "context": dict(ctx.context),
        "item": item,
        CONVERSATIONS: dict(conversations),
    }
