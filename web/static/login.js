// Staff sign-in: POST /api/v1/login, then the page for the role (or where they were going).
const form = document.getElementById("login");
const errorText = document.getElementById("login-error");
const username = document.getElementById("username");
const password = document.getElementById("password");
const HOME = { admin: "/admin", facilitator: "/console" };

// Where to go after signing in: only a path on this site (the server checks it too). Browsers
// drop tabs and newlines and read a backslash as a slash, so "/<tab>/x" would be "//x", another host.
function safeNext(raw) {
  if (!raw || /[\s\x00-\x1f\x7f-\x9f\\]/.test(raw) || !raw.startsWith("/") || raw.startsWith("//")) return null;
  const url = new URL(raw, window.location.origin);
  return url.origin === window.location.origin ? url.pathname + url.search + url.hash : null;
}

function showError(text, field) {
  errorText.textContent = text;
  for (const input of [username, password]) input.setAttribute("aria-invalid", String(input === field || field === "both"));
  if (field === username || field === "both") username.focus();
  else if (field === password) password.focus();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!username.value.trim()) { showError("Enter your username.", username); return; }
  if (!password.value) { showError("Enter your password.", password); return; }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  button.textContent = "Signing in…";
  errorText.textContent = "";
  try {
    const response = await fetch("/api/v1/login", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ username: username.value.trim(), password: password.value }),
    });
    if (response.ok) {
      const body = await response.json();
      window.location.assign(safeNext(form.dataset.next) || HOME[body.user.role] || "/console");
      return;
    }
    if (response.status === 401) {
      password.value = "";
      showError("That username and password do not match. Check them and try again.", "both");
    } else if (response.status === 429) {
      const wait = Math.ceil(((await response.json()).error.retry_after_seconds || 900) / 60);
      showError(`Too many attempts. Wait ${wait} minute${wait === 1 ? "" : "s"}, then try again, or ask a clinic admin to help.`, null);
    } else {
      showError("Signing in did not work just now. Try again in a moment.", null);
    }
  } catch {
    showError("The server could not be reached. Check your connection and try again.", null);
  }
  button.disabled = false;
  button.textContent = "Sign in";
});
