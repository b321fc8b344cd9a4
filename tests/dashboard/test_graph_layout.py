"""Workflow graphs laid out by ELK in real Chromium, judged from the drawn geometry.

The two largest examples (compliance_review, product_onboarding) are drawn at 1440 x 900 in a
``<figure class="workflow-graph">`` put on a signed-in page, as the workflow page has it; the
test then reads the SVG's geometry: label sizes on screen, edges against node boxes, labels
against the drawing's bounds and their own edges. Each saves a screenshot of the figure under
tests/dashboard/artifacts/ for a person to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from actions.conftest import REVIEW_YAML, registry
from service.conftest import Server, run_server
from statewise.definition import load, loads
from statewise.store.base import Store
from statewise.worker.catalog import Catalog

from .browser import ARTIFACTS, browser_page
from .test_pages import _sign_in

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SHOWN = ("compliance_review", "product_onboarding", "support_routing")


async def _catalog(store: Store) -> Catalog:
    """The test workflow plus the examples, held without their commands (nothing runs them)."""
    review = loads(REVIEW_YAML, file="review.yaml", commands=registry.names())
    examples = [load(EXAMPLES / name / "workflow.yaml") for name in SHOWN]
    return Catalog([review, *examples], registry)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from run_server(
        f"sqlite:///{tmp_path / 'graph.sqlite'}", items=2, workers=False, catalog=_catalog
    )


@pytest.fixture
def page(server: Server) -> Iterator[Any]:
    yield from browser_page()


def _show(page: Any, server: Server, workflow: str, width: int = 1440) -> None:
    """Put the workflow's figure at the top of a signed-in page and wait until it is drawn."""
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{server.url}/dashboard/items")
    page.evaluate(
        """(url) => {
            const figure = document.createElement("figure");
            figure.className = "workflow-graph";
            figure.dataset.graph = url;
            document.querySelector("main").prepend(figure);
        }""",
        f"/dashboard/workflows/{workflow}/graph.json",
    )
    page.add_script_tag(url=f"{server.url}/static/graph.js")
    page.wait_for_selector("figure.workflow-graph svg.wg-svg", timeout=30_000)


# The geometry, read in the page. Boxes are in the SVG's user units; `scale` converts to screen
# pixels. A segment "crosses" a box when it enters it by more than one unit (touching a border
# where an edge ends is not crossing).
GEOMETRY = """() => {
  const figure = document.querySelector("figure.workflow-graph");
  const svg = figure.querySelector("svg.wg-svg");
  const view = svg.viewBox.baseVal;
  const scale = svg.getScreenCTM().a;
  const box = (r) => ({x: +r.getAttribute("x"), y: +r.getAttribute("y"),
                       w: +r.getAttribute("width"), h: +r.getAttribute("height")});
  const nodes = Array.from(svg.querySelectorAll("a.wg-node")).map((a) => ({
    id: a.dataset.state, href: a.getAttribute("href"), box: box(a.querySelector("rect")),
    font: parseFloat(getComputedStyle(a.querySelector(".wg-name")).fontSize) * scale,
  }));
  const edges = Array.from(svg.querySelectorAll("g.wg-edge")).map((g) => ({
    source: g.dataset.source, target: g.dataset.target, back: g.classList.contains("wg-back"),
    points: Array.from(g.querySelectorAll("path")).map((p) =>
      p.getAttribute("d").match(/-?[0-9.]+/g).map(Number)),
    labels: Array.from(g.querySelectorAll(".wg-label rect")).map(box),
    fonts: Array.from(g.querySelectorAll(".wg-edge-label")).map((t) =>
      parseFloat(getComputedStyle(t).fontSize) * scale),
  }));
  const texts = Array.from(svg.querySelectorAll("text")).map((t) => {
    const b = t.getBBox();
    return {text: t.textContent, x: b.x, y: b.y, w: b.width, h: b.height};
  });
  return {
    view: {w: view.width, h: view.height}, scale, nodes, edges, texts,
    svgWidth: svg.getBoundingClientRect().width, figureWidth: figure.clientWidth,
    pageScroll: document.documentElement.scrollWidth - window.innerWidth,
  };
}"""


