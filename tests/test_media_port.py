"""PORCHLIGHT_MEDIA_PORT: every peer connection of the server on one UDP port.

The demultiplexer's decisions first, datagram by datagram (routing by ufrag, strangers dropped,
a peer that moves, a peer that closes); then real aioice agents on a real port (ICE, consent per
peer, a move); then four aiortc participants whose media all goes through the one port."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aioice import Connection, stun
from aiortc import RTCPeerConnection

from server.media import glue
from server.media.port import ADDRESSES_PER_PEER, Demultiplexer, MediaPort
from server.settings import Settings, SettingsError
from tests.conftest import free_udp_port
from tests.helpers import Api
from tests.test_billing_crash import start
from tests.test_cli import _env
from tests.test_media import everyone_sees_everyone, join_all

pytestmark = pytest.mark.timeout(120)

RTP = bytes([0x80, 96]) + bytes(10)  # first byte 128-191: RTP/RTCP (RFC 7983)
DTLS = bytes([22, 0xFE, 0xFD]) + bytes(10)


class Peer:
    """What a connection on the port is to the demultiplexer: transactions in flight, an entrance."""

    def __init__(self) -> None:
        self.transactions: set[bytes] = set()
        self.received: list[tuple[bytes, tuple[str, int]]] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append((data, addr))


def check(ufrag: str, password: str | None, remote: str = "them") -> bytes:
    """A connectivity check (or consent request) for the connection of `ufrag`, signed with `password`."""
    message = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    message.attributes["USERNAME"] = f"{ufrag}:{remote}"
    message.attributes["PRIORITY"] = 1
    if password is not None:
        message.add_message_integrity(password.encode())
    message.add_fingerprint()
    return bytes(message)


def response(transaction_id: bytes) -> bytes:
    message = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.RESPONSE,
                           transaction_id=transaction_id)
    message.attributes["XOR-MAPPED-ADDRESS"] = ("192.0.2.1", 4000)
    return bytes(message)


PHONE = ("198.51.100.7", 50000)
PHONE_ON_WIFI = ("203.0.113.9", 61000)
LAPTOP = ("198.51.100.8", 50001)


@pytest.fixture
def port() -> Iterator[tuple[Demultiplexer, Peer, Peer]]:
    demultiplexer = Demultiplexer()
    phone, laptop = Peer(), Peer()
    demultiplexer.attach("phoneufrag", "phone-password-0123456789", phone)
    demultiplexer.attach("laptopufrag", "laptop-password-0123456789", laptop)
    yield demultiplexer, phone, laptop


def test_a_signed_check_routes_its_address_to_the_connection_its_ufrag_names(port: Any) -> None:
    demultiplexer, phone, laptop = port
    demultiplexer.datagram_received(check("phoneufrag", "phone-password-0123456789"), PHONE)
    demultiplexer.datagram_received(check("laptopufrag", "laptop-password-0123456789"), LAPTOP)
    demultiplexer.datagram_received(DTLS, PHONE)
    demultiplexer.datagram_received(RTP, PHONE)
    demultiplexer.datagram_received(RTP, LAPTOP)
    assert [data for data, _ in phone.received][1:] == [DTLS, RTP]
    assert [addr for _, addr in phone.received] == [PHONE] * 3
    assert [data for data, _ in laptop.received][1:] == [RTP]
    assert demultiplexer.dropped == 0


def test_datagrams_from_strangers_are_dropped_and_counted(port: Any) -> None:
    demultiplexer, phone, laptop = port
    stranger = ("192.0.2.66", 4444)
    for data in (
        RTP,  # media from an address no check came from
        DTLS,
        check("nobodysufrag", "phone-password-0123456789"),  # a ufrag nobody has
        check("phoneufrag", "a-guessed-password-000000"),  # the right ufrag, not signed by its password
        check("phoneufrag", None),  # not signed at all
        response(os.urandom(12)),  # a response to no request of ours
        bytes([0, 1, 0, 0]) + bytes(4),  # STUN's first byte, not STUN
        b"",
    ):
        demultiplexer.datagram_received(data, stranger)
    assert demultiplexer.dropped == 8
    assert phone.received == [] and laptop.received == []
    assert demultiplexer.routes == {}  # and nothing learnt from them


def test_a_check_from_a_known_address_reaches_its_connection_even_unsigned(port: Any) -> None:
    """aioice answers a bad check itself (400/401); the port only decides who hears it."""
    demultiplexer, phone, _ = port
    demultiplexer.datagram_received(check("phoneufrag", "phone-password-0123456789"), PHONE)
    demultiplexer.datagram_received(check("phoneufrag", "wrong-password-0000000000"), PHONE)
    assert len(phone.received) == 2 and demultiplexer.dropped == 0
    demultiplexer.datagram_received(b"", PHONE)  # nothing to hand on, from anyone
    assert len(phone.received) == 2 and demultiplexer.dropped == 1


def test_a_phone_that_moves_networks_is_routed_from_its_new_address(port: Any) -> None:
    demultiplexer, phone, laptop = port
    demultiplexer.datagram_received(check("phoneufrag", "phone-password-0123456789"), PHONE)
    demultiplexer.datagram_received(RTP, PHONE_ON_WIFI)  # before its check from there: a stranger
    assert demultiplexer.dropped == 1
    demultiplexer.datagram_received(check("phoneufrag", "phone-password-0123456789"), PHONE_ON_WIFI)
    demultiplexer.datagram_received(RTP, PHONE_ON_WIFI)
    demultiplexer.datagram_received(RTP, PHONE)  # still in flight from the old network
    assert [addr for _, addr in phone.received] == [PHONE, PHONE_ON_WIFI, PHONE_ON_WIFI, PHONE]
    assert demultiplexer.moves == 1 and laptop.received == []
    # Only the newest few addresses stay routed.
    for n in range(ADDRESSES_PER_PEER):
        demultiplexer.datagram_received(check("phoneufrag", "phone-password-0123456789"), ("203.0.113.9", 62000 + n))
    demultiplexer.datagram_received(RTP, PHONE)
    assert demultiplexer.dropped == 2


def test_an_address_a_new_connection_checks_from_is_taken_from_the_old_one(port: Any) -> None:
    """A client's port reused by its next connection (a page reloaded): the newest signed check wins."""
    demultiplexer, phone, laptop = port
    demultiplexer.datagram_received(check("phoneufrag", "phone-password-0123456789"), PHONE)
    demultiplexer.datagram_received(check("laptopufrag", "laptop-password-0123456789"), PHONE)
    demultiplexer.datagram_received(RTP, PHONE)
    assert laptop.received[-1] == (RTP, PHONE) and len(phone.received) == 1
    demultiplexer.detach("phoneufrag")  # closing the old one leaves the new one's route alone
    demultiplexer.datagram_received(RTP, PHONE)
    assert len(laptop.received) == 3


