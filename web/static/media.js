// WebRTC for one participant (CONTRACT.md, "Media"): a *publish* connection that sends our camera
// and microphone to the server, and a *subscribe* connection on which the server offers everyone
// else's tracks, re-offering whenever that set changes. Non-trickle: an offer or answer goes out
// once ICE gathering is complete. Each remote stream's id is the publishing participant's id.

// A publish offer refused for one of these reasons is sent again after a pause: the server
// may not yet know of our admission, or its media may be starting (CONTRACT.md error codes).
const RETRYABLE = new Set(["not_admitted", "media_unavailable"]);
const RETRY_DELAYS = [250, 500, 1000, 2000, 4000]; // ms

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
  constructor({ send, iceServers = [], onStream = () => {}, onStreamEnded = () => {}, onState = () => {},
                preferVideoCodec = null }) {
    this.send = send;
    this.preferVideoCodec = preferVideoCodec;
    this.config = { iceServers, bundlePolicy: "max-bundle" };
    this.onStream = onStream;
    this.onStreamEnded = onStreamEnded;
    this.onState = onState;
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
      const transceiver = pc.addTransceiver(track || kind, { direction: "sendonly", streams });
      this.senders[kind] = transceiver.sender;
      if (kind === "video") this.#prefer(transceiver);
    }
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    if (this.closed) return;
    this.unanswered = pc.localDescription.sdp;
    this.refusals = 0;
    this.send({ type: "offer", pc: "publish", sdp: this.unanswered });
  }

  // Take a signalling frame from the server; true if it was one of ours.
  handle(frame) {
    if (frame.type === "error" && this.unanswered) return this.#refused(frame);
    if (frame.type === "answer" && frame.pc === "publish") {
      this.unanswered = null;
      if (this.publishPc && !this.closed) {
        this.publishPc.setRemoteDescription({ type: "answer", sdp: frame.sdp })
          .catch(() => this.#report("failed"));
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

  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retry);
    for (const pc of [this.publishPc, this.subscribePc]) if (pc) pc.close();
    for (const id of this.streams.keys()) this.onStreamEnded(id);
    this.streams.clear();
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
    if (!RETRYABLE.has(frame.code)) {
      if (frame.code !== "bad_sdp") return false;
      this.unanswered = null;
      this.onState("Your video could not be sent (the server refused it). Leave and join again to retry.");
      return true;
    }
    if (this.refusals >= RETRY_DELAYS.length) {
      this.unanswered = null;
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
