// WebRTC for one participant (CONTRACT.md, "Media"): a *publish* connection that sends our camera
// and microphone to the server, and a *subscribe* connection on which the server offers everyone
// else's tracks, re-offering whenever that set changes. Non-trickle: an offer or answer goes out
// once ICE gathering is complete. Each remote stream's id is the publishing participant's id.

// A publish offer refused for one of these reasons is sent again after a pause: the server
// may not yet know of our admission, or its media may be starting (CONTRACT.md error codes).
const RETRYABLE = new Set(["not_admitted", "media_unavailable"]);
const RETRY_DELAYS = [250, 500, 1000, 2000, 4000]; // ms

// Our camera goes out as simulcast layers, low to high, so the server can give each viewer the
// one that fits the tile it shows us in (README, "Per-viewer adaptation"). Browsers send fewer
// layers at small camera sizes (Chrome: two at 640x480), from the low one up.
const LAYERS = [
  { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 250_000 }, // a phone's thumbnails: 4 of them and the voices in ~1.5 Mbps
  { rid: "f", scaleResolutionDownBy: 1, maxBitrate: 1_200_000 },
];

// Our voice goes out with Opus DTX: while we are silent the browser sends a packet every 400 ms
// instead of 50 a second, so a group's listeners cost each phone almost nothing (README, "Data
// saver"). The offer asks for it (`usedtx=1`); the server's answer then asks the browser for it.
export function withDtx(sdp) {
  return sdp.split(/\r\n(?=m=)/).map((section) => {
    if (!section.startsWith("m=audio")) return section;
    const opus = section.match(/^a=rtpmap:(\d+) opus\/48000/mi);
    if (!opus) return section;
    return section.replace(new RegExp(`^(a=fmtp:${opus[1]} )(.*?)(\r?)$`, "m"),
      (line, head, params, end) => (/(^|;)\s*usedtx=/.test(params) ? line : `${head}${params};usedtx=1${end}`));
  }).join("\r\n");
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", check);
  });
}

export class MediaLink {
  // preferVideoCodec: e.g. "video/H264" where a hardware encoder saves battery; the server
  // forwards each publisher's video in the codec it sends.
  // simulcast: send the camera in layers (see LAYERS); false sends one.
  constructor({ send, iceServers = [], onStream = () => {}, onStreamEnded = () => {}, onState = () => {},
                onScreen = () => {}, preferVideoCodec = null, simulcast = true }) {
    this.send = send;
    this.preferVideoCodec = preferVideoCodec;
    this.simulcast = simulcast;
    this.config = { iceServers, bundlePolicy: "max-bundle" };
    this.onStream = onStream;
    this.onStreamEnded = onStreamEnded;
    this.onState = onState;
    this.onScreen = onScreen; // (sharing, refusal code or null): our screen share started or stopped
    this.screen = null; // { transceiver, track } while we share a screen
    this.offering = Promise.resolve(); // publish re-offers go one at a time, each after its answer
    this.answered = null; // resolves the re-offer in flight when its answer (or refusal) arrives
    this.publishPc = null;
    this.subscribePc = null;
    this.localStream = null;
    this.senders = {}; // "audio" | "video" -> our RTCRtpSender on the publish connection
    this.streams = new Map(); // participant id -> MediaStream currently shown
    this.chain = Promise.resolve(); // subscribe offers are answered one at a time, in order
    this.unanswered = null; // our publish offer's SDP, until the server answers it
    this.refusals = 0;
    this.retry = null;
    this.closed = false;
  }

