"""One UDP port for every peer connection of this process (PORCHLIGHT_MEDIA_PORT), as LiveKit's
single-port mode and mediasoup's WebRtcServer do: the operator opens one port in a firewall, a
container publishes one.

A `Demultiplexer` owns one socket and hands each datagram to the peer connection it belongs to:

- a STUN binding request names its connection: its USERNAME is "<our ufrag>:<their ufrag>", and
  our ufrag is unique among the connections on the port. A request whose MESSAGE-INTEGRITY holds
  with that connection's password also routes its source address there: a client's first checks,
  or a phone that moved to another network and checks (consent, every few seconds) from a new one;
- a STUN response goes to the connection with a transaction of that id in flight (our checks,
  consent freshness requests, a STUN server's answer);
- anything else (DTLS, SRTP, SRTCP; RFC 7983 tells them from STUN by the first byte) goes by
  its source address;
- a datagram from an address no connection has, that is not an authenticated binding request,
  is dropped and counted (`dropped`): nothing reaches a connection from a stranger.

Each connection keeps its last few addresses routed (a move leaves packets in flight from the old
one); closing it removes them. This module knows sockets and STUN, not aiortc: glue.py gives
aioice's connections a host candidate on the port (`glue.share_port`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from aioice import stun

log = logging.getLogger(__name__)

Address = tuple[str, int]

ADDRESSES_PER_PEER = 4  # the newest addresses a connection was reached from stay routed
RECEIVE_BUFFER = 4 * 1024 * 1024  # one socket takes every peer's packets: a large kernel buffer


class Receiver(Protocol):
    """What a peer connection offers the port: its STUN transactions in flight, and an entrance."""

    @property
    def transactions(self) -> Container[bytes]: ...

    def datagram_received(self, data: bytes, addr: Address) -> None: ...


@dataclass
class Peer:
    receiver: Receiver
    password: bytes
    addresses: list[Address] = field(default_factory=list)


class Demultiplexer(asyncio.DatagramProtocol):
    """One socket's datagrams, each to the peer connection it belongs to (or nowhere)."""

    def __init__(self) -> None:
        self.peers: dict[str, Peer] = {}  # by our ufrag
        self.routes: dict[Address, Receiver] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.dropped = 0  # datagrams from nobody we know
        self.moves = 0  # a known connection checked in from a new address

    # -- peers --------------------------------------------------------------------------------

    def attach(self, ufrag: str, password: str, receiver: Receiver) -> None:
        """A connection whose binding requests carry `ufrag` (ours) and are signed with `password`."""
        if ufrag in self.peers:
            raise ValueError("this ICE username fragment is already on the port")
        self.peers[ufrag] = Peer(receiver, password.encode("utf8"))

    def detach(self, ufrag: str) -> None:
        """The connection closed: nothing more reaches it, from any of its addresses."""
        peer = self.peers.pop(ufrag, None)
        if peer is not None:
            for address in peer.addresses:
                if self.routes.get(address) is peer.receiver:
                    del self.routes[address]

    # -- datagrams ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        address: Address = addr if len(addr) == 2 else (addr[0], addr[1])
        if not data:
            receiver = None
        elif data[0] < 4:
            receiver = self.stun_receiver(data, address)
        else:
            receiver = self.routes.get(address)
        if receiver is None:
            self.dropped += 1
            return
        receiver.datagram_received(data, address)

    def error_received(self, exc: Exception) -> None:
        log.debug("media port: %r", exc)  # an ICMP error for one peer's address: its consent checks notice

    def stun_receiver(self, data: bytes, address: Address) -> Receiver | None:
        try:
            message = stun.parse_message(data)
        except ValueError:
            return None
        if message.message_class == stun.Class.REQUEST:
            ufrag = self.authenticated(message)
            if ufrag is not None:
                self.route(address, ufrag)
                return self.peers[ufrag].receiver
            return self.routes.get(address)  # its connection answers it (a 400 or 401)
        if message.message_class in (stun.Class.RESPONSE, stun.Class.ERROR):
            routed = self.routes.get(address)
            if routed is not None and message.transaction_id in routed.transactions:
                return routed
            for peer in self.peers.values():
                if message.transaction_id in peer.receiver.transactions:
                    return peer.receiver
            return None
        return self.routes.get(address)  # an indication

    def authenticated(self, message: stun.Message) -> str | None:
        """Our ufrag, if `message` is a binding request signed by the connection it names."""
        username = message.attributes.get("USERNAME")
        if message.message_method != stun.Method.BINDING or not isinstance(username, str) \
                or "MESSAGE-INTEGRITY" not in message.attributes:
            return None
        ufrag = username.partition(":")[0]
        peer = self.peers.get(ufrag)
        if peer is None or not message.check_message_integrity(peer.password):
            return None
        return ufrag

    def route(self, address: Address, ufrag: str) -> None:
        """Datagrams from `address` go to the connection of `ufrag` from now on."""
        peer = self.peers[ufrag]
        if self.routes.get(address) is peer.receiver:
            return
        for other in self.peers.values():  # the address was another connection's (a port reused)
            if other is not peer and address in other.addresses:
                other.addresses.remove(address)
        if peer.addresses:
            self.moves += 1
        self.routes[address] = peer.receiver
        peer.addresses.append(address)
        while len(peer.addresses) > ADDRESSES_PER_PEER:
            old = peer.addresses.pop(0)
            if self.routes.get(old) is peer.receiver:
                del self.routes[old]


