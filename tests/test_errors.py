"""The exception tree: every class is documented, and each error names who has to act."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from statewise import errors
from statewise.cli.running import read_items
from statewise.errors import ConfigurationError, InvalidInputError, StatewiseError
from statewise.worker.limits import ConcurrencyLimits

SRC = Path(errors.__file__).parent


def test_every_error_class_is_in_the_documented_tree_with_its_code() -> None:
    classes = {
        name: cls
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, StatewiseError)
    }
    doc = errors.__doc__ or ""
    tree = dict(re.findall(r"[├└│─ ]*(\w+Error|\w+Failure|\w+Stopped)\s+(\w+)", doc))
    assert tree.pop("StatewiseError") == "code"  # the tree's heading
    classes.pop("StatewiseError")
    assert set(tree) == set(classes)
    assert {name: cls.code for name, cls in classes.items()} == tree


def test_the_base_error_is_never_raised_itself() -> None:
    raised = [
        f"{path.relative_to(SRC)}:{number}"
        for path in sorted(SRC.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"raise StatewiseError\(", line)
    ]
    assert raised == []


def test_an_operator_setting_is_a_configuration_error_and_a_bad_line_invalid_input(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigurationError, match="--state-limit takes NAME=N") as bad:
        ConcurrencyLimits.parse(["review=0"])
    assert bad.value.code == "configuration"
    lines = tmp_path / "items.jsonl"
    lines.write_text('{"key": "a%2F?#-ü"}\n[1, 2]\n')
    with read_items(lines) as items, pytest.raises(InvalidInputError, match=r":2: expected"):
        list(items)
