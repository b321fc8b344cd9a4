"""schemathesis over the live service's OpenAPI spec, as an admin: no request gets a 5xx."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .conftest import Server


def test_no_generated_request_gets_a_server_error(server: Server, tmp_path: Path) -> None:
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
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-4000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", report)
    assert generated is not None, report[-2000:]
    assert int(generated.group(1)) > 100 and generated.group(1) == generated.group(2)
