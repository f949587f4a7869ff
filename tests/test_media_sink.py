"""The send path of a viewer track (server/media/sink.py): the compiled sink and the pure-Python
one put the same SRTP on the wire, which a viewer's libsrtp decrypts to the packet the forwarder
meant, and both count and keep what they sent the same way."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from pylibsrtp import Policy, Session

from server.media import glue, sink
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
    assert out.resend(65535, 2000.75)
    plain = inbound_session().unprotect(receiver.recv(2048))
    assert plain == header(0, 96, 65535, 4_294_967_295, SSRC, send_time_id, 2000.75) + sent[1][3]
    assert out.sent == 3 and not out.resend(7, 2001.0)


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
    assert out.resend(1, 3.0) is False and out.dropped == 2


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
    assert out.kept(5) is None and not out.resend(5, 2.0)