def _segments(points: list[float]) -> Iterator[tuple[float, float, float, float]]:
    pairs = list(zip(points[::2], points[1::2], strict=True))
    for (x1, y1), (x2, y2) in pairwise(pairs):
        yield x1, y1, x2, y2


def _crosses(segment: tuple[float, float, float, float], box: dict[str, float]) -> bool:
    """Whether an axis-parallel segment runs more than a unit inside ``box``."""
    x1, y1, x2, y2 = segment
    left, right = box["x"] + 1, box["x"] + box["w"] - 1
    top, bottom = box["y"] + 1, box["y"] + box["h"] - 1
    return min(x1, x2) < right and max(x1, x2) > left and min(y1, y2) < bottom and max(y1, y2) > top


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def _near(box: dict[str, float], points: list[list[float]], margin: float) -> bool:
    """Whether one of the edge's segments passes through ``box`` grown by ``margin``."""
    grown = {
        "x": box["x"] - margin,
        "y": box["y"] - margin,
        "w": box["w"] + 2 * margin,
        "h": box["h"] + 2 * margin,
    }
    return any(_crosses(s, grown) for p in points for s in _segments(p))


def _check_readable(found: dict[str, Any], states: int) -> None:
    nodes = {node["id"]: node for node in found["nodes"]}
    assert len(nodes) == states
    assert min(node["font"] for node in nodes.values()) >= 11
    assert min(font for edge in found["edges"] for font in edge["fonts"]) >= 11
    # It fits the page at 1440 px: no scrolling inside the figure, none sideways on the page.
    assert found["svgWidth"] <= found["figureWidth"] + 0.5, found
    assert found["pageScroll"] <= 0
    view = found["view"]
    for text in found["texts"]:
        inside = text["x"] >= 0 and text["y"] >= 0
        assert inside and text["x"] + text["w"] <= view["w"] and text["y"] + text["h"] <= view["h"]
    for edge in found["edges"]:
        for other, node in nodes.items():
            if other in (edge["source"], edge["target"]):
                continue
            for points in edge["points"]:
                for segment in _segments(points):
                    assert not _crosses(segment, node["box"]), (edge, other, segment)
        for label in edge["labels"]:
            assert _near(label, edge["points"], margin=8), (edge, "label away from its edge")
            for other, node in nodes.items():
                assert not _overlap(label, node["box"]), (edge, "label on", other)


@pytest.mark.parametrize(
    ("workflow", "states"), [("compliance_review", 18), ("product_onboarding", 23)]
)
def test_large_graphs_read_at_1440_px(
    page: Any, server: Server, workflow: str, states: int
) -> None:
    _sign_in(page, server, "viewer")
    _show(page, server, workflow)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("figure.workflow-graph").screenshot(path=str(ARTIFACTS / f"graph-{workflow}.png"))
    found = page.evaluate(GEOMETRY)
    _check_readable(found, states)
    assert any(edge["back"] for edge in found["edges"]), "the revision loop is drawn as a loop"
    hrefs = {node["id"]: node["href"] for node in found["nodes"]}
    assert hrefs["escalated"] == f"/dashboard/items?workflow={workflow}&state=escalated"


def test_on_a_phone_the_graph_scrolls_inside_its_figure(page: Any, server: Server) -> None:
    _sign_in(page, server, "viewer")
    _show(page, server, "compliance_review", width=390)
    sizes = page.evaluate(
        """() => {
            const figure = document.querySelector("figure.workflow-graph");
            const svg = figure.querySelector("svg.wg-svg");
            return {right: figure.getBoundingClientRect().right, view: window.innerWidth,
                    inner: figure.scrollWidth, shown: figure.clientWidth,
                    font: parseFloat(getComputedStyle(svg.querySelector(".wg-name")).fontSize)
                          * svg.getScreenCTM().a};
        }"""
    )
    assert sizes["right"] <= sizes["view"]  # the figure stays inside the viewport
    assert sizes["inner"] > sizes["shown"]  # and the graph scrolls within it, at full size
    assert sizes["font"] >= 11
