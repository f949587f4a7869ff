"""A WebSocket held by another process of the deployment, as the process hosting its group
sees it: a `Peer` whose frames and close travel over the bus to the process holding the socket
(server.realtime.relay delivers them)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from server.store.bus import Bus, Message


class RemotePeer:
    def __init__(self, bus: Bus, node_id: str, conn_id: str, group_id: str, who: dict[str, Any],
                 last_heard: float) -> None:
        self.bus = bus
        self.node_id = node_id  # the process holding the socket
        self.conn_id = conn_id
        self.group_id = group_id
        self.who = who
        self.patient_id: str | None = who.get("patient_id")
        self.user_id: str | None = who.get("user_id")
        self.replaced = False
        self.told_admitted = False
        self.closing = False
        self.last_heard = last_heard
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()  # join, frames and gone, in order
        self.task: asyncio.Task[None] | None = None

    def send(self, message: dict[str, Any]) -> None:
        self.send_text(json.dumps(message, separators=(",", ":")))

    def send_text(self, text: str) -> None:
        if not self.closing:
            self.bus.send(self.node_id, {"t": "send", "c": self.conn_id, "x": text})

    @staticmethod
    def send_text_to_all(peers: list[RemotePeer], text: str) -> None:
        """The same frame to several sockets held by one process, as one bus message."""
        open_ = [peer for peer in peers if not peer.closing]
        if open_:
            open_[0].bus.send(open_[0].node_id, {"t": "sendmany", "cs": [p.conn_id for p in open_], "x": text})

    def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.closing:
            self.closing = True
            self.bus.send(self.node_id, {"t": "close", "c": self.conn_id, "code": code, "reason": reason})
