"""``statewise demo`` as a user runs it: a subprocess on a fresh SQLite file.

With ``--no-serve`` it runs the examples and prints the summary; without it, it goes on to
serve the dashboard, and the admin token it prints signs in and decides a waiting task.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
STATEWISE = [sys.executable, "-m", "statewise"]
PROCESSES = (
    "compliance_review",
    "content_approval",
    "order_processing",
    "product_onboarding",
    "support_routing",
)


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEWISE_")}
    return {**env, "COLUMNS": "160", "HF_HUB_OFFLINE": "1"}


@pytest.mark.usefixtures("offline_model")  # the examples' agents run on it
def test_demo_runs_all_five_processes_and_prints_end_states_tasks_and_usage(
    tmp_path: Path,
) -> None:
    db = tmp_path / "demo.sqlite"
    done = subprocess.run(
        [*STATEWISE, "demo", "--no-serve", "--db", str(db)],
        cwd=ROOT,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "skipping" not in done.stderr  # every workflow stays loadable beside the others
    out = done.stdout
    assert "ran 5 workflows" in out
    for workflow in PROCESSES:  # a heading of its own, however Rich draws the rule around it
        assert re.search(rf"^\W*{workflow}\W*$", out, re.MULTILINE), workflow
    assert re.search(r"ended: .*\d+ awaiting_reply \(waiting\)", out)
    assert re.search(r"human tasks waiting: .*\d+ in priority", out)
    assert re.search(r"loading the offline model \(all-MiniLM-L6-v2\) took \d+\.\ds", out)
    assert re.search(r"analyse\W+classify\W+local:all-MiniLM-L6-v2\W+20\W", out)
    for workflow in PROCESSES:  # every item settled; the bar and count are Rich's drawing
        assert re.search(rf"{workflow}\W.*?\b(\d+)\D+\1 settled", done.stderr), workflow


def test_demo_refuses_an_unknown_example_and_names_the_known_ones(tmp_path: Path) -> None:
    done = subprocess.run(
        [*STATEWISE, "demo", "--no-serve", "--only", "nope", "--db", str(tmp_path / "x.sqlite")],
        cwd=ROOT,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "no example named nope" in done.stderr and "support_routing" in done.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Output:
    """The demo's standard output, read by a thread so waiting for a line never blocks."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen = ""
        stream = process.stdout
        threading.Thread(
            target=lambda: [self.lines.put(line) for line in stream], daemon=True
        ).start()

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """Read on until ``pattern`` appears (or fail with what was printed)."""
        deadline = time.monotonic() + timeout
        while (found := re.search(pattern, self.seen)) is None:
            remaining = deadline - time.monotonic()
            try:
                self.seen += self.lines.get(timeout=max(remaining, 0.01))
            except queue.Empty:
                raise AssertionError(
                    f"{pattern!r} never printed; output was:\n{self.seen}"
                ) from None
        return found


@pytest.mark.usefixtures("offline_model")  # the examples' agents run on it
def test_demo_serves_the_dashboard_and_its_token_decides_a_waiting_task(tmp_path: Path) -> None:
    port = _free_port()
    command = [*STATEWISE, "demo", "--only", "support_routing", "--port", str(port)]
    command += ["--db", str(tmp_path / "d.sqlite")]
    with subprocess.Popen(
        command,
        cwd=ROOT,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        try:
            output = _Output(process)
            token = output.wait_for(r"\n\s+(sw_\S+)\n", 300).group(1)
            assert f"http://127.0.0.1:{port}/dashboard" in output.seen
            output.wait_for(r"Press Ctrl\+C to stop", 10)
            _decide_a_priority_task(port, token)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)


def _decide_a_priority_task(port: int, token: str) -> None:
    """Sign in with the printed token, find a waiting task, decide it, see the item move on."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
        deadline = time.monotonic() + 30
        while True:
            try:
                tasks = client.get("/api/tasks").raise_for_status().json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the dashboard never came up"
                time.sleep(0.2)
        assert client.get("/", follow_redirects=True).url.path == "/dashboard/login"
        task = next(t for t in tasks if t["queue"] == "priority")
        decided = client.post(
            f"/api/tasks/{task['id']}/decide",
            json={"outcome": "resolve", "data": {"reply": "Sorted", "resolution": "solved"}},
        )
        assert decided.status_code == 200, decided.text
        deadline = time.monotonic() + 15  # the serving process's workers run the follow-up
        while (state := _state(client, task["key"])) != "closed":
            assert time.monotonic() < deadline, f"{task['key']} stayed in {state}"
            time.sleep(0.2)


def _state(client: httpx.Client, key: str) -> str:
    state: str = client.get(f"/api/items/support_routing/{key}").json()["state"]
    return state


def test_a_bad_events_line_is_named_with_its_file_and_line(tmp_path: Path) -> None:
    from statewise.cli.demo import Example
    from statewise.errors import StatewiseError

    example = tmp_path / "broken"
    example.mkdir()
    (example / "events.jsonl").write_text('{"key": "a", "event": "go"}\n\n{"key": "b"}\n')
    with pytest.raises(StatewiseError, match=r"events.jsonl:3: expected \{\"key\""):
        Example(example).events()
    (example / "events.jsonl").write_text("{not json\n")
    with pytest.raises(StatewiseError, match=r"events.jsonl:1: not JSON"):
        Example(example).events()
