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

export function displayTitle(paper) {
  return paper.title || (paper.arxiv_id ? `arXiv:${paper.arxiv_id}` : paper.id);
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

export function displayDate(paper) {
  if (!paper.published) return null;
  const [year, month, day] = paper.published.split("-").map(Number);
  return `${day} ${MONTHS[month - 1]} ${year}`;
}

// "A, B, C et al." with the truncation marked, or the first `limit` names and a count.
export function authorLine(paper, limit = 6) {
  const names = paper.authors || [];
  if (!names.length) return null;
  const shown = names.slice(0, limit).join(", ");
  const hidden = names.length - limit;
  const line = el("span", { class: "authors", text: shown });
  if (hidden > 0) line.append(el("span", { class: "more", text: ` +${hidden} more` }));
  if (paper.authors_truncated) {
    line.append(
      " ",
      el("abbr", {
        class: "truncated",
        title: "The source listed only these authors",
        text: "et al.",
      }),
    );
  }
  return line;
}

const STOPWORDS = new Set(
  "a an and are as at be by for from how in into is it of on or that the their this to was what when which with".split(
    " ",
  ),
);

// Words of the query, for marking them in the highlighted sentences: each also matches
// longer forms ("recommend" marks "recommendation").
export function queryTerms(query) {
  return [...new Set(query.toLowerCase().match(/[\p{L}\p{N}]{3,}/gu) || [])].filter(
    (word) => !STOPWORDS.has(word),
  );
}

function marked(text, terms) {
  if (!terms.length) return [text];
  const escaped = terms.map((term) => term.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const pattern = new RegExp(`(?<![\\p{L}\\p{N}])(?:${escaped.join("|")})[\\p{L}\\p{N}]*`, "giu");
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    parts.push(text.slice(last, match.index), el("mark", { text: match[0] }));
    last = match.index + match[0].length;
  }
  parts.push(text.slice(last));
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

export function metaLine(paper) {
  const parts = [
    authorLine(paper),
    displayDate(paper) && el("time", { datetime: paper.published, text: displayDate(paper) }),
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
// (a function given the hit and the list item) adds the "Similar papers" toggle.
export function hitItem(hit, rank, { terms = [], scale = 1, notify, onSimilar } = {}) {
  const title = el("a", { href: paperHref(hit.id), class: "hit-title", text: displayTitle(hit) });
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
    copyButton("Copy citation", hit.citation, notify),
    hit.bibtex && copyButton("Copy BibTeX", hit.bibtex, notify),
  );
  const highlights = (hit.highlights || []).map((h) =>
    el("p", { class: "highlight" }, marked(h.text, terms)),
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
