// Safety alerts on the console: a banner per open alert (a PHQ-9 item 9 answer above 0) that
// stays until someone acknowledges it, a chime, and "Safety alert" first in the title bar.
// Alerts arrive as `safety_alert` frames on any of the console's sockets (the same alert may
// come on two: one id, one banner) and, after a reload, from GET /alerts?status=open.
import { api, flash } from "/static/api.js";
import { playArrivalChime } from "/static/devices.js";

const PREFIX = "Safety alert — ";
const open = new Map(); // alert id -> banner

export function safetyTitle(title) {
  const bare = title.startsWith(PREFIX) ? title.slice(PREFIX.length) : title;
  return open.size ? PREFIX + bare : bare;
}

function when(iso) {
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? "" : new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" }).format(at);
}

const ANSWERS = { 1: "several days", 2: "more than half the days", 3: "nearly every day" };

export class SafetyAlerts {
  constructor(region) {
    this.region = region;
  }

  async load() {
    try {
      const { alerts } = await api("GET", "/alerts?status=open");
      for (const alert of alerts.reverse()) this.show(alert, { quiet: true });
    } catch {
      // The banners come with the next frame; the page works without them.
    }
  }

  show(alert, { quiet = false } = {}) {
    if (alert.status !== "open") {
      this.remove(alert.id);
      return;
    }
    if (open.has(alert.id)) return;
    const banner = document.createElement("div");
    banner.className = "safety-alert";
    banner.setAttribute("role", "alert");
    banner.dataset.alertId = alert.id;
    const text = document.createElement("p");
    const strong = document.createElement("strong");
    strong.textContent = "Safety alert: ";
    const how = ANSWERS[alert.value] || "some days";
    text.append(strong, `${alert.display_name} answered "${how}" to ${alert.instrument} question ${alert.item} `
      + `(thoughts of being better off dead or of self-harm)${alert.at ? ` at ${when(alert.at)}` : ""}. `
      + "Check in with them now.");
    const link = document.createElement("a");
    link.href = `/patients/${encodeURIComponent(alert.patient_id)}`;
    link.textContent = `${alert.display_name}'s measures`;
    const note = document.createElement("input");
    note.type = "text";
    note.className = "note";
    note.maxLength = 500;
    note.setAttribute("aria-label", `Note on the alert for ${alert.display_name} (optional)`);
    note.placeholder = "Note (optional)";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "danger";
    button.textContent = "Acknowledge";
    button.addEventListener("click", () => this.acknowledge(alert, note.value.trim(), button));
    banner.append(text, link, note, button);
    this.region.prepend(banner);
    this.region.hidden = false;
    open.set(alert.id, banner);
    document.title = safetyTitle(document.title);
    if (!quiet) {
      playArrivalChime();
      setTimeout(playArrivalChime, 700);
    }
  }

  async acknowledge(alert, note, button) {
    button.disabled = true;
    try {
      await api("POST", `/alerts/${encodeURIComponent(alert.id)}/acknowledge`, note ? { note } : {});
      this.remove(alert.id);
      flash(`Alert for ${alert.display_name} acknowledged.`);
    } catch (error) {
      if (error.code === "already_acknowledged") {
        this.remove(alert.id);
        return;
      }
      button.disabled = false;
      flash(error.message, { error: true });
    }
  }

  remove(id) {
    const banner = open.get(id);
    if (!banner) return;
    banner.remove();
    open.delete(id);
    this.region.hidden = open.size === 0;
    document.title = safetyTitle(document.title);
  }
}
