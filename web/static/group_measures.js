// The admin group page's check-in questionnaires: which instruments, how often (PATCH /groups/{id}).
import { api, flash } from "/static/api.js";

const form = document.getElementById("questionnaires-form");
if (form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const questionnaires = ["PHQ-9", "GAD-7"]
      .filter((instrument) => data.get(instrument))
      .map((instrument) => ({ instrument, every: data.get(instrument) }));
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api("PATCH", `/groups/${form.dataset.groupId}`, { questionnaires });
      flash(questionnaires.length ? "Questionnaires saved." : "No questionnaires will be asked.");
    } catch (error) {
      flash(error.message, { error: true });
    }
    button.disabled = false;
  });
}
