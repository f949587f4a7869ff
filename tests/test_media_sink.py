"""The send path of a viewer track (server/media/sink.py): the compiled sink and the pure-Python
one put the same SRTP on the wire, which a viewer's libsrtp decrypts to the packet the forwarder
meant, and both count and keep what they sent the same way."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator

import pytest
from aiortc import RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from pylibsrtp import Policy, Session

from server.media import glue, outbound, sink
from server.media.packets import header

KEY = bytes(range(30))  # the SRTP master key and salt (AES_CM_128_HMAC_SHA1_80)
SSRC = 0x1234ABCD

IMPLEMENTATIONS = [pytest.param(sink.PySink, id="python")]
if sink.COMPILED is not None:
    IMPLEMENTATIONS.append(pytest.param(sink.COMPILED, id="compiled"))


def test_the_compiled_sink_is_built_where_ci_asks_for_it() -> None:
    if os.environ.get("PORCHLIGHT_REQUIRE_MEDIA_SINK") != "1":
        pytest.skip("set PORCHLIGHT_REQUIRE_MEDIA_SINK=1 to require the compiled sink (CI does)")
    assert sink.COMPILED is not None
    assert sink.Sink is sink.COMPILED


def test_the_python_sink_is_chosen_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORCHLIGHT_MEDIA_SINK", "python")
    assert sink._compiled() is None


def outbound_session() -> Session:
    policy = Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_OUTBOUND)
    policy.allow_repeat_tx = True  # as aiortc's DTLS transport sets it: NACKed packets go out again
    return Session(policy=policy)


def inbound_session() -> Session:
    return Session(policy=Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_INBOUND))


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setblocking(False)
    yield sender, receiver
    sender.close()
    receiver.close()


def routed(make: sink.Callable[[int, int], sink.SinkType], sender: socket.socket,
           address: object) -> sink.SinkType:
    out = make(SSRC, 8)
    session = outbound_session()
    out.route(session, sink.context(session), sender, None, address)
    out.payload_type = 96
    return out


@pytest.mark.parametrize("make", IMPLEMENTATIONS)
@pytest.mark.parametrize("send_time_id", [0, 3])
def test_a_viewer_decrypts_the_packet_the_forwarder_meant(
        make: sink.Callable[[int, int], sink.SinkType], send_time_id: int,
        sockets: tuple[socket.socket, socket.socket]) -> None:
    sender, receiver = sockets
    out = routed(make, sender, receiver.getsockname())
    out.send_time_id = send_time_id
    viewer = inbound_session()
    extensions = HeaderExtensionsMap()
    extensions.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=3, uri=glue.ABS_SEND_TIME)]))
    sent = [(1, 65534, 4_294_967_000, os.urandom(1100), 1000.25), (0, 65535, 4_294_967_295, b"x", 1000.5),
            (1, 0, 3000, os.urandom(900), 1001.0)]  # across both wraps
    for marker, sequence, timestamp, payload, wall in sent:
        assert out.send(marker, sequence, timestamp, payload, wall)
        plain = viewer.unprotect(receiver.recv(2048))
        assert plain == header(marker, 96, sequence, timestamp, SSRC, send_time_id, wall) + payload
        packet = RtpPacket.parse(plain, extensions)
        assert (packet.marker, packet.sequence_number, packet.timestamp, packet.ssrc) == (
            marker, sequence, timestamp, SSRC)
        if send_time_id:
            assert packet.extensions.abs_send_time == int(wall * 262144) & 0xFFFFFF
    assert (out.sent, out.dropped, out.octets) == (3, 0, 1100 + 1 + 900)
    assert (out.last_timestamp, out.last_wall) == (3000, 1001.0)
    # What a NACK is answered from: the packet's marker, timestamp and payload (the shared one).
    kept = out.kept(65535)
    assert kept is not None and kept[:2] == (0, 4_294_967_295) and kept[2] is sent[1][3]
    assert out.kept(65535 - 8) is None and out.kept(7) is None  # never sent, or its slot taken since
    # Sent again: the same packet, its abs-send-time that of now; not counted as sent. (A viewer that
    # NACKs it never had it: a fresh session here, whose replay window has not seen it.)
    assert out.resend(65535, 1001.25)
    plain = inbound_session().unprotect(receiver.recv(2048))
    assert plain == header(0, 96, 65535, 4_294_967_295, SSRC, send_time_id, 1001.25) + sent[1][3]
    assert out.sent == 3 and not out.resend(7, 1001.25)


@pytest.mark.skipif(sink.COMPILED is None, reason="the compiled sink was not built")
def test_both_sinks_put_the_same_bytes_on_the_wire(sockets: tuple[socket.socket, socket.socket]) -> None:
    sender, receiver = sockets
    wire: dict[str, list[bytes]] = {}
    for name, make in (("python", sink.PySink), ("compiled", sink.COMPILED)):
        assert make is not None
        out = routed(make, sender, receiver.getsockname())
        out.send_time_id = 2
        for sequence in range(100, 140):
            out.send(sequence % 2, sequence, sequence * 3000, bytes([sequence]) * (sequence * 7), 5.0 + sequence)
        wire[name] = [receiver.recv(2048) for _ in range(40)]
    assert wire["compiled"] == wire["python"]


@pytest.mark.parametrize("make", IMPLEMENTATIONS)
def test_a_closed_socket_drops_the_packet_and_counts_it(
        make: sink.Callable[[int, int], sink.SinkType], sockets: tuple[socket.socket, socket.socket]) -> None:
    sender, receiver = sockets
    out = routed(make, sender, receiver.getsockname())
    assert out.send(0, 1, 1, b"a", 1.0)
    sender.close()
    assert out.send(0, 2, 2, b"b", 2.0) is False
    assert (out.sent, out.dropped, out.last_timestamp) == (1, 1, 1)
    assert out.kept(2) is None  # a packet that never left cannot be sent again
    assert out.resend(1, 1.5) is False and out.dropped == 2


@pytest.mark.parametrize("make", IMPLEMENTATIONS)
def test_a_packet_is_kept_for_keep_seconds_after_it_arrived_then_released(
        make: sink.Callable[[int, int], sink.SinkType], sockets: tuple[socket.socket, socket.socket]) -> None:
    sender, receiver = sockets
    out = routed(make, sender, receiver.getsockname())  # at most 8 kept
    assert out.keep == sink.KEEP_SECONDS == 1.0
    first = os.urandom(100)
    held = sys.getrefcount(first)
    assert out.send(0, 1, 1, first, 10.0) and sys.getrefcount(first) == held + 1
    assert out.send(0, 2, 2, b"b", 10.9)
    assert out.kept(1) is not None and out.resend(1, 10.95)
    assert not out.resend(1, 11.01)  # NACKed more than a second after it arrived: not sent again
    assert not out.forgotten(1, 10.95) and out.forgotten(1, 11.01)  # kept, but too old to send
    assert out.send(0, 3, 3, b"c", 11.05)  # the next packet sent releases it
    assert out.kept(1) is None and sys.getrefcount(first) == held
    assert out.forgotten(1, 11.05) and out.forgotten(65000, 11.05)  # released, or before it
    assert not out.forgotten(2, 11.05) and not out.forgotten(9, 11.05)  # kept, or not sent yet
    assert out.kept(2) is not None
    out.keep = 3.0  # a long round trip (outbound.Outlet.report)
    assert out.send(0, 4, 4, b"d", 13.0)
    assert out.kept(2) is not None and out.resend(2, 13.5)
    # Across laps of the slots, and a gap (a sequence number that never went out): the old are
    # released, the young stay.
    for sequence in [*range(5, 12), *range(13, 30)]:
        assert out.send(0, sequence, sequence, bytes([sequence]), 20.0 + sequence / 10)
    assert [s for s in range(1, 30) if out.kept(s) is not None] == list(range(22, 30))
    out.keep = 0.25
    assert out.send(0, 30, 30, b"e", 23.0)
    assert [s for s in range(1, 31) if out.kept(s) is not None] == [28, 29, 30]
    # The gap (12) was never kept: it is forgotten only once it precedes what is kept.
    assert [s for s in range(1, 31) if out.forgotten(s, 23.0)] == list(range(1, 28))


async def test_a_viewer_with_a_long_round_trip_gets_its_packets_kept_for_three(
        sockets: tuple[socket.socket, socket.socket]) -> None:
    sender, receiver = sockets
    pc = RTCPeerConnection()
    try:
        outlet = outbound.Outlet(pc.addTransceiver(glue.HeldTrack("video", "v"), direction="sendonly"), lambda: None)
        session = outbound_session()
        outlet.sink.route(session, sink.context(session), sender, None, receiver.getsockname())
        assert outlet.sink.send(0, 1, 1, b"x", 1.0)
        outlet.report()  # no receiver report from the viewer yet: no round trip known
        assert outlet.sink.keep == sink.KEEP_SECONDS
        for rtt, keep in ((0.1, 1.0), (0.5, 1.5), (0.2, 1.0)):
            outlet.sender._RTCRtpSender__rtt = rtt  # as the viewer's receiver reports set it
            outlet.report()
            assert outlet.sink.keep == pytest.approx(keep)
    finally:
        await pc.close()


@pytest.mark.parametrize("make", IMPLEMENTATIONS)
def test_a_relay_or_a_name_goes_through_a_sendto(
        make: sink.Callable[[int, int], sink.SinkType], sockets: tuple[socket.socket, socket.socket]) -> None:
    sender, receiver = sockets
    viewer = inbound_session()
    relayed: list[tuple[bytes, object]] = []
    out = make(SSRC, 4)
    session = outbound_session()
    out.route(session, sink.context(session), None, lambda data, address: relayed.append((data, address)),
              ("198.51.100.7", 3478))
    assert out.send(1, 9, 90, b"relayed", 1.0)
    assert viewer.unprotect(relayed[0][0]) == header(1, 0, 9, 90, SSRC) + b"relayed"
    assert relayed[0][1] == ("198.51.100.7", 3478)
    # A host name (not numeric): the socket's own sendto resolves it.
    out.route(session, sink.context(session), sender, None, ("localhost", receiver.getsockname()[1]))
    assert out.send(1, 10, 91, b"named", 1.0)
    assert viewer.unprotect(receiver.recv(2048)) == header(1, 0, 10, 91, SSRC) + b"named"
    assert out.sent == 2


@pytest.mark.parametrize("make", IMPLEMENTATIONS)
def test_bad_calls_are_refused_and_change_nothing(
        make: sink.Callable[[int, int], sink.SinkType], sockets: tuple[socket.socket, socket.socket]) -> None:
    sender, receiver = sockets
    with pytest.raises(ValueError):
        make(SSRC, -1)
    unrouted = make(SSRC, 4)
    with pytest.raises(RuntimeError):
        unrouted.send(0, 1, 1, b"x", 1.0)
    with pytest.raises(ValueError):
        unrouted.route(outbound_session(), 0, None, None, ("127.0.0.1", 9))
    out = routed(make, sender, receiver.getsockname())
    with pytest.raises(ValueError):
        out.send(0, 1, 1, b"x" * 1400, 1.0)  # no room for the SRTP trailer in an MTU
    assert (out.sent, out.dropped) == (0, 0)


@pytest.mark.parametrize("make", IMPLEMENTATIONS)
def test_a_sink_without_history_keeps_nothing(
        make: sink.Callable[[int, int], sink.SinkType], sockets: tuple[socket.socket, socket.socket]) -> None:
    sender, receiver = sockets
    out = make(SSRC, 0)  # audio: no browser NACKs Opus
    session = outbound_session()
    out.route(session, sink.context(session), sender, None, receiver.getsockname())
    assert out.send(1, 5, 960, b"opus", 1.0) and out.sent == 1 and out.capacity == 0
    assert out.kept(5) is None and not out.resend(5, 2.0) and not out.forgotten(4, 9.0)
