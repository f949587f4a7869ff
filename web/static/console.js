// The facilitator's console: their groups, the waiting room live, and the session itself.
import { SafetyAlerts, safetyTitle } from "/static/alerts.js";
import { api, contact, flash, flashAfterReload, plural } from "/static/api.js";
import { ChatPanel } from "/static/chat.js";
import { DevicePicker, chosen } from "/static/device_picker.js";
import { HELP, openDevices, openOne, playArrivalChime, stopStream } from "/static/devices.js";
import { VideoGrid, sharedAudioContext } from "/static/grid.js";
import { LiveSocket } from "/static/live.js";
import { ConnectionMeter } from "/static/quality.js";
import { Room } from "/static/room.js";
import { ScreenShareButton } from "/static/screen.js";

const $ = (id) => document.getElementById(id);
const root = $("console");
const me = { id: root.dataset.userId, name: root.dataset.userName, role: root.dataset.userRole };
const SESSION_KEY = "porchlight.console.session"; // the session this tab runs, to rejoin after a reload
const baseTitle = document.title;
const safetyAlerts = new SafetyAlerts($("safety-alerts"));
safetyAlerts.load();

// -- waiting-room cues: a chime and the count in the title bar ---------------------------------

const seenWaiting = new Map(); // group id -> Set of patient ids already announced
const waitingCounts = new Map(); // group id -> count

function cue(groupId, waiting) {
  const known = seenWaiting.get(groupId);
  const ids = new Set(waiting.map((w) => w.patient_id));
  const arrived = known ? waiting.filter((w) => !known.has(w.patient_id)) : [];
  seenWaiting.set(groupId, ids);
  waitingCounts.set(groupId, waiting.length);
  const total = [...waitingCounts.values()].reduce((a, b) => a + b, 0);
  document.title = safetyTitle(total ? `(${total}) Waiting — Porchlight` : baseTitle);
  if (arrived.length) playArrivalChime();
  return arrived;
}

