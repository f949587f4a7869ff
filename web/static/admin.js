// Admin pages: each change goes through the public API, then the page reloads to show it.
import { api, flash, flashAfterReload } from "/static/api.js";
import { applyBrand } from "/static/theme.js";

const $ = (id) => document.getElementById(id);
const DAYS = { mon: 0, tue: 1, wed: 2, thu: 3, fri: 4, sat: 5, sun: 6 };

function done(message) {
  flashAfterReload(message);
  window.location.reload();
}

function failed(what, error) {
  flash(`${what} did not work: ${error.message}`, { error: true });
}

function busy(form, on) {
  for (const button of form.querySelectorAll("button")) button.disabled = on;
}

// -- clinic: new group, new patient ------------------------------------------------------------

const newGroup = $("new-group");
if (newGroup) {
  newGroup.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(newGroup);
    const body = {
      name: String(data.get("name") || "").trim(),
      program: data.get("program"),
      facilitator_ids: data.getAll("facilitator_ids"),
    };
    if (!body.name) { flash("Give the group a name.", { error: true }); $("group-name").focus(); return; }
    const timezone = String(data.get("timezone") || "").trim();
    if (timezone) body.timezone = timezone;
    const days = String(data.get("days") || "").toLowerCase().split(/[\s,]+/).filter(Boolean);
    if (days.length) {
      const unknown = days.filter((d) => !(d.slice(0, 3) in DAYS));
      if (unknown.length) { flash(`Unknown day: ${unknown.join(", ")}. Use Mon, Tue, …`, { error: true }); return; }
      body.schedule = days.map((d) => ({
        weekday: DAYS[d.slice(0, 3)], start: data.get("start") || "18:00", minutes: Number(data.get("minutes") || 180),
      }));
    }
    busy(newGroup, true);
    try {
      const group = await api("POST", "/groups", body);
      flashAfterReload(`Group "${group.name}" created.`);
      window.location.assign(`/admin/groups/${group.id}`);
    } catch (error) {
      failed("Creating the group", error);
      busy(newGroup, false);
    }
  });
}

const newPatient = $("new-patient");
if (newPatient) {
  newPatient.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(newPatient);
    const body = { display_name: String(data.get("display_name") || "").trim() };
    if (!body.display_name) { flash("Enter the name the group will see.", { error: true }); $("patient-name").focus(); return; }
    const mrn = String(data.get("external_id") || "").trim();
    if (mrn) body.external_id = mrn;
    const email = String(data.get("email") || "").trim();
    if (email) body.email = email;
    body.reminders = data.get("reminders") === "on";
    busy(newPatient, true);
    try {
      const patient = await api("POST", "/patients", body);
      done(`${patient.display_name} added. Enrol them in a group to give them a link.`);
    } catch (error) {
      failed("Adding the patient", error);
      busy(newPatient, false);
    }
  });
}

// Each patient's row: their email and whether they get meeting reminders (PATCH /patients/{id}).
for (const form of document.querySelectorAll("form[data-patient-id]")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const email = String(data.get("email") || "").trim();
    const name = String(data.get("display_name") || "").trim();
    if (!name) { flash("Enter the name the group will see.", { error: true }); return; }
    const externalId = String(data.get("external_id") || "").trim();
    busy(form, true);
    try {
      await api("PATCH", `/patients/${form.dataset.patientId}`, {
        display_name: name, external_id: externalId || null, email: email || null, reminders: data.get("reminders") === "on",
      });
      done("Saved.");
    } catch (error) {
      failed("Saving", error);
      busy(form, false);
    }
  });
}

// -- a group: enrolments and links ------------------------------------------------------------

const groupPage = $("group-page");
const groupId = groupPage ? groupPage.dataset.groupId : null;

const enrol = $("enrol");
if (enrol) {
  enrol.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(enrol);
    const body = { patient_id: data.get("patient_id") };
    if (data.get("starts_on")) body.starts_on = data.get("starts_on");
    if (data.get("ends_on")) body.ends_on = data.get("ends_on");
    busy(enrol, true);
    try {
      await api("POST", `/groups/${groupId}/enrollments`, body);
      done("Enrolled. Copy their link and send it to them.");
    } catch (error) {
      failed("Enrolling", error);
      busy(enrol, false);
    }
  });
}

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No clipboard permission: select the text so Ctrl+C / long-press works.
    return false;
  }
}

