"""What-if replay through the live service: POST /api/simulate and the dashboard's page.

The record is made first (real runs, hostile keys included); the service then replays it
through a changed threshold without running anything, and each changed item's link on the
page leads to that item, whatever its key holds.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from replay.records import SCREENING_YAML, registry, run_for_real, screener, screening
from statewise.store import Store
from statewise.worker.catalog import Catalog

from .conftest import Server, login_csrf, run_server

SCRIPT = "<script>alert(1)</script>"
# Held by the scorer (risk >= 0.5) and so reviewed; a threshold of 0.7 saves the first four.
HOSTILE = {"inv%41": 0.5, "a/b": 0.55, "what?x=1": 0.6, "naïve-日本": 0.65, SCRIPT: 0.75}
CHANGED = SCREENING_YAML.replace(">= 0.5", ">= 0.7").replace("version: 1", "version: 2")
MISSPELT = CHANGED.replace("to: cleared\n        else", "to: clered\n        else")


async def _held(store: Store) -> Catalog:
    return Catalog([screening()], registry)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    url = f"sqlite:///{tmp_path / 'simulate.sqlite'}"
    items = [(key, {"risk": risk}) for key, risk in HOSTILE.items()] + [("low", {"risk": 0.1})]
    asyncio.run(run_for_real(url, screening(), items, screener))
    yield from run_server(url, items=0, workers=False, catalog=_held)


def test_the_api_replays_a_posted_change_and_writes_nothing(server: Server) -> None:
    with server.client("operator") as ops:
        answer = ops.post("/api/simulate", json={"yaml": CHANGED})
        assert answer.status_code == 200, answer.text
        found = answer.json()
        assert (found["definition"], found["items"]) == ("screening@2", 6)
        assert {c["key"] for c in found["changed"]} == set(list(HOSTILE)[:4])
        (advice,) = found["advice"]
        assert (advice["saved"], advice["overridden_saved"]) == (4, 2)
        assert advice["overridden_keys"] == ["inv%41", "a/b"]
        assert found["queues"] == [{"queue": "fraud", "before": 5, "after": 1}]

        only = ops.post("/api/simulate", json={"yaml": CHANGED, "state": "cancelled"})
        assert only.status_code == 200 and only.json()["items"] == 3
        again = ops.post("/api/simulate", json={"yaml": CHANGED})
        assert again.json() == found  # a simulation moved nothing

        for bad, why in (
            ({"yaml": MISSPELT}, "clered"),
            ({"yaml": "states: ["}, "YAML syntax error"),
            ({"yaml": "workflow: x\nstates\u0084: {}"}, "posted.yaml:2:7: YAML cannot read"),
            ({"yaml": CHANGED, "since": "soon"}, "soon"),
            ({"yaml": CHANGED, "limit": 0}, "limit"),
            ({"yaml": CHANGED, "state": "held\u0000"}, "NUL"),
            ({"yaml": CHANGED, "version": 0}, "version"),
            ({"yaml": CHANGED, "limit": 10**9}, "limit"),
            ({"yaml": CHANGED, "path": "/etc/passwd"}, "path"),
            ({}, "yaml"),
        ):  # fmt: skip
            refused = ops.post("/api/simulate", json=bad)
            assert refused.status_code == 422 and why in refused.text, (bad, refused.text)
    with server.client("viewer") as viewer:
        assert viewer.post("/api/simulate", json={"yaml": CHANGED}).status_code == 403


def test_the_dashboard_page_edits_a_threshold_and_links_each_changed_item(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        csrf = login_csrf(browser)
        browser.post("/dashboard/login", data={"token": server.tokens["operator"], "csrf": csrf})
        page = browser.get("/dashboard/simulate", params={"workflow": "screening@1"})
        assert page.status_code == 200 and 'href="/dashboard/simulate"' in page.text
        assert '<option value="screening@1" selected>' in page.text
        assert "scoring.risk &gt;= 0.5" in page.text  # the stored YAML, ready to edit
        assert "<code>scoring.risk &gt;= 0.5</code>" in page.text  # and its conditions
        session_csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert session_csrf
        posted = browser.post(
            "/dashboard/simulate",
            data={
                "csrf": session_csrf[1],
                "yaml": CHANGED,
                "workflow": "",
                "since": "",
                "state": "",
            },
        )
        assert posted.status_code == 200, posted.text
        assert "6 item(s) replayed through screening@2" in posted.text
        assert SCRIPT not in posted.text
        table = posted.text.split('<table class="changed">')[1].split("</table>")[0]
        links = dict(re.findall(r'<a href="(/dashboard/items/[^"]+)">([^<]*)</a>', table))
        assert {html.unescape(key) for key in links.values()} == set(list(HOSTILE)[:4])
        for href, shown in links.items():
            assert href == f"/dashboard/items/screening/{quote(html.unescape(shown), safe='')}"
            assert browser.get(href).status_code == 200

        broken = browser.post(
            "/dashboard/simulate",
            data={
                "csrf": session_csrf[1],
                "yaml": "states: [",
                "workflow": "",
                "since": "",
                "state": "",
            },
        )
        assert broken.status_code == 200 and "YAML syntax error" in broken.text
        forged = browser.post("/dashboard/simulate", data={"csrf": "forged", "yaml": CHANGED})
        assert forged.status_code == 403

    with httpx.Client(base_url=server.url, timeout=30) as viewer:
        csrf = login_csrf(viewer)
        viewer.post("/dashboard/login", data={"token": server.tokens["viewer"], "csrf": csrf})
        page = viewer.get("/dashboard/simulate", params={"workflow": "screening"})
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token
        refused = viewer.post("/dashboard/simulate", data={"csrf": token[1], "yaml": CHANGED})
        assert refused.status_code == 403 and "operator" in refused.text
