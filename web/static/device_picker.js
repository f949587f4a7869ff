// Choosing a camera, microphone or speaker, remembered on this device (localStorage): one picker
// for the patient's page and the facilitator's console. The page decides what a choice does
// (a new track on the same sender, the speaker of every tile); this module lists, remembers and tells.
import { listDevices } from "/static/devices.js";

const CHOSEN_KEY = "porchlight.devices";

// The devices chosen before on this device: { camera, microphone, speaker } (device ids).
export function chosen() {
  try { return JSON.parse(localStorage.getItem(CHOSEN_KEY)) || {}; } catch { return {}; }
}

function remember(kind, deviceId) {
  try { localStorage.setItem(CHOSEN_KEY, JSON.stringify({ ...chosen(), [kind]: deviceId })); } catch { /* private mode */ }
}

function fill(select, devices, selected, noun) {
  select.replaceChildren(...devices.map((device, index) => {
    const option = new Option(device.label || `${noun} ${index + 1}`, device.deviceId);
    option.selected = device.deviceId === selected;
    return option;
  }));
}

// The deviceId a stream's track of `kind` ("audio" | "video") comes from, or "".
export function inUse(stream, kind) {
  const track = stream && stream.getTracks().find((t) => t.kind === kind);
  return track ? track.getSettings().deviceId || "" : "";
}

// `root`: the <details> holding <select data-pick="camera|microphone|speaker"> (the speaker's
// field is data-pick-field="speaker", shown only where a page may choose its speaker: setSinkId).
export class DevicePicker {
  constructor(root, { onCamera, onMicrophone, onSpeaker }) {
    this.root = root;
    this.camera = root.querySelector("[data-pick=camera]");
    this.microphone = root.querySelector("[data-pick=microphone]");
    this.speaker = root.querySelector("[data-pick=speaker]");
    this.speakerField = root.querySelector("[data-pick-field=speaker]");
    const listen = (select, kind, handler) => select.addEventListener("change", () => {
      remember(kind, select.value);
      handler(select.value);
    });
    listen(this.camera, "camera", onCamera);
    listen(this.microphone, "microphone", onMicrophone);
    listen(this.speaker, "speaker", onSpeaker);
  }

  // The lists, with what `stream` uses (else what was chosen before) selected. Labels are there
  // once a device was allowed, so call it again after a device starts.
  async fill(stream) {
    const found = await listDevices();
    fill(this.camera, found.videoinput, inUse(stream, "video") || chosen().camera, "Camera");
    fill(this.microphone, found.audioinput, inUse(stream, "audio") || chosen().microphone, "Microphone");
    const speakers = "setSinkId" in HTMLMediaElement.prototype && found.audiooutput.length > 0;
    this.speakerField.hidden = !speakers;
    if (speakers) fill(this.speaker, found.audiooutput, chosen().speaker, "Speaker");
    this.root.hidden = !(found.videoinput.length || found.audioinput.length);
  }
}
