"""What every ``statewise`` command shares: the app, its consoles and options, error handling.

A user's mistake (a bad option, a missing file, an invalid workflow, an event an item cannot
take) ends in one ``error:`` line and exit code 1 or 2, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.segment import Segments
from rich.table import Table
from rich.text import Text

from statewise.engine.item import ItemStatus
from statewise.errors import DefinitionError, InvalidInputError, NotFoundError, StatewiseError
from statewise.inputs import check_row_id, decode_json
from statewise.store import Store, open_store

T = TypeVar("T")
JSON = Any

app = typer.Typer(
    name="statewise",
    help="AI workflows as durable state machines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Keys, states and error messages are user data: a "[/x]" in one must print, not parse as markup.
console = Console(markup=False)
errors = Console(stderr=True)

DB_HELP = "Store: a SQLite file (PATH or sqlite:///PATH) or a postgresql:// URL."
DbOption = Annotated[str, typer.Option("--db", help=DB_HELP)]
DEFAULT_DB = "statewise.sqlite"
# The longest lease or drain, seconds (a day): an endless lease would never hand a dead
# process's work to another, and an endless drain would never let SIGTERM finish.
MAX_SECONDS = 86_400.0
CommandsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--commands",
        "-c",
        help="Module exposing a `registry` of commands: a dotted name, the same on every host, "
        "or a .py path (inside a package it is recorded by its dotted name). Repeatable.",
    ),
]
RestartsOption = Annotated[
    int,
    typer.Option(
        min=0,
        help="Restart stopped workers this many times in a row (with doubling pauses), then "
        "exit non-zero.",
    ),
]
RestartDelayOption = Annotated[
    float, typer.Option(min=0, help="Seconds before the first restart; doubles up to 30.")
]
RefreshEveryOption = Annotated[
    float,
    typer.Option(
        min=0.1,
        max=MAX_SECONDS,
        help="Seconds between checks for workflow versions deployed meanwhile; new ones are "
        "taken up without a restart.",
    ),
]


def nothing_deployed(db: str, process: str, every: float) -> None:
    """Say that the store holds no workflow yet, how to deploy one, and when it is taken up."""
    errors.print(
        f"the store has no workflows yet: deploy them with `statewise deploy FILE... --db "
        f"{db}`; this {process} takes them up within {every:g}s, without a restart"
    )


ReadyMaxFailedOption = Annotated[
    int,
    typer.Option(min=0, help="/readyz fails when more items than this failed in --ready-window."),
]
ReadyWindowOption = Annotated[
    float, typer.Option(min=1, help="Seconds /readyz looks back for failed items.")
]
WorkflowOption = Annotated[
    str | None, typer.Option("--workflow", "-w", help="Workflow name, when keys repeat.")
]


@contextmanager
def user_errors() -> Iterator[None]:
    """Print a StatewiseError as the user's problem to fix, never as a traceback."""
    try:
        yield
    except DefinitionError as exc:
        print_problems(exc)
        errors.print(f"{len(exc.problems)} problem(s) found")
        raise typer.Exit(1) from None
    except StatewiseError as exc:
        fail(str(exc), 1)


def print_problems(error: DefinitionError) -> None:
    """Every problem of a definition, one ``file:line:column: message`` line each."""
    for problem in error.problems:
        errors.print(f"[red]{escape(str(problem))}[/red]", highlight=False, soft_wrap=True)


def fail(message: str, code: int) -> NoReturn:
    """Stop with one ``error:`` line: code 2 for a bad option, 1 for anything else."""
    errors.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def id_argument(value: int, what: str) -> int:
    """A task or token id from the command line, refused before the store is opened."""
    try:
        return check_row_id(value, what)
    except InvalidInputError as exc:
        fail(str(exc), 2)


def data_option(text: str) -> dict[str, JSON]:
    """``--data`` as a JSON object; NaN, infinities and malformed JSON are refused at once.

    The limits of the document itself (depth, size, names) are checked where it is used, by
    the same rules as the API's.
    """
    try:
        payload = decode_json(text)
    except InvalidInputError as exc:
        fail(f"--data is not JSON: {exc}", 2)
    if not isinstance(payload, dict):
        fail("--data must be a JSON object", 2)
    return payload


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine, turning our errors into one ``error:`` line."""
    with user_errors():
        return asyncio.run(coroutine)


async def with_store(db: str, action: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``action`` on a store that must already exist, closing it afterwards."""
    store = existing_store(db)
    try:
        return await action(store)
    finally:
        await store.close()


def existing_store(db: str) -> Store:
    """Open a store that must already exist; reading must not create an empty SQLite file."""
    file = sqlite_file(db)
    if file is not None and not file.exists():
        raise NotFoundError(
            f"{file} does not exist; deploy workflows with `statewise deploy FILE`, "
            "or start items with `statewise run FILE`"
        )
    return open_store(db)


def sqlite_file(db: str) -> Path | None:
    """The file a SQLite ``--db`` names (``PATH`` or ``sqlite:///PATH``); None for a server."""
    if db.startswith("sqlite:///"):
        return Path(db.removeprefix("sqlite:///"))
    return None if "://" in db else Path(db)


_STATUS_STYLES = {
    ItemStatus.FAILED: "red",
    ItemStatus.PAUSED: "yellow",
    ItemStatus.CANCELLED: "dim",
}


def status_cell(status: ItemStatus) -> Text:
    """An item status as a table cell; a failed (quarantined) item stands out in red."""
    return Text(status.value, style=_STATUS_STYLES.get(status, ""))


def failure_cell(error: dict[str, str] | None) -> Text:
    """An audit row's error as ``kind: message``, in red; empty without one."""
    if not error:
        return Text("")
    return Text(f"{error.get('kind')}: {error.get('message')}", style="red")


