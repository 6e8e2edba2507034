// The corpus map: every paper as a dot on a canvas (a large corpus: a sample spread over
// the map), coloured by category. Hover names a paper, a click opens it, the wheel (or the
// +/- buttons and keys) zooms and dragging pans. `highlight(ids)` lights up the current
// results, numbered by rank, asking the API where those the sample lacks lie.

import { getJson } from "./api.js";
import { el, fill, paperHref } from "./render.js";

// Colour-blind-safe categorical palette (Okabe-Ito, then Tableau's extras); categories
// past it share the "other" grey.
const PALETTE = [
  "#0072b2",
  "#e69f00",
  "#009e73",
  "#cc79a7",
  "#56b4e9",
  "#d55e00",
  "#f0e442",
  "#8c564b",
  "#7f3c8d",
  "#17becf",
];
const HOVER_RADIUS = 10; // CSS pixels

// [smallest, largest]: a loop, since spreading 75,000 values into Math.min overflows the stack.
function bounds(values) {
  let low = Infinity;
  let high = -Infinity;
  for (const value of values) {
    if (value < low) low = value;
    if (value > high) high = value;
  }
  return values.length ? [low, high] : [0, 0];
}

export class CorpusMap {
  constructor(root, { onCategory } = {}) {
    this.root = root;
    this.canvas = root.querySelector("canvas");
    this.tooltip = root.querySelector(".map-tooltip");
    this.legend = root.querySelector(".map-legend");
    this.caption = root.querySelector(".map-caption");
    this.onCategory = onCategory;
    this.data = null;
    this.lit = new Map(); // paper row -> rank (1-based), or 0 for the page's own paper
    this.view = { scale: 1, x: 0, y: 0 }; // zoom, and the map point at the centre
    this.hovered = -1;
    this.frame = 0;
    this.bindEvents();
    new ResizeObserver(() => this.draw()).observe(this.canvas);
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.draw());
  }

  // `data` is the /map answer (columns, one entry per shown paper).
  show(data) {
    this.data = data;
    this.rowOf = new Map(data.ids.map((id, row) => [id, row]));
    this.asked = new Set(); // ids already asked of /map?ids=, found or not
    this.colours = data.categories.map((_, i) => PALETTE[i] || null);
    // Rows by colour, drawn in this order: "other" first, then the largest categories, so
    // the small ones stay visible on top.
    const groups = new Map();
    data.category.forEach((category, row) => {
      const colour = this.colours[category] ? category : -1;
      if (!groups.has(colour)) groups.set(colour, []);
      groups.get(colour).push(row);
    });
    this.groups = [...groups].sort(([a], [b]) => a - b);
    this.legendCounts = new Map(this.groups.map(([colour, rows]) => [colour, rows.length]));
    // The whole map fills the canvas at zoom 1: its bounding box, not the -1..1 square.
    const [minX, maxX] = bounds(data.x);
    const [minY, maxY] = bounds(data.y);
    this.home = { x: (minX + maxX) / 2, y: (minY + maxY) / 2 };
    this.extent = { width: maxX - minX || 1, height: maxY - minY || 1 };
    this.view = { scale: 1, ...this.home };
    // Where a paper's dot is on the screen, for scripts and tests that drive the page.
    this.canvas.paperPosition = (id) => {
      const box = this.canvas.getBoundingClientRect();
      const [x, y] = this.screen(this.rowOf.get(id), this.transform());
      return [box.left + x, box.top + y];
    };
    this.renderLegend();
    this.root.dataset.points = String(data.shown);
    this.root.dataset.papers = String(data.papers);
    // Results that arrived before the map did.
    this.highlight(this.pending?.ranked ?? [], this.pending?.focus);
  }

  showError(message) {
    this.root.dataset.state = "error";
    this.caption.textContent = `The map could not be loaded: ${message}`;
  }

  // Light up papers by id: `ranked` in order (numbered 1..n), `focus` (the paper of a paper
  // page) drawn largest.
  highlight(ranked, focus = null) {
    this.pending = { ranked, focus };
    if (!this.data) return;
    this.lit = new Map();
    ranked.forEach((id, i) => this.rowOf.has(id) && this.lit.set(this.rowOf.get(id), i + 1));
    if (focus && this.rowOf.has(focus)) this.lit.set(this.rowOf.get(focus), 0);
    this.root.dataset.highlighted = String(this.lit.size);
    this.describe();
    this.draw();
    const missing = [...ranked, focus].filter(
      (id) => id && !this.rowOf.has(id) && !this.asked.has(id),
    );
    if (missing.length) this.place(missing);
  }

  // Results the sampled map lacks: their points, added to the map (not to the legend's
  // counts), then lit as they were asked to be.
  async place(ids) {
    ids.forEach((id) => this.asked.add(id));
    let found;
    try {
      found = await getJson("/map", { ids: ids.join(",") });
    } catch {
      return; // the results still show; only their dots are missing
    }
    const data = this.data;
    found.ids.forEach((id, i) => {
      if (this.rowOf.has(id)) return;
      const row = data.ids.length;
      data.ids.push(id);
      data.labels.push(found.labels[i]);
      data.category.push(found.category[i]);
      data.x.push(found.x[i]);
      data.y.push(found.y[i]);
      this.rowOf.set(id, row);
      const colour = this.colours[found.category[i]] ? found.category[i] : -1;
      const group = this.groups.find(([c]) => c === colour);
      if (group) group[1].push(row);
      else this.groups = [...this.groups, [colour, [row]]].sort(([a], [b]) => a - b);
    });
    this.highlight(this.pending.ranked, this.pending.focus);
  }

  describe() {
    const { papers, shown } = this.data;
    const corpus =
      shown < papers
        ? `Showing ${shown.toLocaleString("en")} of ${papers.toLocaleString("en")} papers`
        : `${papers.toLocaleString("en")} papers`;
    const lit = this.lit.size;
    this.caption.textContent = lit
      ? `${corpus}; the ${lit} shown in the list are lit. Hover for a title, click to open.`
      : `${corpus}; nearby dots are papers on similar subjects. Hover for a title, click to open.`;
  }

  renderLegend() {
    const counts = this.legendCounts;
    const entries = this.data.categories
      .map((name, i) => [name, i])
      .filter(([, i]) => this.colours[i]);
    const other = counts.get(-1) || 0;
    fill(
      this.legend,
      ...entries.map(([name, i]) =>
        el(
          "li",
          {},
          el(
            "button",
            {
              type: "button",
              class: "legend-item",
              title: `Filter results to ${name}`,
              onclick: () => this.onCategory?.(name),
            },
            el("span", { class: "swatch", style: `background:${this.colours[i]}` }),
            `${name} (${counts.get(i) || 0})`,
          ),
        ),
      ),
      other
        ? el(
            "li",
            {},
            el(
              "span",
              { class: "legend-item" },
              el("span", { class: "swatch other" }),
              `other (${other})`,
            ),
          )
        : null,
    );
  }

  // Map coordinates to CSS pixels of the canvas, through the zoom and pan.
  transform() {
    const { width, height } = this.canvas.getBoundingClientRect();
    const margin = 12;
    const fit = Math.min(
      (width - 2 * margin) / this.extent.width,
      (height - 2 * margin) / this.extent.height,
    );
    const { scale, x, y } = this.view;
    return { cx: width / 2, cy: height / 2, unit: fit * scale, x, y, width, height };
  }

  screen(row, t) {
    return [t.cx + (this.data.x[row] - t.x) * t.unit, t.cy - (this.data.y[row] - t.y) * t.unit];
  }

  draw() {
    cancelAnimationFrame(this.frame);
    this.frame = requestAnimationFrame(() => this.paint());
  }

  paint() {
    if (!this.data) return;
    const ratio = window.devicePixelRatio || 1;
    const { width, height } = this.canvas.getBoundingClientRect();
    if (!width || !height) return;
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(height * ratio);
    const g = this.canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    const style = getComputedStyle(this.root);
    const other = style.getPropertyValue("--map-other").trim() || "#999";
    const ink = style.getPropertyValue("--text").trim() || "#000";
    const surface = style.getPropertyValue("--surface").trim() || "#fff";
    g.clearRect(0, 0, width, height);
    const t = this.transform();
    const n = this.data.shown;
    const radius = Math.max(1.2, Math.min(4, 300 / Math.sqrt(n))) * Math.sqrt(this.view.scale);
    g.globalAlpha = this.lit.size ? 0.28 : 0.85;
    // Colour by colour; dots under 2.5 px are squares, which look the same at that size and
    // draw 2.3 times faster than arcs (75,000 dots: 66 ms against 150 ms in headless Chromium).
    const { x, y } = this.data;
    const square = radius < 2.5;
    for (const [colour, rows] of this.groups) {
      g.fillStyle = colour >= 0 ? this.colours[colour] : other;
      for (const row of rows) {
        const px = t.cx + (x[row] - t.x) * t.unit;
        const py = t.cy - (y[row] - t.y) * t.unit;
        if (px < -5 || py < -5 || px > width + 5 || py > height + 5) continue;
        if (square) {
          g.fillRect(px - radius, py - radius, 2 * radius, 2 * radius);
        } else {
          g.beginPath();
          g.arc(px, py, radius, 0, 2 * Math.PI);
          g.fill();
        }
      }
    }
    g.globalAlpha = 1;
    // Lit papers on top, the best ranks last (so on top of the others).
    const lit = [...this.lit].sort((a, b) => (b[1] || Infinity) - (a[1] || Infinity));
    g.font = "600 10px system-ui, sans-serif";
    g.textAlign = "center";
    g.textBaseline = "middle";
    for (const [row, rank] of lit) {
      const [px, py] = this.screen(row, t);
      const r = rank === 0 ? 9 : 7.5;
      g.fillStyle = this.colours[this.data.category[row]] || other;
      g.strokeStyle = ink;
      g.lineWidth = rank === 0 ? 3 : 1.5;
      g.beginPath();
      g.arc(px, py, r, 0, 2 * Math.PI);
      g.fill();
      g.stroke();
      if (rank > 0 && rank < 100) {
        g.fillStyle = surface;
        g.strokeStyle = ink;
        g.lineWidth = 3;
        g.strokeText(String(rank), px, py);
        g.fillText(String(rank), px, py);
      }
    }
    if (this.hovered >= 0) {
      const [px, py] = this.screen(this.hovered, t);
      g.strokeStyle = ink;
      g.lineWidth = 2;
      g.beginPath();
      g.arc(px, py, radius + 5, 0, 2 * Math.PI);
      g.stroke();
    }
  }

  // The paper under the pointer: the nearest dot within HOVER_RADIUS, lit ones first.
  paperAt(clientX, clientY) {
    if (!this.data) return -1;
    const box = this.canvas.getBoundingClientRect();
    const mx = clientX - box.left;
    const my = clientY - box.top;
    const t = this.transform();
    let best = -1;
    let bestDistance = HOVER_RADIUS ** 2;
    for (const row of this.lit.keys()) {
      const [px, py] = this.screen(row, t);
      const d = (px - mx) ** 2 + (py - my) ** 2;
      if (d < 10 ** 2 && d < bestDistance) [best, bestDistance] = [row, d];
    }
    if (best >= 0) return best;
    for (let row = 0; row < this.data.ids.length; row++) {
      const [px, py] = this.screen(row, t);
      const d = (px - mx) ** 2 + (py - my) ** 2;
      if (d < bestDistance) [best, bestDistance] = [row, d];
    }
    return best;
  }

  hover(row, clientX, clientY) {
    if (row !== this.hovered) {
      this.hovered = row;
      this.draw();
    }
    this.canvas.style.cursor = row >= 0 ? "pointer" : this.dragging ? "grabbing" : "grab";
    if (row < 0) {
      this.tooltip.hidden = true;
      return;
    }
    const category = this.data.categories[this.data.category[row]];
    const rank = this.lit.get(row);
    fill(
      this.tooltip,
      el("strong", { text: this.data.labels[row] }),
      category ? el("span", { text: category }) : null,
      rank ? el("span", { text: `result ${rank}` }) : null,
    );
    this.tooltip.hidden = false;
    const box = this.root.getBoundingClientRect();
    const left = Math.min(clientX - box.left + 14, box.width - this.tooltip.offsetWidth - 4);
    this.tooltip.style.left = `${Math.max(4, left)}px`;
    this.tooltip.style.top = `${clientY - box.top + 14}px`;
  }

  zoom(factor, clientX = null, clientY = null) {
    const t = this.transform();
    const box = this.canvas.getBoundingClientRect();
    // Keep the map point under the pointer (or the centre) where it is.
    const mx = clientX === null ? t.cx : clientX - box.left;
    const my = clientY === null ? t.cy : clientY - box.top;
    const ux = t.x + (mx - t.cx) / t.unit;
    const uy = t.y - (my - t.cy) / t.unit;
    const scale = Math.max(1, Math.min(64, this.view.scale * factor));
    const unit = t.unit * (scale / this.view.scale);
    this.view = { scale, x: ux - (mx - t.cx) / unit, y: uy + (my - t.cy) / unit };
    if (scale === 1) this.view = { scale: 1, ...this.home };
    this.draw();
  }

  pan(dx, dy) {
    const t = this.transform();
    this.view = { ...this.view, x: this.view.x - dx / t.unit, y: this.view.y + dy / t.unit };
    this.draw();
  }

  bindEvents() {
    const canvas = this.canvas;
    let drag = null;
    canvas.addEventListener("pointerdown", (event) => {
      drag = { x: event.clientX, y: event.clientY, moved: false };
      canvas.setPointerCapture(event.pointerId);
    });
    canvas.addEventListener("pointermove", (event) => {
      if (
        drag &&
        (Math.abs(event.clientX - drag.x) > 3 || Math.abs(event.clientY - drag.y) > 3 || drag.moved)
      ) {
        drag.moved = true;
        this.dragging = true;
        this.pan(event.clientX - drag.x, event.clientY - drag.y);
        drag.x = event.clientX;
        drag.y = event.clientY;
        return;
      }
      this.hover(this.paperAt(event.clientX, event.clientY), event.clientX, event.clientY);
    });
    canvas.addEventListener("pointerup", (event) => {
      const clicked = drag && !drag.moved;
      drag = null;
      this.dragging = false;
      if (!clicked) return;
      const row = this.paperAt(event.clientX, event.clientY);
      if (row >= 0) location.assign(paperHref(this.data.ids[row]));
    });
    canvas.addEventListener("pointerleave", () => this.hover(-1));
    canvas.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        this.zoom(event.deltaY < 0 ? 1.25 : 0.8, event.clientX, event.clientY);
      },
      { passive: false },
    );
    canvas.addEventListener("dblclick", () => this.zoom(0));
    canvas.addEventListener("keydown", (event) => {
      const step = 40;
      const moves = {
        ArrowLeft: [step, 0],
        ArrowRight: [-step, 0],
        ArrowUp: [0, step],
        ArrowDown: [0, -step],
      };
      if (moves[event.key]) this.pan(...moves[event.key]);
      else if (event.key === "+" || event.key === "=") this.zoom(1.25);
      else if (event.key === "-") this.zoom(0.8);
      else if (event.key === "0") this.zoom(0);
      else return;
      event.preventDefault();
    });
    this.root.querySelector(".zoom-in").addEventListener("click", () => this.zoom(1.25));
    this.root.querySelector(".zoom-out").addEventListener("click", () => this.zoom(0.8));
    this.root.querySelector(".zoom-reset").addEventListener("click", () => this.zoom(0));
  }
}