function since(iso) {
  const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 60) return "just arrived";
  const minutes = Math.floor(seconds / 60);
  return minutes < 60 ? `waiting ${minutes} min` : `waiting ${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

// -- the lobby: one watcher per group ------------------------------------------------------------

const cards = [...document.querySelectorAll(".group-card")];
const watchers = new Map();

function watch(card) {
  const groupId = card.dataset.groupId;
  const count = card.querySelector("[data-role=waiting-count]");
  const socket = new LiveSocket({
    hello: () => ({ type: "hello", group_id: groupId }),
    onFrame: (frame) => {
      if (frame.type === "safety_alert") {
        safetyAlerts.show(frame.alert);
      } else if (frame.type === "waiting_list") {
        const waiting = frame.waiting || [];
        if (!activeRoom || activeRoom.groupId !== groupId) cue(groupId, waiting);
        count.textContent = waiting.length
          ? `${plural(waiting.length, "person is", "people are")} waiting: ${waiting.map((w) => w.display_name).join(", ")}`
          : "No one is waiting.";
        count.classList.toggle("has-people", waiting.length > 0);
      } else if (frame.type === "session_opened") {
        card.dataset.openSessionId = frame.session_id;
        card.querySelector("[data-action=start]").textContent = "Rejoin session";
      } else if (frame.type === "session_ended") {
        card.dataset.openSessionId = "";
        card.querySelector("[data-action=start]").textContent = "Start session";
      } else if (frame.type === "error" && frame.code === "unauthorized") {
        window.location.assign("/login?reason=ended&next=/console");
      }
    },
  });
  socket.connect();
  watchers.set(groupId, socket);
}

for (const card of cards) {
  watch(card);
  const startButton = card.querySelector("[data-action=start]");
  startButton.addEventListener("click", () => start(card));
  startButton.disabled = false; // a click before the script was ready would have done nothing
}

async function start(card) {
  const button = card.querySelector("[data-action=start]");
  button.disabled = true;
  let sessionId = card.dataset.openSessionId;
  try {
    if (!sessionId) {
      try {
        sessionId = (await api("POST", `/groups/${card.dataset.groupId}/sessions`, {})).id;
      } catch (error) {
        if (error.code !== "session_open" || !error.detail.session_id) throw error;
        sessionId = error.detail.session_id; // someone (or another tab) opened it: join that one
      }
    }
    await enterRoom(card, sessionId);
  } catch (error) {
    flash(`Could not start the session: ${error.message}`, { error: true });
  } finally {
    button.disabled = false;
  }
}

// -- the idle timer ------------------------------------------------------------------------------
// The server's idle sign-out counts what the user does, not the browser's automatic pongs
// (CONTRACT.md): a click or a key, at most once a minute, and live media of one's own while
// running a session, tell it someone is here. A forgotten console tab is signed out.

const ACTIVITY_EVERY = 60_000; // ms
let lastActivity = 0;

function reportActivity(force = false) {
  const now = Date.now();
  if (!force && now - lastActivity < ACTIVITY_EVERY) return;
  lastActivity = now;
  const sockets = [...watchers.values(), activeRoom && activeRoom.live].filter(Boolean);
  for (const socket of sockets) socket.send({ type: "activity" });
}

for (const kind of ["pointerdown", "keydown"]) document.addEventListener(kind, () => reportActivity(), { passive: true });

// Before the server's idle sign-out, a warning: "Still there?", the chime and a countdown. Left
// unanswered, the page signs out itself and the sign-in page says why.
const IDLE_SECONDS = Number(root.dataset.idleSeconds) || 900;
const WARN_SECONDS = Math.min(60, Math.max(5, Math.floor(IDLE_SECONDS / 2)));
const idleDialog = $("idle-dialog");
let signingOut = false;

async function signOutIdle() {
  signingOut = true;
  try { await api("POST", "/logout", {}); } catch { /* already ended: the page below says so too */ }
  window.location.assign("/login?reason=idle&next=/console");
}

setInterval(() => {
  if (signingOut) return;
  const quiet = (Date.now() - Math.max(lastActivity, contact.at)) / 1000;
  const left = Math.ceil(IDLE_SECONDS - quiet);
  if (left > WARN_SECONDS) {
    if (idleDialog.open) idleDialog.close();
    return;
  }
  $("idle-countdown").textContent = String(Math.max(0, left));
  if (!idleDialog.open) {
    idleDialog.showModal();
    $("idle-stay").focus();
    playArrivalChime();
  }
  if (left <= 1) signOutIdle();
}, 1000);

$("idle-stay").addEventListener("click", () => {
  reportActivity(true);
  idleDialog.close();
});

// Browsers play sound only after a click on the page: until then the arrival chime is silent,
// and the console says so, with a button that is that click.
const audio = sharedAudioContext();
if (audio) {
  const showSound = () => { $("sound-note").hidden = audio.state === "running"; };
  audio.addEventListener("statechange", showSound);
  setTimeout(showSound, 1500); // a context that starts by itself is running by then: no flash
  $("sound-on").addEventListener("click", () => {
    audio.resume().then(() => { playArrivalChime(); flash("Sound is on: you will hear a chime when someone arrives."); })
      .catch(() => {});
  });
}
setInterval(() => {
  const stream = activeRoom && activeRoom.stream;
  if (stream && stream.getTracks().some((t) => t.readyState === "live" && t.enabled)) reportActivity(true);
}, ACTIVITY_EVERY);

// -- the room --------------------------------------------------------------------------------------

let activeRoom = null;
new ConnectionMeter(() => {
  const link = activeRoom && activeRoom.room && activeRoom.room.link;
  return link ? [link.publishPc, link.subscribePc] : [];
}, $("connection"));

function enterRoomView(card) {
  $("lobby").hidden = true;
  $("room").hidden = false;
  $("room-heading").textContent = card.dataset.groupName;
  $("room-heading").focus({ preventScroll: true });
}

function leaveRoomView() {
  $("room").hidden = true;
  $("lobby").hidden = false;
}

async function enterRoom(card, sessionId) {
  if (activeRoom) return;
  try { sessionStorage.setItem(SESSION_KEY, sessionId); } catch { /* private mode */ }
  const groupId = card.dataset.groupId;
  enterRoomView(card);
  say("Starting your camera and microphone…");
  const opened = await openDevices({ video: true, camera: chosen().camera, microphone: chosen().microphone });
  const stream = opened.stream || new MediaStream();
  const problem = opened.problem;
  const grid = new VideoGrid($("grid"), { selfLabel: "you" });
  const state = {
    groupId, sessionId, card, stream, grid, audioOn: true, videoOn: true,
    microphone: stream.getAudioTracks().length > 0, camera: stream.getVideoTracks().length > 0,
    mediaStarted: false, waiting: [], roster: [], openedAt: Date.now(), ticker: null,
  };
  activeRoom = state;
  grid.setSelf(me.id, me.name, me.role, stream);
  if (chosen().speaker) grid.setSpeaker(chosen().speaker);
  picker.fill(stream).catch(() => {});
  if (problem) say("Your camera or microphone is not available; you can still run the session.");
  state.live = new LiveSocket({
    hello: () => ({ type: "hello", session_id: sessionId }),
    onFrame: (frame) => onRoomFrame(state, frame),
    onState: (kind, info) => onRoomConnection(state, kind, info),
  });
  // The room's news about the connection: trouble is said, a healthy link is not.
  state.room = new Room({
    send: (frame) => state.live.send(frame), grid,
    onState: (text, kind) => { if (kind === undefined || kind === "disconnected" || kind === "failed") say(text); },
    onScreen: (sharing, refusal) => screenButton.update(sharing, refusal),
  });
  screenButton.room = state.room;
  state.live.connect();
  state.ticker = setInterval(() => tick(state), 1000);
  updateOwnControls(state);
  api("GET", `/sessions/${sessionId}`).then((session) => {
    state.openedAt = Date.parse(session.started_at) || state.openedAt;
    if (typeof session.chat_enabled === "boolean") $("chat-enabled").checked = session.chat_enabled;
    tick(state);
  }).catch(() => {});
}

function say(text) { $("room-status").textContent = text; }

const screenButton = new ScreenShareButton($("share-screen"), { say }); // staff may always share

function tick(state) {
  const seconds = Math.max(0, Math.floor((Date.now() - state.openedAt) / 1000));
  const h = Math.floor(seconds / 3600);
  const m = String(Math.floor((seconds % 3600) / 60)).padStart(2, "0");
  const s = String(seconds % 60).padStart(2, "0");
  $("room-clock").textContent = `${h}:${m}:${s}`;
  for (const meta of document.querySelectorAll("#waiting [data-since]")) meta.textContent = since(meta.dataset.since);
}

function onRoomFrame(state, frame) {
  switch (frame.type) {
    case "roster":
      state.roster = frame.participants || [];
      state.grid.setRoster(state.roster);
      renderParticipants(state);
      if (!state.mediaStarted) {
        // Staff take part from their hello: there is no `admitted`, so media starts on the first roster.
        state.mediaStarted = true;
        state.room.start(state.stream, frame.ice_servers)
          .then(() => state.room.setTracks({ audio: state.audioOn, video: state.videoOn }));
        sendMediaState(state);
        say(state.reconnected ? "Reconnected. The room is as you left it." : "You are in the session.");
      }
      break;
    case "waiting_list":
      state.waiting = frame.waiting || [];
      renderWaiting(state, cue(state.groupId, state.waiting));
      break;
    case "offer": case "answer": state.room.handle(frame); break;
    case "chat": chat.add(frame); break;
    case "safety_alert": safetyAlerts.show(frame.alert); break;
    case "session_ended": closeRoom(state, "Session ended. Attendance has been recorded."); break;
    case "error":
      if (chat.refused(frame)) break;
      if (state.room && state.room.handle(frame)) break; // a refused media offer: the room says so and retries
      if (frame.code === "session_not_open" || frame.code === "session_ended") {
        closeRoom(state, "This session has already ended.");
      } else if (frame.code === "unauthorized") {
        closeRoom(state, "Your sign-in has ended.");
        window.location.assign("/login?reason=ended&next=/console");
      }
      break;
    default: break;
  }
}

function onRoomConnection(state, kind, info) {
  if (kind === "waiting_to_retry") {
    state.room.close();
    state.mediaStarted = false;
    state.reconnected = true;
    say(`Connection lost. Reconnecting in ${info.seconds} s… Patients stay where they are.`);
  } else if (kind === "reconnecting") {
    say("Reconnecting…");
  }
}

function personItem(name, metaText, since) {
  const item = document.createElement("li");
  item.className = "person";
  const top = document.createElement("div");
  top.className = "person-top";
  const label = document.createElement("span");
  label.className = "person-name";
  label.textContent = name;
  const meta = document.createElement("span");
  meta.className = "person-meta";
  meta.textContent = metaText;
  if (since) meta.dataset.since = since;
  top.append(label, meta);
  const actions = document.createElement("div");
  actions.className = "row";
  item.append(top, actions);
  return { item, actions };
}

function actionButton(text, kind, handler) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = `${kind} small`;
  button.textContent = text;
  button.addEventListener("click", async () => {
    button.disabled = true;
    try { await handler(); } finally { button.disabled = false; }
  });
  return button;
}

async function act(description, method, path, body) {
  try {
    return await api(method, path, body);
  } catch (error) {
    flash(`${description} did not work: ${error.message}`, { error: true });
    return null;
  }
}

function renderWaiting(state, arrived) {
  const list = $("waiting");
  const fresh = new Set(arrived.map((w) => w.patient_id));
  list.replaceChildren();
  for (const person of state.waiting) {
    const { item, actions } = personItem(person.display_name, since(person.waiting_since), person.waiting_since);
    item.dataset.patientId = person.patient_id;
    item.setAttribute("aria-label", person.display_name);
    if (fresh.has(person.patient_id)) item.classList.add("is-new");
    actions.append(
      actionButton("Admit", "primary", async () => {
        if (await act("Admitting", "POST", `/sessions/${state.sessionId}/admit`, { patient_ids: [person.patient_id] })) {
          say(`${person.display_name} admitted.`);
        }
      }),
      actionButton("Message", "secondary", () => askAbout(person.display_name, "message", async (text) => {
        if (!text) return;
        const body = { text, patient_id: person.patient_id };
        if (await act("Sending the message", "POST", `/sessions/${state.sessionId}/message`, body)) {
          say(`Message sent to ${person.display_name}.`);
        }
      })),
      actionButton("Decline", "danger-quiet", () => askAbout(person.display_name, "decline", async (text) => {
        const body = { patient_id: person.patient_id };
        if (text) body.message = text;
        if (await act("Declining", "POST", `/sessions/${state.sessionId}/decline`, body)) {
          say(`${person.display_name} was declined.`);
        }
      })),
    );
    list.append(item);
  }
  $("waiting-empty").hidden = state.waiting.length > 0;
  $("waiting-badge").textContent = String(state.waiting.length);
  $("admit-all").disabled = state.waiting.length === 0;
  if (arrived.length) say(`${arrived.map((w) => w.display_name).join(", ")} arrived in the waiting room.`);
}

function renderParticipants(state) {
  const list = $("participants");
  list.replaceChildren();
  const patients = state.roster.filter((p) => p.role === "patient");
  for (const person of patients) {
    const { item, actions } = personItem(person.display_name, stateWords(person), null);
    item.dataset.patientId = person.id;
    item.classList.toggle("has-hand", person.hand === true);
    item.setAttribute("aria-label", person.display_name);
    actions.append(
      actionButton("Mute", "secondary", async () => {
        if (await act("Muting", "POST", `/sessions/${state.sessionId}/mute`, { patient_id: person.id })) {
          say(`${person.display_name} is muted. They can unmute themselves.`);
        }
      }),
      actionButton(person.screen_allowed ? "Stop their screen share" : "Allow screen share", "secondary", async () => {
        const allowed = !person.screen_allowed;
        if (await act(allowed ? "Allowing screen share" : "Stopping screen share", "POST",
          `/sessions/${state.sessionId}/screen-share`, { patient_id: person.id, allowed })) {
          say(allowed ? `${person.display_name} may share their screen now.` : `${person.display_name} can no longer share their screen.`);
        }
      }),
      actionButton("Send back", "secondary", async () => {
        if (await act("Sending back", "POST", `/sessions/${state.sessionId}/send-back`, { patient_id: person.id })) {
          say(`${person.display_name} is back in the waiting room.`);
        }
      }),
      actionButton("Remove", "danger-quiet", () => askAbout(person.display_name, "remove", async (text) => {
        const body = { patient_id: person.id };
        if (text) body.reason = text;
        if (await act("Removing", "POST", `/sessions/${state.sessionId}/remove`, body)) {
          say(`${person.display_name} was removed from the session.`);
        }
      })),
    );
    list.append(item);
  }
  $("participants-empty").hidden = patients.length > 0;
  $("participants-badge").textContent = String(patients.length);
  $("mute-all").disabled = patients.length === 0;
  const hands = patients.filter((p) => p.hand === true).map((p) => p.display_name);
  const before = state.hands || [];
  const raised = hands.filter((name) => !before.includes(name));
  state.hands = hands;
  if (raised.length) say(`${raised.join(", ")} raised ${raised.length === 1 ? "a hand" : "their hands"}.`);
}

// What the server sees of a participant now (CONTRACT.md v1.1 roster), in words.
function stateWords(person) {
  const words = [];
  if (person.hand === true) words.push("hand raised");
  if (person.microphone === false && person.camera === false) words.push("no camera or microphone");
  else if (person.microphone === false) words.push("no microphone");
  else if (person.camera === false) words.push("sound only (no camera)");
  if (person.audio === false && person.microphone !== false) words.push("muted");
  if (person.video === false && person.camera !== false) words.push("camera off");
  if (person.screen === true) words.push("sharing their screen");
  return words.length ? words.join(" · ") : "in the session";
}

// -- asking before declining or removing ----------------------------------------------------------

const personDialog = $("person-dialog");
let personAction = null;
const ASK = {
  decline: { heading: (n) => `Decline ${n}?`, label: "Message to the patient (optional)", confirm: "Decline" },
  remove: { heading: (n) => `Remove ${n} from the session?`, label: "Reason, shown to the patient (optional)", confirm: "Remove" },
  message: { heading: (n) => `Message to ${n}`, label: "Only this patient sees it, in the waiting room", confirm: "Send",
             kind: "primary" },
};

function askAbout(name, kind, action) {
  const words = ASK[kind];
  $("person-heading").textContent = words.heading(name);
  $("person-label").textContent = words.label;
  $("person-confirm").textContent = words.confirm;
  $("person-confirm").className = words.kind || "danger";
  $("person-text").value = "";
  $("person-text").required = kind === "message"; // an empty message is not sent
  personAction = action;
  personDialog.showModal();
  $("person-text").focus();
}

$("person-cancel").addEventListener("click", () => { personAction = null; personDialog.close(); });
$("person-form").addEventListener("submit", () => {
  const action = personAction;
  personAction = null;
  if (action) action($("person-text").value.trim());
});

// -- room-wide actions ---------------------------------------------------------------------------

$("admit-all").addEventListener("click", async () => {
  if (!activeRoom) return;
  const result = await act("Admitting everyone", "POST", `/sessions/${activeRoom.sessionId}/admit`, { all: true });
  if (result) say(`${plural(result.admitted.length, "person", "people")} admitted.`);
});

$("message-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("message-text").value.trim();
  if (!activeRoom || !text) return;
  const result = await act("Sending the message", "POST", `/sessions/${activeRoom.sessionId}/message`, { text });
  if (result) {
    $("message-text").value = "";
    flash(`Message sent to ${plural(result.delivered, "person", "people")} waiting.`);
  }
});

$("mute-all").addEventListener("click", async () => {
  if (!activeRoom) return;
  if (await act("Muting everyone", "POST", `/sessions/${activeRoom.sessionId}/mute`, { all: true })) {
    say("Everyone is muted. They can unmute themselves when they want to speak.");
  }
});

// -- chat: group messages, and private ones to the staff (from the room and the waiting room) ------

const chat = new ChatPanel($("chat"), {
  send: (frame) => Boolean(activeRoom) && activeRoom.live.send(frame),
  selfId: me.id,
  onMessage: (frame, mine) => {
    if (!mine && frame.private) playArrivalChime();
  },
  whereFrom: (frame) => {
    const id = frame.from && frame.from.id;
    return activeRoom && activeRoom.waiting.some((w) => w.patient_id === id) ? "in the waiting room" : "";
  },
});

$("chat-enabled").addEventListener("change", async (event) => {
  const box = event.target;
  const enabled = box.checked;
  if (!activeRoom) return;
  box.disabled = true;
  const done = await act(enabled ? "Turning group chat on" : "Turning group chat off", "POST",
    `/sessions/${activeRoom.sessionId}/chat`, { enabled });
  box.disabled = false;
  if (!done) {
    box.checked = !enabled;
    return;
  }
  say(enabled ? "Group chat is on." : "Group chat is off. Patients can still write to the staff.");
});

const endDialog = $("end-dialog");
$("end-session").addEventListener("click", () => endDialog.showModal());
$("end-cancel").addEventListener("click", () => endDialog.close());
endDialog.addEventListener("close", async () => {
  if (endDialog.returnValue !== "end" || !activeRoom) return;
  endDialog.returnValue = "";
  const state = activeRoom;
  if (await act("Ending the session", "POST", `/sessions/${state.sessionId}/end`, {})) {
    closeRoom(state, "Session ended. Attendance has been recorded.");
  }
});

// -- after the session: who came, for how long, who left early -----------------------------------------

const SUMMARY_KEY = "porchlight.console.summary"; // the session just ended, shown after the reload
const EARLY_MS = 5 * 60_000; // leaving more than 5 minutes before the end is "left early"
const clock = (iso) => (iso ? new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" }).format(new Date(iso)) : "");

function duration(ms) {
  const minutes = Math.max(0, Math.round(ms / 60_000));
  return minutes >= 60 ? `${Math.floor(minutes / 60)} h ${minutes % 60} min` : `${minutes} min`;
}

async function showSummary(sessionId) {
  const box = $("summary");
  box.hidden = false;
  $("summary-wait").hidden = false;
  let answer = null;
  for (let tries = 0; tries < 15; tries += 1) { // finalisation follows the end within moments
    answer = await api("GET", `/sessions/${sessionId}/attendance`);
    if (answer.final) break;
    await new Promise((resolve) => { setTimeout(resolve, 1000); });
  }
  const session = await api("GET", `/sessions/${sessionId}`);
  const group = cards.find((card) => card.dataset.groupId === session.group_id);
  const ended = Date.parse(session.ended_at || "") || Date.now();
  const started = Date.parse(session.started_at);
  $("summary-heading").textContent = `Session summary: ${group ? group.dataset.groupName : "your group"}`;
  $("summary-when").textContent = `${new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long" })
    .format(new Date(started))}, ${clock(session.started_at)}–${clock(session.ended_at)} (${duration(ended - started)})`;
  const names = answer.names || {};
  const records = [...answer.records].sort((a, b) => (names[a.patient_id] || "").localeCompare(names[b.patient_id] || ""));
  const rows = records.map((record) => {
    const came = record.status === "attended";
    const notes = [];
    if (came && record.last_leave && ended - Date.parse(record.last_leave) > EARLY_MS) notes.push("left early");
    if (record.reconnects) notes.push(`reconnected ${record.reconnects}×`);
    if (came && record.audio_only_seconds > record.video_seconds) notes.push("mostly sound only");
    if (record.status === "declined") notes.push("declined");
    const cells = [names[record.patient_id] || record.patient_id, came ? "yes" : "no", came ? String(record.attended_minutes) : "",
                   came ? clock(record.first_join) : "", came ? clock(record.last_leave) : "", notes.join(", ")];
    const row = document.createElement("tr");
    for (const [index, text] of cells.entries()) {
      const cell = document.createElement(index === 0 ? "th" : "td");
      if (index === 0) cell.scope = "row";
      if (index === 2) cell.className = "num";
      cell.textContent = text;
      row.append(cell);
    }
    return { row, came, early: notes.includes("left early") };
  });
  $("summary-rows").replaceChildren(...rows.map((r) => r.row));
  const came = rows.filter((r) => r.came).length;
  const early = rows.filter((r) => r.early).length;
  $("summary-line").textContent = `${came} of ${rows.length} came`
    + (early ? `; ${plural(early, "person", "people")} left early.` : ".");
  $("summary-wait").hidden = true;
  box.focus({ preventScroll: true });
}

$("summary-close").addEventListener("click", () => {
  $("summary").hidden = true;
  try { sessionStorage.removeItem(SUMMARY_KEY); } catch { /* private mode */ }
});

function closeRoom(state, message) {
  if (activeRoom !== state) return;
  try { sessionStorage.setItem(SUMMARY_KEY, state.sessionId); } catch { /* private mode */ }
  activeRoom = null;
  clearInterval(state.ticker);
  state.room.close();
  state.live.stop();
  state.grid.clear();
  stopStream(state.stream);
  try { sessionStorage.removeItem(SESSION_KEY); } catch { /* private mode */ }
  // A fresh page shows today's sessions as they now are.
  flashAfterReload(message);
  leaveRoomView();
  window.location.reload();
}

// -- your own microphone and camera --------------------------------------------------------------------

const has = (state, kind) => state.stream.getTracks().some((t) => t.kind === kind);

function sendMediaState(state) {
  state.live.send({ type: "media_state", audio: state.audioOn && has(state, "audio"), video: state.videoOn && has(state, "video"),
                    microphone: state.microphone, camera: state.camera });
}

function updateOwnControls(state) {
  const audio = $("toggle-audio");
  const video = $("toggle-video");
  const micOn = state.audioOn && has(state, "audio");
  const cameraOn = state.videoOn && has(state, "video");
  audio.textContent = micOn ? "Mute my microphone" : "Unmute my microphone";
  audio.classList.toggle("is-off", !micOn);
  audio.setAttribute("aria-pressed", String(!micOn));
  video.textContent = cameraOn ? "Stop my video" : "Start my video";
  video.classList.toggle("is-off", !cameraOn);
  video.setAttribute("aria-pressed", String(!cameraOn));
  state.grid.setSelfMuted(!micOn);
  state.grid.setSelfVideo(cameraOn);
  state.grid.setSelfDevices(state);
}

// A device not started yet (or blocked at first) is asked for again; stopping the video
// releases the camera, and the same sender carries it when it comes back (no new offer).
async function startDevice(state, kind) {
  const { track, problem } = await openOne(kind, kind === "video" ? picker.camera.value : picker.microphone.value);
  if (!track) {
    flash(HELP[problem], { error: true });
    return false;
  }
  state.stream.addTrack(track);
  state[kind === "audio" ? "microphone" : "camera"] = true;
  await state.room.replaceTrack(kind, track);
  state.grid.attach(me.id, state.stream);
  return true;
}

async function toggle(kind, button) {
  const state = activeRoom;
  if (!state) return;
  button.disabled = true;
  try {
    if (kind === "audio") {
      if (!has(state, "audio")) state.audioOn = await startDevice(state, "audio");
      else state.audioOn = !state.audioOn;
      for (const track of state.stream.getAudioTracks()) track.enabled = state.audioOn;
    } else if (state.videoOn && has(state, "video")) {
      state.videoOn = false;
      for (const track of state.stream.getVideoTracks()) {
        track.stop();
        state.stream.removeTrack(track);
      }
      await state.room.replaceTrack("video", null);
    } else {
      state.videoOn = await startDevice(state, "video");
    }
  } finally {
    button.disabled = false;
  }
  if (activeRoom !== state) return;
  sendMediaState(state);
  updateOwnControls(state);
}

// -- another camera, microphone or speaker (the patient page's picker: device_picker.js) --------------

// The new track takes the old one's place on the same sender (no new offer), on or off as before.
async function switchDevice(kind, deviceId) {
  const state = activeRoom;
  if (!state) return;
  const { track, problem } = await openOne(kind, deviceId);
  if (!track) {
    flash(HELP[problem], { error: true });
    return;
  }
  if (activeRoom !== state) { track.stop(); return; }
  for (const old of state.stream.getTracks().filter((t) => t.kind === kind)) {
    old.stop();
    state.stream.removeTrack(old);
  }
  track.enabled = kind === "audio" ? state.audioOn : true;
  if (kind === "video") state.videoOn = true;
  state.stream.addTrack(track);
  state[kind === "audio" ? "microphone" : "camera"] = true;
  await state.room.replaceTrack(kind, track);
  state.grid.attach(me.id, state.stream);
  sendMediaState(state);
  updateOwnControls(state);
  say(`Now using ${track.label || (kind === "video" ? "the chosen camera" : "the chosen microphone")}.`);
}

const picker = new DevicePicker($("device-choice"), {
  // A camera chosen while the video is stopped is used when it starts again (openOne below reads it).
  onCamera: (deviceId) => { if (activeRoom && activeRoom.videoOn && has(activeRoom, "video")) switchDevice("video", deviceId); },
  onMicrophone: (deviceId) => switchDevice("audio", deviceId),
  onSpeaker: (deviceId) => {
    if (activeRoom) activeRoom.grid.setSpeaker(deviceId);
    const context = sharedAudioContext();
    if (context && context.setSinkId) context.setSinkId(deviceId).catch(() => {});
  },
});

$("toggle-audio").addEventListener("click", (event) => toggle("audio", event.currentTarget));
$("toggle-video").addEventListener("click", (event) => toggle("video", event.currentTarget));

// -- after a reload: the summary of the session just ended, or straight back into the one running ---------

let summarised = null;
try { summarised = sessionStorage.getItem(SUMMARY_KEY); } catch { summarised = null; }
if (summarised) showSummary(summarised).catch(() => { $("summary").hidden = true; });

let remembered = null;
try { remembered = sessionStorage.getItem(SESSION_KEY); } catch { remembered = null; }
const resumeCard = remembered && cards.find((card) => card.dataset.openSessionId === remembered);
if (resumeCard) enterRoom(resumeCard, remembered);
else if (remembered) {
  try { sessionStorage.removeItem(SESSION_KEY); } catch { /* private mode */ }
}
