// Behaviour shared by the lists of results on both views.

import { getJson } from "./api.js";
import { errorBox } from "./messages.js";
import { el, fill, paperHref, paperPath } from "./render.js";

// Arrow keys walk the result titles; Escape goes back to the search box.
export function moveFocus(event, list, input) {
  const links = [...list.querySelectorAll(":scope > li > .hit-body .hit-title")];
  const at = links.indexOf(document.activeElement);
  if (event.key === "Escape") {
    input.focus();
    return;
  }
  if (at < 0 || !["ArrowDown", "ArrowUp"].includes(event.key)) return;
  event.preventDefault();
  const next = at + (event.key === "ArrowDown" ? 1 : -1);
  if (next < 0) input.focus();
  else links[Math.min(next, links.length - 1)].focus();
}

// "Similar papers" under a result: its five nearest papers, fetched when first opened.
export async function toggleSimilar(hit, item, button) {
  const open = button.getAttribute("aria-expanded") === "true";
  let panel = item.querySelector(".similar-list");
  button.setAttribute("aria-expanded", String(!open));
  if (open) {
    panel.hidden = true;
    return;
  }
  if (panel) {
    panel.hidden = false;
    return;
  }
  panel = el(
    "div",
    { class: "similar-list" },
    el("p", { class: "muted", text: "Loading similar papers…" }),
  );
  item.querySelector(".hit-body").append(panel);
  try {
    const answer = await getJson(`/papers/${paperPath(hit.id)}/similar`, { k: 5 });
    fill(
      panel,
      el(
        "ol",
        {},
        answer.results.map((similar) =>
          el(
            "li",
            {},
            el("a", { href: paperHref(similar.id), text: similar.label }),
            el("span", {
              class: "muted",
              text: ` ${similar.category || ""} · ${similar.score.toFixed(3)}`,
            }),
          ),
        ),
      ),
      el("a", { class: "more-link", href: paperHref(hit.id), text: "Open the paper page →" }),
    );
  } catch (error) {
    fill(panel, errorBox(error));
  }
}
