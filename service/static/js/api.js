// The JSON API, as the page calls it: one place that adds the API key and turns every
// failure (HTTP error, unreachable server, aborted request) into an ApiError to show.

const KEY_STORAGE = "papersearch.apiKey";

export class ApiError extends Error {
  constructor(status, body = {}, retryAfter = null) {
    super(body.message || `the service answered ${status}`);
    this.status = status; // 0: no answer at all
    this.code = body.code || (status === 0 ? "unreachable" : "http_error");
    this.detail = body.detail || [];
    this.suggestions = body.suggestions || [];
    this.retryAfter = retryAfter;
  }

  // The query fields a 422 blames ("year_from", ...), so the form can mark them.
  get fields() {
    return this.detail.map((item) => item.loc[item.loc.length - 1]).filter(Boolean);
  }
}

export function apiKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

// GET `path` with `params` (empty values left out); resolves to the parsed JSON.
export async function getJson(path, params = {}, { signal } = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(name, value);
  }
  const search = query.toString();
  return send(search ? `${path}?${search}` : path, { signal });
}

// POST `body` (empty values left out) as JSON: for a query too long for an address.
export async function postJson(path, body = {}, { signal } = {}) {
  const present = Object.fromEntries(
    Object.entries(body).filter(([, value]) => value !== undefined && value !== null && value !== ""),
  );
  return send(path, {
    signal,
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(present),
  });
}

// POST `body` as JSON to a route that answers a file: resolves to its blob and the name the
// service gives it (Content-Disposition).
export async function postForFile(path, body = {}) {
  const present = Object.fromEntries(
    Object.entries(body).filter(([, value]) => value !== undefined && value !== null && value !== ""),
  );
  const headers = { "Content-Type": "application/json" };
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let response;
  try {
    response = await fetch(path, { method: "POST", headers, body: JSON.stringify(present) });
  } catch {
    throw new ApiError(0, { message: "the service cannot be reached" });
  }
  if (!response.ok) {
    const answer = await response.json().catch(() => ({}));
    throw new ApiError(response.status, answer, response.headers.get("Retry-After"));
  }
  const disposition = response.headers.get("Content-Disposition") || "";
  const filename = /filename="([^"]+)"/.exec(disposition)?.[1] || "papersearch-export";
  return { blob: await response.blob(), filename };
}

async function send(url, { signal, method = "GET", headers = {}, body } = {}) {
  const sent = { Accept: "application/json", ...headers };
  const key = apiKey();
  if (key) sent.Authorization = `Bearer ${key}`;
  let response;
  try {
    response = await fetch(url, { method, headers: sent, body, signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { message: "the service cannot be reached" });
  }
  let answer = {};
  try {
    answer = await response.json();
  } catch {
    // an error page that is not JSON (a proxy's, say): the status says enough
  }
  if (!response.ok) {
    throw new ApiError(response.status, answer, response.headers.get("Retry-After"));
  }
  return answer;
}
