// Chat in a session (CONTRACT.md v1.1, "In the session"), shared by the patient's page and the
// console: one list of messages, group and private ("to staff") alike, as the server sends them.
// Nothing is shown until the server sends it back, so the list is what others saw.
//
// The markup is web/templates/chat_panel.html.

const CHAT_DISABLED_TEXT = "The facilitator has turned group chat off; you can still message the staff.";
const REFUSALS = {
  chat_disabled: CHAT_DISABLED_TEXT,
  rate_limited: "That was a lot of messages at once. Please wait a moment before sending more.",
  bad_request: "That message could not be sent. Messages can be up to 500 characters.",
};

function timeOf(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return "";
  return new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" }).format(when);
}

export class ChatPanel {
  // root: the <section aria-label="Chat"> of chat_panel.html; send(frame) → false when offline;
  // selfId: whose messages read "You"; onMessage(frame, mine): after each one is listed;
  // whereFrom(frame): a word on where the sender is (the console marks the waiting room).
  constructor(root, { send, selfId, onMessage = () => {}, whereFrom = () => "" }) {
    this.root = root;
    this.send = send;
    this.selfId = selfId;
    this.onMessage = onMessage;
    this.whereFrom = whereFrom;
    this.part = (name) => root.querySelector(`[data-chat=${name}]`);
    this.log = this.part("log");
    this.form = this.part("form");
    this.text = this.part("text");
    this.to = this.part("to");
    this.note = this.part("note");
    this.error = this.part("error");
    this.seen = new Set(); // message ids: a frame delivered twice is listed once
    this.pending = null; // text sent and not yet come back, restored if the server refuses it
    this.staffOnly = false;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.text.addEventListener("input", () => { this.error.textContent = ""; });
  }

  // A patient still waiting may write to the staff only; the page says so.
  setStaffOnly(staffOnly, note = "") {
    this.staffOnly = staffOnly;
    this.part("to-row").hidden = staffOnly;
    this.note.textContent = note;
    this.note.hidden = !note;
  }

  submit() {
    const text = this.text.value.trim();
    if (!text) {
      this.error.textContent = "Write a message first.";
      this.text.focus();
      return;
    }
    const frame = { type: "chat", text };
    if (this.staffOnly || this.to.value === "staff") frame.to = "staff";
    if (!this.send(frame)) {
      this.error.textContent = "Not connected right now; your message was not sent. Try again in a moment.";
      return;
    }
    this.pending = text;
    this.error.textContent = "";
    this.text.value = "";
    this.text.focus();
  }

  // A server `chat` frame.
  add(frame) {
    if (!frame.id || this.seen.has(frame.id)) return;
    this.seen.add(frame.id);
    const from = frame.from || {};
    const mine = from.id === this.selfId;
    if (mine) this.pending = null;
    const item = document.createElement("div");
    item.className = "chat-message";
    item.classList.toggle("is-mine", mine);
    item.classList.toggle("is-private", Boolean(frame.private));
    const meta = document.createElement("p");
    meta.className = "chat-meta";
    const who = document.createElement("span");
    who.className = "chat-from";
    who.textContent = mine ? "You" : from.display_name || "Someone";
    meta.append(who);
    if (!mine && from.role && from.role !== "patient") meta.append(this.tag("chat-role", "Facilitator"));
    if (frame.private) meta.append(this.tag("chat-private", "to staff"));
    const where = mine ? "" : this.whereFrom(frame);
    if (where) meta.append(this.tag("chat-where", where));
    const time = document.createElement("time");
    time.className = "chat-time";
    time.dateTime = frame.at || "";
    time.textContent = timeOf(frame.at);
    meta.append(" ", time);
    const body = document.createElement("p");
    body.className = "chat-text";
    body.textContent = frame.text || "";
    item.append(meta, body);
    this.log.append(item);
    this.part("empty").hidden = true;
    this.log.scrollTop = this.log.scrollHeight;
    this.onMessage(frame, mine);
  }

  tag(className, text) {
    const span = document.createElement("span");
    span.className = `chat-tag ${className}`;
    span.textContent = text;
    const gap = document.createElement("span");
    gap.className = "visually-hidden";
    gap.textContent = ", ";
    const wrap = document.createDocumentFragment();
    wrap.append(gap, span);
    return wrap;
  }

  // An `error` frame: true when it was about a message we sent. (not_admitted is left to the
  // media client, which retries on it; this page never sends a waiting patient's group message.)
  refused(frame) {
    if (this.pending === null && frame.code !== "chat_disabled") return false;
    const text = REFUSALS[frame.code];
    if (!text) return false;
    if (this.pending !== null && !this.text.value) this.text.value = this.pending;
    this.pending = null;
    if (frame.code === "chat_disabled") this.to.value = "staff";
    this.error.textContent = text;
    return true;
  }

  clear() {
    this.log.replaceChildren();
    this.seen.clear();
    this.pending = null;
    this.error.textContent = "";
    this.part("empty").hidden = false;
  }
}
