// Staff pages talk to the public API: JSON in and out, the session's CSRF token on changes.

export class ApiError extends Error {
  constructor(status, code, message, detail) {
    super(message);
    this.status = status;
    this.code = code;
    this.detail = detail || {};
  }
}

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

// When this page last reached the server: every request resets the staff idle timer.
export const contact = { at: Date.now() };

export async function api(method, path, body) {
  contact.at = Date.now();
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", "The server could not be reached. Check the connection and try again.");
  }
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (response.status === 401 && path !== "/login") {
    window.location.assign(`/login?reason=ended&next=${encodeURIComponent(window.location.pathname + window.location.search)}`);
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || "http_error", error.message || response.statusText, error);
  }
  return data;
}

// A short note in the page's polite status region (the "toast").
let flashTimer = null;
export function flash(text, { error = false } = {}) {
  const region = document.getElementById("flash");
  if (!region) return;
  region.textContent = text;
  region.classList.toggle("is-error", error);
  region.classList.add("is-shown");
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => region.classList.remove("is-shown"), 6000);
}

// After a change that reloads the page, say what happened on the next load.
export function flashAfterReload(text) {
  try { sessionStorage.setItem("porchlight.flash", text); } catch { /* private mode */ }
}

export function showPendingFlash() {
  let text = null;
  try {
    text = sessionStorage.getItem("porchlight.flash");
    sessionStorage.removeItem("porchlight.flash");
  } catch { text = null; }
  if (text) flash(text);
}

export function plural(count, one, many) {
  return `${count} ${count === 1 ? one : many}`;
}
