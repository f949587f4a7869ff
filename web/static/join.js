// The patient's door: device check, check-in, a calm waiting room, the group, and clear
// screens when it is over. Everything the server says arrives on the realtime socket.
import { ChatPanel } from "/static/chat.js";
import { FeedbackForm } from "/static/feedback.js";
import { Questionnaires } from "/static/questionnaire.js";
import { DevicePicker, chosen } from "/static/device_picker.js";
import { HELP, meterFor, openDevices, openOne, playTestTone, stopStream } from "/static/devices.js";
import { VideoGrid, sharedAudioContext } from "/static/grid.js";
import { LiveSocket } from "/static/live.js";
import { ConnectionMeter } from "/static/quality.js";
import { Room } from "/static/room.js";
import { ScreenShareButton } from "/static/screen.js";
import { applyBrandFromBody } from "/static/theme.js";

applyBrandFromBody();

const $ = (id) => document.getElementById(id);
const door = $("door");
const me = { id: door.dataset.participantId, name: door.dataset.displayName };
const views = { door: $("door-view"), waiting: $("waiting-view"), session: $("session-view"), ended: $("ended-view") };
const statusRegion = $("status");
const toggleAudio = $("toggle-audio");
const toggleVideo = $("toggle-video");
const toggleHand = $("toggle-hand");
const toggleChat = $("toggle-chat");

let localStream = null; // always a MediaStream once the check has run, empty when nothing could start
const devices = { microphone: false, camera: false }; // what this page could open at all
let stopMeter = () => {};
let joinedFrom = "home";
let sentBack = false;
let audioOn = true;
let videoOn = true;
let handRaised = false;
let unread = 0;
let chatNotice = null; // { said, before }: the status line while unread messages wait
let waitingSince = null;
let waitTicker = null;
let state = "door"; // door | waiting | session | ended
const grid = new VideoGrid($("grid"), { selfLabel: "you" });
const live = new LiveSocket({
  hello: () => ({ type: "hello", token: door.dataset.token, location: joinedFrom }),
  onFrame: (frame) => onFrame(frame),
  onState: (kind, info) => onConnection(kind, info),
});
const room = new Room({ send: (frame) => live.send(frame), grid, onState: (text, kind) => mediaNote(text, kind),
                        onScreen: (sharing, refusal) => screenButton.update(sharing, refusal) });
// Shown only while the facilitator allows this patient to share (CONTRACT.md v1.1).
const screenButton = new ScreenShareButton($("share-screen"), { say: (text) => mediaNote(text), allowed: false });
screenButton.room = room;
new ConnectionMeter(() => (room.link ? [room.link.publishPc, room.link.subscribePc] : []), $("connection"));
const chatBox = $("chat");
const questionnaires = new Questionnaires($("questionnaire"), {
  send: (frame) => live.send(frame), say, onChange: () => placeQuestionnaire(),
});
const questionnaireDialog = $("questionnaire-dialog");

// In the waiting room the questionnaire sits in the page; in the group, an unfinished one waits
// behind the "Questionnaire" button, in a dialog, until the session ends.
function placeQuestionnaire() {
  const panel = $("questionnaire");
  const inSession = state === "session";
  $("open-questionnaire").hidden = !(inSession && questionnaires.unfinished);
  if (inSession) {
    if (questionnaires.unfinished && panel.parentElement !== questionnaireDialog) questionnaireDialog.append(panel);
    return; // one just answered stays on screen (its thanks, or where to get help) until closed
  }
  if (questionnaireDialog.open) questionnaireDialog.close();
  if (panel.parentElement !== $("questionnaire-slot")) $("questionnaire-slot").append(panel);
}

