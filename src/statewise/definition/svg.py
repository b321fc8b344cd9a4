"""A self-contained SVG of a workflow, laid out in pure Python.

No Graphviz binary and no network: states are ranked by breadth-first distance from the initial
state (unreachable ones after), one row per rank in written order. An edge to the next row is a
smooth curve; an edge within a row dips below it; an edge that skips rows runs down a lane on
the left, and a back edge (to the same or an earlier row) runs up a lane on the right, so loops
never cut through boxes. Edges with the same target, label and kind share a lane, which turns
the implicit ``error`` edges into one escalation bus. Output depends only on the definition and
the counts, so the same input always gives byte-identical SVG.
"""

from __future__ import annotations

import html
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from statewise.definition.diagrams import Edge, EdgeKind, node_ids, parallel_summary
from statewise.definition.model import Definition, State, StateKind

__all__ = ["Box", "draw_svg", "rank_states"]

FONT = "Helvetica, Arial, sans-serif"
NAME_SIZE, NAME_CHAR = 13, 7.6
SMALL_SIZE, SMALL_CHAR = 11, 6.3
BOX_H, MIN_W, PAD_X = 48.0, 96.0, 18.0
GAP_X, ROW_GAP, MARGIN, MARGIN_Y = 36.0, 100.0, 28.0, 56.0
LANE_START, CORNER, DIP, DIP_STEP = 28.0, 8.0, 12.0, 7.0
LABEL_SPOTS = (0.5, 0.38, 0.62, 0.26, 0.74, 0.15, 0.85)

# (fill, stroke) per look; "missing" marks a target no state defines.
_PALETTE: dict[str, tuple[str, str]] = {
    StateKind.INITIAL: ("#ecfdf5", "#047857"),
    StateKind.NORMAL: ("#ffffff", "#334155"),
    StateKind.WAITING: ("#fffbeb", "#b45309"),
    StateKind.PARALLEL: ("#eef2ff", "#4338ca"),
    StateKind.HUMAN: ("#fdf4ff", "#a21caf"),
    StateKind.FINAL: ("#f1f5f9", "#0f172a"),
    "missing": ("#fef2f2", "#dc2626"),
}
_EDGE_COLOR = {
    EdgeKind.TRANSITION: "#334155",
    EdgeKind.TIMER: "#7c3aed",
    EdgeKind.EXHAUSTED: "#b91c1c",
    EdgeKind.ERROR: "#94a3b8",
}
_EDGE_DASH = {EdgeKind.TIMER: "2 3", EdgeKind.ERROR: "6 4"}

Point = tuple[float, float]
Rect = tuple[float, float, float, float]


class Route(StrEnum):
    """How an edge is drawn, decided by the ranks of its ends."""

    CURVE = "curve"  # to the next row
    BELOW = "below"  # to another state in the same row
    LEFT = "left"  # down past at least one row
    RIGHT = "right"  # to itself or an earlier row


LaneKey = tuple[str, str, EdgeKind, Route]


@dataclass(frozen=True, slots=True)
class Box:
    """Where one state is drawn: top-left corner, width and its rank (row)."""

    name: str
    rank: int
    x: float
    y: float
    width: float

    @property
    def cx(self) -> float:
        """Horizontal centre, where the name is written."""
        return self.x + self.width / 2

    @property
    def bottom(self) -> float:
        """Lower edge, where outgoing edges start."""
        return self.y + BOX_H


@dataclass(slots=True)
class _Lane:
    """A vertical run beside the rows, shared by edges with one target, label and kind."""

    x: float
    route: Route
    edge: Edge
    top: float = float("inf")
    bottom: float = float("-inf")


@dataclass(slots=True)
class _Canvas:
    """What routing accumulates: dips used per row gap, label boxes already taken."""

    dips: dict[tuple[int, bool], int] = field(default_factory=dict)
    taken: list[Rect] = field(default_factory=list)

    def dip(self, gap: int, below: bool) -> float:
        """The next free height in the gap under row ``gap`` (near its top when ``below``)."""
        used = self.dips.get((gap, below), 0)
        self.dips[(gap, below)] = used + 1
        return DIP + DIP_STEP * (used % 5)