def age(seconds: float) -> str:
    """A duration as a person reads it: ``4.2s``, ``3.1m``, ``2.0h``, ``1.5d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{max(seconds, 0):.1f}s"


def when(at: float) -> str:
    """A moment as a person and a script read it: ``2026-12-07 17:16:28 UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


class OutputFormat(StrEnum):
    """How a command prints what it lists."""

    TABLE = "table"
    TSV = "tsv"
    JSON = "json"


FormatOption = Annotated[
    OutputFormat | None,
    typer.Option(
        "--format",
        "-f",
        help="table, tsv or json; default: a table on a terminal, tsv when piped or redirected.",
    ),
]


def output_format(given: OutputFormat | None) -> OutputFormat:
    """The format asked for; else a table on a terminal, and TSV for a pipe or a file.

    A pipe has no width to fit a table into: tab-separated lines keep every name whole and
    are what ``cut``, ``sort`` and spreadsheets read.
    """
    if given is not None:
        return given
    return OutputFormat.TABLE if console.is_terminal else OutputFormat.TSV


Cell = str | Text
# A prose column may fold a word longer than this rather than widen the table for it.
_PROSE_WORD = 20
# Character codes shown as escapes: C0 controls and DEL would move the cursor or end a field.
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(32), 127)} | {
    ord("\t"): "\\t",
    ord("\n"): "\\n",
    ord("\r"): "\\r",
}


@dataclass(frozen=True, slots=True)
class Col:
    """A column: a name (a key, a state) is never broken; ``prose`` may wrap between words."""

    name: str
    prose: bool = False


def escaped(text: str, *, keep_newlines: bool = False, backslash: bool = False) -> str:
    r"""Control characters as visible escapes (``\t``, ``\n``, ``\x1b``).

    ``backslash`` doubles backslashes first, so TSV can be read back exactly.
    """
    table = dict(_CONTROLS)
    if keep_newlines:
        del table[ord("\n")]
    if backslash:
        table[ord("\\")] = "\\\\"
    return text.translate(table)


def emit_table(
    columns: Sequence[str | Col],
    rows: Iterable[Sequence[Cell]],
    *,
    fmt: OutputFormat | None = None,
    title: str | None = None,
    json_rows: Sequence[Mapping[str, JSON]] | None = None,
) -> None:
    """Print rows in the chosen format; no format cuts a cell short.

    A table keeps every name whole: it grows wider than the terminal (which then wraps
    the lines) rather than break or ellipsise a name, and only prose columns wrap. TSV has
    a header line and one line per row, tabs, newlines and backslashes escaped; a title,
    when a command prints several tables, is a ``# title`` line above its header. JSON is
    ``json_rows`` when given (typed values), else each row as ``{column: text}``.
    """
    chosen = output_format(fmt)
    cols = [column if isinstance(column, Col) else Col(column) for column in columns]
    listed = [list(row) for row in rows]
    cells = [[_plain(cell) for cell in row] for row in listed]
    if chosen is OutputFormat.JSON:
        found = (
            json_rows
            if json_rows is not None
            else [dict(zip((c.name for c in cols), row, strict=True)) for row in cells]
        )
        sys.stdout.write(json.dumps(list(found), indent=2, ensure_ascii=False, default=str) + "\n")
    elif chosen is OutputFormat.TSV:
        lines = [f"# {escaped(title)}"] if title else []
        for row in [[c.name for c in cols], *cells]:
            lines.append("\t".join(escaped(cell, backslash=True) for cell in row))
        sys.stdout.write("\n".join(lines) + "\n")
    else:
        _print_table(cols, listed, title)
    sys.stdout.flush()  # before any note on stderr, so that a terminal shows them in order


def _plain(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else cell


def _print_table(cols: Sequence[Col], rows: Sequence[Sequence[Cell]], title: str | None) -> None:
    """A Rich table as wide as its names need, folded (never ellipsised) where it must be."""
    table = Table(title=title)
    for column in cols:
        table.add_column(column.name, overflow="fold", no_wrap=not column.prose)
    widths = [cell_len(column.name) if not column.prose else 1 for column in cols]
    for row in rows:
        shown = [_visible(cell, column.prose) for cell, column in zip(row, cols, strict=True)]
        table.add_row(*shown)
        for index, (cell, column) in enumerate(zip(shown, cols, strict=True)):
            widths[index] = max(widths[index], _width_needed(cell.plain, column.prose))
    needed = sum(widths) + 3 * len(cols) + 1  # a space either side of each cell, the rules
    if needed <= console.width:
        console.print(table)
        return
    options = console.options.update_width(needed)
    lines = console.render_lines(table, options, pad=False, new_lines=True)
    console.print(Segments([part for line in lines for part in line]), soft_wrap=True, end="")


def _visible(cell: Cell, prose: bool) -> Text:
    """A cell with its control characters shown as escapes; a prose cell keeps its lines."""
    text = escaped(_plain(cell), keep_newlines=prose)
    return Text(text, style=cell.style if isinstance(cell, Text) else "")


def _width_needed(text: str, prose: bool) -> int:
    """How wide a cell must be: a whole name, or a prose cell's longest word (up to a limit)."""
    if not prose:
        return max((cell_len(line) for line in text.split("\n")), default=0)
    return min(max((cell_len(word) for word in text.split()), default=0), _PROSE_WORD)


def note(message: str | Text, fmt: OutputFormat) -> None:
    """A line about a listing: below a table, or on stderr when stdout holds TSV or JSON."""
    text = message if isinstance(message, Text) else Text(message)
    (console if fmt is OutputFormat.TABLE else errors).print(text, soft_wrap=True)