$("open-questionnaire").addEventListener("click", () => {
  placeQuestionnaire();
  questionnaireDialog.showModal();
});
$("questionnaire-close").addEventListener("click", () => questionnaireDialog.close());
const feedback = new FeedbackForm($("feedback"), { token: door.dataset.token, say });
feedback.ask(door.dataset.feedbackSession); // a session of the last day not rated yet
const chat = new ChatPanel(chatBox, {
  send: (frame) => live.send(frame),
  selfId: me.id,
  onMessage: (frame, mine) => {
    if (mine || !chatBox.hidden) return;
    unread += 1;
    showUnread();
    const from = (frame.from && frame.from.display_name) || "someone";
    const said = `New chat message from ${from}. Press Chat to read it.`;
    chatNotice = { said, before: chatNotice ? chatNotice.before : statusRegion.textContent };
    say(said);
  },
});

function say(text) { statusRegion.textContent = text; }

function show(name, focusHeading = true) {
  state = name;
  for (const [key, view] of Object.entries(views)) view.hidden = key !== name;
  feedback.setAside(name === "session");
  document.body.dataset.view = name;
  if (focusHeading) {
    const heading = views[name].querySelector("h1");
    if (heading && heading.hasAttribute("tabindex")) heading.focus({ preventScroll: true });
  }
}

function formatStart(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return "";
  return new Intl.DateTimeFormat(undefined, { weekday: "long", hour: "numeric", minute: "2-digit" }).format(when);
}

// -- device check ------------------------------------------------------------------------

function hasVideo() { return Boolean(localStream && localStream.getVideoTracks().length); }
function hasAudio() { return Boolean(localStream && localStream.getAudioTracks().length); }

// The top line of the door says what the check found, in a few words; the help beside the
// preview says what to do. Whatever happens, the patient may still check in.
const FOUND = {
  denied: "Your camera and microphone are blocked. You can allow them (see below) or check in without them.",
  missing: "No camera or microphone was found. You can still check in to see and hear the group.",
  camera_missing: "No camera was found. You can check in with sound only.",
  mic_missing: "No microphone was found. You can check in; the group will not hear you, but you can write in the chat.",
  busy: "Your camera or microphone is in use by another app. See below, or check in without them.",
  unsupported: "This browser cannot use a camera or microphone here. You can still check in to see and hear the group.",
  other: "Your camera or microphone did not start. See below, or check in without them.",
};

function showPreview() {
  const on = hasVideo() && videoOn;
  for (const id of ["preview", "waiting-preview"]) {
    const video = $(id);
    video.srcObject = on ? localStream : null;
    video.closest(".preview, .waiting-preview").classList.toggle("has-video", on);
  }
}

function showProblem(problem) {
  const help = $("device-help");
  help.hidden = !problem;
  help.textContent = problem ? HELP[problem] : "";
  if (problem && problem !== "camera_missing" && problem !== "mic_missing") {
    const still = document.createElement("span");
    still.className = "help-still";
    still.textContent = "Or check in without them: you will see and hear the group and can write in the chat.";
    help.append(still);
  }
  $("retry-devices").hidden = !problem || problem === "camera_missing" || problem === "unsupported";
}

async function startDevices() {
  if (state === "door") say("Checking your camera and microphone…");
  $("preview-note").textContent = "Starting your camera…";
  $("retry-devices").hidden = true;
  stopMeter();
  stopStream(localStream);
  const { stream, problem } = await openDevices({ video: true, camera: chosen().camera, microphone: chosen().microphone });
  localStream = stream || (window.MediaStream ? new MediaStream() : null);
  devices.microphone = hasAudio();
  devices.camera = hasVideo();
  showProblem(problem);
  $("preview-note").textContent = devices.camera ? "" : "No camera in use";
  $("mic-hint").textContent = devices.microphone ? "Say something: the bar should move." : "No microphone in use.";
  $("audio-only").disabled = !devices.camera;
  if (!devices.camera) $("audio-only").checked = true;
  videoOn = devices.camera && !$("audio-only").checked;
  if (!videoOn) releaseCamera();
  applyTracks();
  showPreview();
  if (hasAudio()) stopMeter = meterFor(localStream, $("mic-meter"), $("mic-bar"));
  document.body.classList.toggle("has-device-problem", Boolean(problem));
  fillPickers().catch(() => {});
  if (state === "door") say(problem ? FOUND[problem] : "Your camera and microphone are working. Check in when you are ready.");
}