def _num(value: float) -> str:
    """Format a coordinate compactly and deterministically."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _xml(text: str) -> str:
    """Escape text for element content or attributes; drop characters XML 1.0 forbids."""
    clean = "".join(c if c.isprintable() or c in "\t\n" else "\ufffd" for c in text)
    return html.escape(clean, quote=True)


def rank_states(
    definition: Definition, names: Sequence[str], edges: Sequence[Edge]
) -> dict[str, int]:
    """Breadth-first distance from the initial state; anything unreachable goes one row below.

    Implicit ``error`` edges are left out of the ranking so the escalation state, reachable from
    almost everywhere, sinks towards the bottom instead of crowding the second row.
    """
    successors: dict[str, list[str]] = {name: [] for name in names}
    for edge in edges:
        if edge.kind is not EdgeKind.ERROR:
            successors[edge.source].append(edge.target)
    ranks = {definition.initial: 0}
    queue = deque([definition.initial])
    while queue:
        current = queue.popleft()
        for target in successors[current]:
            if target not in ranks:
                ranks[target] = ranks[current] + 1
                queue.append(target)
    below = max(ranks.values()) + 1
    return {name: ranks.get(name, below) for name in names}


def _route_of(edge: Edge, ranks: Mapping[str, int]) -> Route:
    step = ranks[edge.target] - ranks[edge.source]
    if step == 1:
        return Route.CURVE
    if step > 1:
        return Route.LEFT
    return Route.BELOW if step == 0 and edge.source != edge.target else Route.RIGHT


def _details(state: State | None) -> str:
    if state is not None and state.task is not None:
        return f"person · queue {state.task.queue}"
    return " · ".join(parallel_summary(state)) if state is not None else ""


def _box_width(name: str, state: State | None) -> float:
    text = max(len(name) * NAME_CHAR, len(_details(state)) * SMALL_CHAR)
    return max(MIN_W, text + 2 * PAD_X)


def _place(definition: Definition, ranks: Mapping[str, int], left: float) -> dict[str, Box]:
    """Rows by rank, each centred on the widest row, states in written order within a row."""
    rows: dict[int, list[str]] = {}
    for name in ranks:
        rows.setdefault(ranks[name], []).append(name)
    widths = {name: _box_width(name, definition.states.get(name)) for name in ranks}
    row_width = {r: sum(widths[n] for n in row) + GAP_X * (len(row) - 1) for r, row in rows.items()}
    widest = max(row_width.values())
    boxes: dict[str, Box] = {}
    for rank in sorted(rows):
        x = left + (widest - row_width[rank]) / 2
        for name in rows[rank]:
            boxes[name] = Box(name, rank, x, MARGIN_Y + rank * (BOX_H + ROW_GAP), widths[name])
            x += widths[name] + GAP_X
    return boxes


def _lane_key(edge: Edge, route: Route) -> LaneKey:
    return edge.target, edge.label, edge.kind, route


def _lane_width(edge: Edge) -> float:
    """Room for one lane: its label is written beside the vertical run."""
    return max(18.0, len(edge.label) * SMALL_CHAR + 16)


def _lane_edges(edges: Sequence[Edge], routes: Sequence[Route]) -> dict[LaneKey, Edge]:
    """The first edge of every lane (left and right), in edge order."""
    lanes: dict[LaneKey, Edge] = {}
    for edge, route in zip(edges, routes, strict=True):
        if route in (Route.LEFT, Route.RIGHT):
            lanes.setdefault(_lane_key(edge, route), edge)
    return lanes


_PORT_ORDER = {Route.LEFT: 0, Route.CURVE: 1, Route.BELOW: 1, Route.RIGHT: 2}


def _ports(
    edges: Sequence[Edge], routes: Sequence[Route], boxes: Mapping[str, Box]
) -> list[tuple[float, float]]:
    """Spread the edge ends on each box side, ordered by where the other end lies.

    Edges leave from the bottom and arrive at the top (or the bottom, within a row). Left-lane
    ends sort first and right-lane ends last, so neighbouring edges do not cross at the box.
    """
    sides: dict[tuple[str, bool], list[tuple[int, bool]]] = {}
    for index, (edge, route) in enumerate(zip(edges, routes, strict=True)):
        sides.setdefault((edge.source, True), []).append((index, True))
        sides.setdefault((edge.target, route is Route.BELOW), []).append((index, False))

    def order(end: tuple[int, bool]) -> tuple[int, float, int]:
        index, is_start = end
        far = edges[index].target if is_start else edges[index].source
        return _PORT_ORDER[routes[index]], boxes[far].cx, index

    spread: dict[tuple[int, bool], float] = {}
    for (name, _), ends in sides.items():
        box = boxes[name]
        for slot, end in enumerate(sorted(ends, key=order), start=1):
            spread[end] = box.x + box.width * slot / (len(ends) + 1)
    return [(spread[(i, True)], spread[(i, False)]) for i in range(len(edges))]


def _toward(p: Point, q: Point, distance: float) -> Point:
    length = abs(q[0] - p[0]) + abs(q[1] - p[1])  # segments are axis-parallel
    if length == 0:
        return p
    step = min(distance, length / 2) / length
    return p[0] + (q[0] - p[0]) * step, p[1] + (q[1] - p[1]) * step


def _rounded(points: Sequence[Point]) -> str:
    """An orthogonal polyline through ``points`` with its corners rounded off."""
    parts = [f"M {_num(points[0][0])} {_num(points[0][1])}"]
    for before, corner, after in zip(points, points[1:], points[2:], strict=False):
        (ix, iy), (ox, oy) = _toward(corner, before, CORNER), _toward(corner, after, CORNER)
        parts.append(
            f"L {_num(ix)} {_num(iy)} Q {_num(corner[0])} {_num(corner[1])} {_num(ox)} {_num(oy)}"
        )
    parts.append(f"L {_num(points[-1][0])} {_num(points[-1][1])}")
    return " ".join(parts)


def _bezier(points: Sequence[Point], t: float) -> Point:
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = points
    a, b, c, d = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3
    return a * x0 + b * x1 + c * x2 + d * x3, a * y0 + b * y1 + c * y2 + d * y3


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _spot(label: str, spots: Iterator[Point], canvas: _Canvas) -> Point:
    """The first candidate position where ``label`` covers no box and no earlier label."""
    width, height = len(label) * SMALL_CHAR + 4, SMALL_SIZE + 3.0
    first: Point | None = None
    for x, y in spots:
        rect = (x - width / 2, y - height + 3, width, height)
        first = first or (x, y)
        if not any(_overlaps(rect, other) for other in canvas.taken):
            canvas.taken.append(rect)
            return x, y
    assert first is not None
    return first


@dataclass(frozen=True, slots=True)
class _Drawn:
    path: str
    label: Point | None  # None when the edge has no label or its lane carries it


def _draw_edge(
    edge: Edge,
    route: Route,
    ends: tuple[float, float],
    boxes: Mapping[str, Box],
    lanes: Mapping[LaneKey, _Lane],
    canvas: _Canvas,
) -> _Drawn:
    """The path of one edge and, for edges between rows, where its label goes."""
    source, target = boxes[edge.source], boxes[edge.target]
    (sx, tx), sy = ends, source.bottom
    if route is Route.CURVE:
        bend = (target.y - sy) / 2
        curve = ((sx, sy), (sx, sy + bend), (tx, target.y - bend), (tx, target.y))
        path = "M {} {} C {} {}, {} {}, {} {}".format(*(_num(v) for p in curve for v in p))
        spots = (_bezier(curve, t) for t in LABEL_SPOTS)
    elif route is Route.BELOW:
        y = sy + canvas.dip(source.rank, below=True)
        path = _rounded([(sx, sy), (sx, y), (tx, y), (tx, target.bottom)])
        spots = ((sx + (tx - sx) * t, y) for t in LABEL_SPOTS)
    else:
        lane = lanes[_lane_key(edge, route)]
        y1 = sy + canvas.dip(source.rank, below=True)
        y2 = target.y - canvas.dip(target.rank - 1, below=False)
        lane.top, lane.bottom = min(lane.top, y1, y2), max(lane.bottom, y1, y2)
        path = _rounded([(sx, sy), (sx, y1), (lane.x, y1), (lane.x, y2), (tx, y2), (tx, target.y)])
        return _Drawn(path, None)
    if not edge.label:
        return _Drawn(path, None)
    x, y = _spot(edge.label, ((x, y + 4) for x, y in spots), canvas)
    return _Drawn(path, (x, y))


def _markers() -> list[str]:
    lines = ["<defs>"]
    for kind, color in _EDGE_COLOR.items():
        lines.append(
            f'<marker id="sw-arrow-{kind}" viewBox="0 0 10 10" refX="10" refY="5" '
            f'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
            f'<path d="M 0 0 L 10 5 L 0 10 z" fill="{color}"/></marker>'
        )
    lines.append("</defs>")
    return lines


def _edge_svg(edge: Edge, drawn: _Drawn) -> str:
    dash = f' stroke-dasharray="{_EDGE_DASH[edge.kind]}"' if edge.kind in _EDGE_DASH else ""
    return (
        f'<path class="edge" data-kind="{edge.kind}" data-from="{_xml(edge.source)}" '
        f'data-to="{_xml(edge.target)}" d="{drawn.path}" fill="none" '
        f'stroke="{_EDGE_COLOR[edge.kind]}" stroke-width="1.4"{dash} '
        f'marker-end="url(#sw-arrow-{edge.kind})"/>'
    )


def _label_svg(edge: Edge, at: Point, anchor: str = "middle") -> str:
    return (
        f'<text class="edge-label" x="{_num(at[0])}" y="{_num(at[1])}" text-anchor="{anchor}" '
        f'font-size="{SMALL_SIZE}" fill="{_EDGE_COLOR[edge.kind]}" stroke="#ffffff" '
        f'stroke-width="4" paint-order="stroke">{_xml(edge.label)}</text>'
    )


def _lane_label_svg(lane: _Lane) -> str:
    """A lane's label sits beside its vertical run, on the side away from the boxes."""
    right = lane.route is Route.RIGHT
    at = (lane.x + 6 if right else lane.x - 6, (lane.top + lane.bottom) / 2 + 4)
    return _label_svg(lane.edge, at, "start" if right else "end")


