"""An idle open dashboard tab's CPU cost: ``python bench/idle_tab.py [--seconds 60]``.

``statewise serve`` (with its workers) runs on a demo-sized SQLite store (``statewise demo
--no-serve``, 95 items over the five example workflows; ``--db`` reuses a file), and one
headless Chromium tab signs in and opens a dashboard page. After the page has settled, the
CPU time of the server process and of every Chromium process is read from ``/proc`` over
``--seconds`` of idling and reported as percent of one core. The server alone is measured as
long first, with no tab open (its workers poll the store): the tab's cost is what the server
spends beyond that plus all of Chromium (target: under 2%). ``--src``
serves another checkout's ``src`` (e.g. the code before live figures, unpacked with ``git
archive``) to measure it on the same store. Figures go to ``bench/results-idle-tab.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from measure import machine_info
from run import git_revision

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
TICKS = os.sysconf("SC_CLK_TCK")
RESULTS = Path(__file__).parent / "results-idle-tab.json"


def _environment(src: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEWISE_")}
    return {**env, "PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1"}


def _statewise(src: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "statewise", *args],
        env=_environment(src),
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return done.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(src: Path, db: Path) -> Iterator[tuple[str, int]]:
    """``statewise serve`` on ``db``: its address and process id, stopped afterwards."""
    port = _free_port()
    command = [sys.executable, "-m", "statewise", "serve", "--db", str(db), "--port", str(port)]
    process = subprocess.Popen(
        command, env=_environment(src), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("statewise serve did not come up")
            time.sleep(0.5)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=60)


def _parents() -> dict[int, int]:
    """Every process's parent, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            found[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def _descendants(root: int) -> set[int]:
    parents = _parents()
    found = {root}
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def _is_chromium(pid: int) -> bool:
    try:
        return "chrom" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return False


def _renderer(pid: int) -> bool:
    try:
        return "--type=renderer" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return False


def alone(server: int, seconds: float) -> float:
    """The server's own idle CPU, percent of a core, with no tab open."""
    pids = _descendants(server)
    before = {p: _cpu_seconds(p) for p in pids}
    began = time.monotonic()
    time.sleep(seconds)
    used = sum(_cpu_seconds(p) - before[p] for p in pids)
    return round(100 * used / (time.monotonic() - began), 2)


def idle_cost(url: str, server: int, token: str, path: str, seconds: float) -> dict[str, Any]:
    """Open ``path`` in one tab, let it settle, then measure ``seconds`` of idling."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"{url}/dashboard/login")
            page.fill("#token", token)
            page.click("button.primary")
            page.wait_for_url(f"{url}/dashboard")
            page.goto(f"{url}{path}")
            time.sleep(5)
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            chromium = {p for p in _descendants(os.getpid()) if _is_chromium(p)}
            renderers = {p for p in chromium if _renderer(p)}
            server_pids = _descendants(server)
            before = {p: _cpu_seconds(p) for p in chromium | server_pids}
            began = time.monotonic()
            time.sleep(seconds)
            elapsed = time.monotonic() - began
            used = {p: _cpu_seconds(p) - before[p] for p in before}
        finally:
            browser.close()

    def share(pids: set[int]) -> float:
        return round(100 * sum(used[p] for p in pids) / elapsed, 2)

    return {
        "page": path,
        "seconds": round(elapsed, 1),
        "server_pct_core": share(server_pids),
        "chromium_pct_core": share(chromium),
        "renderer_pct_core": share(renderers),
        "total_pct_core": share(server_pids | chromium),
        "requests": len(requests),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--db", type=Path, help="a demo store to reuse (else one is made)")
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the code to serve")
    parser.add_argument("--label", default="this checkout")
    parser.add_argument(
        "--page",
        action="append",
        help="dashboard path(s) to measure (default: the board and compliance_review's page)",
    )
    options = parser.parse_args()
    pages = options.page or ["/dashboard", "/dashboard/workflows/compliance_review"]
    with tempfile.TemporaryDirectory() as scratch:
        db = options.db or Path(scratch) / "demo.sqlite"
        if options.db is None:
            _statewise(options.src, "demo", "--no-serve", "--db", str(db))
        created = _statewise(options.src, "token", "create", "--role", "viewer", "--name",
                             f"idle-{time.time_ns()}", "--db", str(db))  # fmt: skip
        token = created.strip().splitlines()[-1].strip()
        with serving(options.src, db) as (url, pid):
            time.sleep(5)
            server_alone = alone(pid, options.seconds)
            runs = [idle_cost(url, pid, token, page, options.seconds) for page in pages]
    print(f"{options.label}: the server alone {server_alone}% of a core")
    for run in runs:
        run["tab_pct_core"] = round(
            run["server_pct_core"] - server_alone + run["chromium_pct_core"], 2
        )
        print(
            f"{options.label} {run['page']}: the tab costs {run['tab_pct_core']}% of a core "
            f"(server {run['server_pct_core']}%, chromium {run['chromium_pct_core']}%, "
            f"its renderer {run['renderer_pct_core']}%) over {run['seconds']} s, "
            f"{run['requests']} request(s)"
        )
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[options.label] = {
        "server_alone_pct_core": server_alone,
        "runs": runs,
        "revision": git_revision(),
        **machine_info(),
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
