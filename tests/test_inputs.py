"""The input rules every entry point shares: keys, ids, JSON documents and their limits."""

from __future__ import annotations

import re
from typing import Any

import pytest

from hostile import HOSTILE_BUT_VALID_KEYS, nested
from statewise.errors import InvalidInputError, StatewiseError
from statewise.inputs import InputLimits, check_key, check_row_id, check_wrapped, decode_json


@pytest.mark.parametrize("key", HOSTILE_BUT_VALID_KEYS)
def test_keys_with_url_characters_and_non_ascii_are_keys_like_any_other(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "must not be empty or blank"),
        ("  \t ", "must not be empty or blank"),
        ("\u3000", "must not be empty or blank"),
        ("a\x00b", "control character U+0000"),
        ("a\x1fb", "control character U+001F"),
        ("line\nbreak", "control character U+000A"),
        ("x" * 513, "513 characters long; the limit is 512"),
    ],
)
def test_a_key_breaking_the_rule_is_refused_naming_the_rule(key: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        check_key(key)


def test_a_key_of_the_longest_length_is_accepted() -> None:
    assert check_key("k" * 512)


@pytest.mark.parametrize("value", [0, -1, 2**63, 10**26])
def test_ids_outside_the_stores_64_bit_columns_are_refused(value: int) -> None:
    with pytest.raises(InvalidInputError, match="out of range"):
        check_row_id(value, "task")
    assert check_row_id(2**63 - 1, "task") == 2**63 - 1


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"x": NaN}', "NaN is not a JSON number"),
        ('{"x": -Infinity}', "-Infinity is not a JSON number"),
        ('{"x": 1e400}', "1e400 is too large"),
        ('{"x": ' + "9" * 5000 + "}", "4300 digits"),
        ("[" * 100_000, "nested too deep to parse"),
        ("{oops", "Expecting property name"),
    ],
)
def test_json_that_python_would_take_but_json_does_not_allow_is_refused(
    text: str, reason: str
) -> None:
    with pytest.raises(InvalidInputError, match=reason):
        decode_json(text)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"x": float("nan")}, "holds nan"),
        ({"x": [1, {"y": float("inf")}]}, "holds inf"),
        ({"x": 10**26}, "outside the signed 64-bit range"),
        ({"x": -(2**63) - 1}, "outside the signed 64-bit range"),
        ({"x": [-(2**63), 2**63 - 1]}, None),
        (nested(65), "nested more than 64 levels deep"),
        ({"x": [[[[]]]]}, None),
        ({"a\x1fb": 1}, "name 'a\\x1fb' with control character U+001F"),
        ({"a\x00": 1}, "control character U+0000"),
        ({"x": object()}, "is not JSON"),
        ([1, 2], "must be a JSON object, not list"),
    ],
)
def test_documents_breaking_a_rule_are_refused(data: Any, message: str | None) -> None:
    limits = InputLimits()
    if message is None:
        limits.check_document(data, "the data")
        return
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        limits.check_document(data, "the data")


def test_nesting_is_counted_from_the_document_itself() -> None:
    limits = InputLimits(max_depth=3)
    limits.check_document(nested(3), "the data")
    with pytest.raises(InvalidInputError, match="more than 3 levels"):
        limits.check_document(nested(4), "the data")
    with pytest.raises(InvalidInputError, match="more than 64 levels"):
        InputLimits().check_document(nested(100_000), "the data")  # no recursion to overflow


def test_the_size_counted_is_the_stored_one_in_utf8_bytes() -> None:
    limits = InputLimits(max_item_bytes=20)
    limits.check_document({"x": "é" * 6}, "the data")  # {"x":"éééééé"} is 20 bytes
    with pytest.raises(InvalidInputError, match="21 bytes as JSON; the limit is 20"):
        limits.check_document({"x": "é" * 6 + "a"}, "the data")


def test_limits_come_from_the_environment_and_refuse_nonsense() -> None:
    environ = {
        "STATEWISE_MAX_DEPTH": "10",
        "STATEWISE_MAX_ITEM_BYTES": "2000",
        "STATEWISE_MAX_BODY_BYTES": " 5000 ",
    }
    assert InputLimits.from_environment(environ) == InputLimits(10, 2000, 5000)
    assert InputLimits.from_environment({}) == InputLimits(64, 1024 * 1024, 10 * 1024 * 1024)
    with pytest.raises(StatewiseError, match=r"\$STATEWISE_MAX_DEPTH must be a whole number"):
        InputLimits.from_environment({"STATEWISE_MAX_DEPTH": "lots"})
    with pytest.raises(StatewiseError, match=r"\$STATEWISE_MAX_ITEM_BYTES must be positive"):
        InputLimits.from_environment({"STATEWISE_MAX_ITEM_BYTES": "0"})
    with pytest.raises(StatewiseError, match="between 1 and 200, not 260"):
        InputLimits(max_depth=260)


@pytest.mark.parametrize("data", [1.5, "text", [1, 2], None])
def test_data_beside_the_key_is_refused_whatever_data_holds(data: object) -> None:
    """Found by schemathesis: a ``data`` that is no object beside stray keys was a 500."""
    record = {"key": "k-1", "data": data, "amount": 3}
    with pytest.raises(InvalidInputError, match='"amount" beside "key"') as refused:
        check_wrapped(record, ("workflow", "key", "data"), "the item")
    assert '"data": {"amount": 3}' in str(refused.value)
