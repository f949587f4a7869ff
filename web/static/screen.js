// The "Share screen" button of the console and of the patient's page (CONTRACT.md v1.1): shares a
// screen, window or tab beside the camera, and says when sharing stops, whichever way it stops
// (this button, the browser's own "Stop sharing", or the facilitator taking a permission back).
// Staff may always share; a patient sees the button only while the facilitator allows it.

export class ScreenShareButton {
  // button: the <button>; say(text): the page's status line. Set `room` (room.js) before use.
  constructor(button, { say, allowed = true }) {
    this.button = button;
    this.say = say;
    this.room = null;
    this.sharing = false;
    this.allowed = allowed;
    button.addEventListener("click", () => this.toggle());
    this.render();
  }

  async toggle() {
    if (!this.room) return;
    if (this.sharing) {
      await this.room.stopScreen();
      return;
    }
    this.button.disabled = true;
    try {
      await this.room.shareScreen();
    } catch (error) {
      this.say(error && error.name === "NotAllowedError"
        ? "Screen sharing was cancelled."
        : "Your screen could not be shared. Try again, or choose another window.");
    } finally {
      this.button.disabled = false;
    }
  }

  // From the room: sharing started or stopped (refusal: the server's error code, if it refused).
  update(sharing, refusal) {
    const was = this.sharing;
    this.sharing = sharing;
    this.render();
    if (refusal === "not_allowed") this.say("Your facilitator has not allowed screen sharing right now.");
    else if (sharing && !was) this.say("You are sharing your screen. Everyone in the group can see it.");
    else if (!sharing && was) this.say("You stopped sharing your screen.");
  }

  // A patient's permission (the roster's screen_allowed, or a screen_share frame).
  allow(allowed) {
    if (allowed === this.allowed) return;
    this.allowed = allowed;
    if (!allowed && this.sharing && this.room) this.room.stopScreen();
    this.render();
  }

  render() {
    this.button.hidden = !this.allowed && !this.sharing;
    this.button.textContent = this.sharing ? "Stop sharing" : "Share screen";
    this.button.setAttribute("aria-pressed", String(this.sharing));
    this.button.classList.toggle("is-on", this.sharing);
  }
}
