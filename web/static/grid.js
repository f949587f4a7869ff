// The video grid: one tile per person in the roster (and yourself), their name, their video
// when it arrives, and a ring while they speak (from the level of their audio). The roster's
// media state and hand (CONTRACT.md v1.1) show as words on the tile — "muted", "camera off",
// "hand raised" — read by screen readers with the name, and a camera that is off shows the
// person's initials, never a black picture.

const SCREEN_SUFFIX = ":screen"; // the stream id of a participant's shared screen
const SPEAKING_LEVEL = 0.04; // RMS of the time-domain signal (0..1) that counts as speech
const SAMPLE_MS = 150;

function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/).filter(Boolean);
  return (parts.slice(0, 2).map((p) => p[0]).join("") || "?").toUpperCase();
}

let audioContext = null;
export function sharedAudioContext() {
  if (!audioContext) {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return null;
    audioContext = new Context();
  }
  if (audioContext.state === "suspended") audioContext.resume().catch(() => {});
  return audioContext;
}

// Browsers start audio only after a tap or click: resume on the first one.
for (const kind of ["pointerdown", "keydown"]) {
  window.addEventListener(kind, () => { if (audioContext) audioContext.resume().catch(() => {}); }, { capture: true });
}

// A level meter on a stream's audio: returns { level(): 0..1, stop() } or null.
export function levelOf(stream) {
  if (!stream || stream.getAudioTracks().length === 0) return null;
  const context = sharedAudioContext();
  if (!context) return null;
  const source = context.createMediaStreamSource(stream);
  const analyser = context.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  return {
    level() {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      return Math.sqrt(sum / samples.length);
    },
    stop() { try { source.disconnect(); } catch { /* gone */ } },
  };
}

// The grid that shows n tiles largest in a width x height box: for each column count, the tile
// that fits its cell (between 4:3 and 16:9), and the count whose tiles have the most area.
export function fitTiles(n, width, height, gap) {
  let best = { cols: 1, rows: Math.max(1, n), width: 0, height: 0 };
  for (let cols = 1; cols <= Math.max(1, n); cols += 1) {
    const rows = Math.ceil(Math.max(1, n) / cols);
    const cellW = (width - gap * (cols - 1)) / cols;
    const cellH = (height - gap * (rows - 1)) / rows;
    if (cellW <= 0 || cellH <= 0) continue;
    const w = Math.floor(Math.min(cellW, (cellH * 16) / 9));
    const h = Math.floor(Math.min(cellH, (w * 3) / 4));
    if (w * h > best.width * best.height) best = { cols, rows, width: w, height: h };
  }
  return best;
}

export class VideoGrid {
  constructor(container, { selfLabel = "You" } = {}) {
    this.container = container;
    this.selfLabel = selfLabel;
    this.tiles = new Map(); // id -> { figure, video, meter, stream }
    this.streams = new Map(); // id -> MediaStream: a stream may arrive before its roster entry
    this.screens = new Map(); // "<id>:screen" -> { figure, video, caption }: shared screens
    this.views = null; // the room's ViewReporter, once it gives one (setViews)
    this.selfId = null;
    this.timer = setInterval(() => this.sampleLevels(), SAMPLE_MS);
    this.selfHidden = false;
    this.speakerView = false;
    this.featured = null; // the tile shown large in speaker view
    this.lastSpeaker = null;
    this.activeSpeaker = null; // the server's `active_speaker`
    this.dataSaver = false; // only the active speaker's video arrives: the others show their initials
    if (window.ResizeObserver) new ResizeObserver(() => this.layout()).observe(container);
    window.addEventListener("resize", () => this.layout());
  }

  // The speaker the others are heard from (where the browser lets a page choose: setSinkId).
  setSpeaker(deviceId) {
    this.sinkId = deviceId;
    for (const [id, tile] of this.tiles) if (id !== this.selfId) this.sink(tile.video);
  }

  sink(video) {
    if (this.sinkId && video.setSinkId) video.setSinkId(this.sinkId).catch(() => {});
  }

  // Your own tile can be hidden from your own screen (the group still sees you).
  hideSelf(hidden) {
    this.selfHidden = hidden;
    this.layout();
  }

