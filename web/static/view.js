// Which of the others' videos this page shows, and how large (README, "Per-viewer adaptation"):
// the server then sends nothing of a hidden or off-screen tile and, of a shown one, the simulcast
// layer that fits it. Sent as a `view` frame when that changes (never per frame); a tab in the
// background shows nothing, so it receives sound only.

const SETTLE_MS = 150; // a layout change settles before it is reported

// The pixel density a tile's size is reported at, as LiveKit's adaptive stream does it: 2 on
// very dense screens (phones at 3x and more), 1 otherwise. A phone at 3x showing 190 px tiles
// would otherwise ask for 570 px, the camera's full layer on every tile (~6 Mbps at 12 people).
export function pixelDensity(devicePixelRatio) {
  return (devicePixelRatio || 1) >= 3 ? 2 : 1;
}

export class ViewReporter {
  // send(tiles, dataSaver): sends {type: "view", tiles, data_saver?}; called only when that changed.
  constructor(send) {
    this.send = send;
    this.dataSaver = false; // audio and the speaker's small video only (README, "Data saver")
    this.elements = new Map(); // stream id -> element showing it
    this.onScreen = new Map(); // element -> whether any of it is in the viewport
    this.last = null;
    this.timer = null;
    this.schedule = this.schedule.bind(this);
    this.intersections = new IntersectionObserver((entries) => {
      for (const entry of entries) this.onScreen.set(entry.target, entry.isIntersecting);
      this.schedule();
    });
    this.resizes = new ResizeObserver(this.schedule);
    document.addEventListener("visibilitychange", this.schedule);
  }

  watch(id, element) {
    const before = this.elements.get(id);
    if (before === element) return;
    if (before) this.unwatch(id);
    this.elements.set(id, element);
    this.intersections.observe(element);
    this.resizes.observe(element);
    this.schedule();
  }

  unwatch(id) {
    const element = this.elements.get(id);
    if (!element) return;
    this.elements.delete(id);
    this.intersections.unobserve(element);
    this.resizes.unobserve(element);
    this.onScreen.delete(element);
    this.schedule();
  }

  tiles() {
    if (document.visibilityState === "hidden") return [];
    const ratio = pixelDensity(window.devicePixelRatio);
    const tiles = [];
    for (const [id, element] of this.elements) {
      if (!this.onScreen.get(element)) continue;
      const box = element.getBoundingClientRect();
      if (box.width < 1 || box.height < 1) continue; // hidden (display: none)
      tiles.push({ id, width: Math.round(box.width * ratio), height: Math.round(box.height * ratio) });
    }
    return tiles;
  }

  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.report(), SETTLE_MS);
  }

  report() {
    const tiles = this.tiles();
    const key = JSON.stringify([tiles, this.dataSaver]);
    if (key === this.last) return;
    if (this.send(tiles, this.dataSaver) !== false) this.last = key;
  }

  setDataSaver(on) {
    this.dataSaver = on;
    this.schedule();
  }

  // Say it again (a new media connection: the server forgot).
  resend() {
    this.last = null;
    this.schedule();
  }

  close() {
    clearTimeout(this.timer);
    this.intersections.disconnect();
    this.resizes.disconnect();
    document.removeEventListener("visibilitychange", this.schedule);
  }
}
