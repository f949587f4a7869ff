"""Frames to a socket: written at once when nothing waits, queued behind what does; either way
each arrives whole, as sent, in the order sent."""

from __future__ import annotations

import aiohttp

from server.realtime.connection import DIRECT_WRITE_LIMIT, Connection, wire
from server.services import SERVICES
from tests.helpers import Api


def test_wire_is_a_text_frame_of_every_length_class() -> None:
    # RFC 6455 5.2: 7-bit length below 126, then 16-bit, then 64-bit; FIN and text opcode; no mask.
    for text, head in (("", b"\x81\x00"), ("a" * 125, b"\x81\x7d"), ("a" * 126, b"\x81\x7e\x00\x7e"),
                       ("a" * 65535, b"\x81\x7e\xff\xff"),
                       ("a" * 65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00")):
        assert wire(text) == head + text.encode()
    assert wire("é") == b"\x81\x02" + "é".encode()  # the length is the UTF-8 bytes', not the characters'


async def test_frames_written_at_once_and_queued_arrive_whole_and_in_order(api: Api) -> None:
    world = await api.world(patients=1)
    await api.open(world)
    patient = await api.patient(world.tokens[0])
    door = api.client.app[SERVICES].lobby.doors[world.group["id"]]
    conn: Connection = door.presence.patients[world.patients[0]["id"]]
    before = conn.sent

    # Lengths across the header's three forms, and text that is not ASCII; then frames of 1 MB
    # until the kernel has taken all it will and the transport holds the rest, so that the
    # frames after them wait in the queue behind them.
    texts = ["", "x", "y" * 125, "z" * 126, "é" * 70, "w" * 65_535, "v" * 65_536, "🙂 ok"]
    for text in texts:
        conn.send_text(text)
    transport = conn._transport
    assert transport is not None
    while transport.get_write_buffer_size() <= DIRECT_WRITE_LIMIT:
        assert len(texts) < 100, "the kernel took 100 MB without a read"
        texts.append(f"{len(texts)}" * 1_000_000)
        conn.send_text(texts[-1])
    assert conn._queue.qsize() == 0
    for text in ("after 1", "after 2" * 100):
        texts.append(text)
        conn.send_text(text)
    assert conn._queue.qsize() == 2  # behind the bytes the transport holds
    received = []
    while len(received) < len(texts):
        msg = await patient.ws.receive(timeout=10)
        if msg.type is aiohttp.WSMsgType.PING:
            await patient.ws.pong(msg.data)
            continue
        assert msg.type is aiohttp.WSMsgType.TEXT
        received.append(msg.data)
    assert received == texts
    assert conn.sent - before == len(texts)