def _rect(css: str, x: float, y: float, w: float, h: float, rx: float, style: str) -> str:
    return (
        f'<rect class="{css}" x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" '
        f'height="{_num(h)}" rx="{_num(rx)}" {style}/>'
    )


def _state_svg(
    definition: Definition, box: Box, state: State | None, count: int | None
) -> list[str]:
    """One ``<g class="state">``: a rounded box whose border says what kind of state it is."""
    look = "missing" if state is None else state.kind
    if state is not None and state.parallel is not None:
        look = StateKind.PARALLEL
    fill, stroke = _PALETTE[look]
    initial = box.name == definition.initial or look is StateKind.INITIAL
    dash = ' stroke-dasharray="6 4"' if look in (StateKind.WAITING, "missing") else ""
    style = f'fill="{fill}" stroke="{stroke}" stroke-width="{3 if initial else 1.5}"{dash}'
    out = [f'<g class="state" data-state="{_xml(box.name)}" data-kind="{look}">']
    out.append(f"<title>{_xml(box.name)}</title>")
    if look is StateKind.PARALLEL:
        for offset in (8, 4):
            out.append(_rect("stack", box.x + offset, box.y + offset, box.width, BOX_H, 10, style))
    out.append(_rect("box", box.x, box.y, box.width, BOX_H, 10, style))
    if look is StateKind.FINAL:
        inner = f'fill="none" stroke="{stroke}" stroke-width="1.5"'
        out.append(_rect("inner", box.x + 4, box.y + 4, box.width - 8, BOX_H - 8, 7, inner))
    details = _details(state)
    weight = ' font-weight="bold"' if initial else ""
    out.append(
        f'<text class="name" x="{_num(box.cx)}" y="{_num(box.y + (20 if details else 29))}" '
        f'text-anchor="middle" font-size="{NAME_SIZE}"{weight}>{_xml(box.name)}</text>'
    )
    if details:
        out.append(
            f'<text class="detail" x="{_num(box.cx)}" y="{_num(box.y + 37)}" '
            f'text-anchor="middle" font-size="{SMALL_SIZE - 1}" fill="#475569">'
            f"{_xml(details)}</text>"
        )
    if count is not None:
        out.extend(_badge(box, count))
    out.append("</g>")
    return out


