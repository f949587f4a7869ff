// How the connection is, in one word a person can act on: good, weak or reconnecting. Read every
// few seconds from the peer connections' statistics (getStats): the round trip of the pair in
// use and the share of packets lost since the last look, ours as the server reports them
// (remote-inbound-rtp) and the others' as we receive them (inbound-rtp).

const EVERY_MS = 3000;
const WEAK_LOSS = 0.08; // more than 8% of packets lost
const WEAK_RTT = 0.6; // seconds

// The judgement alone, so it can be checked without a network: state is the worst
// connectionState of the connections, rtt in seconds (or null), loss 0..1 (or null).
export function judge({ state, rtt, loss }) {
  if (state === "disconnected" || state === "failed") return "reconnecting";
  if (state !== "connected") return null; // not started yet, or closed: nothing to say
  if ((loss !== null && loss > WEAK_LOSS) || (rtt !== null && rtt > WEAK_RTT)) return "weak";
  return "good";
}

const WORDS = { good: "Connection: good", weak: "Connection: weak", reconnecting: "Connection: reconnecting…" };
const RANK = { connected: 0, new: 1, connecting: 1, closed: 1, disconnected: 2, failed: 3 };

export class ConnectionMeter {
  // connections(): the RTCPeerConnections in use now; element: where the word goes.
  constructor(connections, element) {
    this.connections = connections;
    this.element = element;
    this.counts = new Map(); // stats id -> { lost, received } at the last look
    this.level = null;
    this.timer = setInterval(() => this.look().catch(() => {}), EVERY_MS);
  }

  async look() {
    const pcs = this.connections().filter(Boolean);
    if (!pcs.length) return this.show(null);
    const state = pcs.map((pc) => pc.connectionState).sort((a, b) => (RANK[b] ?? 1) - (RANK[a] ?? 1))[0];
    let rtt = null;
    let lost = 0;
    let total = 0;
    for (const pc of pcs) {
      if (pc.connectionState !== "connected") continue;
      for (const report of (await pc.getStats()).values()) {
        if (report.type === "candidate-pair" && report.nominated && report.currentRoundTripTime !== undefined) {
          rtt = Math.max(rtt ?? 0, report.currentRoundTripTime);
        } else if (report.type === "remote-inbound-rtp" && report.fractionLost !== undefined) {
          lost += report.fractionLost * 100;
          total += 100;
        } else if (report.type === "inbound-rtp" && report.packetsReceived !== undefined) {
          const before = this.counts.get(report.id) || { lost: 0, received: 0 };
          const now = { lost: Math.max(0, report.packetsLost || 0), received: report.packetsReceived };
          this.counts.set(report.id, now);
          const newLost = Math.max(0, now.lost - before.lost);
          lost += newLost;
          total += newLost + Math.max(0, now.received - before.received);
        }
      }
    }
    return this.show(judge({ state, rtt, loss: total ? lost / total : null }));
  }

  show(level) {
    if (level === this.level) return;
    this.level = level;
    this.element.hidden = !level;
    this.element.textContent = level ? WORDS[level] : "";
    this.element.dataset.level = level || "";
  }

  stop() {
    clearInterval(this.timer);
    this.show(null);
  }
}
