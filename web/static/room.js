// Media in a session, through the media client (media.js, written alongside the server's
// media plane). The page works without it: then there is no media, and the page says so.

let loading = null;
function loadMediaLink() {
  if (!loading) {
    loading = import("/static/media.js").then((module) => module.MediaLink || null).catch(() => null);
  }
  return loading;
}

export class Room {
  // send(frame): send a frame on the realtime socket; grid: the VideoGrid; onState(text).
  constructor({ send, grid, onState }) {
    this.send = send;
    this.grid = grid;
    this.onState = onState || (() => {});
    this.link = null;
    this.generation = 0;
  }

  async start(localStream, iceServers) {
    this.close();
    const generation = ++this.generation;
    const MediaLink = await loadMediaLink();
    if (generation !== this.generation) return; // closed (or restarted) while loading
    if (!MediaLink) {
      this.onState("Video is not available on this server right now; you are connected without it.");
      return;
    }
    this.link = new MediaLink({
      send: (frame) => this.send(frame),
      iceServers: iceServers || [],
      onStream: (participantId, stream) => this.grid.attach(participantId, stream),
      onStreamEnded: (participantId) => this.grid.detach(participantId),
      onState: (text) => this.onState(text),
    });
    try {
      await this.link.start(localStream || null);
    } catch (error) {
      this.onState("Video could not start. You can still hear and talk if your microphone works.");
      console.warn("media start failed", error);
    }
  }

  handle(frame) {
    return this.link ? Boolean(this.link.handle(frame)) : false;
  }

  setTracks(tracks) {
    if (this.link) this.link.setTracks(tracks);
  }

  close() {
    this.generation += 1;
    if (this.link) {
      try { this.link.close(); } catch { /* already closed */ }
    }
    this.link = null;
  }
}