def test_closing_a_connection_removes_every_route_to_it(port: Any) -> None:
    demultiplexer, phone, laptop = port
    demultiplexer.datagram_received(check("phoneufrag", "phone-password-0123456789"), PHONE)
    demultiplexer.datagram_received(check("phoneufrag", "phone-password-0123456789"), PHONE_ON_WIFI)
    demultiplexer.datagram_received(check("laptopufrag", "laptop-password-0123456789"), LAPTOP)
    demultiplexer.detach("phoneufrag")
    for address in (PHONE, PHONE_ON_WIFI):
        demultiplexer.datagram_received(RTP, address)
    demultiplexer.datagram_received(check("phoneufrag", "phone-password-0123456789"), PHONE)
    assert len(phone.received) == 2 and demultiplexer.dropped == 3
    assert set(demultiplexer.routes) == {LAPTOP}
    demultiplexer.datagram_received(RTP, LAPTOP)
    assert laptop.received[-1] == (RTP, LAPTOP)


def test_stun_responses_go_to_the_connection_that_asked(port: Any) -> None:
    """Consent responses and a STUN server's answers, by transaction id, wherever they come from."""
    demultiplexer, phone, laptop = port
    demultiplexer.datagram_received(check("phoneufrag", "phone-password-0123456789"), PHONE)
    asked_by_phone, asked_by_laptop = os.urandom(12), os.urandom(12)
    phone.transactions.add(asked_by_phone)
    laptop.transactions.add(asked_by_laptop)
    demultiplexer.datagram_received(response(asked_by_laptop), ("192.0.2.3", 3478))  # a STUN server
    demultiplexer.datagram_received(response(asked_by_phone), PHONE)
    demultiplexer.datagram_received(response(asked_by_laptop), PHONE)  # not the phone's: still the laptop's
    assert len(laptop.received) == 2 and len(phone.received) == 2
    assert demultiplexer.routes == {PHONE: phone}  # responses teach no routes
    with pytest.raises(ValueError):
        demultiplexer.attach("phoneufrag", "another-password-000000000", Peer())