  // Speaker view: whoever speaks (the facilitator until someone does) large, the others in a row.
  setSpeakerView(on) {
    this.speakerView = on;
    this.layout();
  }

  // Data saver (the server sends only the active speaker's video): the others' tiles show their
  // initials, not a picture frozen where the video stopped.
  setDataSaver(on) {
    this.dataSaver = on;
    for (const tile of this.tiles.values()) this.showState(tile);
  }

  setActiveSpeaker(id) {
    this.activeSpeaker = id;
    if (this.dataSaver) for (const tile of this.tiles.values()) this.showState(tile);
  }

  tile(id, name, role) {
    let tile = this.tiles.get(id);
    if (!tile) {
      const figure = document.createElement("figure");
      figure.className = "tile";
      figure.dataset.participantId = id;
      const video = document.createElement("video");
      video.autoplay = true;
      video.playsInline = true;
      video.setAttribute("playsinline", "");
      const avatar = document.createElement("div");
      avatar.className = "avatar";
      avatar.setAttribute("aria-hidden", "true");
      const caption = document.createElement("figcaption");
      const label = document.createElement("span");
      label.className = "tile-name";
      const badges = document.createElement("span");
      badges.className = "tile-badges";
      caption.append(label, badges);
      figure.append(video, avatar, caption);
      if (id !== this.selfId) this.sink(video);
      tile = { figure, video, avatar, label, badges, meter: null, stream: null, role: null,
               audioOn: true, videoOn: true, microphone: true, camera: true, hand: false, shown: "" };
      this.tiles.set(id, tile);
      this.container.append(figure);
      if (this.streams.has(id)) this.bind(tile, this.streams.get(id));
    }
    const self = id === this.selfId;
    tile.label.textContent = self ? `${name} (${this.selfLabel})` : name;
    tile.role = role;
    tile.avatar.textContent = initials(name);
    tile.figure.classList.toggle("is-self", self);
    this.showState(tile);
    return tile;
  }

  // The words under the name, and the picture or the initials.
  showState(tile) {
    const words = [];
    if (tile.role === "facilitator" || tile.role === "admin") words.push(["role", "Facilitator"]);
    if (tile.hand) words.push(["hand", "hand raised"]);
    // No microphone or camera at all (blocked, or none) says so, rather than "muted".
    if (!tile.microphone) words.push(["muted", "no microphone"]);
    else if (!tile.audioOn) words.push(["muted", "muted"]);
    if (!tile.camera) words.push(["camera-off", "no camera"]);
    else if (!tile.videoOn) words.push(["camera-off", "camera off"]);
    tile.figure.classList.toggle("is-muted", !tile.audioOn);
    tile.figure.classList.toggle("is-camera-off", !tile.videoOn);
    tile.figure.classList.toggle("has-hand", tile.hand);
    const id = tile.figure.dataset.participantId;
    const saved = this.dataSaver && id !== this.selfId && id !== this.activeSpeaker;
    tile.figure.classList.toggle("has-video", tile.videoOn && !saved && this.hasLiveVideo(tile.stream));
    const shown = words.map(([, text]) => text).join("|");
    if (shown === tile.shown) return;
    tile.shown = shown;
    tile.badges.replaceChildren();
    for (const [kind, text] of words) {
      const gap = document.createElement("span");
      gap.className = "visually-hidden";
      gap.textContent = ", "; // "Alex R., muted, camera off" to a screen reader
      const badge = document.createElement("span");
      badge.className = `tile-badge is-${kind}`;
      badge.textContent = text;
      tile.badges.append(gap, badge);
    }
  }

  // The room's ViewReporter (view.js): told which element shows each remote stream.
  setViews(views) {
    this.views = views;
    for (const [id, tile] of this.tiles) if (id !== this.selfId) views.watch(id, tile.figure);
    for (const [id, screen] of this.screens) views.watch(id, screen.figure);
  }

  setSelf(id, name, role, stream) {
    this.selfId = id;
    if (this.views) this.views.unwatch(id);
    const tile = this.tile(id, name, role);
    tile.video.muted = true; // never play yourself back
    this.attach(id, stream);
    this.layout();
  }

