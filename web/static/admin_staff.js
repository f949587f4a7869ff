// Staff on the clinic page: add an account (POST /users), deactivate or reactivate one
// (PATCH /users/{id}); the page reloads to show the change.
import { api, flash, flashAfterReload } from "/static/api.js";

const form = document.getElementById("new-staff");
if (form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = {
      name: String(data.get("name") || "").trim(),
      username: String(data.get("username") || "").trim(),
      role: data.get("role"),
      password: String(data.get("password") || ""),
    };
    const npi = String(data.get("npi") || "").trim();
    if (npi) body.npi = npi;
    if (!body.name || !body.username) { flash("Enter their name and a username.", { error: true }); return; }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const user = await api("POST", "/users", body);
      flashAfterReload(`${user.name} can now sign in as ${user.username}.`);
      window.location.reload();
    } catch (error) {
      const why = error.code === "username_taken" ? "That username is taken; choose another." : error.message;
      flash(`Adding the staff member did not work: ${why}`, { error: true });
      button.disabled = false;
    }
  });
}

for (const row of document.querySelectorAll("tr[data-user-id]")) {
  const button = row.querySelector("[data-action=deactivate], [data-action=reactivate]");
  if (!button) continue;
  const active = button.dataset.action === "reactivate";
  button.addEventListener("click", async () => {
    const name = row.dataset.userName;
    if (!active && !window.confirm(`Deactivate ${name}? They are signed out at once and cannot sign in until reactivated.`)) return;
    button.disabled = true;
    try {
      await api("PATCH", `/users/${row.dataset.userId}`, { active });
      flashAfterReload(active ? `${name} can sign in again.` : `${name} is deactivated and signed out.`);
      window.location.reload();
    } catch (error) {
      flash(`That did not work: ${error.message}`, { error: true });
      button.disabled = false;
    }
  });
}