def test_the_setting_is_a_port_and_leaves_room_for_every_worker(tmp_path: Path) -> None:
    base = {"PORCHLIGHT_DATA_DIR": str(tmp_path)}
    assert Settings.from_env(base).media_port == 0  # a port per connection, as before
    assert Settings.from_env({**base, "PORCHLIGHT_MEDIA_PORT": "50000", "PORCHLIGHT_WORKERS": "4"}).media_port == 50000
    for bad in ({"PORCHLIGHT_MEDIA_PORT": "udp"}, {"PORCHLIGHT_MEDIA_PORT": "70000"},
                {"PORCHLIGHT_MEDIA_PORT": "65535", "PORCHLIGHT_WORKERS": "2"}):
        with pytest.raises(SettingsError) as refused:
            Settings.from_env({**base, **bad})
        assert len(refused.value.problems) == 1 and "PORCHLIGHT_MEDIA_PORT" in refused.value.problems[0]


async def test_a_port_already_taken_is_refused_at_start_up_naming_it() -> None:
    taken = await MediaPort.open(["127.0.0.1"], free_udp_port())
    try:
        with pytest.raises(OSError, match=f"PORCHLIGHT_MEDIA_PORT={taken.port}: cannot bind UDP 127.0.0.1"):
            await MediaPort.open(["127.0.0.1"], taken.port)
    finally:
        taken.close()


async def test_each_worker_takes_its_own_port_from_the_setting(tmp_path: Path) -> None:
    """One socket's datagrams reach one process: worker i binds PORCHLIGHT_MEDIA_PORT + i."""
    while True:
        first = free_udp_port()
        if first < 65535 and first + 1 not in udp_sockets().values():
            break
    env = _env(tmp_path, PORCHLIGHT_WORKERS="2", PORCHLIGHT_MEDIA_PORT=str(first),
               PORCHLIGHT_SECRET_KEY="media-port-test-secret-key-" + "k" * 32)
    process, _ = await start(env)
    try:
        async with asyncio.timeout(30):
            while not {first, first + 1} <= set(udp_sockets().values()):
                await asyncio.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


# -- real ICE agents on a real port -----------------------------------------------------------------


@pytest.fixture
async def media_port() -> AsyncIterator[MediaPort]:
    glue.allow_loopback_candidates("127.0.0.1")
    media = await MediaPort.open(["127.0.0.1"], free_udp_port())
    try:
        yield media
    finally:
        media.close()
        glue.allow_loopback_candidates()


async def connected_pair(media: MediaPort) -> tuple[Connection, Connection]:
    """A server agent on the port (controlled, as for a publish connection) and a client agent."""
    server, client = Connection(ice_controlling=False), Connection(ice_controlling=True)
    glue.put_on_port(server, media)
    await asyncio.gather(server.gather_candidates(), client.gather_candidates())
    for agent, other in ((server, client), (client, server)):
        agent.remote_username, agent.remote_password = other.local_username, other.local_password
        for candidate in other.local_candidates:
            await agent.add_remote_candidate(candidate)
        await agent.add_remote_candidate(None)
    await asyncio.gather(server.connect(), client.connect())
    return server, client


async def consent(agent: Connection) -> None:
    """One consent freshness round (RFC 7675), as aioice's query_consent makes it."""
    pair = agent._nominated[1]
    assert agent.remote_password is not None
    await pair.protocol.request(agent.build_request(pair, nominate=False), pair.remote_addr,
                                integrity_key=agent.remote_password.encode(), retransmissions=0)


async def test_ice_and_consent_work_per_peer_through_one_port(media_port: MediaPort) -> None:
    (server_a, client_a), (server_b, client_b) = [await connected_pair(media_port) for _ in range(2)]
    try:
        for server in (server_a, server_b):
            assert {(c.host, c.port) for c in server.local_candidates} == {("127.0.0.1", media_port.port)}
        await client_a.send(b"\x80 to a")
        await client_b.send(b"\x80 to b")
        assert await server_a.recv() == b"\x80 to a"
        assert await server_b.recv() == b"\x80 to b"
        await server_b.send(b"\x80 from b")
        assert await client_b.recv() == b"\x80 from b"
        # Consent both ways, for both peers at once: each response reaches the agent that asked.
        await asyncio.gather(*(consent(agent) for agent in (server_a, server_b, client_a, client_b)))
        # B's client goes away: B's consent fails, A's holds.
        await client_b.close()
        with pytest.raises(stun.TransactionTimeout):
            await consent(server_b)
        await consent(server_a)
        await client_a.send(b"\x80 still here")
        assert await server_a.recv() == b"\x80 still here"
        assert media_port.peers == 2
    finally:
        for agent in (server_a, client_a, server_b, client_b):
            await agent.close()
    assert media_port.peers == 0  # closing took them off the port
    assert all(not d.routes for d in media_port.sockets.values())