class PortTransport:
    """What a connection's protocol (aioice's) takes for its socket: the shared one, which sends
    to the peer's address; closing it takes the connection off the port."""

    def __init__(self, demultiplexer: Demultiplexer, ufrag: str, protocol: asyncio.BaseProtocol) -> None:
        udp = demultiplexer.transport
        assert udp is not None
        self.udp = udp
        self.sendto = udp.sendto
        self.get_write_buffer_size = udp.get_write_buffer_size  # type: ignore[attr-defined]
        self.demultiplexer = demultiplexer
        self.ufrag = ufrag
        self.protocol = protocol
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.udp.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self.closed or self.udp.is_closing()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.demultiplexer.detach(self.ufrag)
            self.protocol.connection_lost(None)


class PortUnavailable(OSError):
    """PORCHLIGHT_MEDIA_PORT cannot be bound (in use, or an address this machine does not have)."""


class MediaPort:
    """PORCHLIGHT_MEDIA_PORT: one socket per host address, all on the same port number."""

    def __init__(self, port: int, sockets: dict[str, Demultiplexer]) -> None:
        self.port = port
        self.sockets = sockets  # by the address it is bound to

    @classmethod
    async def open(cls, addresses: list[str], port: int) -> MediaPort:
        loop = asyncio.get_running_loop()
        sockets: dict[str, Demultiplexer] = {}
        for address in dict.fromkeys(addresses):
            try:
                _, demultiplexer = await loop.create_datagram_endpoint(Demultiplexer, local_addr=(address, port))
            except OSError as exc:
                for opened in sockets.values():
                    if opened.transport is not None:
                        opened.transport.close()
                raise PortUnavailable(exc.errno, f"PORCHLIGHT_MEDIA_PORT={port}: cannot bind UDP "
                                                 f"{address}:{port} ({exc.strerror})") from None
            assert demultiplexer.transport is not None
            udp = demultiplexer.transport.get_extra_info("socket")
            if udp is not None:
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
                granted = udp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2  # Linux reports it doubled
                if granted < RECEIVE_BUFFER and address == addresses[0]:
                    log.warning("the media port's receive buffer is %d KiB (net.core.rmem_max); raise that to "
                                "%d KiB so bursts from many peers are not dropped", granted // 1024,
                                RECEIVE_BUFFER // 1024)
            sockets[address] = demultiplexer
        return cls(port, sockets)

    @property
    def dropped(self) -> int:
        return sum(d.dropped for d in self.sockets.values())

    @property
    def peers(self) -> int:
        return max((len(d.peers) for d in self.sockets.values()), default=0)

    def close(self) -> None:
        for demultiplexer in self.sockets.values():
            if demultiplexer.transport is not None:
                demultiplexer.transport.close()