  // Your own microphone and camera: the page knows them before the server does.
  setSelfVideo(enabled) {
    const tile = this.tiles.get(this.selfId);
    if (!tile) return;
    tile.videoOn = enabled;
    this.showState(tile);
  }

  // Whether you have a microphone and a camera at all ("no microphone" rather than "muted").
  setSelfDevices({ microphone, camera }) {
    const tile = this.tiles.get(this.selfId);
    if (!tile) return;
    tile.microphone = microphone;
    tile.camera = camera;
    this.showState(tile);
  }

  setSelfMuted(muted) {
    const tile = this.tiles.get(this.selfId);
    if (!tile) return;
    tile.audioOn = !muted;
    this.showState(tile);
  }

  // participants: [{id, display_name, role, audio?, video?, hand?}] from the server's roster frame.
  setRoster(participants) {
    const keep = new Set(participants.map((p) => p.id));
    if (this.selfId) keep.add(this.selfId);
    for (const person of participants) {
      const tile = this.tile(person.id, person.display_name, person.role);
      if (this.views && person.id !== this.selfId) this.views.watch(person.id, tile.figure);
      tile.hand = person.hand === true;
      if (person.id !== this.selfId) {
        // Absent (a server before v1.1) reads as on: no badge rather than a wrong one.
        tile.audioOn = person.audio !== false;
        tile.videoOn = person.video !== false;
        tile.microphone = person.microphone !== false;
        tile.camera = person.camera !== false;
      }
      this.showState(tile);
    }
    for (const [id, tile] of this.tiles) {
      if (!keep.has(id)) {
        if (this.views) this.views.unwatch(id);
        if (tile.meter) tile.meter.stop();
        tile.figure.remove();
        this.tiles.delete(id);
      }
    }
    for (const [id, screen] of this.screens) this.showScreen(id, screen.video.srcObject); // whose it is
    // Yourself first, then everyone in roster order.
    const order = [this.selfId, ...participants.map((p) => p.id)].filter((id, i, all) => id && all.indexOf(id) === i);
    for (const id of order) {
      const tile = this.tiles.get(id);
      if (tile) this.container.append(tile.figure);
    }
    this.layout();
  }

  hasLiveVideo(stream) {
    return Boolean(stream && stream.getVideoTracks().some((t) => t.readyState === "live" && t.enabled));
  }

  attach(id, stream) {
    if (id.endsWith(SCREEN_SUFFIX)) {
      this.showScreen(id, stream);
      return;
    }
    if (stream) this.streams.set(id, stream);
    else this.streams.delete(id);
    const tile = this.tiles.get(id);
    if (tile) this.bind(tile, stream);
  }

  bind(tile, stream) {
    if (tile.meter) tile.meter.stop();
    tile.stream = stream || null;
    tile.video.srcObject = stream || null;
    tile.meter = stream ? levelOf(stream) : null;
    this.showState(tile);
    if (stream) {
      tile.video.play().catch(() => {});
      for (const track of stream.getVideoTracks()) {
        const refresh = () => { if (tile.stream === stream) this.showState(tile); };
        track.addEventListener("ended", refresh);
        track.addEventListener("mute", refresh);
        track.addEventListener("unmute", refresh);
      }
    }
  }

  // A shared screen (stream id "<participant id>:screen", CONTRACT.md v1.1) is shown large, above
  // the tiles, with whose screen it is.
  showScreen(id, stream) {
    let screen = this.screens.get(id);
    if (!screen) {
      const figure = document.createElement("figure");
      figure.className = "screen-share";
      figure.dataset.participantId = id.slice(0, -SCREEN_SUFFIX.length);
      const video = document.createElement("video");
      video.autoplay = true;
      video.playsInline = true;
      video.muted = true;
      video.setAttribute("playsinline", "");
      const caption = document.createElement("figcaption");
      figure.append(video, caption);
      screen = { figure, video, caption };
      this.screens.set(id, screen);
      this.container.before(figure);
      if (this.views) this.views.watch(id, figure);
    }
    const owner = this.tiles.get(screen.figure.dataset.participantId);
    const name = owner ? owner.label.textContent : "Someone";
    screen.caption.textContent = `Shared screen: ${name}`;
    if (screen.video.srcObject !== stream) screen.video.srcObject = stream;
    screen.video.play().catch(() => {});
    this.container.parentElement?.classList.add("has-screen");
  }

