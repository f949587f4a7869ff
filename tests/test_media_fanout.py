"""The compiled fan-out (server/media/sink.py FANOUT): a received packet to every viewer track whose
run goes on, without the Python path. It must do what that path does, step for step: the
rewriter's `place`, the sink's `send`, then `sent` or `lost` (tracks.Forward.send once the outlet
is ready), and leave to Python every viewer track it cannot decide (a run to start or change, a
route that moved, DTLS not connected).

Real rewriters, real compiled sinks with real SRTP on real sockets; the guard's sender, DTLS
transport and ICE pair are plain objects here, since the guard only compares their identity."""

from __future__ import annotations

import random
import socket
from types import SimpleNamespace
from typing import Any

import pytest
from aiortc.rtcdtlstransport import State as DtlsState
from pylibsrtp import Policy, Session

from server.media import sink
from server.media.forwarding import Rewriter

pytestmark = pytest.mark.skipif(sink.FANOUT is None,
                                reason="the compiled sink is not in use (not built, or PORCHLIGHT_MEDIA_SINK=python)")

KEY = bytes(range(30))
SSRCS = (0xA1, 0xB2)  # two layers (or a publisher's SSRC before and after a change)
FIELDS = Rewriter.__slots__


class Viewer:
    """What the fan-out reads of a tracks.Forward: its rewriter, and its outlet's sink."""

    def __init__(self, index: int, video: bool, receiver: socket.socket, sender: socket.socket) -> None:
        self.rewriter = Rewriter(90000 if video else 48000, video, 1000 * index, 5000 * index)
        assert sink.COMPILED is not None
        self.sink = sink.COMPILED(0x5000 + index, 64 if video else 0)
        policy = Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_OUTBOUND)
        policy.allow_repeat_tx = True
        session = Session(policy=policy)
        self.sink.route(session, sink.context(session), sender, None, receiver.getsockname())
        self.sink.payload_type = 96 if video else 111
        self.outlet = SimpleNamespace(sink=self.sink)
        self.dtls = SimpleNamespace(_state=DtlsState.CONNECTED)
        self.nominated = {1: object()}
        self.rtp_sender = SimpleNamespace(_RTCRtpSender__transport=self.dtls)
        self.guard()

    def guard(self) -> None:
        self.sink.guard(self.rtp_sender, self.dtls, self.nominated, self.nominated[1], DtlsState.CONNECTED)


def python_path(viewer: Viewer, packet: dict[str, Any], now: float, wall: float) -> None:
    """tracks.Forward.send's steps once the outlet is ready."""
    rewriter = viewer.rewriter
    placed = rewriter.place(packet["sequence"], packet["timestamp"], packet["ssrc"], packet["keyframe"], now)
    if placed is None:
        return
    if viewer.sink.send(packet["marker"], placed[0], placed[1], packet["payload"], wall):
        rewriter.sent(placed[0], placed[1], now)
    else:
        rewriter.lost(placed[0], placed[1], now)


class Side:
    def __init__(self, count: int) -> None:
        self.receivers = []
        self.senders = []
        self.viewers = []
        for i in range(count):
            receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            receiver.bind(("127.0.0.1", 0))
            receiver.setblocking(False)
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sender.setblocking(False)
            self.receivers.append(receiver)
            self.senders.append(sender)
            self.viewers.append(Viewer(i, video=i % 3 != 2, receiver=receiver, sender=sender))

    def wire(self) -> list[list[bytes]]:
        got = []
        for receiver in self.receivers:
            datagrams = []
            while True:
                try:
                    datagrams.append(receiver.recv(2048))
                except BlockingIOError:
                    break
            got.append(datagrams)
        return got

    def close(self) -> None:
        for s in self.receivers + self.senders:
            s.close()


def packets(seed: int) -> list[dict[str, Any]]:
    """A publisher's packets as the server receives them: runs of sequence numbers across the
    wrap, keyframes now and then, late retransmissions, jumps, and a second SSRC at times."""
    rng = random.Random(seed)
    sequence, timestamp, ssrc = rng.randrange(65536), rng.randrange(1 << 32), SSRCS[0]
    out = []
    for _ in range(600):
        roll = rng.random()
        if roll < 0.03:
            ssrc = SSRCS[1] if ssrc == SSRCS[0] else SSRCS[0]
        if roll < 0.05:
            sequence = (sequence + rng.randrange(1, 3000)) & 0xFFFF  # a jump ahead
        late = roll > 0.95  # an earlier packet again (a retransmission, or from before the run)
        seq = (sequence - rng.randrange(1, 40)) & 0xFFFF if late else sequence
        out.append({"sequence": seq, "timestamp": timestamp, "ssrc": ssrc, "marker": int(rng.random() < 0.2),
                    "keyframe": rng.random() < 0.15, "payload": rng.randbytes(rng.randrange(1, 1100))})
        if not late:
            sequence = (sequence + 1) & 0xFFFF
            timestamp = (timestamp + rng.choice([0, 3000, 6000])) & 0xFFFFFFFF
    return out


