// "How helpful was today's group?": asked after the session (the `feedback_request` frame) or,
// for a day after it, when the patient opens their link again. Sent once, over HTTP (the socket
// has closed by then), to POST /j/{token}/feedback.

export class FeedbackForm {
  constructor(panel, { token, say }) {
    this.panel = panel;
    this.token = token;
    this.say = say;
    this.form = panel.querySelector("form");
    this.error = panel.querySelector("[data-f=error]");
    this.thanks = panel.querySelector("[data-f=thanks]");
    this.sessionId = null;
    this.aside = false; // in the group: the question waits, the video gets the screen
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.submit(); });
  }

  ask(sessionId, question) {
    if (!sessionId || this.sessionId === sessionId) return;
    this.sessionId = sessionId;
    if (question) this.panel.querySelector("legend").textContent = question;
    this.form.hidden = false;
    this.thanks.hidden = true;
    this.panel.hidden = this.aside;
  }

  // While the patient is in the group, a question about an earlier session (or the thanks for
  // one) is not shown above the videos; it comes back after, unless the new session's question
  // replaced it.
  setAside(aside) {
    this.aside = aside;
    this.panel.hidden = aside || this.sessionId === null;
  }

  async submit() {
    const data = new FormData(this.form);
    const rating = Number(data.get("rating"));
    if (!rating) {
      this.error.textContent = "Choose a number from 1 to 5.";
      this.form.querySelector("input[name=rating]").focus();
      return;
    }
    const comment = String(data.get("comment") || "").trim();
    const button = this.form.querySelector("button[type=submit]");
    button.disabled = true;
    this.error.textContent = "";
    try {
      const response = await fetch(`/j/${encodeURIComponent(this.token)}/feedback`, {
        method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ session_id: this.sessionId, rating, ...(comment ? { comment } : {}) }),
      });
      if (response.ok || response.status === 409) {
        this.saved();
        return;
      }
      const body = await response.json().catch(() => ({}));
      this.error.textContent = (body.error && body.error.message) || "That did not work. Please try again.";
    } catch {
      this.error.textContent = "The server could not be reached. Please try again.";
    }
    button.disabled = false;
  }

  saved() {
    this.form.hidden = true;
    this.thanks.hidden = false;
    this.say("Thank you for your feedback.");
  }
}