for (const row of document.querySelectorAll("tr[data-enrollment-id]")) {
  const url = row.querySelector("[data-role=join-url]");
  const copyButton = row.querySelector("[data-action=copy]");
  const rotateButton = row.querySelector("[data-action=rotate]");
  const showButton = row.querySelector("[data-action=show]");
  const name = row.cells[0].textContent.replace(/\s*ended\s*$/, "").trim();
  // A link is a key: on screen only when asked for ("Show link"), and hidden again on request.
  const reveal = (shown) => {
    url.hidden = !shown;
    showButton.setAttribute("aria-expanded", String(shown));
    showButton.textContent = shown ? "Hide link" : "Show link";
    showButton.setAttribute("aria-label", `${shown ? "Hide" : "Show"} link for ${name}`);
  };
  if (showButton && url) showButton.addEventListener("click", () => reveal(url.hidden));
  if (copyButton && url) {
    copyButton.addEventListener("click", async () => {
      if (await copy(url.textContent.trim())) flash("Link copied.");
      else {
        reveal(true); // no clipboard: shown and selected, for Ctrl+C or a long press
        window.getSelection().selectAllChildren(url);
        flash("Press Ctrl+C (or long-press) to copy the selected link.");
      }
    });
  }
  const endButton = row.querySelector("[data-action=end]");
  if (endButton) {
    endButton.addEventListener("click", async () => {
      const name = row.cells[0].textContent.trim();
      if (!window.confirm(`End ${name}'s enrolment? Their link stops working at once; their attendance is kept.`)) return;
      endButton.disabled = true;
      try {
        await api("POST", `/enrollments/${row.dataset.enrollmentId}/end`, {});
        window.location.reload();
      } catch (error) {
        failed("Ending the enrolment", error);
        endButton.disabled = false;
      }
    });
  }
  if (rotateButton) {
    rotateButton.addEventListener("click", async () => {
      if (!window.confirm("Make a new link? The old one stops working at once, and the patient needs the new one.")) return;
      rotateButton.disabled = true;
      try {
        const answer = await api("POST", `/enrollments/${row.dataset.enrollmentId}/rotate-link`, {});
        url.textContent = answer.join_url;
        flash("New link made. The old link no longer works.");
      } catch (error) {
        failed("Rotating the link", error);
      }
      rotateButton.disabled = false;
    });
  }
}

// -- the brand editor, with its live preview ------------------------------------------------------------
// For the clinic (PUT /clinic/brand) or one group (PATCH /groups/{id}). In a group's form an empty
// field is the clinic's (its placeholder), and is sent as null so the clinic's value applies.

const BRAND_FIELDS = ["name", "logo_url", "primary_color", "accent_color", "welcome_text", "support_phone", "crisis_line"];
const brandForm = $("brand-form");
if (brandForm) {
  const forGroup = brandForm.dataset.target === "group";
  const preview = $("brand-preview");
  const colour = /^#[0-9a-f]{6}$/i;
  const shown = (id) => $(id).value.trim() || $(id).placeholder;
  const pairs = [["brand-primary", "brand-primary-pick"], ["brand-accent", "brand-accent-pick"]];
  const refresh = () => {
    const primary = shown("brand-primary");
    const accent = shown("brand-accent");
    applyBrand(preview, colour.test(primary) ? primary : null, colour.test(accent) ? accent : null);
    $("preview-name").textContent = shown("brand-name") || "Porchlight";
    $("preview-welcome").textContent = shown("brand-welcome");
    const phone = shown("brand-phone");
    $("preview-phone").textContent = phone ? `Trouble joining? Call ${phone}.` : "";
    const logo = $("brand-logo").value.trim() || ($("brand-logo").placeholder.startsWith("https://") || $("brand-logo").placeholder.startsWith("/") ? $("brand-logo").placeholder : "");
    const usable = logo.startsWith("https://") || logo.startsWith("/");
    $("preview-logo").src = usable ? logo : "/static/porchlight-mark.svg";
  };
  for (const [text, picker] of pairs) {
    $(picker).addEventListener("input", () => { $(text).value = $(picker).value; refresh(); });
    $(text).addEventListener("input", () => { if (colour.test($(text).value.trim())) $(picker).value = $(text).value.trim(); refresh(); });
  }
  brandForm.addEventListener("input", refresh);
  refresh();
  brandForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(brandForm);
    const brand = {};
    for (const key of BRAND_FIELDS) {
      const value = String(data.get(key) || "").trim();
      if (value) brand[key] = value;
      else if (forGroup) brand[key] = null; // the clinic's
    }
    for (const key of ["primary_color", "accent_color"]) {
      if (brand[key] && !colour.test(brand[key])) { flash("Colours look like #2f5d8a.", { error: true }); return; }
    }
    busy(brandForm, true);
    try {
      if (forGroup) await api("PATCH", `/groups/${groupId}`, { brand });
      else await api("PUT", "/clinic/brand", brand);
      flash(forGroup ? "Brand saved. Patients see it the next time they open their link."
        : "Brand saved for every group that does not set its own.");
    } catch (error) {
      failed("Saving the brand", error);
    }
    busy(brandForm, false);
  });
}

const inheritBrand = $("brand-inherit");
if (inheritBrand) {
  inheritBrand.addEventListener("click", async () => {
    if (!window.confirm("Use the brand for all groups in every field of this group's brand?")) return;
    inheritBrand.disabled = true;
    try {
      await api("PATCH", `/groups/${groupId}`, { brand: null });
      done("This group now shows the brand for all groups.");
    } catch (error) {
      failed("Saving the brand", error);
      inheritBrand.disabled = false;
    }
  });
}

// -- billing: replay a failed delivery -------------------------------------------------------------------

for (const button of document.querySelectorAll("[data-action=replay]")) {
  button.addEventListener("click", async () => {
    const row = button.closest("tr");
    button.disabled = true;
    try {
      await api("POST", `/billing/deliveries/${row.dataset.recordId}/replay`, {});
      done("Delivery queued again.");
    } catch (error) {
      failed("Replaying", error);
      button.disabled = false;
    }
  });
}
