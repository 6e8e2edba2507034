// What the page tells its reader: short notices, and errors in words a reader can act on.

import { ApiError, setApiKey } from "./api.js";
import { $, el } from "./render.js";

let toastTimer = 0;
export function notify(message) {
  const toast = $("#toast");
  toast.textContent = message;
  toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (toast.hidden = true), 2500);
}

// What went wrong, in words a reader can act on.
export function describe(error) {
  if (!(error instanceof ApiError)) return `Something went wrong in the page: ${error.message}`;
  switch (error.status) {
    case 0:
      return "The service cannot be reached. Is it running? Retry once it is back.";
    case 401:
      return "This service needs an API key: enter it above.";
    case 404:
      return error.message;
    case 422:
      return `Check the request: ${error.message}.`;
    case 429:
      return `Too many requests at once; retry in ${error.retryAfter || "a few"} s.`;
    case 502:
    case 503:
    case 504:
      return "The service is not ready yet (starting, or loading its index). Retry in a moment.";
    default:
      return `The service failed (${error.status}, ${error.code}): ${error.message}`;
  }
}

function showKeyPrompt() {
  const prompt = $("#key-prompt");
  prompt.hidden = false;
  $("#api-key").focus();
}

// The key goes to the browser's storage, and the page starts again with it.
export function bindKeyPrompt() {
  $("#key-prompt").addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey($("#api-key").value.trim());
    location.reload();
  });
}

export function errorBox(error, retry) {
  if (error instanceof ApiError && error.status === 401) showKeyPrompt();
  return el(
    "div",
    { class: "message error", role: "alert" },
    el("p", { text: describe(error) }),
    retry && el("button", { type: "button", class: "secondary", text: "Retry", onclick: retry }),
  );
}
