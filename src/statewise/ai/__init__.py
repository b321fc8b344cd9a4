"""AI layer: agents declared in a workflow, run on any model pydantic-ai supports.

``register_agents`` turns every declared agent into the command ``agent:NAME``;
``AISettings`` says where the models run and what they may cost. The worker never imports this
layer: it finds it as the ``ai`` entry point of the ``statewise.agents`` group
(``registration.register_plugin``), and both sides share only ``statewise.contract``.
Modules, one concept each: ``models`` (model strings to pydantic-ai models), ``agents``
(running one agent), ``prompts`` (Jinja2 templates), ``schema`` (output schemas), ``tools``,
``conversations``, ``cache``, ``usage`` (tokens and prices), ``limits`` (per-provider
concurrency) and ``failures`` (the one boundary where foreign errors become statewise errors).
"""

from statewise.ai.registration import register_agents
from statewise.ai.settings import AISettings
from statewise.ai.usage import Price

__all__ = ["AISettings", "Price", "register_agents"]
