// Building the page's pieces from API answers. Text always goes in through textContent,
// never as HTML: titles and abstracts come from scraped pages.

export const $ = (selector) => document.querySelector(selector);

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...present(children));
  return node;
}

// Replace a node's children; like `el`, skipping the empty ones (`cond && el(...)`).
export function fill(node, ...children) {
  node.replaceChildren(...present(children));
  return node;
}

function present(children) {
  return children
    .flat(Infinity)
    .filter((child) => child !== null && child !== undefined && child !== false && child !== "");
}

export function paperHref(id) {
  return `/paper/${encodeURIComponent(id).replaceAll("%2F", "/").replaceAll("%3A", ":")}`;
}

// The id as the API's paper routes take it (after `/papers/`).
export function paperPath(id) {
  return paperHref(id).slice("/paper/".length);
}

// A highlight's text with the words the API says matched (`terms`) marked. The offsets count
// code points, as the API's Python does; a JS string indexes UTF-16 units, which differ from
// them after any character outside the BMP (𝒪, emoji), so the text is sliced as code points.
export function marked(text, spans = []) {
  const chars = Array.from(text);
  const parts = [];
  let last = 0;
  for (const { start, end } of spans) {
    parts.push(chars.slice(last, start).join(""));
    parts.push(el("mark", { text: chars.slice(start, end).join("") }));
    last = end;
  }
  parts.push(chars.slice(last).join(""));
  return parts;
}

// The score as a bar: hybrid and dense scores lie in 0-1; BM25 has no ceiling, so in
// lexical mode the bar is relative to the best score of the answer.
function scoreBar(score, scale) {
  const fraction = Math.max(0, Math.min(1, score / scale));
  return el(
    "span",
    { class: "score", title: `Relevance score ${score}` },
    el("span", { class: "score-bar", style: `--fill: ${(fraction * 100).toFixed(1)}%` }),
    el("span", { class: "score-value", text: score.toFixed(3) }),
  );
}

export function copyButton(label, text, notify) {
  return el("button", {
    type: "button",
    class: "link-button",
    text: label,
    onclick: async () => {
      notify((await copyText(text)) ? `${label.replace("Copy ", "")} copied` : "Copy failed");
    },
  });
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Not a secure context, or no permission: the old way still works in most browsers.
    const area = el("textarea", { class: "visually-hidden", readonly: true });
    area.value = text;
    document.body.append(area);
    area.select();
    const copied = document.execCommand("copy");
    area.remove();
    return copied;
  }
}

// Authors, date, category and code, as the API labels them.
export function metaLine(paper) {
  const parts = [
    paper.credit && el("span", { class: "authors", text: paper.credit }),
    paper.date_label && el("time", { datetime: paper.published, text: paper.date_label }),
    paper.category && el("span", { class: "category", text: paper.category }),
    paper.has_code && el("span", { class: "badge", text: "code" }),
  ].filter(Boolean);
  const line = el("p", { class: "meta" });
  parts.forEach((part, i) =>
    line.append(...(i ? [el("span", { class: "dot", text: " · " }), part] : [part])),
  );
  return line;
}

// One result: rank, title, meta, score, highlights, then its actions. `options.onSimilar`
// (a function given the hit and the list item) adds the "Similar papers" toggle;
// `options.onMark` (given the hit and the button) a toggle that marks it as an example.
export function hitItem(hit, rank, { scale = 1, notify, onSimilar, onMark, isMarked } = {}) {
  const title = el("a", { href: paperHref(hit.id), class: "hit-title", text: hit.label });
  const actions = el(
    "div",
    { class: "actions" },
    hit.url && el("a", { href: hit.url, class: "external", rel: "noopener", text: "arXiv" }),
    onSimilar &&
      el("button", {
        type: "button",
        class: "link-button similar-toggle",
        "aria-expanded": "false",
        text: "Similar papers",
        onclick: (event) => onSimilar(hit, item, event.currentTarget),
      }),
    onMark &&
      el("button", {
        type: "button",
        class: "link-button mark-toggle",
        "aria-pressed": String(Boolean(isMarked)),
        text: isMarked ? "Marked" : "Mark",
        title: "Mark as an example, then ask for more like the marked papers",
        onclick: (event) => onMark(hit, event.currentTarget),
      }),
    copyButton("Copy citation", hit.citation, notify),
    hit.bibtex && copyButton("Copy BibTeX", hit.bibtex, notify),
  );
  const highlights = (hit.highlights || []).map((h) =>
    el("p", { class: "highlight" }, marked(h.text, h.terms)),
  );
  const item = el(
    "li",
    { class: "hit", "data-id": hit.id },
    el("span", { class: "rank", "aria-label": `Rank ${rank}`, text: String(rank) }),
    el(
      "div",
      { class: "hit-body" },
      el("h3", {}, title),
      metaLine(hit),
      scoreBar(hit.score, scale),
      highlights.length ? el("div", { class: "highlights" }, highlights) : null,
      actions,
    ),
  );
  return item;
}
