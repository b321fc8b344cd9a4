"""`statewise worker` delivers alerts by itself; the alert options refuse bad values."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hostile import HOSTILE_BUT_VALID_KEYS
from observe.receiver import Receiver
from statewise.observe.delivery import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from test_cli import invoke
from test_cli_prune import COMMANDS, run_items

WORKFLOW = """\
workflow: scored
version: 1
alerts:
  - {state: held, on_enter: true}
destinations:
  desk: {url_env: ALERTS_CLI_HOOK, secret_env: ALERTS_CLI_SECRET}
states:
  intake:
    kind: initial
    command: {name: score, result: score}
    transitions:
      - to: held
  held:
    kind: waiting
    transitions:
      - on: release
        to: accepted
  accepted:
    kind: final
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "scored.yaml").write_text(WORKFLOW)
    (tmp_path / "commands.py").write_text(COMMANDS)
    return tmp_path


def test_a_worker_delivers_an_escalation_once(project: Path) -> None:
    assert run_items(project, HOSTILE_BUT_VALID_KEYS)[0] == 0
    receiver = Receiver()
    receiver.start()
    env = {**os.environ, "ALERTS_CLI_HOOK": f"{receiver.url}/desk", "ALERTS_CLI_SECRET": "k"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "statewise", "worker", "--db", str(project / "run.sqlite"),
         "--commands", str(project / "commands.py"), "--alerts-every", "200ms"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not receiver.received:
            assert worker.poll() is None and time.monotonic() < deadline, "nothing was sent"
            time.sleep(0.05)
        time.sleep(1.0)  # several more rounds: the episode still fires, nothing more is sent
    finally:
        worker.send_signal(signal.SIGTERM)
        log = worker.communicate(timeout=30)[0]
        receiver.stop()
    assert worker.returncode == 0, log
    (message,) = receiver.received
    headers = message.headers
    assert verify(
        b"k", headers[TIMESTAMP_HEADER], message.body, headers[SIGNATURE_HEADER], time.time()
    )
    assert sorted(message.json["detail"]["keys"]) == sorted(HOSTILE_BUT_VALID_KEYS)
    assert "alerts: entered fires on scored/held" in log
    assert "alerts: entered opened of scored/held delivered to desk" in log


@pytest.mark.parametrize("every", ["0", "-1s", "abc", "2d"])
def test_bad_alert_intervals_are_refused_before_anything_is_opened(
    project: Path, every: str
) -> None:
    db = project / "never.sqlite"
    code, output = invoke("worker", "--commands", "x", "--alerts-every", every, "--db", db)
    assert code == 2 and "error: --alerts-every" in output
    code, output = invoke("serve", "--alerts-every", every, "--db", db)
    assert code == 2 and "error: --alerts-every" in output
    assert not db.exists()
