"""Cost from the price table: bundled prices, the user's file, the user's overrides."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from statewise.ai import AISettings, Price
from statewise.ai.models import ModelRef, parse_model
from statewise.ai.usage import PriceTable, Tokens, load_prices
from statewise.errors import StatewiseError
from statewise.store.sqlite import SQLiteStore

from .conftest import agent, registered, workflow
from .servers import FakeProvider, openai_tool_call

OUTPUT = {"type": "object", "properties": {"answer": {"type": "string"}}}
TOKENS = Tokens(input=1_000_000, output=500_000, requests=1)


def cost_of(store: SQLiteStore, server: FakeProvider, model: str, **settings: Any) -> object:
    spec = agent(output=OUTPUT, model=model)
    server.reply(openai_tool_call("final_result", {"answer": "x"}))

    async def scenario() -> object:
        async with registered(store, workflow(spec), openai=server, **settings) as agents:
            return (await agents.run("classifier", {})).usage["cost"]

    return asyncio.run(scenario())


def test_a_known_model_is_priced_from_the_bundled_list(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    cost = cost_of(store, openai, "openai:gpt-4o-mini")
    assert isinstance(cost, float) and cost > 0


def test_the_users_price_overrides_the_bundled_one(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    prices = {"openai:gpt-4o-mini": Price(input=2.0, output=10.0)}
    # 100 input and 20 output tokens, per the server's usage.
    assert cost_of(store, openai, "openai:gpt-4o-mini", prices=prices) == pytest.approx(0.0004)


def test_an_unknown_model_costs_none_not_an_error(openai: FakeProvider, store: SQLiteStore) -> None:
    assert cost_of(store, openai, "openai:house-model-7b") is None


def test_a_price_file_prices_an_unknown_model(
    openai: FakeProvider, store: SQLiteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("house-model-7b: {input: 1.0, output: 3.0}\n")
    monkeypatch.setenv("STATEWISE_PRICES", str(path))
    assert cost_of(store, openai, "openai:house-model-7b") == pytest.approx(0.00016)


def test_lookup_order_and_arithmetic(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"m": {"input": 1, "output": 1}, "p:m": {"input": 3, "output": 4}}))
    table = PriceTable.from_settings(AISettings(prices_file=path, prices={"m": Price(5, 6)}))
    assert table.cost(ModelRef("p", "m"), TOKENS) == pytest.approx(3 + 2)  # provider:model wins
    assert table.cost(ModelRef("q", "m"), TOKENS) == pytest.approx(5 + 3)  # settings beat the file
    assert table.cost(parse_model("local", "a"), TOKENS) == 0.0
    assert table.cost(ModelRef("q", "unknown"), TOKENS) is None
    bundled = Tokens(input=1, output=1, requests=1, library_cost=Decimal("0.5"))
    assert table.cost(ModelRef("q", "unknown"), bundled) == 0.5


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- just a list", "must map each model"),
        ("m: {input: 1}", "price of `m`"),
        ("m: {input: -1, output: 1}", "million tokens: input: "),  # the bound: pydantic's words
        ("m: {input: 1, output: 1, currency: EUR}", "currency"),
        ("m: [1, 2", "cannot read"),
    ],
)
def test_a_bad_price_file_is_reported_with_its_path(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(StatewiseError, match=problem) as raised:
        load_prices(path)
    assert str(path) in raised.value.message
