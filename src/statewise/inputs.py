"""What statewise accepts from outside: item keys, row ids and JSON documents.

One rule for every entry point (the API, the dashboard, the CLI, ``items.jsonl``, the
Python ``Runner``), so that what one of them refuses none accepts, with a message naming
the rule, before anything is stored.

Documents (start data, event data, task form data) must be JSON that every client and both
stores read back as written: finite numbers, integers within 64 bits, nesting no deeper than
a limit (reading an item serialises its whole context, and a very deep one breaks that) and
a size within a limit. The names at a document's top level become context paths, whose rows
are joined with U+001F: a control character in a name could rewrite another path.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from statewise.errors import ConfigurationError, InvalidInputError
from statewise.store.codec import dumps

JSON = Any
MAX_KEY_LENGTH = 512
# A reason or comment: the audit trail keeps it with its step, and a bulk operation with each item.
MAX_TEXT_LENGTH = 10_000
# Ids of tasks, tokens and items fit every store's 64-bit integer column; so must integers.
MAX_ROW_ID = 2**63 - 1
# A workflow version fits every store's integer column and every entry point that names one.
MAX_VERSION = 2**31 - 1
INTEGERS = range(-(2**63), 2**63)
# Deeper documents cannot be read back: pydantic's serialiser stops at about 255 levels.
DEPTH_CEILING = 200
DEPTH_ENV = "STATEWISE_MAX_DEPTH"
ITEM_BYTES_ENV = "STATEWISE_MAX_ITEM_BYTES"
BODY_BYTES_ENV = "STATEWISE_MAX_BODY_BYTES"
# An example record in a message: enough to show the shape, never the whole document.
_MAX_SHAPE = 200
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# Half of a UTF-16 pair: JSON's \ud800 escape and a non-UTF-8 argument decode to one, and no
# store can encode it.
_SURROGATE = re.compile("[\ud800-\udfff]")
# Built once: a ``dict | list`` union in an isinstance call is built anew on every call.
_SEQUENCES = (list, tuple)
_CONTAINERS = (dict, list, tuple)
_NUMBERS = (float, int)


@dataclass(frozen=True, slots=True)
class InputLimits:
    """How deep and how large a document, and how large a request body, may be.

    ``max_item_bytes`` counts a document as stored (compact UTF-8 JSON); ``max_body_bytes``
    is the service's cap on a whole request, checked before the body is read.
    """

    max_depth: int = 64
    max_item_bytes: int = 1024 * 1024
    max_body_bytes: int = 10 * 1024 * 1024

    def __post_init__(self) -> None:
        if not 1 <= self.max_depth <= DEPTH_CEILING:
            raise ConfigurationError(
                f"the maximum depth must be between 1 and {DEPTH_CEILING}, not {self.max_depth}"
            )
        for name in ("max_item_bytes", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be a positive number of bytes")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> InputLimits:
        """The defaults, each overridden by its ``STATEWISE_MAX_*`` variable when set."""
        defaults = cls()
        return cls(
            max_depth=_positive(environ, DEPTH_ENV, defaults.max_depth),
            max_item_bytes=_positive(environ, ITEM_BYTES_ENV, defaults.max_item_bytes),
            max_body_bytes=_positive(environ, BODY_BYTES_ENV, defaults.max_body_bytes),
        )

    def check_start(
        self, key: str, data: Mapping[str, JSON], inputs: Collection[str] | None = None
    ) -> None:
        """Refuse an item's key or start data that breaks a rule; InvalidInputError says which.

        ``inputs`` are the keys the workflow declares under ``input:``: start data lacking one
        is refused, as the conditions and templates checked against them would fail on it.
        """
        check_key(key)
        self.check_document(data, f"the data of item {key!r}")
        missing = [name for name in inputs or () if name not in data]
        if missing:
            names = ", ".join(f"`{name}`" for name in missing)
            raise InvalidInputError(
                f"the data of item {key!r} lacks {names}, which the workflow declares under "
                f'`input:`; give every declared key under "data", like '
                f"{_shape(key, {name: data.get(name, '...') for name in inputs or ()})}"
            )

    def check_document(self, data: Mapping[str, JSON], what: str) -> None:
        """Refuse a JSON object (``what`` names it in the message) that breaks a rule."""
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"{what} must be a JSON object, not {type(data).__name__}")
        for name in data:
            _check_context_name(name, what)
        check_value(data, what, self.max_depth)
        try:
            size = len(dumps(data).encode())
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{what} is not JSON: {exc}") from None
        if size > self.max_item_bytes:
            raise InvalidInputError(
                f"{what} is {size:,} bytes as JSON; the limit is {self.max_item_bytes:,} "
                f"(${ITEM_BYTES_ENV})"
            )


def _positive(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"${name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise ConfigurationError(f"${name} must be positive, not {value}")
    return value


def check_wrapped(record: Mapping[str, JSON], allowed: Collection[str], what: str) -> None:
    """Refuse an item written with its data beside its key instead of under ``"data"``.

    Such data used to be dropped (the API) or taken whole (a JSON Lines file): one shape, said
    in the message, for every entry point.
    """
    stray = {name: value for name, value in record.items() if name not in allowed}
    if stray:
        key = record.get("key", "...")
        names = ", ".join(f'"{name}"' for name in stray)
        data = record.get("data")
        given = (
            data if isinstance(data, Mapping) else {}
        )  # a "data" that is no object is left out of the example
        raise InvalidInputError(
            f'{what} has {names} beside "key"; an item\'s data goes under "data", like '
            f"{_shape(key, {**given, **stray})}"
        )


def _shape(key: object, data: Mapping[str, JSON]) -> str:
    """An item record as it should be written, cut short when its data is long."""
    try:
        text = json.dumps({"key": key, "data": dict(data)}, ensure_ascii=False)
    except (TypeError, ValueError):
        text = json.dumps({"key": str(key), "data": {name: "..." for name in data}})
    return text if len(text) <= _MAX_SHAPE else text[: _MAX_SHAPE - 2] + "…}"


def check_key(key: str) -> str:
    """An item's business key: not blank, at most 512 characters, no control characters.

    Nor a lone surrogate: no store can write one, so a batch holding it failed part way.

    ``%``, ``/``, ``?`` and any other printable character are allowed: keys are the
    caller's identifiers, and every URL encodes them.
    """
    if not isinstance(key, str):
        raise InvalidInputError(f"an item key must be a string, not {type(key).__name__}")
    if not key.strip():
        raise InvalidInputError("an item key must not be empty or blank")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInputError(
            f"item key {key[:40]!r}... is {len(key):,} characters long; "
            f"the limit is {MAX_KEY_LENGTH}"
        )
    control = _CONTROL.search(key)
    if control is not None:
        raise InvalidInputError(
            f"item key {key!r} holds control character U+{ord(control.group()):04X}; "
            "keys may hold no control characters"
        )
    surrogate = _SURROGATE.search(key)
    if surrogate is not None:
        raise InvalidInputError(
            f"item key {key!r} holds a lone surrogate U+{ord(surrogate.group()):04X}, which is "
            "not Unicode text; keys must be valid UTF-8"
        )
    return key


def check_text(text: str, what: str) -> str:
    """A reason or comment for the audit trail: at most ``MAX_TEXT_LENGTH`` characters.

    Only the request body bounded it before, so one bulk cancel could copy megabytes into
    the history of every item it matched.
    """
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidInputError(
            f"{what} is {len(text):,} characters long; the limit is {MAX_TEXT_LENGTH:,}; "
            "nothing changed"
        )
    return text


def check_row_id(value: int, what: str) -> int:
    """A task, token or item id as the stores hold them: 1 up to 2**63 - 1."""
    if not 1 <= value <= MAX_ROW_ID:
        raise InvalidInputError(f"{what} {value} is out of range: ids run from 1 to {MAX_ROW_ID}")
    return value


def check_seconds(value: float, what: str) -> float:
    """A duration from outside: finite and not negative.

    ``NaN`` matters most: PostgreSQL orders it above every number and SQLite reads it as
    NULL, so a filter "older than NaN seconds" would match every item on one store and none
    on the other.
    """
    if not math.isfinite(value) or value < 0:
        raise InvalidInputError(f"{what} must be a finite number of seconds, 0 or more")
    return value


def decode_json(text: str | bytes) -> JSON:
    """Parse JSON from outside, refusing what Python's parser takes but JSON does not allow.

    ``NaN``, ``Infinity``, ``1e400`` (infinite as a float), integers too long to convert and
    nesting too deep to parse are refused as well as malformed text. InvalidInputError
    carries the reason alone, for the caller to say what was not JSON.
    """
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(exc.msg) from None
    except RecursionError:
        raise InvalidInputError("nested too deep to parse") from None
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None


def _no_constant(name: str) -> JSON:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a number")
    return value


def _check_context_name(name: object, what: str) -> None:
    if not isinstance(name, str):
        raise InvalidInputError(f"{what} has a name that is not a string: {name!r}")
    control = _CONTROL.search(name)
    if control is not None:
        raise InvalidInputError(
            f"{what} has a name {name!r} with control character U+{ord(control.group()):04X}; "
            "top-level names become context paths and may hold no control characters"
        )


def check_value(data: JSON, what: str, max_depth: int) -> None:
    """Refuse non-finite numbers, integers beyond 64 bits and nesting beyond ``max_depth``.

    The walk goes level by level with its own lists, so no nesting can overflow Python's
    stack, and checks numbers where it finds them: most values are strings it passes by.
    """
    level, depth = [data], 0
    while level:
        depth += 1
        deeper: list[JSON] = []
        for value in level:
            if isinstance(value, dict):
                children: Any = value.values()
            elif isinstance(value, _SEQUENCES):
                children = value
            else:
                _check_number(value, what)
                continue
            if depth > max_depth:
                raise InvalidInputError(
                    f"{what} is nested more than {max_depth} levels deep (the limit, ${DEPTH_ENV})"
                )
            for child in children:
                if isinstance(child, _CONTAINERS):
                    deeper.append(child)
                elif isinstance(child, _NUMBERS):
                    _check_number(child, what)
        level = deeper


def _check_number(value: JSON, what: str) -> None:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(
                f"{what} holds {value}, which is no JSON number; numbers must be finite"
            )
    elif isinstance(value, int) and value not in INTEGERS:
        raise InvalidInputError(
            f"{what} holds an integer outside the signed 64-bit range; "
            "send larger numbers as strings"
        )