  hideScreen(id) {
    const screen = this.screens.get(id);
    if (!screen) return;
    screen.video.srcObject = null;
    screen.figure.remove();
    this.screens.delete(id);
    if (this.views) this.views.unwatch(id);
    if (!this.screens.size) this.container.parentElement?.classList.remove("has-screen");
  }

  detach(id) {
    if (id.endsWith(SCREEN_SUFFIX)) {
      this.hideScreen(id);
      return;
    }
    this.streams.delete(id);
    const tile = this.tiles.get(id);
    if (!tile) return;
    if (tile.meter) tile.meter.stop();
    tile.meter = null;
    tile.stream = null;
    tile.video.srcObject = null;
    tile.figure.classList.remove("has-video", "is-speaking");
  }

  sampleLevels() {
    for (const tile of this.tiles.values()) {
      const speaking = Boolean(tile.meter) && !tile.figure.classList.contains("is-muted")
        && tile.meter.level() > SPEAKING_LEVEL;
      tile.figure.classList.toggle("is-speaking", speaking);
      if (speaking && tile !== this.tiles.get(this.selfId)) this.lastSpeaker = tile;
    }
    if (this.speakerView && this.lastSpeaker && this.lastSpeaker !== this.featured) this.layout();
  }

  // Sizes the tiles to the box the page gives the grid (CSS custom properties the stylesheet uses),
  // so up to 13 fit without scrolling, names included, on a phone and a laptop alike.
  layout() {
    const self = this.tiles.get(this.selfId);
    if (self) self.figure.hidden = this.selfHidden && this.tiles.size > 1;
    const shown = [...this.tiles.values()].filter((t) => !t.figure.hidden);
    this.container.dataset.count = String(Math.min(shown.length, 13));
    this.container.classList.toggle("is-speaker-view", this.speakerView && shown.length > 1);
    this.featured = null;
    for (const tile of shown) tile.figure.classList.remove("is-featured");
    if (this.speakerView && shown.length > 1) {
      const alive = this.lastSpeaker && shown.includes(this.lastSpeaker) ? this.lastSpeaker : null;
      const facilitator = shown.find((t) => t !== self && (t.role === "facilitator" || t.role === "admin"));
      this.featured = alive || facilitator || shown.find((t) => t !== self) || shown[0];
      this.featured.figure.classList.add("is-featured");
    }
    const width = this.container.clientWidth;
    const height = this.container.clientHeight;
    if (!width || !height) return;
    const gap = parseFloat(getComputedStyle(this.container).columnGap) || 8;
    const fit = this.featured
      ? fitTiles(1, width, Math.max(0, height * 0.72), gap)
      : fitTiles(shown.length, width, height, gap);
    const style = this.container.style;
    style.setProperty("--cols", String(fit.cols));
    style.setProperty("--tile-width", `${fit.width}px`);
    style.setProperty("--tile-height", `${fit.height}px`);
    if (this.featured) { // the others share what is left beneath, without scrolling
      const strip = fitTiles(shown.length - 1, width, Math.max(40, height - fit.height - gap), gap);
      style.setProperty("--strip-width", `${strip.width}px`);
      style.setProperty("--strip-height", `${strip.height}px`);
    }
    this.container.classList.add("is-fitted");
    // Small tiles: smaller initials, and names that wrap rather than being cut.
    this.container.classList.toggle("is-dense", !this.featured && fit.height < 150);
  }

  clear() {
    if (this.views) for (const id of this.tiles.keys()) this.views.unwatch(id);
    for (const tile of this.tiles.values()) {
      if (tile.meter) tile.meter.stop();
      tile.figure.remove();
    }
    this.tiles.clear();
    this.streams.clear();
    for (const id of [...this.screens.keys()]) this.hideScreen(id);
    this.selfId = null;
    this.layout();
  }
}
