// The page: `/` is the search, `/paper/{id}` one paper with its nearest neighbours; both keep
// the corpus map beside them.

import { getJson } from "./api.js";
import { CorpusMap } from "./corpus-map.js";
import { bindKeyPrompt, describe, errorBox } from "./messages.js";
import { showPaper } from "./paper-view.js";
import { $, fill } from "./render.js";
import { SearchView } from "./search-view.js";

let search = null;
const corpusMap = new CorpusMap($("#map-panel"), {
  onCategory: (name) => {
    if (search) search.setFilter("category", name);
    else location.assign(`/?${new URLSearchParams({ category: name, q: $("#q").value })}`);
  },
});

bindKeyPrompt();
document.addEventListener("keydown", (event) => {
  const typing = event.target.closest("input, textarea, select, [contenteditable]");
  if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
    event.preventDefault();
    $("#q").focus();
    $("#q").select();
  }
});

if (location.pathname.startsWith("/paper/")) {
  $("#main").dataset.view = "paper";
  // A search typed on a paper page runs on the search page.
  $("#search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    location.assign(`/?${new URLSearchParams({ q: $("#q").value.trim() })}`);
  });
  showPaper(decodeURIComponent(location.pathname.slice("/paper/".length)), corpusMap);
  getJson("/config").then(
    (config) => ($("#q").maxLength = config.max_query_chars),
    () => {}, // the box works without its limit; the paper view reports any failure itself
  );
} else {
  // The form is built from the service's own description of its search.
  getJson("/config").then(
    (config) => {
      search = new SearchView(corpusMap, config);
      search.start();
    },
    (error) => {
      $("#status").className = "status error";
      $("#status").textContent = "The service is not answering.";
      fill($("#notice"), errorBox(error, () => location.reload()));
    },
  );
}

getJson("/map").then(
  (data) => corpusMap.show(data),
  (error) => corpusMap.showError(describe(error)),
);
