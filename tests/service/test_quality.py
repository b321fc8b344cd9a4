"""Agent quality through the live service: GET /api/quality and the dashboard's quality page.

The reviews are decided over HTTP on items with hostile keys; each override on the page links
to its own item, whatever its key holds.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from actions.reviewing import SCREENING_YAML, registry, screening
from statewise.store import Store
from statewise.worker.catalog import Catalog

from .conftest import Server, login_csrf, run_server, stuck_items

SCRIPT = "<script>alert(1)</script>"
OVERRIDDEN = ["inv%41", "a/b", "what?x=1", "naïve-日本", SCRIPT]
AGREED = "invA"  # what "inv%41" decodes to, if a URL decoded it twice
SCORES = dict(zip([*OVERRIDDEN, AGREED], [0.55, 0.62, 0.68, 0.71, 0.93, 0.97], strict=True))


async def _held(store: Store) -> Catalog:
    return Catalog([screening()], registry)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    url = f"sqlite:///{tmp_path / 'quality.sqlite'}"
    yield from run_server(url, items=0, workflow=SCREENING_YAML, catalog=_held)


@pytest.fixture
def decided(server: Server) -> Server:
    """Every hold decided by a reviewer over HTTP: AGREED rejected, the others approved."""
    with server.client("operator") as ops, server.client("reviewer") as reviewer:
        items = [{"key": key, "data": {"amount": score}} for key, score in SCORES.items()]
        started = ops.post("/api/items/batch", json={"workflow": "screening", "items": items})
        assert started.json()["created"] == len(SCORES), started.text
        deadline = time.time() + 20
        while len(tasks := reviewer.get("/api/tasks").json()) < len(SCORES):
            assert time.time() < deadline, "the service's workers did not score the items"
            time.sleep(0.1)
        for task in tasks:
            outcome = "reject" if task["key"] == AGREED else "approve"
            answer = reviewer.post(f"/api/tasks/{task['id']}/decide", json={"outcome": outcome})
            assert answer.status_code == 200, answer.text
    assert stuck_items(server.store_url) == []
    return server


def test_the_api_reports_agreement_bands_and_the_overridden_keys(decided: Server) -> None:
    with decided.client("viewer") as viewer:
        answer = viewer.get("/api/quality", params={"since": "1d"})
        assert answer.status_code == 200, answer.text
        (stage,) = answer.json()["stages"]
        assert (stage["agent"], stage["state"], stage["reviews"]) == ("scorer", "scoring", 6)
        assert (stage["agree"], stage["override"], stage["agreement"]) == (1, 5, 1 / 6)
        assert {o["key"] for o in stage["overrides"]} == set(OVERRIDDEN)
        assert {o["workflow"] for o in stage["overrides"]} == {"screening"}
        assert [(b["low"], b["reviews"], b["override"]) for b in stage["bands"]] == [
            (0.5, 1, 1), (0.6, 2, 2), (0.7, 1, 1), (0.9, 2, 1)
        ]  # fmt: skip
        halves = viewer.get("/api/quality", params={"band": 0.5, "bucket": "week"}).json()
        assert [b["agreement"] for b in halves["stages"][0]["bands"]] == [1 / 6]
        for bad in ({"since": "soon"}, {"since": "0"}, {"band": "-1"}, {"bucket": "hour"}):
            refused = viewer.get("/api/quality", params=bad)
            assert refused.status_code == 422, (bad, refused.text)
    assert httpx.get(f"{decided.url}/api/quality").status_code == 401
    schema = httpx.get(f"{decided.url}/openapi.json").json()
    ok = schema["paths"]["/api/quality"]["get"]["responses"]["200"]["content"]
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/QualityReport"}


def test_the_dashboard_links_each_override_to_its_own_item(decided: Server) -> None:
    with httpx.Client(base_url=decided.url) as browser:
        csrf = login_csrf(browser)
        browser.post("/dashboard/login", data={"token": decided.tokens["viewer"], "csrf": csrf})
        page = browser.get("/dashboard/quality")
        assert page.status_code == 200 and 'href="/dashboard/quality"' in page.text
        assert SCRIPT not in page.text and html.escape(SCRIPT) in page.text
        links = dict(re.findall(r'<a href="(/dashboard/items/[^"]+)">([^<]*)</a>', page.text))
        assert {html.unescape(key) for key in links.values()} == set(OVERRIDDEN)
        for href, shown in links.items():
            key = html.unescape(shown)
            assert href == f"/dashboard/items/screening/{quote(key, safe='')}"
            item = browser.get(href)
            heading = re.search(r"<h1>(.*?) <span", item.text)
            assert item.status_code == 200 and heading, (key, item.text[:500])
            assert html.unescape(heading[1]) == key
        for bad, why in (({"since": "soon"}, "not a duration"), ({"band": "x"}, "a number")):
            refused = browser.get("/dashboard/quality", params=bad)
            assert (
                refused.status_code == 200 and why in refused.text and "<table" not in refused.text
            )
