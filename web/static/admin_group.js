// A group's details on its admin page: one PATCH /groups/{id} with what the form holds.
import { api, flash, flashAfterReload } from "/static/api.js";

const form = document.getElementById("group-form");
const rows = document.getElementById("schedule-rows");

// Each meeting row's controls are named by its place ("Day of meeting 2"), renumbered on change.
function renumber() {
  [...rows.children].forEach((row, index) => {
    const n = index + 1;
    row.querySelector("[name=weekday]").setAttribute("aria-label", `Day of meeting ${n}`);
    row.querySelector("[name=start]").setAttribute("aria-label", `Start of meeting ${n}`);
    row.querySelector("[name=minutes]").setAttribute("aria-label", `Minutes of meeting ${n}`);
    row.querySelector("[data-action=remove-slot]").setAttribute("aria-label", `Remove meeting ${n}`);
  });
  document.getElementById("no-schedule").hidden = rows.children.length > 0;
}

function wholeNumber(value) {
  const number = Number(value);
  return Number.isInteger(number) ? number : NaN;
}

if (form) {
  document.getElementById("add-slot").addEventListener("click", () => {
    rows.append(document.getElementById("slot-template").content.cloneNode(true));
    renumber();
    rows.lastElementChild.querySelector("select").focus();
  });
  rows.addEventListener("click", (event) => {
    const button = event.target.closest("[data-action=remove-slot]");
    if (!button) return;
    const row = button.closest("li");
    const next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    renumber();
    (next ? next.querySelector("select") : document.getElementById("add-slot")).focus();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const name = String(data.get("name") || "").trim();
    if (!name) { flash("Give the group a name.", { error: true }); document.getElementById("g-name").focus(); return; }
    const code = String(data.get("code") || "").trim();
    const body = {
      name,
      program: data.get("program"),
      timezone: String(data.get("timezone") || "").trim() || "UTC",
      capacity: wholeNumber(data.get("capacity")),
      weekly_minimum_hours: wholeNumber(data.get("weekly_minimum_hours")),
      facilitator_ids: data.getAll("facilitator_ids"),
      billing: { min_billable_minutes: wholeNumber(data.get("min_billable_minutes")) },
      schedule: [...rows.children].map((row) => ({
        weekday: Number(row.querySelector("[name=weekday]").value),
        start: row.querySelector("[name=start]").value,
        minutes: wholeNumber(row.querySelector("[name=minutes]").value),
      })),
    };
    if (code) body.billing.code = code;
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await api("PATCH", `/groups/${form.dataset.groupId}`, body);
      flashAfterReload("Group details saved.");
      window.location.reload();
    } catch (error) {
      // The server names the field ("capacity: a whole number from 1 to 500"): say it as it is.
      flash(`Saving did not work: ${error.message}`, { error: true });
      buttons.forEach((b) => { b.disabled = false; });
    }
  });
}
