"""The receive dispatch of one media datagram, with and without PORCHLIGHT_MEDIA_PORT.

A port per connection: the datagram reaches that connection's aioice protocol, which tries to
parse it as STUN and hands it to the ICE agent's queue. One port: the demultiplexer looks up the
source address and hands it to the connection's protocol, which skips the STUN attempt for media
(RFC 7983's first byte). Measured in this process on real aioice agents, without sockets (the
kernel's part is the same either way: one recvfrom per datagram), over `--peers` connections.

    python -m bench.media_port [--packets 200000] [--peers 50]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from aioice import Candidate, Connection
from aioice.ice import StunProtocol

from server.media import glue
from server.media.port import Demultiplexer, MediaPort


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--peers", type=int, default=50)
    args = parser.parse_args()
    rtp = bytes([0x80, 96]) + bytes(1100)  # a video packet's size
    agents = [Connection(ice_controlling=False) for _ in range(args.peers)]
    addresses = [("198.51.100.7", 40000 + i) for i in range(args.peers)]

    # A port per connection: aioice's own protocol, as each connection's socket feeds it.
    own = [StunProtocol(agent) for agent in agents]
    for protocol, agent in zip(own, agents, strict=True):
        protocol.local_candidate = Candidate(foundation="1", component=1, transport="udp", priority=1,
                                                  host="127.0.0.1", port=1, type="host")
        agent._queue = asyncio.Queue()

    # One port: a demultiplexer with every connection's address routed (as a signed check does).
    demultiplexer = Demultiplexer()
    shared = MediaPort(1, {"127.0.0.1": demultiplexer})
    ported = []
    for agent, address in zip(agents, addresses, strict=True):
        protocol = glue.PortProtocol(agent)
        protocol.local_candidate = own[0].local_candidate
        demultiplexer.attach(agent.local_username, agent.local_password, protocol)
        demultiplexer.routes[address] = protocol
        ported.append(protocol)

    def drain() -> None:
        for agent in agents:
            agent._queue = asyncio.Queue()

    def per_connection() -> float:
        started = time.perf_counter()
        for i in range(args.packets):
            own[i % args.peers].datagram_received(rtp, addresses[i % args.peers])
        return (time.perf_counter() - started) / args.packets * 1e6

    def one_port() -> float:
        started = time.perf_counter()
        for i in range(args.packets):
            demultiplexer.datagram_received(rtp, addresses[i % args.peers])
        return (time.perf_counter() - started) / args.packets * 1e6

    results: dict[str, list[float]] = {"per connection": [], "one port": []}
    for _ in range(5):  # alternating, best of five each
        for name, run in (("per connection", per_connection), ("one port", one_port)):
            drain()
            results[name].append(run())
    drain()
    best = {name: min(times) for name, times in results.items()}
    print(f"{args.packets} media datagrams over {args.peers} connections, receive dispatch to the ICE agent's queue:")
    for name, us in best.items():
        print(f"  {name:<15} {us:5.2f} us per datagram (best of 5)")
    print(f"  difference      {best['one port'] - best['per connection']:+5.2f} us per datagram; "
          f"dropped by the port: {shared.dropped}")


if __name__ == "__main__":
    asyncio.run(main())
