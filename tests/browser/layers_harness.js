// Runs inside a tab on the server's origin: one participant over the public WebSocket with
// /static/media.js, reporting what it shows through /static/view.js. Each remote participant's
// video is a <video> of the CSS size asked for (window.harness.size(id, w, h); 0 hides it).
async ({ hello, startOn, publish, camera }) => {
  const { MediaLink } = await import("/static/media.js");
  const { ViewReporter } = await import("/static/view.js");
  const local = publish
    ? await navigator.mediaDevices.getUserMedia({ audio: true, video: camera })
    : null;
  const state = { videos: {}, frames: [], link: null, views: [], sizes: {} };
  window.harness = state;
  const socket = new WebSocket(`ws://${location.host}/api/v1/ws`);
  const send = (frame) => socket.send(JSON.stringify(frame));
  const views = new ViewReporter((tiles) => { state.views.push(tiles); send({ type: "view", tiles }); });
  state.size = (id, width, height) => {
    state.sizes[id] = [width, height];
    const video = state.videos[id];
    if (!video) return;
    video.hidden = width === 0;
    video.style.width = `${width}px`;
    video.style.height = `${height}px`;
  };
  state.link = new MediaLink({
    send,
    onStream: (id, stream) => {
      let video = state.videos[id];
      if (!video) {
        video = document.createElement("video");
        video.autoplay = true;
        video.muted = true;
        video.playsInline = true;
        video.style.objectFit = "cover";
        document.body.append(video);
        state.videos[id] = video;
        const [width, height] = state.sizes[id] || [320, 240];
        state.size(id, width, height);
        views.watch(id, video);
      }
      if (video.srcObject !== stream) video.srcObject = stream;
    },
    onStreamEnded: (id) => { views.unwatch(id); state.videos[id]?.remove(); delete state.videos[id]; },
  });
  // What arrives of one participant's video: the size of the frames decoded, and packets so far.
  state.inbound = async (id) => {
    const pc = state.link.subscribePc;
    if (!pc) return null;
    const track = state.videos[id]?.srcObject?.getVideoTracks()[0];
    if (!track) return null;
    const receiver = pc.getReceivers().find((r) => r.track === track);
    const stats = await receiver.getStats();
    const inbound = [...stats.values()].find((s) => s.type === "inbound-rtp");
    return inbound ? { width: inbound.frameWidth || 0, packets: inbound.packetsReceived || 0,
                       frames: inbound.framesDecoded || 0 } : null;
  };
  // What the publisher sends: each layer's rid and frame width.
  state.outbound = async () => {
    const stats = await state.link.publishPc.getStats();
    return [...stats.values()].filter((s) => s.type === "outbound-rtp" && s.kind === "video")
      .map((s) => ({ rid: s.rid, width: s.frameWidth || 0, active: s.active }));
  };
  socket.addEventListener("message", (event) => {
    const frame = JSON.parse(event.data);
    if (state.link.handle(frame)) return;
    state.frames.push(frame);
    if (frame.type === startOn && !state.started) {
      state.started = true;
      state.link.start(local);
    }
  });
  socket.addEventListener("open", () => send(hello));
};