  // Publish the local stream. One audio and one video section always, with or without a track
  // (null publishes none yet): a camera or microphone started later is replaceTrack, no new offer.
  async start(localStream) {
    this.localStream = localStream;
    if (this.closed) return;
    const pc = new RTCPeerConnection(this.config);
    this.publishPc = pc;
    pc.addEventListener("connectionstatechange", () => this.#report(pc.connectionState));
    const streams = [localStream || new MediaStream()];
    for (const kind of ["audio", "video"]) {
      const track = localStream ? localStream.getTracks().find((t) => t.kind === kind) : null;
      const init = { direction: "sendonly", streams };
      if (kind === "video" && this.simulcast) init.sendEncodings = LAYERS.map((layer) => ({ ...layer }));
      const transceiver = pc.addTransceiver(track || kind, init);
      this.senders[kind] = transceiver.sender;
      if (kind === "video") this.#prefer(transceiver);
    }
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    if (this.closed) return;
    this.unanswered = withDtx(pc.localDescription.sdp);
    this.refusals = 0;
    this.send({ type: "offer", pc: "publish", sdp: this.unanswered });
  }

  // Take a signalling frame from the server; true if it was one of ours.
  handle(frame) {
    if (frame.type === "media_reset") {
      this.#reset();
      return true;
    }
    if (frame.type === "error" && this.unanswered) return this.#refused(frame);
    if (frame.type === "answer" && frame.pc === "publish") {
      this.unanswered = null;
      if (this.publishPc && !this.closed) {
        this.publishPc.setRemoteDescription({ type: "answer", sdp: frame.sdp })
          .catch(() => this.#report("failed"))
          .finally(() => this.#settled());
      }
      return true;
    }
    if (frame.type === "offer" && frame.pc === "subscribe") {
      this.chain = this.chain.then(() => this.#answer(frame.sdp, Boolean(frame.restart)))
        .catch(() => this.#report("failed"));
      return true;
    }
    return false;
  }

  // Turn local tracks on or off (the caller also sends media_state).
  setTracks({ audio, video }) {
    if (!this.localStream) return;
    for (const track of this.localStream.getAudioTracks()) track.enabled = audio;
    for (const track of this.localStream.getVideoTracks()) track.enabled = video;
  }

  // A camera released (null) or started again, or a microphone found after joining: the same
  // sender carries it (RTCRtpSender.replaceTrack), so the camera light goes off for real.
  async replaceTrack(kind, track) {
    const sender = this.senders[kind];
    if (sender && !this.closed) await sender.replaceTrack(track);
  }

  // Share a screen (a track from getDisplayMedia) beside the camera: a second video section whose
  // msid track id starts with "screen" (CONTRACT.md v1.1). The browser's own "Stop sharing" ends
  // the track, and that stops the share. Resolves once the server took the offer (or refused it).
  shareScreen(track) {
    if (!this.publishPc || this.closed) return Promise.reject(new Error("media is not connected yet"));
    return this.#reoffer(async () => {
      const pc = this.publishPc;
      if (this.screen) {
        await this.screen.transceiver.sender.replaceTrack(track);
        this.screen.transceiver.direction = "sendonly";
        this.screen.track = track;
      } else {
        this.screen = { transceiver: pc.addTransceiver(track, { direction: "sendonly" }), track };
      }
      track.addEventListener("ended", () => { if (this.screen && this.screen.track === track) this.stopScreen(); });
      this.onScreen(true, null);
    });
  }

  stopScreen() {
    const screen = this.screen;
    if (!screen || !screen.track) return Promise.resolve();
    return this.#reoffer(async () => this.#endScreen(null));
  }

  // Our screen's section goes inactive (kept, so sharing again reuses it).
  async #endScreen(refusal) {
    const screen = this.screen;
    if (!screen || !screen.track) return;
    screen.track.stop();
    screen.track = null;
    screen.transceiver.direction = "inactive";
    await screen.transceiver.sender.replaceTrack(null).catch(() => {});
    this.onScreen(false, refusal);
  }

  // A publish re-offer on the same connection, after `change`; one at a time.
  #reoffer(change) {
    const run = async () => {
      const pc = this.publishPc;
      if (!pc || this.closed) return;
      await change();
      const answered = new Promise((resolve) => { this.answered = resolve; });
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      if (this.closed) return;
      this.unanswered = withDtx(this.#named(pc.localDescription.sdp));
      this.refusals = 0;
      this.send({ type: "offer", pc: "publish", sdp: this.unanswered });
      await answered;
    };
    this.offering = this.offering.then(run, run);
    return this.offering;
  }

  #settled() {
    const resolve = this.answered;
    this.answered = null;
    if (resolve) resolve();
  }

  // Browsers cannot name a track: the offer we send gives our screen section's msid track id the
  // "screen" prefix the server looks for. Our own local description is left as it is.
  #named(sdp) {
    const mid = this.screen && this.screen.transceiver.mid;
    if (mid === null || mid === undefined) return sdp;
    const sections = sdp.split(/\r\n(?=m=)/);
    return sections.map((section) => {
      if (!section.startsWith("m=video") || !section.split("\r\n").includes(`a=mid:${mid}`)) return section;
      return section.replace(/^a=msid:(\S+) (?!screen)(\S+)(\r?)$/m, "a=msid:$1 screen-$2$3");
    }).join("\r\n");
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    if (this.screen && this.screen.track) {
      this.screen.track.stop();
      this.screen.track = null;
      this.onScreen(false, null);
    }
    this.#settled();
    clearTimeout(this.retry);
    for (const pc of [this.publishPc, this.subscribePc]) if (pc) pc.close();
    for (const id of this.streams.keys()) this.onStreamEnded(id);
    this.streams.clear();
  }

