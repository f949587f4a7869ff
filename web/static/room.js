// Media in a session, through the media client (media.js, written alongside the server's
// media plane). The page works without it: then there is no media, and the page says so.

import { ViewReporter } from "/static/view.js";

let loading = null;
function loadMediaLink() {
  if (!loading) {
    loading = import("/static/media.js").then((module) => module.MediaLink || null).catch(() => null);
  }
  return loading;
}

export class Room {
  // send(frame): send a frame on the realtime socket; grid: the VideoGrid; onState(text).
  constructor({ send, grid, onState, onScreen }) {
    this.send = send;
    this.grid = grid;
    this.onState = onState || (() => {});
    this.onScreen = onScreen || (() => {}); // (sharing, refusal code or null)
    this.link = null;
    this.generation = 0;
    this.starting = false;
    this.early = []; // offers that arrive while media.js is still loading
    // Which tiles the page shows, and how large: the server sends only those, each in the layer
    // that fits (sent while media is up; the server forgets it with the connection).
    this.views = new ViewReporter((tiles, dataSaver) => Boolean(this.link)
      && this.send(dataSaver ? { type: "view", tiles, data_saver: true } : { type: "view", tiles }) !== false);
    if (grid.setViews) grid.setViews(this.views);
    loadMediaLink(); // fetch it now, not at admission
  }

  async start(localStream, iceServers) {
    this.close();
    const generation = ++this.generation;
    this.starting = true;
    const MediaLink = await loadMediaLink();
    if (generation !== this.generation) return; // closed (or restarted) while loading
    this.starting = false;
    const early = this.early;
    this.early = [];
    if (!MediaLink) {
      this.onState("Video is not available on this server right now; you are connected without it.");
      return;
    }
    this.link = new MediaLink({
      send: (frame) => this.send(frame),
      iceServers: iceServers || [],
      onStream: (participantId, stream) => this.grid.attach(participantId, stream),
      onStreamEnded: (participantId) => this.grid.detach(participantId),
      onState: (text, state) => this.onState(text, state),
      onScreen: (sharing, refusal) => this.onScreen(sharing, refusal),
    });
    this.views.resend();
    // The server may offer the others' streams as soon as we are admitted.
    for (const frame of early) this.link.handle(frame);
    try {
      await this.link.start(localStream || null);
    } catch (error) {
      this.onState("Video could not start. You can still hear and talk if your microphone works.");
      console.warn("media start failed", error);
    }
  }

  // Data saver: everyone's audio and only the speaker's video, small (the server sends nothing else).
  setDataSaver(on) {
    this.views.setDataSaver(on);
  }

  handle(frame) {
    if (this.link) return Boolean(this.link.handle(frame));
    if (this.starting && frame.type !== "error") {
      this.early.push(frame);
      return true;
    }
    return false;
  }

  // Ask the browser for a screen, window or tab and share it beside the camera. Rejects when the
  // person cancels the browser's picker, or media is not connected yet.
  async shareScreen() {
    if (!this.link || !this.link.shareScreen) throw new Error("Video is not connected yet.");
    const display = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 }, audio: false });
    const [track] = display.getVideoTracks();
    track.contentHint = "detail"; // text on slides stays sharp rather than smooth
    await this.link.shareScreen(track);
  }

  async stopScreen() {
    if (this.link && this.link.stopScreen) await this.link.stopScreen();
  }

  setTracks(tracks) {
    if (this.link) this.link.setTracks(tracks);
  }

  async replaceTrack(kind, track) {
    if (this.link && this.link.replaceTrack) await this.link.replaceTrack(kind, track);
  }

  close() {
    this.generation += 1;
    this.starting = false;
    this.early = [];
    if (this.link) {
      try { this.link.close(); } catch { /* already closed */ }
    }
    this.link = null;
  }
}