function applyTracks() {
  if (!localStream) return;
  for (const track of localStream.getAudioTracks()) track.enabled = audioOn;
  for (const track of localStream.getVideoTracks()) track.enabled = videoOn;
}

// "Sound only" and "Stop video" release the camera (its light goes off); turning video on asks
// for it again. In the session the same sender carries the new track: no new offer.
function releaseCamera() {
  if (!localStream) return;
  for (const track of localStream.getVideoTracks()) {
    track.stop();
    localStream.removeTrack(track);
  }
  room.replaceTrack("video", null);
}

async function restoreCamera() {
  if (hasVideo()) return null;
  const { track, problem } = await openOne("video", picker.camera.value);
  if (!track) return problem;
  if (!localStream) localStream = new MediaStream();
  localStream.addTrack(track);
  devices.camera = true;
  await room.replaceTrack("video", track);
  return null;
}

// A microphone allowed or plugged in after the check: "Unmute" asks for it.
async function restoreMicrophone() {
  if (hasAudio()) return null;
  const { track, problem } = await openOne("audio", picker.microphone.value);
  if (!track) return problem;
  if (!localStream) localStream = new MediaStream();
  localStream.addTrack(track);
  devices.microphone = true;
  await room.replaceTrack("audio", track);
  return null;
}

// -- choosing a camera, microphone or speaker (remembered on this device) --------------------------

const picker = new DevicePicker($("device-choice"), {
  onCamera: (deviceId) => { if (videoOn) switchDevice("video", deviceId); },
  onMicrophone: (deviceId) => switchDevice("audio", deviceId),
  onSpeaker: (deviceId) => {
    grid.setSpeaker(deviceId);
    const context = sharedAudioContext();
    if (context && context.setSinkId) context.setSinkId(deviceId).catch(() => {});
  },
});
const fillPickers = () => picker.fill(localStream);

// Another camera or microphone: the new track takes the old one's place, in the preview, the
// meter and (in the session) the same sender.
async function switchDevice(kind, deviceId) {
  const { track, problem } = await openOne(kind, deviceId);
  if (!track) {
    say(stillHelp(problem));
    return;
  }
  if (!localStream) localStream = new MediaStream();
  for (const old of localStream.getTracks().filter((t) => t.kind === kind)) {
    old.stop();
    localStream.removeTrack(old);
  }
  track.enabled = kind === "video" ? videoOn : audioOn;
  localStream.addTrack(track);
  devices[kind === "video" ? "camera" : "microphone"] = true;
  await room.replaceTrack(kind, track);
  if (kind === "audio") {
    stopMeter();
    stopMeter = meterFor(localStream, $("mic-meter"), $("mic-bar"));
  }
  showPreview();
  if (state === "session") {
    grid.attach(me.id, localStream);
    updateControls();
    sendMediaState();
  }
  say(`Now using ${track.label || (kind === "video" ? "the chosen camera" : "the chosen microphone")}.`);
}

if (chosen().speaker) grid.setSpeaker(chosen().speaker);

$("retry-devices").addEventListener("click", () => startDevices());
$("audio-only").addEventListener("change", async (event) => {
  const box = event.target;
  if (box.checked) {
    videoOn = false;
    releaseCamera();
  } else {
    box.disabled = true;
    const problem = await restoreCamera();
    box.disabled = false;
    videoOn = !problem;
    box.checked = Boolean(problem);
    showProblem(problem);
  }
  applyTracks();
  showPreview();
});
$("test-speaker").addEventListener("click", () => {
  const button = $("test-speaker");
  button.disabled = true;
  const ms = playTestTone();
  setTimeout(() => { button.disabled = false; }, ms || 500);
  say("Playing a test sound. If you did not hear it, turn up the volume.");
});

