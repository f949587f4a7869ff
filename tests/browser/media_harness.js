// Runs inside a tab on the server's origin: one participant over the public WebSocket and
// /static/media.js, with each remote participant's video in a <video> keyed by their id.
async ({ hello, startOn, preferVideoCodec = null }) => {
  const { MediaLink } = await import("/static/media.js");
  const local = await navigator.mediaDevices.getUserMedia({
    audio: true, video: { width: 320, height: 240, frameRate: 15 },
  });
  const state = { videos: {}, frames: [], link: null, ended: {} };
  window.harness = state;
  const socket = new WebSocket(`ws://${location.host}/api/v1/ws`);
  state.link = new MediaLink({
    preferVideoCodec,
    send: (frame) => socket.send(JSON.stringify(frame)),
    onStream: (id, stream) => {
      let video = state.videos[id];
      if (!video) {
        video = document.createElement("video");
        video.autoplay = true;
        video.muted = true;
        video.playsInline = true;
        video.dataset.participant = id;
        document.body.append(video);
        state.videos[id] = video;
      }
      if (video.srcObject !== stream) video.srcObject = stream;
    },
    onStreamEnded: (id) => {
      state.videos[id]?.remove();
      delete state.videos[id];
      state.ended[id] = performance.now();
    },
  });
  socket.addEventListener("message", (event) => {
    const frame = JSON.parse(event.data);
    if (state.link.handle(frame)) return;
    state.frames.push(frame.type);
    if (frame.type === startOn && !state.started) {
      state.started = true;
      state.link.start(local);
    }
  });
  socket.addEventListener("open", () => socket.send(JSON.stringify(hello)));
};
