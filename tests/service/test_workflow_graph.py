"""The graph the dashboard draws, as JSON, and the API's SVG diagram drawn by Graphviz.

On both stores: live counts, failed items, alert levels only where a rule is, each state's
link to its items, and the refusals (signed out, unknown workflow or version).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.conftest import Server, login_csrf, run_server
from statewise.definition.layout_graph import layout_graph
from statewise.definition.model import Definition, State, StateKind, Transition
from statewise.engine.item import ItemStatus
from statewise.observe.alerts import Severity
from statewise.service.pages.graph import graph_url, live_graph
from statewise.store.base import StateCount


@pytest.fixture
def server(db: str) -> Iterator[Server]:
    yield from run_server(db, items=3, workers=False)


@contextmanager
def _viewer(server: Server) -> Iterator[httpx.Client]:
    """A browser-like client signed in to the dashboard as the viewer."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        csrf = login_csrf(client)
        signed = client.post(
            "/dashboard/login", data={"token": server.tokens["viewer"], "csrf": csrf}
        )
        assert signed.status_code in (200, 303), signed.text
        yield client


def test_the_graph_joins_live_counts_alert_levels_and_links(server: Server) -> None:
    with _viewer(server) as client:
        answer = client.get(graph_url("review"))
        again = client.get(graph_url("review", 1))
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    graph: dict[str, Any] = answer.json()
    assert again.json() == graph
    assert (graph["workflow"], graph["version"]) == ("review", 1)
    nodes = {node["id"]: node for node in graph["nodes"]}
    assert nodes["human_review"]["count"] == 3 and nodes["human_review"]["failed"] == 0
    # Only human_review has an alert rule: the others get no level (not a green "ok").
    assert nodes["human_review"]["severity"] == "ok"
    assert {name for name, node in nodes.items() if node["severity"] is not None} == {
        "human_review"
    }
    assert nodes["intake"]["href"] == "/dashboard/items?workflow=review&state=intake"
    assert [e["source"] for e in graph["edges"]][:2] == ["intake", "intake"]


def test_a_node_links_to_its_items_of_its_workflow_only(server: Server) -> None:
    with _viewer(server) as client:
        graph = client.get(graph_url("review")).json()
        href = next(n["href"] for n in graph["nodes"] if n["id"] == "human_review")
        listed = client.get(href).text
        other = client.get(
            "/dashboard/items", params={"workflow": "other", "state": "human_review"}
        )
    assert listed.count('href="/dashboard/items/review/order-') == 3
    assert 'name="workflow" value="review"' in listed and "3 matching" in listed
    assert "No items match." in other.text and "0 matching" in other.text


def test_signed_out_unknown_workflow_and_version_are_refused(server: Server) -> None:
    with httpx.Client(base_url=server.url) as anonymous:
        signed_out = anonymous.get(graph_url("review"))
    assert signed_out.status_code == 401
    assert signed_out.json() == {"error": "unauthorised", "message": "sign in first"}
    with _viewer(server) as client:
        unknown = client.get(graph_url("a/b?c=%41 ключ"))
        version = client.get(graph_url("review", 7))
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    assert "no workflow 'a/b?c=%41 ключ' is held here (held: review)" in unknown.json()["message"]
    assert version.status_code == 404 and "review@7" in version.json()["message"]


def test_links_and_figures_of_hostile_names_are_encoded() -> None:
    names = ["a/b", "inv%41", "q?x=1&y#f", "日本 "]
    states = {
        name: State(name, transitions=(Transition(after),)) for name, after in pairwise(names)
    }
    states[names[-1]] = State(names[-1], StateKind.FINAL)
    definition = Definition("w&1/%", 2, states, initial=names[0])
    counts = [
        StateCount("w&1/%", 2, "inv%41", ItemStatus.ACTIVE, 4, 0.0),
        StateCount("w&1/%", 2, "inv%41", ItemStatus.FAILED, 1, 0.0),
        StateCount("w&1/%", 1, "inv%41", ItemStatus.ACTIVE, 9, 0.0),  # another version
        StateCount("other", 2, "inv%41", ItemStatus.ACTIVE, 9, 0.0),
    ]
    live = live_graph(layout_graph(definition), definition, counts, {"a/b": Severity.CRITICAL})
    nodes = {node["id"]: node for node in live["nodes"]}
    assert (nodes["inv%41"]["count"], nodes["inv%41"]["failed"]) == (5, 1)
    assert nodes["a/b"]["severity"] == "critical" and nodes["inv%41"]["severity"] is None
    assert nodes["q?x=1&y#f"]["href"] == (
        "/dashboard/items?workflow=w%261%2F%25&state=q%3Fx%3D1%26y%23f"
    )
    assert nodes["日本 "]["href"].endswith("&state=%E6%97%A5%E6%9C%AC%20")
    assert graph_url("w&1/%", 2) == "/dashboard/workflows/w%261%2F%25/graph.json?version=2"


@pytest.mark.skipif(
    shutil.which("dot") is None, reason="svg needs Graphviz's dot (apt-get install graphviz)"
)
def test_the_api_draws_svg_with_graphviz(server: Server) -> None:
    with server.client("viewer") as viewer:
        svg = viewer.get("/api/workflows/review/diagram")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert "human_review (3)" in svg.text


def test_without_graphviz_the_api_answers_501_with_what_to_do(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # the service runs in this process
    with server.client("viewer") as viewer:
        svg = viewer.get("/api/workflows/review/diagram")
        mermaid = viewer.get("/api/workflows/review/diagram", params={"format": "mermaid"})
    assert svg.status_code == 501 and svg.json()["error"] == "external_program"
    assert "apt-get install graphviz" in svg.json()["message"]
    assert mermaid.status_code == 200 and mermaid.text.startswith("stateDiagram-v2")
