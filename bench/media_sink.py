"""The send path of one packet to one viewer: the compiled sink against the pure-Python one.

Both sinks (server/media/sink.py) write the header, protect the packet with a real libsrtp
session (aiortc's cipher: AES_CM_128_HMAC_SHA1_80, abs-send-time on) and send it on a real UDP
socket to a receiver on loopback, alternating in rounds so a busy machine slows both alike. The
receiver's queue is drained between rounds (not timed) and every packet is counted there: a
figure is printed only for packets that arrived. This is the per-viewer part of the forwarder's
cost per forwarded packet (`bench/media.py` measures whole rooms).

    python -m bench.media_sink [--packets 20000] [--rounds 5] [--payload 1100] [--before DIR]

With --before DIR (a checkout of an earlier commit, its C extension built in place) that
checkout's compiled sink runs as a third, in the same rounds: the compiled send path before and
after a change.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import os
import socket
import statistics
import time
from pathlib import Path
from typing import Any

from pylibsrtp import Policy, Session

from server.media import sink


def compiled_in(checkout: Path) -> Any:
    """Another checkout's compiled sink module (`_sink` built in place), given libsrtp's protect."""
    built = sorted((checkout / "server" / "media").glob("_sink*.so"))
    if not built:
        raise SystemExit(f"--before: no compiled sink built in {checkout}/server/media")
    loader = importlib.machinery.ExtensionFileLoader("_sink", str(built[0]))
    spec = importlib.util.spec_from_file_location("_sink", built[0], loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    module.use_protect(sink.protect_address())
    return module


def drain(receiver: socket.socket) -> int:
    count = 0
    while True:
        try:
            receiver.recv(2048)
        except BlockingIOError:
            return count
        count += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=20_000, help="packets per round and sink")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--payload", type=int, default=1100, help="payload bytes (a video packet's size)")
    parser.add_argument("--before", default="", metavar="DIR", help="that checkout's compiled sink as a third")
    args = parser.parse_args()
    if sink.COMPILED is None:
        raise SystemExit("the compiled sink is not built here (no C compiler at install?): nothing to compare")
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)  # a round fits (the kernel may cap it)
    receiver.setblocking(False)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setblocking(False)
    payload = os.urandom(args.payload)
    batch = min(args.packets, receiver.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 4096)
    sinks: dict[str, sink.SinkType] = {}
    makers: list[tuple[str, Any]] = [("python", sink.PySink), ("compiled", sink.COMPILED)]
    if args.before:
        makers.append(("before", compiled_in(Path(args.before)).Sink))
    for name, make in makers:
        policy = Policy(key=os.urandom(30), ssrc_type=Policy.SSRC_ANY_OUTBOUND)
        session = Session(policy=policy)
        out = make(0x1234, 512)
        out.route(session, sink.context(session), sender, None, receiver.getsockname())
        out.payload_type, out.send_time_id = 96, 3
        sinks[name] = out
    times: dict[str, list[float]] = {name: [] for name in sinks}
    arrived = dict.fromkeys(sinks, 0)
    sent = dict.fromkeys(sinks, 0)
    sequence = dict.fromkeys(sinks, 0)
    for _ in range(args.rounds):
        for name, out in sinks.items():
            elapsed = 0.0
            left = args.packets
            while left:
                n = min(batch, left)
                start = time.perf_counter()
                for _ in range(n):
                    seq = sequence[name]
                    out.send(0, seq & 0xFFFF, seq * 3000 & 0xFFFFFFFF, payload, time.time())
                    sequence[name] = seq + 1
                elapsed += time.perf_counter() - start
                arrived[name] += drain(receiver)
                left -= n
            sent[name] += args.packets
            times[name].append(elapsed / args.packets * 1e6)
    print(f"one packet ({args.payload} bytes of payload) to one viewer: header, SRTP, sendto on loopback; "
          f"{args.rounds} rounds of {args.packets:,}, alternating")
    for name in sinks:
        print(f"  {name:<9} {statistics.median(times[name]):6.2f} us per packet (median of rounds; "
              f"min {min(times[name]):.2f}, max {max(times[name]):.2f}); arrived {arrived[name]:,} of "
              f"{sent[name]:,}; dropped at the socket {sinks[name].dropped}")
    ratio = statistics.median(times["compiled"]) / statistics.median(times["python"])
    print(f"  compiled / python: {ratio:.2f}x")
    if "before" in times:
        print(f"  compiled / before: {statistics.median(times['compiled']) / statistics.median(times['before']):.2f}x")
    for name in sinks:
        if arrived[name] != sent[name]:
            print(f"  NOT every packet of {name} arrived: its figure counts lost packets too")


if __name__ == "__main__":
    main()
