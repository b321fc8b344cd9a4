"""``retry: {on_timeout: previous}``: a timed-out last attempt sends the item back a state.

The brief's "system timeout: return to the previous state for retry", through the real
runner on a virtual clock, and the replay of the record predicting the same path.
"""

from __future__ import annotations

from statewise.contract import CommandContext
from statewise.definition import loads
from statewise.errors import TimedOutError
from statewise.replay.fold import fold
from statewise.replay.record import path_of, read_inputs
from statewise.testing import MakeWorkflowTest

YAML = """
workflow: sync
version: 1
input: [n]
states:
  start:
    kind: initial
    transitions: [{to: prepare}]
  prepare:
    command: prepare
    transitions: [{to: fetch}]
  fetch:
    command:
      name: fetch
      retry: {attempts: 2, backoff: 1s, jitter: 0, timeout: 30s, on_timeout: previous}
    max_visits: 2
    on_exhausted: gave_up
    transitions:
      - to: done
      - on: error
        to: failed
  done: {kind: final}
  gave_up: {kind: final}
  failed: {kind: final}
"""
SYNC = loads(YAML, commands=frozenset({"prepare", "fetch"}))


def timing_out(times: int, error: BaseException) -> object:
    """A fetch that fails ``times`` times with ``error``, then answers."""
    calls: list[int] = []

    def fetch(ctx: CommandContext) -> dict[str, int]:
        calls.append(ctx.attempt)
        if len(calls) <= times:
            raise error
        return {"rows": 3}

    return fetch


def test_a_timed_out_fetch_goes_back_to_prepare_and_succeeds_the_second_time(
    workflow_test: MakeWorkflowTest,
) -> None:
    flow = workflow_test(SYNC)
    flow.command("prepare", {"ready": True})
    flow.command("fetch", timing_out(2, TimeoutError("read timed out")))
    flow.start("s-1", {"n": 1})
    flow.advance(seconds=1)

    path = ["start", "prepare", "fetch", "prepare", "fetch", "done"]
    flow.assert_path("s-1", path)
    back = flow.assert_audit("s-1", from_state="fetch", to_state="prepare")
    assert back.note == "timed out, back to 'prepare'"
    assert back.error == {"kind": "transient", "message": "read timed out", "cause": "timeout"}
    assert len(flow.calls("prepare")) == 2
    assert flow.item("s-1").came_from == "fetch"

    rows = flow.history("s-1")
    inputs = read_inputs("s-1", rows)
    assert inputs is not None
    folded = fold(SYNC, inputs)
    assert path_of(folded.history) == path_of(rows) == tuple(path)


def test_timeouts_past_the_visit_budget_go_to_on_exhausted(
    workflow_test: MakeWorkflowTest,
) -> None:
    flow = workflow_test(SYNC)
    flow.command("prepare", {"ready": True})
    flow.command("fetch", timing_out(10, TimedOutError("the warehouse API timed out")))
    flow.start("s-2", {"n": 2})
    flow.advance(seconds=1)
    flow.advance(seconds=1)

    flow.assert_path("s-2", ["start", "prepare", "fetch", "prepare", "fetch", "prepare", "gave_up"])
    row = flow.assert_audit("s-2", to_state="gave_up")
    assert row.note is not None and "visit budget of 'fetch' (2) exhausted" in row.note


def test_a_failure_that_is_no_timeout_takes_the_error_transition(
    workflow_test: MakeWorkflowTest,
) -> None:
    flow = workflow_test(SYNC)
    flow.command("prepare", {"ready": True})
    flow.command("fetch", timing_out(10, ConnectionResetError("reset by peer")))
    flow.start("s-3", {"n": 3})
    flow.advance(seconds=1)

    flow.assert_path("s-3", ["start", "prepare", "fetch", "failed"])