  // Our media moved to another server process (its host stopped): close both connections and
  // publish again; the new host offers the others' tracks on a new subscribe connection.
  #reset() {
    if (this.closed) return;
    clearTimeout(this.retry);
    for (const pc of [this.publishPc, this.subscribePc]) if (pc) pc.close();
    this.publishPc = null;
    this.subscribePc = null;
    this.unanswered = null;
    for (const id of this.streams.keys()) this.onStreamEnded(id);
    this.streams.clear();
    this.chain = Promise.resolve();
    this.onState("Reconnecting video…");
    this.start(this.localStream).catch(() => this.#report("failed"));
  }

  async #answer(sdp, restart) {
    if (this.closed) return;
    if (restart && this.subscribePc) {
      // The server started our subscribe connection over (an answer went missing or failed).
      this.subscribePc.close();
      this.subscribePc = null;
      for (const id of this.streams.keys()) this.onStreamEnded(id);
      this.streams.clear();
    }
    if (!this.subscribePc) {
      const pc = new RTCPeerConnection(this.config);
      this.subscribePc = pc;
      pc.addEventListener("track", (event) => this.#track(event));
      pc.addEventListener("connectionstatechange", () => this.#report(pc.connectionState));
    }
    const pc = this.subscribePc;
    await pc.setRemoteDescription({ type: "offer", sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    if (this.closed) return;
    this.send({ type: "answer", pc: "subscribe", sdp: pc.localDescription.sdp });
    this.#sweep();
  }

  // The server refused our publish offer: say so, and offer again while that can help.
  #refused(frame) {
    if (frame.code === "not_allowed") {
      // Screen sharing is not allowed (now): nothing changed on the server; undo our offer.
      this.unanswered = null;
      const pc = this.publishPc;
      const undo = pc && pc.signalingState === "have-local-offer"
        ? pc.setLocalDescription({ type: "rollback" }) : Promise.resolve();
      undo.catch(() => {}).then(() => this.#endScreen("not_allowed")).finally(() => this.#settled());
      return true;
    }
    if (!RETRYABLE.has(frame.code)) {
      if (frame.code !== "bad_sdp") return false;
      this.unanswered = null;
      this.#settled();
      this.onState("Your video could not be sent (the server refused it). Leave and join again to retry.");
      return true;
    }
    if (this.refusals >= RETRY_DELAYS.length) {
      this.unanswered = null;
      this.#settled();
      this.onState("Your video could not start. Others may not see or hear you; leave and join again.");
      return true;
    }
    const delay = RETRY_DELAYS[this.refusals++];
    this.onState("Video is getting ready, trying again…");
    clearTimeout(this.retry);
    this.retry = setTimeout(() => {
      if (!this.closed && this.unanswered) this.send({ type: "offer", pc: "publish", sdp: this.unanswered });
    }, delay);
    return true;
  }

  #prefer(transceiver) {
    const wanted = (this.preferVideoCodec || "").toLowerCase();
    if (!wanted || !transceiver.setCodecPreferences || !RTCRtpSender.getCapabilities) return;
    const codecs = RTCRtpSender.getCapabilities("video").codecs;
    const first = codecs.filter((c) => c.mimeType.toLowerCase() === wanted);
    if (first.length) transceiver.setCodecPreferences([...first, ...codecs.filter((c) => !first.includes(c))]);
  }

  #track(event) {
    const stream = event.streams[0];
    if (!stream) return;
    const id = stream.id;
    stream.addEventListener("removetrack", () => this.#sweep());
    if (this.streams.get(id) !== stream || !stream.active) {
      this.streams.set(id, stream);
    }
    this.onStream(id, stream);
  }

  // A participant whose tracks the server withdrew (they left, or were removed) has ended.
  #sweep() {
    for (const [id, stream] of this.streams) {
      if (stream.getTracks().length === 0) {
        this.streams.delete(id);
        this.onStreamEnded(id);
      }
    }
  }

  #report(state) {
    const words = {
      new: "Connecting video…", connecting: "Connecting video…", connected: "Video connected.",
      disconnected: "Video connection interrupted, trying again…", failed: "Video could not connect.",
      closed: "Video closed.",
    };
    this.onState(words[state] || state, state);
  }
}