def _badge(box: Box, count: int) -> list[str]:
    """The live item count, as a pill on the box's top-right corner."""
    text = str(count)
    width = max(22.0, len(text) * 7 + 12)
    x, y = box.x + box.width - width + 8, box.y - 10
    return [
        '<g class="count">',
        _rect("badge", x, y, width, 20, 10, 'fill="#2563eb"'),
        f'<text x="{_num(x + width / 2)}" y="{_num(y + 14)}" text-anchor="middle" '
        f'font-size="{SMALL_SIZE}" font-weight="bold" fill="#ffffff">{text}</text>',
        "</g>",
    ]


def _lanes(lane_edges: Mapping[LaneKey, Edge], boxes: Mapping[str, Box]) -> dict[LaneKey, _Lane]:
    """Left lanes step outwards from the leftmost box, right lanes from the rightmost one."""
    lanes: dict[LaneKey, _Lane] = {}
    left = min(box.x for box in boxes.values()) - LANE_START
    right = max(box.x + box.width for box in boxes.values()) + LANE_START
    for route, x, sign in ((Route.LEFT, left, -1), (Route.RIGHT, right, 1)):
        for key, edge in lane_edges.items():
            if key[3] is route:
                lanes[key] = _Lane(x, route, edge)
                x += sign * _lane_width(edge)
    return lanes


