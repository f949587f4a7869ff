// The patient's door: check in over the realtime WebSocket and show what is happening.
const door = document.getElementById("door");
const statusRegion = document.getElementById("status");
const form = document.getElementById("checkin");
const inSession = document.getElementById("in-session");
let socket = null;

function say(text) { statusRegion.textContent = text; }

function connect(location) {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${window.location.host}/api/v1/ws`);
  socket.addEventListener("open", () => {
    socket.send(JSON.stringify({ type: "hello", token: door.dataset.token, location }));
  });
  socket.addEventListener("message", (event) => {
    const frame = JSON.parse(event.data);
    switch (frame.type) {
      case "waiting":
        form.hidden = true;
        say(frame.session_id ? "You are in the waiting room. Your facilitator will let you in soon."
                             : (frame.message || "The session has not started yet."));
        break;
      case "admitted": form.hidden = true; inSession.hidden = false; say("You are in the group session."); break;
      case "message": say(`Message from your facilitator: ${frame.text}`); break;
      case "sent_back": inSession.hidden = true; say("Your facilitator moved you to the waiting room."); break;
      case "declined": say(frame.message || "Your facilitator could not admit you to this session."); break;
      case "removed": inSession.hidden = true; say(frame.reason || "You were removed from the session."); break;
      case "session_ended": inSession.hidden = true; say("The session has ended. Thank you for joining."); break;
      case "error": if (frame.code === "replaced") say("This link was opened in another window."); break;
      default: break;
    }
  });
  socket.addEventListener("close", (event) => {
    if (event.code === 4401) say("This link is no longer valid. Please contact your clinic.");
  });
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const location = new FormData(form).get("location");
  say("Checking in…");
  connect(location);
});

document.getElementById("leave").addEventListener("click", () => {
  if (socket) socket.send(JSON.stringify({ type: "leave" }));
  inSession.hidden = true;
  say("You left the session.");
});

document.documentElement.style.setProperty("--primary", document.body.dataset.primary);
document.documentElement.style.setProperty("--accent", document.body.dataset.accent);
