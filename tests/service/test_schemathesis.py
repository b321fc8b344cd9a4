"""schemathesis over the live service's OpenAPI spec, as an admin: no request gets a 5xx.

The traffic is read back from schemathesis's HAR recording (the HTTP Archive format), so the
test counts requests and statuses itself rather than reading schemathesis's summary wording.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import Server


def test_no_generated_request_gets_a_server_error(server: Server, tmp_path: Path) -> None:
    recording = tmp_path / "traffic.har"
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{server.url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--header",
        f"Authorization: Bearer {server.tokens['admin']}",
        "--max-examples",
        "25",
        "--request-timeout",
        "30",
        "--report",
        "har",
        "--report-har-path",
        str(recording),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-4000:]
    statuses = [
        entry["response"]["status"] for entry in json.loads(recording.read_text())["log"]["entries"]
    ]
    assert len(statuses) > 100, report[-2000:]
    assert [status for status in statuses if status >= 500] == [], report[-4000:]
