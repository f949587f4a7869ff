// The check-in questionnaires (PHQ-9, GAD-7) a patient is offered while waiting: a real form,
// one fieldset per question with its legend and a radio group of the published answers.
// Answers go to the server as `questionnaire_response`; "Skip for now" as `questionnaire_skip`.
// The patient never sees a score; after a PHQ-9 item 9 answer above 0 they see where to get help.

export class Questionnaires {
  constructor(panel, { send, say, onChange = () => {} }) {
    this.panel = panel;
    this.send = send;
    this.say = say;
    this.onChange = onChange; // after one is offered, answered or skipped
    this.form = panel.querySelector("[data-q=form]");
    this.title = panel.querySelector("[data-q=title]");
    this.stem = panel.querySelector("[data-q=question]");
    this.items = panel.querySelector("[data-q=items]");
    this.error = panel.querySelector("[data-q=error]");
    this.done = panel.querySelector("[data-q=done]");
    this.crisis = panel.querySelector("[data-q=crisis]");
    this.queue = []; // offered, not yet shown
    this.current = null; // the one on screen
    this.pending = null; // its id while an answer or a skip is on its way
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.submit(); });
    panel.querySelector("[data-q=skip]").addEventListener("click", () => this.skip());
  }

  offer(frame) {
    if ((this.current && this.current.id === frame.id) || this.queue.some((q) => q.id === frame.id)) return;
    this.queue.push(frame);
    if (!this.current) this.next();
  }

  next() {
    this.current = this.queue.shift() || null;
    this.pending = null;
    this.error.textContent = "";
    if (!this.current) {
      this.form.hidden = true;
      this.onChange();
      return;
    }
    const q = this.current;
    this.panel.hidden = false;
    this.form.hidden = false;
    this.done.hidden = true;
    this.title.textContent = `While you wait: ${q.title || q.instrument}`;
    this.stem.textContent = q.question || "Over the last 2 weeks, how often have you been bothered by the following problems?";
    this.items.replaceChildren(...q.items.map((item, index) => this.fieldset(q, item, index)));
    this.say(`You have a short questionnaire (${q.instrument}) to fill in while you wait. You may skip it.`);
    this.onChange();
  }

  get unfinished() {
    return this.current !== null;
  }

  fieldset(q, item, index) {
    const fieldset = document.createElement("fieldset");
    fieldset.className = "q-item";
    fieldset.dataset.item = item.id;
    fieldset.setAttribute("role", "radiogroup");
    const legend = document.createElement("legend");
    legend.id = `${q.id}-${item.id}-legend`;
    legend.textContent = `${index + 1}. ${item.text}`;
    fieldset.setAttribute("aria-labelledby", legend.id);
    const group = document.createElement("div");
    group.className = "q-options";
    for (const option of item.options) {
      const label = document.createElement("label");
      label.className = "choice q-option";
      const input = document.createElement("input");
      input.type = "radio";
      input.name = `${q.id}-${item.id}`;
      input.value = String(option.value);
      const text = document.createElement("span");
      text.textContent = option.label;
      label.append(input, text);
      group.append(label);
    }
    fieldset.append(legend, group);
    fieldset.addEventListener("change", () => fieldset.classList.remove("is-missing"));
    return fieldset;
  }

  submit() {
    if (!this.current || this.pending) return;
    const answers = {};
    let missing = null;
    for (const fieldset of this.items.querySelectorAll("fieldset")) {
      const checked = fieldset.querySelector("input:checked");
      fieldset.classList.toggle("is-missing", !checked);
      if (checked) answers[fieldset.dataset.item] = Number(checked.value);
      else if (!missing) missing = fieldset;
    }
    if (missing) {
      this.error.textContent = "Please answer every question, or choose Skip for now.";
      missing.querySelector("input").focus();
      return;
    }
    if (!this.send({ type: "questionnaire_response", id: this.current.id, answers })) {
      this.error.textContent = "Not connected right now. Your answers are still here: try again in a moment.";
      return;
    }
    this.pending = this.current.id;
    this.error.textContent = "";
  }

  skip() {
    if (!this.current || this.pending) return;
    if (!this.send({ type: "questionnaire_skip", id: this.current.id })) {
      this.error.textContent = "Not connected right now. Try again in a moment.";
      return;
    }
    this.pending = this.current.id;
  }

  saved(frame) {
    if (!this.current || frame.id !== this.current.id) return;
    const skipped = Boolean(frame.skipped);
    if (frame.crisis) this.showCrisis(frame.crisis);
    this.done.hidden = false;
    this.done.textContent = skipped ? "Skipped. You can carry on waiting." : "Thank you. Your answers were saved for your care team.";
    this.say(this.done.textContent);
    this.next();
  }

  showCrisis({ support_phone: phone, crisis_line: line }) {
    const parts = this.crisis.querySelector("[data-q=crisis-text]");
    const lineText = line || "988";
    parts.textContent = `If you are thinking about hurting yourself or feel you would be better off dead, you do not have to `
      + `wait: call or text ${lineText} now (free, any time)${phone ? `, or call the clinic at ${phone}` : ""}. `
      + "In an emergency, call 911. Your care team will see your answers and check in with you.";
    const links = this.crisis.querySelector("[data-q=crisis-links]");
    const call = (number, label) => {
      const a = document.createElement("a");
      a.className = "button primary";
      a.href = `tel:${number.replace(/[^0-9+]/g, "")}`;
      a.textContent = label;
      return a;
    };
    links.replaceChildren(...[/^[0-9 +()-]+$/.test(lineText) ? call(lineText, `Call ${lineText}`) : null,
      phone ? call(phone, "Call the clinic") : null].filter(Boolean));
    this.crisis.hidden = false;
    this.panel.hidden = false;
  }

  // An error frame while an answer is on its way is the answer's: show it by the form.
  refused(frame) {
    if (!this.pending) return false;
    if (frame.code === "already_answered" || frame.code === "not_found") {
      this.next(); // answered in another tab, or no longer open: nothing left to do here
      return true;
    }
    if (frame.code === "bad_request") {
      this.pending = null;
      this.error.textContent = "Some answers could not be saved. Please check every question and send again.";
      return true;
    }
    return false;
  }
}
