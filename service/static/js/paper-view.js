// The paper view at `/paper/{id}`: the whole record and its nearest papers, lit on the map.

import { getJson } from "./api.js";
import { errorBox, notify } from "./messages.js";
import { $, copyButton, el, fill, hitItem, paperPath } from "./render.js";
import { moveFocus } from "./results.js";

export async function showPaper(id, corpusMap) {
  const article = $("#paper");
  const similar = $("#paper-similar");
  fill(article, el("p", { class: "status loading", text: "Loading the paper…" }));
  fill(similar);
  $(".similar").hidden = false;
  const referrer = document.referrer ? new URL(document.referrer) : null;
  if (referrer && referrer.origin === location.origin && referrer.pathname === "/") {
    $("#back-link").href = referrer.pathname + referrer.search;
    $("#back-link").textContent = "← Back to results";
  }
  let answer;
  try {
    answer = await getJson(`/papers/${paperPath(id)}/similar`, { k: 10 });
  } catch (error) {
    const heading = error.status === 404 ? "No such paper" : "The paper could not be loaded";
    document.title = `${heading} · Papersearch`;
    fill(
      article,
      el("h1", { text: heading }),
      errorBox(error, error.status === 404 ? null : () => showPaper(id, corpusMap)),
      error.status === 404
        ? el("p", {}, el("a", { href: "/", text: "Search the corpus instead" }))
        : null,
    );
    $(".similar").hidden = true;
    return;
  }
  const { paper, results } = answer;
  document.title = `${paper.label} · Papersearch`;
  fill(article, ...paperDetails(paper));
  fill(similar, ...results.map((hit, i) => hitItem(hit, i + 1, { notify })));
  similar.onkeydown = (event) => moveFocus(event, similar, $("#q")); // once, however often shown
  corpusMap.highlight(
    results.map((hit) => hit.id),
    paper.id,
  );
}

function paperDetails(paper) {
  const facts = [
    ["Published", paper.date_label],
    ["Category", paper.category],
    ["Code", paper.has_code ? "available" : null],
    ["Affiliation", paper.affiliation],
    [
      "arXiv",
      paper.arxiv_id && el("a", { href: paper.url, rel: "noopener", text: paper.arxiv_id }),
    ],
    ["Comment", paper.comment],
    ["Indexed from", paper.source],
    ["Id", el("code", { text: paper.id })],
  ].filter(([, value]) => value);
  const authors = paper.authors.length ? paper.authors.join(", ") : "Authors unknown";
  return [
    el("h1", { text: paper.label }),
    el(
      "p",
      { class: "authors-full" },
      authors,
      paper.authors_truncated
        ? el("abbr", {
            class: "truncated",
            title: "The source listed only these authors",
            text: " et al.",
          })
        : null,
    ),
    el(
      "dl",
      { class: "facts" },
      facts.map(([name, value]) => [el("dt", { text: name }), el("dd", {}, value)]),
    ),
    el("h2", { text: "Abstract" }),
    el("p", { class: "abstract", text: paper.abstract }),
    el(
      "div",
      { class: "actions" },
      paper.url && el("a", { href: paper.url, class: "external", rel: "noopener", text: "arXiv" }),
      copyButton("Copy citation", paper.citation, notify),
      paper.bibtex && copyButton("Copy BibTeX", paper.bibtex, notify),
    ),
    paper.bibtex
      ? el(
          "details",
          { class: "bibtex" },
          el("summary", { text: "BibTeX" }),
          el("pre", { text: paper.bibtex }),
        )
      : null,
  ];
}
