"""The command line refuses what the input rules refuse, in one ``error:`` line, changing nothing.

items.jsonl lines are named by number; ``--data`` and id arguments are refused before the
store is opened; ``serve`` refuses limits it could not honour.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from hostile import nested
from statewise.store import open_store
from test_cli import invoke, project, run_items

__all__ = ["project"]  # the fixture, shared with test_cli

BAD_LINES = [
    ('{"key": "   ", "data": {"title": "t"}}', "an item key must not be empty or blank"),
    ('{"key": "", "data": {"title": "t"}}', "an item key must not be empty or blank"),
    (
        '{"key": "a\\u0000b", "data": {"title": "t"}}',
        "item key 'a\\x00b' holds control character U+0000",
    ),
    ('{"key": "a\\u001fb", "data": {"title": "t"}}', "holds control character U+001F"),
    ('{"key": "a\\ud800", "data": {"title": "t"}}', "holds a lone surrogate U+D800"),
    (
        json.dumps({"key": "k" * 513, "data": {"title": "t"}}),
        "513 characters long; the limit is 512",
    ),
    (json.dumps({"key": "deep", "data": nested(260)}), "nested more than 64 levels deep"),
    ('{"key": "nan", "data": {"title": NaN}}', "not JSON (NaN is not a JSON number)"),
    ('{"key": "big", "data": {"title": 1e400}}', "not JSON (1e400 is too large for a number)"),
    (
        '{"key": "huge", "data": {"title": 100000000000000000000000000}}',
        "outside the signed 64-bit range",
    ),
    (
        '{"key": "sep", "data": {"title": "t", "score\\u001fvalue": 9}}',
        "'score\\x1fvalue' with control",
    ),
    (json.dumps({"key": "large", "data": {"title": "y" * 3000}}), "the limit is 2,000"),
    (
        '{"key": "flat ü/%?", "title": "t"}',
        'item \'flat ü/%?\' has "title" beside "key"; an item\'s data goes under "data", like '
        '{"key": "flat ü/%?", "data": {"title": "t"}}',
    ),
    ('{"key": "both", "data": {}, "n": 1}', 'has "n" beside "key"'),
]


def _snapshot(db: Path) -> list[tuple[str, str, int, int]]:
    async def read() -> list[tuple[str, str, int, int]]:
        store = open_store(str(db))
        try:
            assert await store.stuck_items() == []
            items = await store.list_items(limit=100)
            return sorted(
                [
                    (i.key, i.state, i.seq, len(await store.history(i.workflow, i.key)))
                    for i in items
                ]
            )
        finally:
            await store.close()

    return asyncio.run(read())


def _one_error_line(output: str, message: str) -> None:
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    assert message in lines[0], output


@pytest.mark.parametrize(("line", "message"), BAD_LINES)
def test_a_bad_items_line_is_refused_with_its_number_and_starts_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch, line: str, message: str
) -> None:
    monkeypatch.setenv("STATEWISE_MAX_ITEM_BYTES", "2000")
    assert run_items(project)[0] == 0
    before = _snapshot(project / "run.sqlite")
    (project / "items.jsonl").write_text(
        '{"key": "fresh", "data": {"title": "fine"}}\n' + line + "\n"
    )
    code, output = run_items(project)
    assert code == 1, output
    _one_error_line(output, "items.jsonl:2: ")
    assert message in output, output
    assert _snapshot(project / "run.sqlite") == before


@pytest.mark.parametrize(
    ("data", "code", "message"),
    [
        ('{"reviewer": NaN}', 2, "--data is not JSON: NaN is not a JSON number"),
        ('{"reviewer": 1e400}', 2, "--data is not JSON: 1e400 is too large for a number"),
        (json.dumps({"x": nested(260)}), 1, "the data of event 'approve' is nested more than 64"),
        ('{"n": 100000000000000000000000000}', 1, "outside the signed 64-bit range"),
    ],
)
def test_send_refuses_data_breaking_a_rule_in_one_line(
    project: Path, data: str, code: int, message: str
) -> None:
    assert run_items(project)[0] == 0
    before = _snapshot(project / "run.sqlite")
    answer, output = invoke(
        "send", "s1", "approve", "--data", data, "--db", project / "run.sqlite",
        "--commands", project / "commands.py",
    )  # fmt: skip
    assert answer == code
    _one_error_line(output, message)
    assert _snapshot(project / "run.sqlite") == before


@pytest.mark.parametrize(
    "command",
    [
        ("task", "decide", str(2**64), "approve"),
        ("task", "claim", str(2**64)),
        ("task", "release", "0"),
        ("token", "revoke", str(2**64)),
    ],
)
def test_ids_out_of_range_are_refused_before_the_store_is_opened(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    db = tmp_path / "never.sqlite"
    code, output = invoke(*command, "--db", db)
    assert code == 2
    _one_error_line(output, "is out of range: ids run from 1 to 9223372036854775807")
    assert not db.exists()


def test_serve_refuses_limits_it_cannot_honour(tmp_path: Path) -> None:
    code, output = invoke("serve", "--db", tmp_path / "s.sqlite", "--max-depth", "500")
    assert code == 1
    _one_error_line(output, "the maximum depth must be between 1 and 200, not 500")
    code, output = invoke("serve", "--db", tmp_path / "s.sqlite", "--max-body-bytes", "0")
    assert code == 1
    _one_error_line(output, "max_body_bytes must be a positive number of bytes")
    assert not (tmp_path / "s.sqlite").exists()


@pytest.mark.parametrize(
    "command",
    [
        ("token", "create", "--role", "viewer", "--name", "ed\udcff"),
        ("show", "s1\udcff"),
        ("send", "s1\udcff", "approve"),
    ],
)
def test_an_argument_that_is_not_utf8_is_refused_in_one_line(
    project: Path, command: tuple[str, ...]
) -> None:
    """A shell passes bytes; Python decodes a non-UTF-8 one to a lone surrogate (``\\udcff``)."""
    assert run_items(project)[0] == 0
    before = _snapshot(project / "run.sqlite")
    code, output = invoke(*command, "--db", project / "run.sqlite")
    assert code == 1, output
    _one_error_line(output, "is not valid UTF-8")
    assert _snapshot(project / "run.sqlite") == before


def test_a_listing_limit_beyond_64_bits_is_a_bad_option_not_a_traceback(tmp_path: Path) -> None:
    db = tmp_path / "never.sqlite"
    code, output = invoke("items", "--limit", str(2**64), "--db", db)
    assert code == 2 and "--limit" in output, output
    assert not db.exists()


@pytest.mark.parametrize(
    "command",
    [
        ("serve", "--lease", "inf"),
        ("worker", "--lease", "inf"),
        ("worker", "--drain", "inf"),
        ("serve", "--lease", "1e9"),
    ],
)
def test_a_lease_or_drain_without_end_is_a_bad_option(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """An endless lease never returns a dead process's work; an endless drain never exits."""
    db = tmp_path / "never.sqlite"
    code, output = invoke(*command, "--db", db)
    assert code == 2 and command[1] in output, output
    assert not db.exists()


def test_start_data_lacking_a_declared_input_key_is_refused_with_the_shape(
    project: Path,
) -> None:
    workflow = (project / "review.yaml").read_text()
    (project / "review.yaml").write_text(
        workflow.replace("version: 1\n", "version: 1\ninput: [title]\n")
    )
    (project / "items.jsonl").write_text(
        '{"key": "fine", "data": {"title": "t"}}\n{"key": "bare %/?", "data": {"titel": "t"}}\n'
    )
    code, output = run_items(project)
    assert code == 1, output
    _one_error_line(
        output,
        "the data of item 'bare %/?' lacks `title`, which the workflow declares under `input:`; "
        'give every declared key under "data", like {"key": "bare %/?", "data": {"title": "..."}}',
    )
    assert _snapshot(project / "run.sqlite") == []