// -- check-in and the waiting room ----------------------------------------------------------

$("checkin").addEventListener("submit", (event) => {
  event.preventDefault();
  joinedFrom = new FormData(event.target).get("location") === "other" ? "other" : "home";
  event.target.querySelector("button[type=submit]").disabled = true;
  say("Checking you in…");
  live.connect();
});

function tickWaited() {
  if (!waitingSince) return;
  const seconds = Math.max(0, Math.floor((Date.now() - waitingSince) / 1000));
  const minutes = Math.floor(seconds / 60);
  $("waited").textContent = minutes >= 60
    ? `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`
    : `${minutes}:${String(seconds % 60).padStart(2, "0")}`;
}

function enterWaiting(frame) {
  room.close();
  grid.clear();
  stopMeter();
  if (!waitingSince) {
    // The server says since when we have been waiting: a reloaded page keeps counting from there.
    const since = frame.waiting_since ? Date.parse(frame.waiting_since) : NaN;
    waitingSince = Number.isNaN(since) ? Date.now() : Math.min(since, Date.now());
  }
  clearInterval(waitTicker);
  waitTicker = setInterval(tickWaited, 1000);
  tickWaited();
  let text;
  if (frame.session_id && sentBack) {
    text = frame.message || "Your facilitator moved you back to the waiting room for a moment. Please stay on this page.";
    say("Your facilitator moved you back to the waiting room for a moment.");
  } else if (frame.session_id) {
    text = frame.message || "Your facilitator will let you in soon. You can leave this page open.";
    say("You are in the waiting room. Your facilitator will let you in soon.");
  } else {
    const when = frame.next_start ? formatStart(frame.next_start) : "";
    text = when
      ? `The group has not started yet. It is scheduled for ${when}; you will move to the waiting room when it opens.`
      : frame.message || "The group has not started yet. You will move to the waiting room when it opens.";
    say("You are checked in. The group has not started yet.");
  }
  $("waiting-text").textContent = text;
  setAway(false);
  setHand(false);
  chat.setStaffOnly(true, "While you wait, messages go to the staff only. The group does not see them.");
  $("waiting-chat-slot").append(chatBox);
  chatBox.hidden = !frame.session_id; // no staff to read it before the session opens
  const first = state !== "waiting";
  show("waiting", first);
  placeQuestionnaire();
  showPreview();
}

function addMessage(text) {
  const item = document.createElement("li");
  const time = document.createElement("span");
  time.className = "message-time";
  time.textContent = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" }).format(new Date());
  const body = document.createElement("span");
  body.textContent = text;
  item.append(time, body);
  $("messages").append(item);
  $("messages-box").hidden = false;
  say(`Message from your facilitator: ${text}`);
}

// -- in the session ----------------------------------------------------------------------------

// Without a microphone the button reads "Unmute" (the group cannot hear you) and pressing it
// asks for one again; likewise "Start video" without a camera. A line above says why.
function updateControls() {
  const micOn = audioOn && hasAudio();
  const cameraOn = videoOn && hasVideo();
  toggleAudio.textContent = micOn ? "Mute" : "Unmute";
  toggleAudio.setAttribute("aria-pressed", String(!micOn));
  toggleAudio.classList.toggle("is-off", !micOn);
  toggleVideo.textContent = cameraOn ? "Stop video" : "Start video";
  toggleVideo.setAttribute("aria-pressed", String(!cameraOn));
  toggleVideo.classList.toggle("is-off", !cameraOn);
  grid.setSelfMuted(!micOn);
  grid.setSelfVideo(cameraOn);
  grid.setSelfDevices(devices);
  let note = "";
  if (!devices.microphone && !devices.camera) {
    note = "No camera or microphone: the group cannot see or hear you. You can write in the chat.";
  } else if (!devices.microphone) {
    note = "No microphone: the group cannot hear you. You can write in the chat, or press Unmute to try again.";
  } else if (!devices.camera) {
    note = "No camera: the group hears you and sees your initials.";
  }
  $("device-note").textContent = note;
}

