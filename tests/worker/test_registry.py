"""The command registry: registering by decorator, finding by name, loading from modules."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from statewise.contract import CommandContext, CommandRegistry
from statewise.errors import NotFoundError, StatewiseError
from statewise.worker import load_registry
from statewise.worker.registry import module_name

MODULE = """
from statewise.contract import CommandRegistry

registry = CommandRegistry()


@registry.command()
def {name}(call):
    return {{"from": "{name}"}}
"""


def write_module(folder: Path, name: str, text: str | None = None) -> Path:
    """A command module ``name.py`` registering one command called ``name``."""
    path = folder / f"{name}.py"
    path.write_text(MODULE.format(name=name) if text is None else text)
    return path


def test_the_decorator_registers_under_the_function_name_or_the_given_one() -> None:
    registry = CommandRegistry()

    @registry.command()
    def enrich(call: CommandContext) -> int:
        return 1

    @registry.command("score-review")
    async def score(call: CommandContext) -> int:
        return 2

    assert registry.names() == {"enrich", "score-review"}
    assert registry.get("enrich") is enrich
    assert registry.get("score-review") is score
    registry.register("enrich", enrich)  # the same function again is harmless


def test_a_name_taken_by_another_function_is_an_error() -> None:
    registry = CommandRegistry()
    registry.register("enrich", lambda call: 1)

    with pytest.raises(StatewiseError, match="command 'enrich' is registered twice"):
        registry.register("enrich", lambda call: 2)
    other = CommandRegistry()
    other.register("enrich", lambda call: 3)
    with pytest.raises(StatewiseError, match="registered twice"):
        registry.merge(other)


def test_get_suggests_the_closest_registered_name() -> None:
    registry = CommandRegistry()
    registry.register("translate", lambda call: None)
    registry.register("review", lambda call: None)

    with pytest.raises(
        NotFoundError, match=r"'translat' is not registered; did you mean 'translate'\?"
    ):
        registry.get("translat")
    with pytest.raises(NotFoundError, match=r"^command 'zzz' is not registered$"):
        registry.get("zzz")


class Triage(BaseModel):
    team: str


class Summary(BaseModel):
    text: str


def test_output_models_register_under_the_class_name_or_the_given_one() -> None:
    registry = CommandRegistry()
    registry.register("triage", lambda call: None)

    decorated = registry.output_model()(Triage)
    registry.output_model("brief")(Summary)

    assert decorated is Triage
    assert registry.get_output_model("Triage") is Triage
    assert registry.get_output_model("brief") is Summary
    assert registry.names() == {"triage", "Triage", "brief"}
    registry.register_output_model("Triage", Triage)  # the same class again is harmless


def test_an_output_model_name_taken_by_another_class_is_an_error() -> None:
    registry = CommandRegistry()
    registry.output_model("Triage")(Triage)

    with pytest.raises(StatewiseError, match="output model 'Triage' is registered twice"):
        registry.output_model("Triage")(Summary)
    with pytest.raises(StatewiseError, match="must be a pydantic BaseModel subclass"):
        registry.register_output_model("plain", dict)  # type: ignore[arg-type]


def test_get_output_model_suggests_the_closest_registered_name() -> None:
    registry = CommandRegistry()
    registry.output_model()(Triage)
    registry.register("Triag", lambda call: None)  # commands are another namespace

    with pytest.raises(
        NotFoundError, match=r"^output model 'Triag' is not registered; did you mean 'Triage'\?$"
    ):
        registry.get_output_model("Triag")
    with pytest.raises(NotFoundError, match=r"^output model 'zzz' is not registered$"):
        registry.get_output_model("zzz")


def test_merge_carries_output_models_and_refuses_a_clash() -> None:
    first, second = CommandRegistry(), CommandRegistry()
    second.output_model()(Triage)

    first.merge(second)
    first.merge(second)  # the same classes again are harmless

    assert first.get_output_model("Triage") is Triage
    clashing = CommandRegistry()
    clashing.output_model("Triage")(Summary)
    with pytest.raises(StatewiseError, match="output model 'Triage' is registered twice"):
        first.merge(clashing)


def test_load_registry_merges_modules_given_by_path_and_by_dotted_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_path = write_module(tmp_path, "orders_cmds")
    package = tmp_path / "pkg_for_registry_test"
    package.mkdir()
    (package / "__init__.py").write_text("")
    write_module(package, "billing_cmds")
    monkeypatch.syspath_prepend(str(tmp_path))

    registry = load_registry([str(by_path), "pkg_for_registry_test.billing_cmds"])

    assert registry.names() == {"orders_cmds", "billing_cmds"}
    assert registry.get("billing_cmds")(None) == {"from": "billing_cmds"}  # type: ignore[arg-type]
    assert load_registry([str(by_path)]).get("orders_cmds") is registry.get("orders_cmds")


def test_load_registry_explains_what_is_wrong_with_a_module(tmp_path: Path) -> None:
    empty = write_module(tmp_path, "no_registry", "commands = {}\n")

    with pytest.raises(
        StatewiseError, match=r"no_registry.py defines no `registry = CommandRegistry\(\)`"
    ):
        load_registry([str(empty)])
    with pytest.raises(NotFoundError, match=r"command module .*missing\.py does not exist"):
        load_registry([str(tmp_path / "missing.py")])
    with pytest.raises(
        NotFoundError, match=r"command module 'no\.such\.module' cannot be imported"
    ):
        load_registry(["no.such.module"])


def test_a_packaged_file_is_known_and_imported_by_its_module_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # the package root is added for the test
    package = tmp_path / "checkout" / "teams_for_name_test"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    packaged = write_module(package, "billing")
    loose = write_module(tmp_path, "loose")

    assert module_name(str(packaged)) == "teams_for_name_test.billing"
    assert module_name("teams_for_name_test.billing") == "teams_for_name_test.billing"
    assert module_name(str(loose)) == str(loose.resolve())
    by_path = load_registry([str(packaged)]).get("billing")
    assert load_registry(["teams_for_name_test.billing"]).get("billing") is by_path
