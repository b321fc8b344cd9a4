// Workflow graphs: lay each <figure class="workflow-graph" data-graph="URL"> out with ELK and
// draw it as SVG.
//
// The figure's URL answers the graph as JSON (GET /dashboard/workflows/{name}/graph.json):
// states and edges from the engine's one edge table, each state with its item count, failed
// items, alert level and the link to its items. ELK's layered algorithm (vendored under
// /static/vendor/elkjs, loaded the first time a figure needs it) places the states, routes the
// edges orthogonally, sends loops back along the side and puts each edge's label on the edge.
// The SVG is drawn at its natural size (1 unit = 1 CSS px, so labels keep their font size); a
// graph wider than its figure scrolls inside the figure.
//
// API, for live updates:
//   window.statewiseGraph.draw(figure)     fetch and lay out again (a new structure, a resize)
//   window.statewiseGraph.refresh(figure)  fetch again and update counts, failed marks and alert
//                                          classes in place; lays out again only if the states,
//                                          edges or a count's width changed. Returns a Promise.
// Figures added to the page later are drawn on their own; one that replaces a figure of the same
// URL (a live fragment swapped in) takes over its drawing and is refreshed in place.
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const ELK_PATH = "vendor/elkjs/elk.bundled.js";
  const NODE_PAD_X = 12;
  const NODE_PAD_Y = 7;
  const LINE_GAP = 3;
  const LABEL_PAD = 3;
  const LABEL_WRAP = 30; // characters per edge-label line
  const LAYOUT = {
    "elk.algorithm": "layered",
    "elk.direction": "DOWN",
    "elk.edgeRouting": "ORTHOGONAL",
    "elk.layered.feedbackEdges": "true",
    "elk.separateConnectedComponents": "false",
    "elk.layered.cycleBreaking.strategy": "DEPTH_FIRST",
    "elk.layered.considerModelOrder.strategy": "NODES_AND_EDGES",
    "elk.layered.crossingMinimization.strategy": "LAYER_SWEEP",
    "elk.layered.nodePlacement.strategy": "NETWORK_SIMPLEX",
    "elk.layered.thoroughness": "7",
    "elk.spacing.nodeNode": "28",
    "elk.spacing.edgeNode": "14",
    "elk.spacing.edgeEdge": "10",
    "elk.spacing.edgeLabel": "4",
    "elk.spacing.labelNode": "6",
    "elk.layered.spacing.nodeNodeBetweenLayers": "36",
    "elk.layered.spacing.edgeNodeBetweenLayers": "14",
    "elk.layered.spacing.edgeEdgeBetweenLayers": "10",
    "elk.padding": "[top=12,left=12,bottom=12,right=12]",
  };
  const here = document.currentScript ? document.currentScript.src : "/static/graph.js";
  let elkReady = null;
  let figureCount = 0;
  const lastDrawn = new Map(); // graph URL -> the figure that last drew it

  function loadElk() {
    if (window.ELK) return Promise.resolve(new window.ELK());
    if (!elkReady) {
      elkReady = new Promise(function (resolve, reject) {
        const script = document.createElement("script");
        script.src = new URL(ELK_PATH, here).href;
        script.onload = function () { resolve(new window.ELK()); };
        script.onerror = function () { reject(new Error("the layout engine did not load")); };
        document.head.appendChild(script);
      });
    }
    return elkReady;
  }

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function countText(node) {
    const items = node.count === 1 ? "1 item" : node.count.toLocaleString("en") + " items";
    return node.failed ? items + " · " + node.failed.toLocaleString("en") + " failed" : items;
  }

  // Edge labels wrap on spaces into lines of at most LABEL_WRAP characters (a longer word
  // stays whole), so a long condition makes a taller label, not a layer as wide as the page.
  function wrap(text) {
    const lines = [];
    let line = "";
    text.split(" ").forEach(function (word) {
      if (line && (line + " " + word).length > LABEL_WRAP) {
        lines.push(line);
        line = word;
      } else {
        line = line ? line + " " + word : word;
      }
    });
    if (line) lines.push(line);
    return lines;
  }

  // Text is measured in a hidden SVG inside the figure, with the classes it is drawn with, so
  // the sizes ELK lays out are those of the page's fonts.
  function measurer(figure) {
    const svg = el("svg", { class: "wg-measure", "aria-hidden": "true" }, figure);
    return {
      size: function (lines, cls) {
        let width = 0;
        let height = 0;
        lines.forEach(function (line) {
          const text = el("text", { class: cls }, svg);
          text.textContent = line || " ";
          const box = text.getBBox();
          width = Math.max(width, box.width);
          height += box.height;
          svg.removeChild(text);
        });
        return { width: Math.ceil(width), height: Math.ceil(height), line: height / lines.length };
      },
      done: function () { figure.removeChild(svg); },
    };
  }

  // The routes the engine adds into the escalation state (an unhandled error, an overdue task,
  // a spent visit budget) start at most states; drawn as edges they would all converge on one
  // node across the whole graph. Each state lists its own inside its box instead ("to
  // escalated: error, task due 3d"), and the escalation state keeps its written transitions.
  function escalationRoute(edge, escalation) {
    return edge.target === escalation && edge.kind !== "transition" && edge.source !== edge.target;
  }

  function escalationText(node, routes, escalation) {
    const labels = routes.get(node.id);
    return labels ? "to " + escalation + ": " + labels.join(", ") : "";
  }

  // The escalation state, and the states only it leads to, go below the main flow (ELK
  // partitions), where the routes listed in the boxes above lead; its transitions back into
  // the main flow go up beside the graph.
  function escalationPart(data, escalation) {
    const next = new Map();
    data.edges.forEach(function (edge) {
      if (edge.drawn) next.set(edge.source, (next.get(edge.source) || []).concat(edge.target));
    });
    function reach(starts, stop) {
      const seen = new Set(starts);
      const queue = starts.slice();
      while (queue.length) {
        (next.get(queue.shift()) || []).forEach(function (target) {
          if (!seen.has(target) && target !== stop) { seen.add(target); queue.push(target); }
        });
      }
      return seen;
    }
    if (escalation === undefined) return new Set();
    const main = reach(data.nodes.filter(function (n) { return n.initial; })
      .map(function (n) { return n.id; }), escalation);
    const part = reach([escalation]);
    main.forEach(function (name) { part.delete(name); });
    part.add(escalation);
    return part;
  }

  function elkGraph(data, measure) {
    const escalation = (data.nodes.find(function (n) { return n.escalation; }) || {}).id;
    const routes = new Map();
    data.edges.forEach(function (edge) {
      edge.drawn = !escalationRoute(edge, escalation);
      if (!edge.drawn) routes.set(edge.source, (routes.get(edge.source) || []).concat(edge.label));
    });
    const below = escalationPart(data, escalation);
    const index = new Map();
    const children = data.nodes.map(function (node, n) {
      index.set(node.id, "n" + n);
      node.escalates = escalationText(node, routes, escalation);
      const lines = [measure.size([node.label], "wg-name"), measure.size([countText(node)], "wg-count")];
      if (node.escalates) lines.push(measure.size([node.escalates], "wg-escalates"));
      node.lines = lines;
      return {
        id: "n" + n,
        layoutOptions: { "elk.partitioning.partition": below.has(node.id) ? "1" : "0" },
        width: Math.max.apply(null, lines.map(function (l) { return l.width; })) + 2 * NODE_PAD_X,
        height: lines.reduce(function (sum, l) { return sum + l.height; }, 0)
          + LINE_GAP * (lines.length - 1) + 2 * NODE_PAD_Y,
      };
    });
    const edges = [];
    data.edges.forEach(function (edge, n) {
      if (!edge.drawn) return;
      const lines = edge.label ? wrap(edge.label) : [];
      const size = lines.length ? measure.size(lines, "wg-edge-label") : null;
      edge.lines = lines;
      edge.line = size ? size.line : 0;
      edges.push({
        id: "e" + n,
        sources: [index.get(edge.source)],
        targets: [index.get(edge.target)],
        labels: size ? [{
          id: "l" + n,
          text: edge.label,
          width: size.width + 2 * LABEL_PAD,
          height: size.height + 2 * LABEL_PAD,
          layoutOptions: { "elk.edgeLabels.placement": "CENTER", "elk.edgeLabels.inline": "true" },
        }] : [],
      });
    });
    const options = Object.assign({}, LAYOUT, { "elk.partitioning.activate": String(below.size > 0) });
    return { id: "root", layoutOptions: options, children: children, edges: edges };
  }

  function path(section) {
    const points = [section.startPoint].concat(section.bendPoints || [], [section.endPoint]);
    return points.map(function (p, i) { return (i ? "L" : "M") + p.x + " " + p.y; }).join(" ");
  }

  function defs(svg, prefix) {
    const holder = el("defs", {}, svg);
    ["transition", "timer", "exhausted", "error", "back"].forEach(function (kind) {
      const marker = el("marker", {
        id: prefix + kind, class: "wg-arrow wg-" + kind, viewBox: "0 0 10 10", refX: "9",
        refY: "5", markerWidth: "8", markerHeight: "8", orient: "auto-start-reverse",
        markerUnits: "userSpaceOnUse",
      }, holder);
      el("path", { d: "M0 0 L10 5 L0 10 z" }, marker);
    });
  }

  function nodeClass(node) {
    const classes = ["wg-node", "wg-kind-" + node.kind];
    if (node.initial) classes.push("wg-initial");
    if (node.terminal) classes.push("wg-terminal");
    if (node.escalation) classes.push("wg-escalation");
    if (node.severity) classes.push("alert-" + node.severity);
    if (node.failed) classes.push("has-failed");
    return classes.join(" ");
  }

  function drawNode(svg, node, shape) {
    const link = el("a", { href: node.href, class: nodeClass(node), "data-state": node.id }, svg);
    const tip = el("title", {}, link);
    tip.textContent = [node.label + ": " + countText(node), node.description]
      .concat(node.detail).filter(Boolean).join("\n");
    el("rect", {
      x: shape.x, y: shape.y, width: shape.width, height: shape.height, rx: 6, ry: 6,
    }, link);
    const cx = shape.x + shape.width / 2;
    const texts = [[node.label, "wg-name"], [countText(node), "wg-count"],
      [node.escalates, "wg-escalates"]];
    let y = shape.y + NODE_PAD_Y;
    node.lines.forEach(function (line, i) {
      const text = el("text", { class: texts[i][1], x: cx, y: y + line.line * 0.8 }, link);
      if (i === 1) text.setAttribute("data-count", "");
      text.textContent = texts[i][0];
      y += line.height + LINE_GAP;
    });
  }

  // A loop is drawn as what the reader sees: an edge that ends above where it starts (or on
  // its own state) runs back against the flow, whichever edge the walk in layout_graph chose.
  function upward(laid) {
    const sections = laid.sections || [];
    if (!sections.length) return false;
    return sections[sections.length - 1].endPoint.y < sections[0].startPoint.y;
  }

  function drawEdge(svg, edge, laid, prefix) {
    const back = edge.source === edge.target || upward(laid);
    const kind = back ? "back" : edge.kind;
    const group = el("g", {
      class: "wg-edge wg-" + edge.kind + (back ? " wg-back" : ""),
      "data-source": edge.source, "data-target": edge.target,
    }, svg);
    (laid.sections || []).forEach(function (section) {
      el("path", { d: path(section), "marker-end": "url(#" + prefix + kind + ")" }, group);
    });
    (laid.labels || []).forEach(function (label) {
      const box = el("g", { class: "wg-label" }, group);
      el("rect", { x: label.x, y: label.y, width: label.width, height: label.height, rx: 3 }, box);
      edge.lines.forEach(function (line, i) {
        const text = el("text", {
          class: "wg-edge-label", x: label.x + label.width / 2,
          y: label.y + LABEL_PAD + edge.line * (i + 0.8),
        }, box);
        text.textContent = line;
      });
    });
  }

  function render(figure, data, laid) {
    const prefix = "wg" + figure.dataset.graphId + "-";
    const width = Math.ceil(laid.width);
    const height = Math.ceil(laid.height);
    const svg = el("svg", {
      class: "wg-svg", viewBox: "0 0 " + width + " " + height, width: width, height: height,
      role: "img", "aria-label": "states and transitions of " + data.workflow + "@" + data.version,
    });
    defs(svg, prefix);
    const edges = el("g", { class: "wg-edges" }, svg);
    const laidOut = new Map(laid.edges.map(function (edge) { return [edge.id, edge]; }));
    data.edges.forEach(function (edge, n) {
      if (edge.drawn) drawEdge(edges, edge, laidOut.get("e" + n), prefix);
    });
    const nodes = el("g", { class: "wg-nodes" }, svg);
    data.nodes.forEach(function (node, n) { drawNode(nodes, node, laid.children[n]); });
    figure.replaceChildren(svg, legend(data));
    figure.classList.remove("wg-failed");
  }

  function legend(data) {
    const caption = document.createElement("figcaption");
    caption.className = "wg-legend";
    const escalation = data.nodes.find(function (n) { return n.escalation; });
    [["wg-key-transition", "transition"], ["wg-key-timer", "timer"],
      ["wg-key-exhausted", "visit budget spent"], ["wg-key-back", "loop back"],
      ["wg-key-escalates", escalation ? "in a box: where the engine sends its items to "
        + escalation.id + " (unhandled error, overdue task, budget spent)" : ""],
    ].forEach(function (entry) {
      if (!entry[1]) return;
      const key = document.createElement("span");
      key.className = "wg-key " + entry[0];
      key.textContent = entry[1];
      caption.appendChild(key);
    });
    return caption;
  }

  function structure(data) {
    return JSON.stringify([
      data.version,
      data.nodes.map(function (n) { return [n.id, n.kind]; }),
      data.edges.map(function (e) { return [e.source, e.target, e.label]; }),
    ]);
  }

  async function fetchGraph(figure) {
    const answer = await fetch(figure.dataset.graph, {
      credentials: "same-origin", headers: { Accept: "application/json" },
    });
    if (!answer.ok) {
      let message = "HTTP " + answer.status;
      try { message = (await answer.json()).message || message; } catch (ignored) { /* text */ }
      throw new Error(message);
    }
    return answer.json();
  }

  function failed(figure, error) {
    const note = document.createElement("p");
    note.className = "wg-error";
    note.textContent = "The graph could not be drawn: " + error.message;
    figure.replaceChildren(note);
    figure.classList.add("wg-failed");
  }

  async function layOut(figure, data) {
    const elk = await loadElk();
    const measure = measurer(figure);
    let graph;
    try {
      graph = elkGraph(data, measure);
    } finally {
      measure.done();
    }
    const laid = await elk.layout(graph);
    render(figure, data, laid);
    figure.wgState = { structure: structure(data), data: data };
    lastDrawn.set(figure.dataset.graph, figure);
    figure.dispatchEvent(new CustomEvent("statewise:graph-drawn", { bubbles: true }));
  }

  async function draw(figure) {
    if (!figure.dataset.graphId) figure.dataset.graphId = String(++figureCount);
    figure.classList.add("wg-drawing");
    try {
      await layOut(figure, await fetchGraph(figure));
    } catch (error) {
      failed(figure, error);
    } finally {
      figure.classList.remove("wg-drawing");
    }
  }

  // New counts fit the drawn boxes unless a count's text grew wider than its box allows.
  function updateInPlace(figure, data) {
    const svg = figure.querySelector("svg.wg-svg");
    if (!svg) return false;
    const links = new Map();
    svg.querySelectorAll("a.wg-node").forEach(function (link) {
      links.set(link.getAttribute("data-state"), link);
    });
    const fits = data.nodes.every(function (node) {
      const link = links.get(node.id);
      const rect = link && link.querySelector("rect");
      const count = link && link.querySelector("text.wg-count");
      if (!rect || !count) return false;
      count.textContent = countText(node);
      return count.getBBox().width + 2 * NODE_PAD_X <= Number(rect.getAttribute("width"));
    });
    if (!fits) return false;
    data.nodes.forEach(function (node) {
      const link = links.get(node.id);
      link.setAttribute("class", nodeClass(node));
      link.setAttribute("href", node.href);
      link.querySelector("title").textContent = [node.label + ": " + countText(node),
        node.description].concat(node.detail).filter(Boolean).join("\n");
    });
    return true;
  }

  async function refresh(figure) {
    const state = figure.wgState;
    if (!state) return draw(figure);
    try {
      const data = await fetchGraph(figure);
      if (structure(data) !== state.structure || !updateInPlace(figure, data)) {
        await layOut(figure, data);
      } else {
        state.data = data;
      }
    } catch (error) {
      failed(figure, error);
    }
  }

  // A live fragment swapped in (live.js) brings a fresh, empty figure for a graph just drawn:
  // it takes over the old figure's drawing and only refreshes its figures, with no new layout.
  function adopt(figure) {
    const before = lastDrawn.get(figure.dataset.graph);
    if (!before || before === figure || before.isConnected || !before.wgState) return false;
    figure.dataset.graphId = before.dataset.graphId;
    figure.replaceChildren.apply(figure, Array.from(before.childNodes));
    figure.wgState = before.wgState;
    lastDrawn.set(figure.dataset.graph, figure);
    refresh(figure);
    return true;
  }

  function drawAll(root) {
    const found = root.matches && root.matches("figure.workflow-graph[data-graph]")
      ? [root] : Array.from(root.querySelectorAll ? root.querySelectorAll(
        "figure.workflow-graph[data-graph]") : []);
    found.forEach(function (figure) {
      if (!figure.wgState && !figure.classList.contains("wg-drawing") && !adopt(figure)) {
        draw(figure);
      }
    });
  }

  window.statewiseGraph = { draw: draw, refresh: refresh };
  drawAll(document);
  // The page's live figures changed (live.js polls them with an ETag and says so only on a
  // change): the graph's counts and marks follow, laid out again only if they no longer fit.
  document.addEventListener("statewise:figures", function () {
    document.querySelectorAll("figure.workflow-graph[data-graph]").forEach(function (figure) {
      if (figure.wgState) refresh(figure);
    });
  });
  new MutationObserver(function (changes) {
    changes.forEach(function (change) { change.addedNodes.forEach(drawAll); });
  }).observe(document.body, { childList: true, subtree: true });
})();
