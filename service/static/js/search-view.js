// The search view at `/`: its whole state lives in the address, so any view can be shared.
// A search starts as typing pauses, a newer one cancels the one still running, and the
// results, the title look-up and every error state are drawn here.

import { getJson, postForFile, postJson } from "./api.js";
import { errorBox, notify } from "./messages.js";
import { $, el, fill, hitItem, metaLine, paperHref } from "./render.js";
import { moveFocus, toggleSimilar } from "./results.js";

const PAGE_SIZE = 10;
const TYPING_PAUSE_MS = 250; // a search starts once typing pauses this long

// One control of the filter form, from the filter as `GET /config` describes it.
function filterControl(filter) {
  let control;
  if (filter.choices || (filter.facet && filter.type === "string")) {
    const choices = filter.choices || [{ value: "", label: filter.placeholder || "Any" }];
    control = el(
      "select",
      { name: filter.name, title: filter.description },
      choices.map((c) => el("option", { value: c.value, text: c.label })),
    );
  } else {
    const number = filter.type === "integer";
    control = el("input", {
      name: filter.name,
      title: filter.description,
      type: number ? "number" : "text",
      inputmode: number ? "numeric" : null,
      autocomplete: "off",
      min: filter.minimum,
      max: filter.maximum,
      minlength: filter.min_length,
      maxlength: filter.max_length,
      placeholder: filter.placeholder,
    });
  }
  return el("label", {}, filter.label, control);
}

function choiceControl(label, name, choices) {
  return el(
    "label",
    {},
    label,
    el(
      "select",
      { name },
      choices.map((c) => el("option", { value: c.value, text: c.label })),
    ),
  );
}

export class SearchView {
  // `config`: the service's limits, choices and filters (GET /config).
  constructor(corpusMap, config) {
    this.corpusMap = corpusMap;
    this.config = config;
    this.input = $("#q");
    this.filters = $("#filters");
    this.titleInput = $("#title");
    this.buildForm(config);
    // The form's fields, as address parameters: every filter, then the order and the mode.
    this.filterNames = config.filters.map((filter) => filter.name);
    this.fields = [...this.filterNames, "sort", "recency", "mode"];
    this.status = $("#status");
    this.notice = $("#notice");
    this.list = $("#results");
    this.papers = null; // corpus size, from /facets
    this.inFlight = null;
    this.timer = 0;
    this.page = 1;
    this.like = ""; // a title lookup in progress, instead of a search
    this.more = []; // ids of examples to find more like, instead of a search
    this.pasted = ""; // a pasted text to find papers like, instead of a search
    this.marked = new Map(); // id -> label of the papers marked as examples
    this.bind();
  }

  buildForm(config) {
    this.input.maxLength = config.max_query_chars;
    this.titleInput.minLength = config.title_min_chars;
    this.titleInput.maxLength = config.title_max_chars;
    $("#text-input").maxLength = config.max_text_chars;
    fill(
      $("#export-format"),
      config.export_formats.map((f) => el("option", { value: f.value, text: f.label })),
    );
    // The empty choice is the service's own default mode.
    const modes = config.modes.map((mode) =>
      mode.value === config.default_mode ? { value: "", label: mode.label } : mode,
    );
    modes.sort((a, b) => (a.value ? 1 : 0) - (b.value ? 1 : 0));
    fill(
      $("#filter-fields"),
      config.filters.map(filterControl),
      choiceControl("Sort", "sort", config.sorts),
      choiceControl("Recency", "recency", config.recency),
      choiceControl("Match", "mode", modes),
    );
  }

  // The view's state as address parameters (what makes it shareable).
  params() {
    const params = new URLSearchParams();
    if (this.like) {
      params.set("like", this.like);
      return params;
    }
    const q = this.input.value.trim();
    if (this.more.length) params.set("more", this.more.join(","));
    else if (q && !this.pasted) params.set("q", q);
    const defaultSort = this.config.default_sort;
    for (const name of this.fields) {
      const value = this.filters.elements[name].value.trim();
      if (value && !(name === "sort" && value === defaultSort)) params.set(name, value);
    }
    if (this.page > 1) params.set("page", String(this.page));
    return params;
  }

