"""The audit trail's line of an agent's tool calls: readable, cut short, never a crash."""

from __future__ import annotations

from statewise.actions.inspection import TOOL_ARGS_CHARS, tool_calls_text


def test_each_call_shows_its_name_and_arguments_in_order() -> None:
    usage = {
        "tool_calls": [
            {"name": "lookup_order", "args": {"order_id": "88213"}, "result": {"found": True}},
            {"name": "track_parcel", "args": {"order_id": "88213", "carrier": "DHL"}},
        ]
    }
    assert tool_calls_text(usage) == (
        'lookup_order(order_id="88213"); track_parcel(order_id="88213", carrier="DHL")'
    )


def test_no_calls_or_no_usage_say_nothing() -> None:
    assert tool_calls_text(None) is None
    assert tool_calls_text({"tool_calls": []}) is None
    assert tool_calls_text({"model": "local"}) is None


def test_long_hostile_and_unparsed_arguments_stay_one_readable_line() -> None:
    usage = {
        "tool_calls": [
            {"name": "search", "args": {"q": "naïve 日本 " + "x" * 200}},
            {"name": "raw", "args": "{not json\n\x00 with a NUL"},  # the model's text, unparsed
            "not a call",
        ]
    }
    text = tool_calls_text(usage)
    assert text is not None and "\n" not in text and "\x00" not in text
    search, raw = text.split("; ")
    assert search.startswith('search(q="naïve 日本 xxx') and search.endswith("…)")
    assert len(search) == len("search()") + TOOL_ARGS_CHARS
    assert raw == "raw({not json with a NUL)"
