"""Forwarding decisions for one viewer track, packet by packet: pure, no I/O, no aiortc.

A viewer track carries one publisher's track under the viewer track's own SSRC, sequence
numbers and timestamps. For each packet, a `Rewriter` is given the header facts (sequence
number, timestamp, SSRC, whether it starts a keyframe, when it arrived) and decides: drop it
(None), or send it as this (sequence number, timestamp). The send path (`tracks.Forward`) does
the I/O and tells the rewriter how it went. The rules:

- A *run* starts where the viewer can decode from: for video a packet that starts a keyframe,
  for audio any packet. Until then nothing is forwarded: a new viewer, a video viewer whose
  socket backed up, a publisher whose SSRC changed (a new run, at its next keyframe).
- Within a run the output is the input moved by fixed offsets (mod 2^16 and 2^32), so gaps
  stay gaps and a retransmission goes out under the number it had the first time.
- A new run carries on from the last packet sent (or lost at the viewer's socket: its number
  was used): the next sequence number, and a timestamp moved on by the wall-clock time since, so
  the viewer sees one continuous stream.
- A packet from before the run started (a late retransmission) has no number in this run:
  dropped. The last sent position only moves forward, so nothing, however late, makes a later
  run reuse numbers.
- A viewer waiting for a keyframe asks for one at once and again every KEYFRAME_RETRY seconds.
- A held track (the viewer hides its tile, or has it off screen) forwards nothing and asks for
  nothing; released, it waits for a keyframe (and asks at once), so no picture freezes.
- Simulcast: a publisher sends several layers (SSRCs) of one track; the viewer track carries one,
  its `target`. Packets of other layers are dropped; a target that differs from the layer being
  sent takes over at its next keyframe (until then the current layer carries on), as one
  continuous stream.
"""

from __future__ import annotations

import random

KEYFRAME_RETRY = 1.0  # a viewer still waiting for a keyframe asks again after this long

SEQ_MASK = 0xFFFF
TS_MASK = 0xFFFFFFFF
HALF = 0x8000  # sequence numbers less than half the space ahead are ahead; the rest are behind


class Rewriter:
    """The rewriting state of one viewer track (RFC 3550 arithmetic, modulo the field sizes)."""

    __slots__ = ("clock_rate", "video", "ssrc", "seq_offset", "ts_offset", "highest", "span",
                 "last_seq", "last_ts", "last_at", "asked_at", "unanswered", "held", "target")

    def __init__(self, clock_rate: int, video: bool, last_seq: int, last_ts: int,
                 last_at: float | None = None) -> None:
        self.clock_rate = clock_rate
        self.video = video
        self.ssrc: int | None = None  # the publisher's SSRC the current run is of; None: no run
        self.seq_offset = 0
        self.ts_offset = 0
        self.highest = 0  # the highest input sequence number of this run
        self.span = 0  # how far `highest` is past the run's first packet
        # The last packet sent on this viewer track, as the viewer saw it, and when it arrived.
        self.last_seq = last_seq
        self.last_ts = last_ts
        self.last_at = last_at
        self.asked_at = float("-inf")  # when this viewer last asked for a keyframe
        self.unanswered = 0  # keyframe requests since this viewer track last started a run
        self.held = False  # the viewer does not show this track: nothing goes out
        self.target: int | None = None  # simulcast: the SSRC of the layer wanted; None: one layer only

    @classmethod
    def new(cls, clock_rate: int, video: bool) -> Rewriter:
        """A new viewer track: random first sequence number (15 bits, well away from a wrap) and timestamp."""
        return cls(clock_rate, video, random.getrandbits(15), random.getrandbits(32))

    def continued(self, clock_rate: int) -> Rewriter:
        """The same viewer track fed from a new source: it carries on where this one stopped."""
        return Rewriter(clock_rate, self.video, self.last_seq, self.last_ts, self.last_at)

    def place(self, seq: int, ts: int, ssrc: int, keyframe_start: bool, now: float) -> tuple[int, int] | None:
        """Where this packet goes on the viewer track: (sequence number, timestamp), or None to drop it."""
        if self.held:
            return None
        if ssrc != self.ssrc:  # no run, or a run of another SSRC (one check: this is per packet)
            target = self.target
            if target is None:
                if not keyframe_start:
                    self.ssrc = None  # nothing decodes from here: wait for a keyframe (and ask)
                    return None
            elif ssrc != target or not keyframe_start:
                return None  # another layer, or the target before its keyframe: the current run goes on
            self._start_run(seq, ts, ssrc, now)
        ahead = (seq - self.highest) & SEQ_MASK
        if ahead < HALF:
            self.highest = seq
            self.span += ahead
        elif SEQ_MASK + 1 - ahead > self.span:
            return None  # from before this run started (a late retransmission): it has no place here
        return (seq + self.seq_offset) & SEQ_MASK, (ts + self.ts_offset) & TS_MASK

    def _start_run(self, seq: int, ts: int, ssrc: int, now: float) -> None:
        """Start (or restart) the stream: the next sequence number, a timestamp that moved on."""
        self.seq_offset = (self.last_seq + 1 - seq) & SEQ_MASK
        target = self.last_ts if self.last_at is None else self.last_ts + int((now - self.last_at) * self.clock_rate)
        self.ts_offset = (target - ts) & TS_MASK
        self.ssrc = ssrc
        self.highest = seq
        self.span = 0
        self.unanswered = 0

    def sent(self, seq: int, ts: int, now: float) -> None:
        """The packet placed at `seq` went out; a retransmission of an earlier one changes nothing."""
        if (seq - self.last_seq) & SEQ_MASK < HALF:
            self.last_seq, self.last_ts, self.last_at = seq, ts, now

    def lost(self, seq: int, ts: int, now: float) -> None:
        """The packet placed at `seq` could not be sent (the viewer's socket is backed up). Its
        number is used all the same: SRTP protected it under that index, which a later run must
        not take again (libsrtp refuses an index older than its window, and the viewer sees a gap
        either way). Video stops to resume at the next keyframe (frames after a loss would not
        decode); audio carries on."""
        self.sent(seq, ts, now)
        if self.video:
            self.ssrc = None

    def pause(self) -> None:
        """The viewer track cannot send yet (not negotiated, DTLS not up): start a new run later."""
        self.ssrc = None

    def hold(self) -> None:
        """The viewer stopped showing this track: forward nothing until `release`."""
        self.held = True
        self.ssrc = None

    def release(self) -> None:
        """Shown again: the next keyframe starts a new run; the viewer may ask for one at once."""
        if self.held:
            self.held = False
            self.asked_at = float("-inf")

    def aim(self, ssrc: int | None) -> bool:
        """Simulcast: carry the layer of this SSRC from its next keyframe. True if that asks for a
        keyframe (a new target), so the caller can ask the publisher at once."""
        if ssrc == self.target:
            return False
        self.target = ssrc
        self.asked_at = float("-inf")
        return ssrc is not None and ssrc != self.ssrc

    @property
    def waiting(self) -> bool:
        """A video viewer with nothing to show until a keyframe."""
        return self.video and self.ssrc is None

    def keyframe_due(self, now: float) -> bool:
        """This viewer should ask the publisher for a keyframe now (then call `asked`): it waits
        for one (to start, or to switch to its target layer), and last asked long enough ago."""
        if not self.video or self.held or now - self.asked_at < KEYFRAME_RETRY:
            return False
        return self.ssrc is None or (self.target is not None and self.ssrc != self.target)

    def asked(self, now: float) -> None:
        self.asked_at = now
        self.unanswered += 1