  // Fill the form from the address: first load, shared links, back and forward.
  readAddress() {
    const params = new URLSearchParams(location.search);
    this.like = params.get("like") || "";
    this.more = (params.get("more") || "").split(",").filter(Boolean);
    this.pasted = "";
    this.input.value = params.get("q") || "";
    this.titleInput.value = this.like;
    for (const name of this.fields) {
      const field = this.filters.elements[name];
      const value = params.get(name) || (name === "sort" ? this.config.default_sort : "");
      if (
        field.tagName === "SELECT" &&
        value &&
        ![...field.options].some((o) => o.value === value)
      ) {
        field.append(el("option", { value, text: value })); // a shared link's value
      }
      field.value = value;
    }
    this.page = Math.max(1, Number.parseInt(params.get("page"), 10) || 1);
    // Folded on a phone, where they would push the results off the screen, unless in use.
    const filtering = this.filterNames.some((name) => params.get(name));
    $("#filter-panel").open = filtering || !matchMedia("(max-width: 46rem)").matches;
  }

  writeAddress(push) {
    const query = this.params().toString();
    const url = query ? `/?${query}` : "/";
    if (url === location.pathname + location.search) return;
    history[push ? "pushState" : "replaceState"](null, "", url);
  }

  bind() {
    $("#search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.fromInput(0);
    });
    this.input.addEventListener("input", () => this.fromInput(TYPING_PAUSE_MS));
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "ArrowDown" && this.list.querySelector(".hit-title")) {
        event.preventDefault();
        this.list.querySelector(".hit-title").focus();
      }
    });
    this.filters.addEventListener("change", (event) => {
      if (event.target.type === "text") return; // typed: handled on input
      this.page = 1;
      this.like = "";
      this.run();
    });
    this.filters.addEventListener("input", (event) => {
      if (event.target.type !== "text") return;
      // A filter narrows whatever is shown: a search, or papers like examples or a text.
      this.page = 1;
      this.like = "";
      this.schedule(TYPING_PAUSE_MS);
    });
    this.filters.addEventListener("reset", () => {
      setTimeout(() => {
        this.page = 1;
        this.run();
      });
    });
    $("#title-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const title = this.titleInput.value.trim();
      if (title.length < this.config.title_min_chars) {
        this.titleInput.reportValidity();
        return;
      }
      this.lookUp(title);
    });
    $("#text-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const text = $("#text-input").value.trim();
      if (!text) return;
      this.startFrom({ pasted: text });
    });
    $("#more-like").addEventListener("click", () => this.startFrom({ more: [...this.marked.keys()] }));
    $("#clear-marked").addEventListener("click", () => {
      this.marked.clear();
      for (const button of document.querySelectorAll(".mark-toggle[aria-pressed=true]"))
        this.showMark(button, false);
      this.showMarked();
    });
    $("#prev-page").addEventListener("click", () => this.goToPage(this.page - 1));
    $("#next-page").addEventListener("click", () => this.goToPage(this.page + 1));
    $("#export-results").addEventListener("click", () => this.exportResults());
    this.list.addEventListener("keydown", (event) => moveFocus(event, this.list, this.input));
    window.addEventListener("popstate", () => {
      this.readAddress();
      this.run({ write: false });
    });
  }

  fromInput(delay) {
    this.page = 1;
    this.like = "";
    this.more = [];
    this.pasted = "";
    this.schedule(delay);
  }

  // A list instead of a search: papers like the marked ones, or like a pasted text.
  startFrom({ more = [], pasted = "" }) {
    this.like = "";
    this.more = more;
    this.pasted = pasted;
    this.page = 1;
    this.run({ push: true });
  }

  toggleMark(hit, button) {
    const marking = !this.marked.has(hit.id);
    if (marking) this.marked.set(hit.id, hit.label);
    else this.marked.delete(hit.id);
    this.showMark(button, marking);
    this.showMarked();
  }

  showMark(button, marked) {
    button.setAttribute("aria-pressed", String(marked));
    button.textContent = marked ? "Marked" : "Mark";
  }

  showMarked() {
    const count = this.marked.size;
    $("#marked-bar").hidden = count === 0;
    $("#marked-count").textContent = `${count} ${count === 1 ? "paper" : "papers"} marked`;
  }

  // What every list offers on its hits: similar papers, and marking as an example.
  hitOptions(hit) {
    return {
      notify,
      onSimilar: toggleSimilar,
      onMark: (example, button) => this.toggleMark(example, button),
      isMarked: this.marked.has(hit.id),
    };
  }

  schedule(delay) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), delay);
  }

  setFilter(name, value) {
    this.filters.elements[name].value = value;
    $("#filter-panel").open = true;
    this.page = 1;
    this.like = "";
    this.run();
  }

  goToPage(page) {
    this.page = page;
    this.run({ push: true });
    $("#results-heading").scrollIntoView({ block: "start" });
  }

  lookUp(title) {
    this.more = [];
    this.pasted = "";
    this.like = title;
    this.titleInput.value = title;
    this.page = 1;
    this.run({ push: true });
  }

  begin(message) {
    clearTimeout(this.timer);
    this.inFlight?.abort();
    this.inFlight = new AbortController();
    this.clearFieldErrors();
    this.status.className = "status loading";
    this.status.textContent = message;
    this.list.setAttribute("aria-busy", "true");
    return this.inFlight.signal;
  }

  end() {
    this.list.removeAttribute("aria-busy");
    this.status.classList.remove("loading");
  }

  async run({ push = false, write = true } = {}) {
    // A pasted text is too long for an address: its pages are not written there.
    if (write && !this.pasted) this.writeAddress(push);
    // Only a query's results can be exported as a search (POST /export takes its fields).
    this.exportParams = null;
    $("#export-bar").hidden = true;
    if (this.like) return this.runLookup();
    if (this.more.length || this.pasted) return this.runMoreLike();
    const q = this.input.value.trim();
    document.title = q ? `${q} · Papersearch` : "Papersearch";
    if (!q) return this.showIntro();
    const params = { q, k: PAGE_SIZE, offset: (this.page - 1) * PAGE_SIZE };
    for (const name of this.fields) params[name] = this.filters.elements[name].value.trim();
    this.exportParams = params;
    const signal = this.begin("Searching…");
    const started = performance.now();
    try {
      // POST: a query may be longer than an address can carry (the limit is a setting).
      const answer = await postJson("/search", params, { signal });
      this.showResults(answer, performance.now() - started);
    } catch (error) {
      if (error.name !== "AbortError") this.showError(error);
    }
  }

  async runMoreLike() {
    const body = { k: PAGE_SIZE, offset: (this.page - 1) * PAGE_SIZE };
    for (const name of this.filterNames) body[name] = this.filters.elements[name].value.trim();
    const examples = this.more.length;
    document.title = examples
      ? `More like ${examples} papers · Papersearch`
      : "Papers like a pasted text · Papersearch";
    const signal = this.begin("Finding similar papers…");
    try {
      const answer = examples
        ? await postJson("/recommend", { ...body, positive: this.more }, { signal })
        : await postJson("/similar", { ...body, text: this.pasted }, { signal });
      this.showMoreLike(answer);
    } catch (error) {
      if (error.name !== "AbortError") this.showError(error);
    }
  }

  showMoreLike(answer) {
    this.end();
    const { results, total } = answer;
    const first = answer.offset + 1;
    const like = this.more.length
      ? `like ${this.more.length === 1 ? "the marked paper" : `the ${this.more.length} marked papers`}`
      : "like the pasted text";
    this.status.className = "status";
    const last = answer.offset + results.length;
    this.status.textContent = results.length
      ? `Papers ${like}: showing ${first}–${last} of ${total.toLocaleString("en")}`
      : `No more papers ${like}.`;
    fill(
      this.notice,
      answer.key_terms?.length
        ? el("p", { class: "message hint", text: `Key terms: ${answer.key_terms.join(", ")}` })
        : null,
    );
    this.list.start = first;
    fill(
      this.list,
      ...results.map((hit, i) => hitItem(hit, first + i, this.hitOptions(hit))),
    );
    this.showPager(total);
    this.corpusMap.highlight(results.map((hit) => hit.id));
  }

  showIntro() {
    this.inFlight?.abort();
    this.end();
    this.clearFieldErrors();
    this.status.className = "status";
    this.status.textContent = "";
    const size = this.papers === null ? "the" : `${this.papers.toLocaleString("en")}`;
    fill(
      this.notice,
      el(
        "div",
        { class: "message intro" },
        el("p", {
          text: `Search ${size} papers by meaning: type a question, a topic or the gist of a paper.`,
        }),
        el(
          "p",
          { class: "hint" },
          'Results appear as you type. "Quotes" require a phrase, -word excludes one. Press ',
          el("kbd", { text: "/" }),
          " to search from anywhere, ",
          el("kbd", { text: "↓" }),
          " to move into the results. Every view has its own address: copy it to share.",
        ),
      ),
    );
    fill(this.list);
    $("#pager").hidden = true;
    this.corpusMap.highlight([]);
  }

  showResults(answer, milliseconds) {
    this.end();
    const { results, total } = answer;
    const first = answer.offset + 1;
    const scale =
      answer.mode === "lexical" ? Math.max(...results.map((hit) => hit.score), 1e-9) : 1;
    fill(this.notice);
    if (!results.length) {
      this.status.className = "status";
      this.status.textContent = "No results.";
      fill(this.notice, this.emptyMessage(answer, total));
    } else {
      const last = answer.offset + results.length;
      this.status.className = "status";
      this.status.textContent =
        `${total.toLocaleString("en")} ${total === 1 ? "paper matches" : "papers match"}; ` +
        `showing ${first}–${last}, ${answer.sort === "date" ? "newest first" : "most relevant first"} ` +
        `(${Math.round(milliseconds)} ms)`;
    }
    this.list.start = first;
    fill(
      this.list,
      ...results.map((hit, i) =>
        hitItem(hit, first + i, { scale, ...this.hitOptions(hit) }),
      ),
    );
    this.showPager(total);
    $("#export-bar").hidden = !(this.exportParams && results.length);
    this.corpusMap.highlight(results.map((hit) => hit.id));
  }

  // The page of results shown, as a file of the chosen format, downloaded.
  async exportResults() {
    const format = $("#export-format").value;
    try {
      const { blob, filename } = await postForFile("/export", { ...this.exportParams, format });
      const link = el("a", { href: URL.createObjectURL(blob), download: filename });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 1000);
    } catch (error) {
      notify(`Not exported: ${error.message}.`);
    }
  }

  emptyMessage(answer, total) {
    const filtered = this.filterNames.some((name) => this.filters.elements[name].value);
    const message = el("div", { class: "message empty" });
    if (answer.offset > 0 && total > 0) {
      message.append(
        el("p", { text: `There are only ${total} results; this page is past the last.` }),
      );
      message.append(
        el("button", {
          type: "button",
          class: "secondary",
          text: "First page",
          onclick: () => this.goToPage(1),
        }),
      );
    } else if (filtered) {
      message.append(el("p", { text: `No paper matches “${answer.query}” with these filters.` }));
      message.append(
        el("button", {
          type: "button",
          class: "secondary",
          text: "Clear filters",
          onclick: () => this.filters.reset(),
        }),
      );
    } else {
      message.append(
        el("p", {
          text: `No paper matches “${answer.query}”. Try other words, or “Meaning only”.`,
        }),
      );
    }
    return message;
  }

  showPager(total) {
    const deepest = this.config.max_offset + PAGE_SIZE;
    const pages = Math.max(1, Math.ceil(Math.min(total, deepest) / PAGE_SIZE));
    $("#pager").hidden = pages <= 1 && this.page <= 1;
    $("#page-info").textContent = `Page ${this.page} of ${pages}`;
    $("#prev-page").disabled = this.page <= 1;
    $("#next-page").disabled = this.page >= pages;
  }

  showError(error) {
    this.end();
    this.status.className = "status error";
    this.status.textContent =
      error.status === 422 ? "Not searched: a value is not valid." : "Not searched.";
    if (error.status === 422) this.markFields(error);
    fill(
      this.notice,
      errorBox(error, () => this.run({ write: false })),
    );
    fill(this.list);
    $("#pager").hidden = true;
    this.corpusMap.highlight([]);
  }

  // A 422 names its fields ("year_from: ...", or loc ["query", "year_from"]): mark them.
  markFields(error) {
    const blamed = this.fields.filter(
      (name) => error.fields.includes(name) || error.message.includes(name),
    );
    if (!blamed.length) return;
    for (const name of blamed) this.filters.elements[name].setAttribute("aria-invalid", "true");
    const box = $("#filter-error");
    box.textContent = error.message;
    box.hidden = false;
    $("#filter-panel").open = true;
  }

  clearFieldErrors() {
    for (const field of this.filters.querySelectorAll("[aria-invalid]"))
      field.removeAttribute("aria-invalid");
    $("#filter-error").hidden = true;
  }

  async runLookup() {
    const title = this.like;
    document.title = `Like “${title}” · Papersearch`;
    const signal = this.begin("Looking the title up…");
    try {
      const answer = await getJson("/similar", { title, k: PAGE_SIZE }, { signal });
      this.showLookup(answer);
    } catch (error) {
      if (error.name === "AbortError") return;
      if (error.status === 404 && error.code === "title_not_found")
        this.showSuggestions(title, error.suggestions);
      else this.showError(error);
    }
  }

  showLookup(answer) {
    this.end();
    const { matched, results } = answer;
    this.status.className = "status";
    this.status.textContent = `${results.length} papers like “${matched.label}”`;
    fill(
      this.notice,
      el(
        "div",
        { class: "message matched" },
        el("p", { class: "label", text: `Title matched (${Math.round(matched.match_score)}/100)` }),
        el("h3", {}, el("a", { href: paperHref(matched.id), text: matched.label })),
        metaLine(matched),
      ),
    );
    this.list.start = 1;
    fill(
      this.list,
      ...results.map((hit, i) => hitItem(hit, i + 1, this.hitOptions(hit))),
    );
    $("#pager").hidden = true;
    this.corpusMap.highlight(
      results.map((hit) => hit.id),
      matched.id,
    );
  }

  showSuggestions(title, suggestions) {
    this.end();
    this.status.className = "status";
    this.status.textContent = `No title matches “${title}”.`;
    const message = el(
      "div",
      { class: "message empty" },
      el("p", { text: `No paper title matches “${title}” closely enough.` }),
    );
    if (suggestions.length) {
      message.append(
        el("p", { text: "Did you mean one of these?" }),
        el(
          "ul",
          { class: "suggestions" },
          suggestions.map((s) =>
            el(
              "li",
              {},
              el("button", {
                type: "button",
                class: "link-button",
                text: s.title,
                onclick: () => this.lookUp(s.title),
              }),
              el("span", { class: "muted", text: ` ${Math.round(s.match_score)}/100` }),
            ),
          ),
        ),
      );
    }
    message.append(
      el("button", {
        type: "button",
        class: "secondary",
        text: "Search these words instead",
        onclick: () => {
          this.input.value = title;
          this.fromInput(0);
        },
      }),
    );
    fill(this.notice, message);
    fill(this.list);
    $("#pager").hidden = true;
    this.corpusMap.highlight([]);
  }

  async start() {
    this.readAddress();
    this.run({ write: false });
    try {
      const facets = await getJson("/facets");
      this.papers = facets.papers;
      this.fillFacets(facets);
      if (!this.input.value.trim() && !this.like && !this.more.length && !this.pasted) this.showIntro();
    } catch (error) {
      if (!this.input.value.trim() && !this.like && !this.more.length && !this.pasted) {
        this.status.className = "status error";
        this.status.textContent = "The service is not answering.";
        fill(
          this.notice,
          errorBox(error, () => location.reload()),
        );
      }
    }
  }

  // Filters that draw on the corpus: a select lists its values (with their counts), a
  // number shows the corpus's bound as its placeholder.
  fillFacets(facets) {
    for (const filter of this.config.filters) {
      const field = this.filters.elements[filter.name];
      const values = facets[filter.facet];
      if (values === undefined || values === null) continue;
      if (field.tagName !== "SELECT") {
        field.placeholder = String(values);
        continue;
      }
      const chosen = field.value;
      const known = new Set(values.map((v) => v.name.toLowerCase()));
      const extra =
        chosen && !known.has(chosen.toLowerCase())
          ? [el("option", { value: chosen, text: chosen })]
          : [];
      fill(
        field,
        field.options[0],
        ...values.map((v) => el("option", { value: v.name, text: `${v.name} (${v.papers})` })),
        ...extra,
      );
      field.value =
        [...field.options].find((o) => o.value.toLowerCase() === chosen.toLowerCase())?.value ||
        chosen;
    }
  }
}