function setHand(raised) {
  handRaised = raised;
  toggleHand.textContent = raised ? "Lower hand" : "Raise hand";
  toggleHand.setAttribute("aria-pressed", String(raised));
  toggleHand.classList.toggle("is-on", raised);
}

toggleHand.addEventListener("click", () => {
  if (!live.send({ type: "hand", raised: !handRaised })) {
    say("Not connected right now. Try again in a moment.");
    return;
  }
  setHand(!handRaised);
  say(handRaised ? "Your hand is raised. Your facilitator can see it." : "You lowered your hand.");
});

function showUnread() {
  const badge = $("chat-unread");
  badge.textContent = String(unread);
  badge.hidden = unread === 0;
}

function openChat(open, focus = true) {
  chatBox.hidden = !open;
  toggleChat.setAttribute("aria-expanded", String(open));
  document.body.classList.toggle("chat-open", open);
  if (open) {
    unread = 0;
    showUnread();
    // Read now: the status line goes back to what it said before, unless something newer came.
    if (chatNotice && statusRegion.textContent === chatNotice.said) say(chatNotice.before);
    chatNotice = null;
    if (focus) chatBox.querySelector("input[type=text]").focus({ preventScroll: true });
  }
}

toggleChat.addEventListener("click", () => openChat(chatBox.hidden));

// How the grid looks to you: the speaker large, and your own tile hidden (the group still sees you).
// Data saver: everyone's audio and only the speaker's video, small, for a phone on a data plan.
const viewOptions = [
  ["speaker-view", (on) => grid.setSpeakerView(on)],
  ["hide-self", (on) => grid.hideSelf(on)],
  ["data-saver", (on) => { grid.setDataSaver(on); room.setDataSaver(on); }],
];
// Remembered on this device, as the chosen camera is: a patient on a data plan turns data saver
// on once, not at every session or reload.
const VIEW_KEY = "porchlight.view";
function rememberedView() {
  try { return JSON.parse(localStorage.getItem(VIEW_KEY)) || {}; } catch { return {}; }
}
for (const [id, apply] of viewOptions) {
  const button = $(id);
  const set = (on) => { button.setAttribute("aria-pressed", String(on)); apply(on); };
  if (rememberedView()[id] === true) set(true);
  button.addEventListener("click", () => {
    const on = button.getAttribute("aria-pressed") !== "true";
    set(on);
    try { localStorage.setItem(VIEW_KEY, JSON.stringify({ ...rememberedView(), [id]: on })); } catch { /* private mode */ }
  });
}

// When no facilitator is connected, the group is told plainly, and calmly, to stay.
function setAway(away) {
  $("away").textContent = away ? "Your facilitator has lost their connection. Stay here; they will be back shortly." : "";
  document.body.classList.toggle("facilitator-away", away);
}

function sendMediaState() {
  live.send({ type: "media_state", audio: audioOn && hasAudio(), video: videoOn && hasVideo(),
              microphone: devices.microphone, camera: devices.camera });
}

function enterSession(frame) {
  sentBack = false;
  clearInterval(waitTicker);
  waitingSince = null;
  const first = state !== "session";
  show("session", first);
  say(first ? "You are in the group. Welcome." : "You are back in the group.");
  chat.setStaffOnly(false);
  $("session-stage").append(chatBox);
  $("device-choice").querySelector("summary").textContent = "Devices";
  $("session-bar").append($("device-choice"));
  openChat(toggleChat.getAttribute("aria-expanded") === "true", false);
  placeQuestionnaire();
  grid.setSelf(me.id, me.name, "patient", localStream);
  updateControls();
  room.start(localStream, frame.ice_servers).then(() => room.setTracks({ audio: audioOn, video: videoOn }));
  sendMediaState();
}