async def test_a_client_that_moves_to_a_new_address_is_followed_there(media_port: MediaPort) -> None:
    """A phone on a new network checks in from there, nominating (it controls the publish
    connection): the port hears it there at once, and once the server's own check of the new
    path is answered, what the server sends goes there too."""
    server, client = await connected_pair(media_port)
    moved = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    moved.bind(("127.0.0.1", 0))
    moved.setblocking(False)
    loop = asyncio.get_running_loop()
    port = ("127.0.0.1", media_port.port)
    assert client.remote_password is not None
    try:
        request = client.build_request(client._nominated[1], nominate=True)
        request.add_message_integrity(client.remote_password.encode())
        request.add_fingerprint()
        await loop.sock_sendto(moved, bytes(request), port)
        async with asyncio.timeout(5):
            while True:  # the server answers, and checks the new path itself (a triggered check)
                message = stun.parse_message(await loop.sock_recv(moved, 2048))
                if message.message_class == stun.Class.RESPONSE:
                    assert message.attributes["XOR-MAPPED-ADDRESS"] == moved.getsockname()
                    continue
                answer = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.RESPONSE,
                                      transaction_id=message.transaction_id)
                answer.attributes["XOR-MAPPED-ADDRESS"] = port
                answer.add_message_integrity(client.local_password.encode())
                answer.add_fingerprint()
                await loop.sock_sendto(moved, bytes(answer), port)
                break
        await loop.sock_sendto(moved, b"\x80 from the new network", port)
        async with asyncio.timeout(5):
            assert await server.recv() == b"\x80 from the new network"
        async with asyncio.timeout(5):
            while server._nominated[1].remote_addr != moved.getsockname():
                await asyncio.sleep(0.01)
        await server.send(b"\x80 to the new network")
        async with asyncio.timeout(5):
            assert await loop.sock_recv(moved, 2048) == b"\x80 to the new network"
        assert media_port.sockets["127.0.0.1"].moves == 1
    finally:
        moved.close()
        await client.close()
        await server.close()


# -- four aiortc participants, one server port ------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, secret_key="test-secret-key-" + "x" * 32, public_url="http://porchlight.test",
                    heartbeat_interval_seconds=0.02, heartbeat_timeout_seconds=30, hello_deadline_seconds=5,
                    media_port=free_udp_port())


def udp_sockets() -> dict[str, int]:
    """Every UDP socket on this machine (network namespace): inode -> local port."""
    sockets = {}
    for table in ("/proc/self/net/udp", "/proc/self/net/udp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                sockets[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    return sockets


def udp_ports_of_this_process() -> set[int]:
    """Local ports of the UDP sockets this process holds (its fds against /proc/net/udp{,6})."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return {port for inode, port in udp_sockets().items() if inode in inodes}


def ice_ports(pc: RTCPeerConnection) -> set[int]:
    ports = set()
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport.iceGatherer._connection
        ports |= {protocol.local_candidate.port for protocol in connection._protocols}
    return ports


async def test_four_people_exchange_audio_and_video_through_one_server_port(api: Api, settings: Settings) -> None:
    held_before = udp_ports_of_this_process() - {settings.media_port}  # sockets earlier tests left open
    async with await join_all(api, await api.world(patients=3), patients=3) as room:
        people = room.people
        await everyone_sees_everyone(people)
        for viewer in people:
            assert set(viewer.peer.seen) == {p.pid for p in people if p is not viewer}
            for pid, seen in viewer.peer.seen.items():
                assert seen.audio_event.is_set(), pid
        media = room.media()
        server_pcs = [pc for m in media.members.values() for pc in (m.publish_pc, m.subscribe_pc) if pc is not None]
        assert len(server_pcs) == 8
        assert set().union(*(ice_ports(pc) for pc in server_pcs)) == {settings.media_port}
        clients = set().union(*(ice_ports(pc) for p in people for pc in (p.peer.publish_pc, p.peer.subscribe_pc)))
        assert settings.media_port not in clients
        assert udp_ports_of_this_process() - clients - held_before == {settings.media_port}  # and no other
        metrics = await (await api.client.get("/metrics")).text()
        assert "porchlight_media_port_dropped_total" in metrics