def draw_svg(
    definition: Definition, edges: Sequence[Edge], counts: Mapping[str, int] | None = None
) -> str:
    """Lay out and draw ``edges`` (from ``diagrams.edge_table``) as a standalone SVG document."""
    names = list(node_ids(definition, edges))
    ranks = rank_states(definition, names, edges)
    routes = [_route_of(edge, ranks) for edge in edges]
    lane_edges = _lane_edges(edges, routes)
    left_lanes = [_lane_width(e) for key, e in lane_edges.items() if key[3] is Route.LEFT]
    boxes = _place(definition, ranks, MARGIN + sum(left_lanes) + (LANE_START if left_lanes else 0))
    lanes = _lanes(lane_edges, boxes)
    canvas = _Canvas(taken=[(b.x - 4, b.y - 10, b.width + 12, BOX_H + 14) for b in boxes.values()])
    ports = _ports(edges, routes, boxes)
    drawn = [
        _draw_edge(edge, route, ends, boxes, lanes, canvas)
        for edge, route, ends in zip(edges, routes, ports, strict=True)
    ]
    right = max(b.x + b.width + 8 for b in boxes.values())
    for lane in lanes.values():
        right = max(right, lane.x + 6 + len(lane.edge.label) * SMALL_CHAR)
    width = right + MARGIN
    height = max(box.bottom for box in boxes.values()) + MARGIN_Y
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_num(width)}" '
        f'height="{_num(height)}" viewBox="0 0 {_num(width)} {_num(height)}" '
        f'font-family="{FONT}" role="img">',
        f"<title>{_xml(definition.ref)}</title>",
        *_markers(),
        '<rect class="background" width="100%" height="100%" fill="#ffffff"/>',
    ]
    out.extend(_edge_svg(edge, d) for edge, d in zip(edges, drawn, strict=True))
    for name in names:
        count = None if counts is None else counts.get(name, 0)
        out.extend(_state_svg(definition, boxes[name], definition.states.get(name), count))
    out.extend(_label_svg(e, d.label) for e, d in zip(edges, drawn, strict=True) if d.label)
    out.extend(_lane_label_svg(lane) for lane in lanes.values() if lane.edge.label)
    out.append("</svg>")
    return "\n".join(out) + "\n"