// Asked again in the session, a device may still be blocked or missing: what to do now.
const STILL = {
  denied: "Your browser is still blocking the camera and microphone. Tap the lock or camera icon next to the "
    + "web address, choose Allow, then press the button again.",
  busy: "Another app is using your camera or microphone. Close it, then press the button again.",
};
const stillHelp = (problem) => STILL[problem] || HELP[problem];

// The connection in the patient's words: trouble is said, a healthy link is not news.
const CONNECTION = {
  disconnected: "Your connection is unsteady. Trying again…",
  failed: "Video could not connect. You are still in the group and can use the chat; if it lasts, leave and check in again.",
};
let connectionTrouble = false;
function mediaNote(text, kind) {
  if (state !== "session") return;
  if (kind === undefined) {
    if (text) say(text); // from the room: a refused or retried offer
  } else if (CONNECTION[kind]) {
    connectionTrouble = true;
    say(CONNECTION[kind]);
  } else if (kind === "connected" && connectionTrouble) {
    connectionTrouble = false;
    say("Your connection is back.");
  }
}

// After Mute/Unmute or Stop/Start video: the tracks, the server and the page follow.
function tracksChanged(message) {
  applyTracks();
  room.setTracks({ audio: audioOn, video: videoOn });
  sendMediaState();
  updateControls();
  say(message);
}

toggleAudio.addEventListener("click", async () => {
  if (!hasAudio()) {
    toggleAudio.disabled = true;
    const problem = await restoreMicrophone();
    toggleAudio.disabled = false;
    if (problem) {
      say(stillHelp(problem));
      return;
    }
    audioOn = true;
    grid.attach(me.id, localStream);
    tracksChanged("Your microphone is on.");
    return;
  }
  audioOn = !audioOn;
  tracksChanged(audioOn ? "Your microphone is on." : "You are muted.");
});

toggleVideo.addEventListener("click", async () => {
  if (videoOn && hasVideo()) {
    videoOn = false;
    releaseCamera();
    tracksChanged("Your camera is off. The group sees your name.");
    return;
  }
  toggleVideo.disabled = true;
  const problem = await restoreCamera();
  toggleVideo.disabled = false;
  if (problem) {
    say(stillHelp(problem));
    updateControls();
    sendMediaState();
    return;
  }
  videoOn = true;
  grid.attach(me.id, localStream);
  tracksChanged("Your camera is on.");
});

// -- the end, whichever way it comes -----------------------------------------------------------

function finish(heading, text, { again = null, drain = false } = {}) {
  room.close();
  if (drain) live.drain(); else live.stop();
  grid.clear();
  clearInterval(waitTicker);
  waitingSince = null;
  setAway(false);
  chatBox.hidden = true;
  stopMeter();
  stopStream(localStream);
  localStream = null;
  $("ended-heading").textContent = heading;
  $("ended-text").textContent = text;
  const button = $("check-in-again");
  button.hidden = !again;
  if (again) button.textContent = again;
  show("ended");
  say(heading);
}

function leave() {
  live.send({ type: "leave" });
  finish("You left the session", "Thank you for joining. You can check in again with the same link while the group is running.",
    { again: "Check in again" });
}

// Coming back needs a new admission, so leaving asks first.
const leaveDialog = $("leave-dialog");
$("leave").addEventListener("click", () => {
  leaveDialog.returnValue = "";
  leaveDialog.showModal();
  $("leave-stay").focus();
});
leaveDialog.addEventListener("close", () => {
  if (leaveDialog.returnValue === "leave" && state === "session") leave();
});
$("leave-waiting").addEventListener("click", () => {
  live.send({ type: "leave" });
  finish("You left the waiting room", "You can check in again with the same link whenever you are ready.",
    { again: "Check in again" });
});
$("check-in-again").addEventListener("click", () => window.location.reload());

// A facilitator's words in quotes, with one full stop after them whatever they end with.
function quoted(text) {
  return /[.!?…]$/.test(text.trim()) ? `“${text.trim()}”` : `“${text.trim()}.”`;
}

const phone = document.querySelector(".door-footer a[href^='tel:']");
const callClinic = phone ? ` If you have questions, call ${phone.textContent}.` : "";