@pytest.mark.parametrize("seed", range(6))
def test_the_fanout_does_what_the_python_path_does(seed: int) -> None:
    rng = random.Random(seed * 7919)
    reference, fanned = Side(5), Side(5)
    try:
        for step, packet in enumerate(packets(seed)):
            now, wall = 10.0 + step * 0.01, 1_700_000_000.0 + step * 0.01
            if rng.random() < 0.02:  # a viewer hides the tile, or shows it again
                i = rng.randrange(5)
                for side in (reference, fanned):
                    rewriter = side.viewers[i].rewriter
                    rewriter.release() if rewriter.held else rewriter.hold()
            if rng.random() < 0.01:  # a viewer's socket closes: what is sent to it is lost
                i = rng.randrange(5)
                reference.senders[i].close()
                fanned.senders[i].close()
            for viewer in reference.viewers:
                python_path(viewer, packet, now, wall)
            assert sink.FANOUT is not None
            left = sink.FANOUT(fanned.viewers, packet["sequence"], packet["timestamp"], packet["ssrc"],
                               packet["marker"], now, packet["payload"], wall)
            for viewer in left:
                python_path(viewer, packet, now, wall)
            assert fanned.wire() == reference.wire(), step
            for theirs, ours in zip(reference.viewers, fanned.viewers, strict=True):
                assert [getattr(ours.rewriter, f) for f in FIELDS] == [getattr(theirs.rewriter, f) for f in FIELDS]
                assert (ours.sink.sent, ours.sink.dropped, ours.sink.octets) == (
                    theirs.sink.sent, theirs.sink.dropped, theirs.sink.octets)
        assert sum(v.sink.fanned for v in fanned.viewers) > 500  # of 3,000: the runs that went on went the fast way
        assert sum(v.sink.fanned for v in reference.viewers) == 0
    finally:
        reference.close()
        fanned.close()


def test_what_the_guard_does_not_cover_is_left_to_python() -> None:
    side = Side(1)
    viewer = side.viewers[0]
    fanout = sink.FANOUT
    assert fanout is not None
    try:
        python_path(viewer, {"sequence": 1, "timestamp": 0, "ssrc": SSRCS[0], "marker": 0, "keyframe": True,
                             "payload": b"k"}, 1.0, 1.0)  # a run starts: the Python path's
        assert fanout([viewer], 2, 0, SSRCS[0], 0, 1.1, b"p", 1.1) == []  # the run goes on: the fan-out's
        assert fanout([viewer], 3, 0, SSRCS[1], 0, 1.2, b"p", 1.2) == [viewer]  # another SSRC
        viewer.dtls._state = DtlsState.CLOSED
        assert fanout([viewer], 3, 0, SSRCS[0], 0, 1.2, b"p", 1.2) == [viewer]  # DTLS no longer up
        viewer.dtls._state = DtlsState.CONNECTED
        viewer.nominated[1] = object()
        assert fanout([viewer], 3, 0, SSRCS[0], 0, 1.2, b"p", 1.2) == [viewer]  # ICE moved to another pair
        viewer.guard()
        viewer.rtp_sender._RTCRtpSender__transport = SimpleNamespace(_state=DtlsState.CONNECTED)
        assert fanout([viewer], 3, 0, SSRCS[0], 0, 1.2, b"p", 1.2) == [viewer]  # another DTLS transport
        viewer.rtp_sender._RTCRtpSender__transport = viewer.dtls
        viewer.sink.unguard()
        assert fanout([viewer], 3, 0, SSRCS[0], 0, 1.2, b"p", 1.2) == [viewer]  # retargeted, or rerouted
        viewer.guard()
        assert fanout([viewer], 3, 0, SSRCS[0], 0, 1.3, b"p", 1.3) == []
        assert viewer.sink.fanned == 2 and viewer.sink.sent == 3
        assert len(side.wire()[0]) == 3
        with pytest.raises(ValueError):
            fanout([viewer], 70000, 0, SSRCS[0], 0, 1.4, b"p", 1.4)  # refused whole: nothing sent
        assert viewer.sink.sent == 3
    finally:
        side.close()
