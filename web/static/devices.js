// Camera and microphone: asking for them, saying plainly what went wrong, and a test tone.
import { levelOf, sharedAudioContext } from "/static/grid.js";

export const VIDEO = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 15, max: 24 } };

// What to tell a patient, per problem. Plain words, no error names.
export const HELP = {
  denied: "Your browser is blocking the camera and microphone. Tap the lock or camera icon next to the "
    + "web address, choose Allow, then press Try again.",
  missing: "We could not find a camera or microphone. If one is plugged in, check it is connected, "
    + "then press Try again.",
  camera_missing: "We could not find a camera. You can still join with sound only.",
  mic_missing: "We could not find a microphone. You can still join and see the group; the facilitator "
    + "will not hear you.",
  busy: "Another app is using your camera or microphone. Close it (for example another video call), "
    + "then press Try again.",
  unsupported: "This browser cannot use a camera here. Try the latest Chrome, Safari, Edge or Firefox.",
  other: "Something stopped the camera or microphone from starting. Press Try again, or join with sound only.",
};

function problemOf(error) {
  switch (error && error.name) {
    case "NotAllowedError": case "SecurityError": return "denied";
    case "NotFoundError": case "OverconstrainedError": return "missing";
    case "NotReadableError": case "AbortError": return "busy";
    default: return "other";
  }
}

// Constraints for one kind, preferring a device chosen before (ideal: another is fine if it is gone),
// or requiring one just chosen (exact).
function wanted(kind, deviceId, exact = false) {
  const base = kind === "video" ? { ...VIDEO } : {};
  if (deviceId) base.deviceId = exact ? { exact: deviceId } : { ideal: deviceId };
  return Object.keys(base).length ? base : true;
}

// The best stream the devices allow: audio and video, else audio only, else video only.
// Returns { stream, problem } where problem is a key of HELP or null.
export async function openDevices({ video = true, camera = "", microphone = "" } = {}) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return { stream: null, problem: "unsupported" };
  }
  const ask = (constraints) => navigator.mediaDevices.getUserMedia(constraints);
  const audio = wanted("audio", microphone);
  try {
    return { stream: await ask({ audio, video: video ? wanted("video", camera) : false }), problem: null };
  } catch (error) {
    const problem = problemOf(error);
    if (problem === "denied" || problem === "busy") return { stream: null, problem };
    if (!video) return { stream: null, problem: "mic_missing" };
  }
  try {
    return { stream: await ask({ audio, video: false }), problem: "camera_missing" };
  } catch { /* no microphone either */ }
  try {
    return { stream: await ask({ audio: false, video: wanted("video", camera) }), problem: "mic_missing" };
  } catch (error) {
    const problem = problemOf(error);
    return { stream: null, problem: problem === "other" ? "missing" : problem };
  }
}

// One device again after joining (a camera turned back on, a microphone allowed at last):
// { track, problem } with problem a key of HELP or null.
// deviceId: the one just chosen in a picker (required), or "" for any.
export async function openOne(kind, deviceId = "") {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return { track: null, problem: "unsupported" };
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ [kind]: wanted(kind, deviceId, true) });
    return { track: stream.getTracks()[0] || null, problem: null };
  } catch (error) {
    const problem = problemOf(error);
    if (problem === "missing" || problem === "other") return { track: null, problem: kind === "video" ? "camera_missing" : "mic_missing" };
    return { track: null, problem };
  }
}

// The cameras, microphones and speakers the page may choose from ({ videoinput, audioinput,
// audiooutput }, each a list of MediaDeviceInfo; labels are there once a device was allowed).
export async function listDevices() {
  const found = { videoinput: [], audioinput: [], audiooutput: [] };
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return found;
  for (const device of await navigator.mediaDevices.enumerateDevices()) {
    if (found[device.kind] && device.deviceId) found[device.kind].push(device);
  }
  return found;
}

export function stopStream(stream) {
  if (stream) for (const track of stream.getTracks()) track.stop();
}

// A microphone meter drawn into `bar` (its width), with aria-valuenow on `meter`.
export function meterFor(stream, meter, bar) {
  const level = levelOf(stream);
  if (!level) return () => {};
  let running = true;
  let shown = 0;
  const draw = () => {
    if (!running) return;
    const value = Math.min(1, level.level() * 6);
    shown = Math.max(value, shown * 0.85); // fall gently, so speech reads as a steady bar
    bar.style.transform = `scaleX(${shown.toFixed(3)})`;
    meter.setAttribute("aria-valuenow", String(Math.round(shown * 100)));
    requestAnimationFrame(draw);
  };
  requestAnimationFrame(draw);
  return () => { running = false; level.stop(); };
}

// Three soft notes, generated: enough to hear that the speakers work.
export function playTestTone() {
  const context = sharedAudioContext();
  if (!context) return 0;
  playTones(context, [523.25, 659.25, 783.99], { gap: 0.28, peak: 0.25, attack: 0.03, length: 0.5 });
  return 1100; // ms until it has finished
}

// A short two-tone chime for staff when someone arrives in the waiting room.
export function playArrivalChime() {
  const context = sharedAudioContext();
  if (!context) return;
  playTones(context, [880, 660], { gap: 0.18, peak: 0.18, attack: 0.02, length: 0.35 });
}

// Sine tones one after another, each fading in and out (no audio files to fetch).
function playTones(context, frequencies, { gap, peak, attack, length }) {
  const start = context.currentTime + 0.03;
  frequencies.forEach((frequency, index) => {
    const oscillator = context.createOscillator();
    const gain = context.createGain();
    oscillator.type = "sine";
    oscillator.frequency.value = frequency;
    const at = start + index * gap;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(peak, at + attack);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + length);
    oscillator.connect(gain).connect(context.destination);
    oscillator.start(at);
    oscillator.stop(at + length + 0.05);
  });
}