function onFrame(frame) {
  switch (frame.type) {
    case "waiting": enterWaiting(frame); break;
    case "admitted": enterSession(frame); break;
    case "roster": if (state === "session") onRoster(frame.participants || []); break;
    case "chat": chat.add(frame); break;
    case "facilitator_away": if (state === "session") { setAway(true); say("You are still connected to the group."); } break;
    case "facilitator_back":
      if (state === "session") { setAway(false); say("Your facilitator is back."); }
      break;
    case "offer": case "answer": room.handle(frame); break;
    case "screen_share": screenButton.allow(frame.allowed === true); break;
    case "active_speaker": grid.setActiveSpeaker(frame.id); break;
    case "message": addMessage(frame.text || ""); break;
    case "sent_back":
      // The server follows with `waiting`; that frame shows the waiting room.
      sentBack = true;
      waitingSince = null;
      room.close();
      screenButton.allow(false); // a permission to share ends with the time in the group
      $("messages").replaceChildren();
      $("messages-box").hidden = true;
      break;
    case "muted":
      audioOn = false;
      applyTracks();
      room.setTracks({ audio: false, video: videoOn });
      sendMediaState();
      updateControls();
      say("Your facilitator muted your microphone. Press Unmute when you want to speak.");
      break;
    case "declined":
      finish("You were not admitted this time",
        (frame.message ? `Your facilitator says: ${quoted(frame.message)}` : "Your facilitator could not admit you to this session.")
        + callClinic);
      break;
    case "removed":
      finish("Your place in this session has ended",
        (frame.reason ? `Your facilitator says: ${quoted(frame.reason)}` : "Your facilitator ended your place in today's session.")
        + callClinic);
      break;
    case "session_ended":
      finish("The session has ended", "Thank you for joining today. See you next time.", { drain: true });
      break;
    case "questionnaire": questionnaires.offer(frame); break;
    case "questionnaire_saved": questionnaires.saved(frame); break;
    case "feedback_request": feedback.ask(frame.session_id, frame.question); break;
    case "feedback_saved": feedback.saved(); break;
    case "error":
      if (questionnaires.refused(frame) || chat.refused(frame)) break;
      if (!room.handle(frame)) onError(frame); // media refusals: the room retries
      break;
    default: break;
  }
}

function onRoster(participants) {
  grid.setRoster(participants);
  const mine = participants.find((p) => p.id === me.id);
  if (mine && typeof mine.hand === "boolean" && mine.hand !== handRaised) setHand(mine.hand);
  if (mine) screenButton.allow(mine.screen_allowed === true);
}

function onError(frame) {
  if (frame.code === "replaced") {
    finish("This link is open somewhere else", "You opened your link in another window or device, so this one has stopped. "
      + "You can carry on there, or use this window instead.", { again: "Use this window" });
  } else if (frame.code === "invalid_token") {
    finish("This link no longer works", `Please contact your clinic for a new link.${callClinic}`);
  }
  // Other errors (for example media not yet available) are not the patient's to act on.
}

function onConnection(kind, info) {
  if (kind === "waiting_to_retry") {
    say(`Connection lost. Reconnecting in ${info.seconds} s… You keep your place.`);
    document.body.classList.add("is-offline");
  } else if (kind === "reconnecting") {
    say("Reconnecting…");
  } else if (kind === "reconnected") {
    document.body.classList.remove("is-offline");
    say("Reconnected.");
  }
}

// -- start ---------------------------------------------------------------------------------------

$("preview-initials").textContent = (me.name || "?").split(/\s+/).slice(0, 2).map((p) => p[0]).join("").toUpperCase();
const nextStart = $("next-start");
if (nextStart) nextStart.textContent = formatStart(nextStart.getAttribute("datetime"));
// Ready: until now a press of "Check in" would have submitted the form as a plain page load.
$("checkin").querySelector("button[type=submit]").disabled = false;
startDevices();
