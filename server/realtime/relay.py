"""WebSockets and the process that hosts their group (CONTRACT.md, "Several processes").

A socket is held by whichever process the client reached; its group's door lives on the
group's owner (lobby/cluster.py). The `Attachment` is the socket's way to its door: here, a
direct call; elsewhere, the bus. On the owner, a socket held elsewhere is a `RemotePeer`, whose
messages (join, frames, gone) are handled one after another in the order the client sent them,
by the same code a local socket goes through (`enter`, `frames.dispatch`).

When a group moves (its owner died or drained), every process holding its sockets attaches
them to the new owner as `reattach`: nothing happened to those people, so nothing is recorded;
the admitted ones get `media_reset` and start their media again there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import defaultdict
from typing import Any

from server.clock import Clock
from server.errors import ApiError
from server.lobby.door import Door
from server.lobby.presence import Staff
from server.lobby.registry import Lobby
from server.lobby.remote import RemotePeer
from server.realtime import frames
from server.realtime.connection import Connection
from server.realtime.frames import FrameError
from server.store import owners
from server.store.bus import Bus, BusTimeout, Message
from server.store.connection import UNAVAILABLE
from server.store.nodes import last_seen

log = logging.getLogger(__name__)

CLOSE_RESTART = 1012  # service restart: the client reconnects


async def enter(door: Door, conn: Any, who: dict[str, Any], reattach: bool = False) -> None:
    """A hello (or a connection coming over from another host), under the door's lock."""
    async def run() -> None:
        if who["kind"] == "patient":
            hello = door.reattach if reattach else door.patient_hello
            await hello(conn, who["patient_id"], who["display_name"], who.get("location"))
        else:
            staff = Staff(who["user_id"], who["name"], who["role"])
            await door.staff_join(conn, staff, who.get("session_id"), reattach=reattach)

    await door.run(run)
    if who["kind"] == "patient" and not reattach and not door.is_admitted(conn):
        # After `waiting`, the questionnaires they are due: looked up outside the door's lock, and
        # before the next frame from this socket is handled, so they follow `waiting` in order.
        await door.offer_questionnaires(conn, who["patient_id"])


class Attachment:
    """One WebSocket held here, and the door it talks to (here or on another process)."""

    def __init__(self, relay: Relay, conn: Connection, group_id: str, who: dict[str, Any]) -> None:
        self.relay = relay
        self.conn = conn
        self.conn_id = f"{relay.node_id}:{secrets.token_hex(6)}"
        self.group_id = group_id
        self.who = who
        self.owner = relay.node_id
        self.door: Door | None = None  # when the group is hosted here

    async def dispatch(self, frame: dict[str, Any]) -> None:
        if self.door is not None:
            await frames.dispatch(frames.Sender(self.conn, self.door), frame)
        else:
            self.relay.bus.send(self.owner, {"t": "frame", "c": self.conn_id, "f": frame})

    async def gone(self) -> None:
        self.relay.attached.pop(self.conn_id, None)
        if self.door is not None:
            if self.conn.patient_id is not None:
                await self.door.patient_left(self.conn, voluntary=False)
            else:
                await self.door.staff_gone(self.conn)
        else:
            self.relay.bus.send(self.owner, {"t": "gone", "c": self.conn_id, "lh": self.conn.last_heard})


class Relay:
    def __init__(self, lobby: Lobby, bus: Bus, clock: Clock) -> None:
        assert lobby.cluster is not None
        self.lobby = lobby
        self.cluster = lobby.cluster
        self.bus = bus
        self.clock = clock
        self.node_id = bus.node_id
        self.attached: dict[str, Attachment] = {}  # sockets here whose group is hosted elsewhere
        self.peers: dict[str, RemotePeer] = {}  # sockets elsewhere whose group is hosted here
        bus.on_message = self.on_message
        bus.on_resubscribed = self.restate
        self.cluster.on_lost = self.lost
        lobby.holds_sockets = lambda group_id: any(a.group_id == group_id for a in self.attached.values())

    # -- the process holding the socket -----------------------------------------------------

    async def join(self, conn: Connection, group_id: str, who: dict[str, Any]) -> Attachment:
        """The socket's hello, accepted by its group's host; ApiError when refused."""
        attachment = Attachment(self, conn, group_id, who)
        await self._attach(attachment, reattach=False)
        return attachment

    async def _attach(self, attachment: Attachment, reattach: bool) -> None:
        owner = await self.cluster.owner_of(attachment.group_id)
        assert owner is not None
        attachment.owner = owner
        if owner == self.node_id:
            attachment.door = self.lobby.door(attachment.group_id)
            try:  # still listed while the door loads, so it counts as held (Lobby.holds_sockets)
                await enter(attachment.door, attachment.conn, attachment.who, reattach)
            finally:
                self.attached.pop(attachment.conn_id, None)
            return
        attachment.door = None
        self.attached[attachment.conn_id] = attachment  # before the join: its first frames may come first
        try:
            reply = await self.bus.call(owner, {"t": "join", "c": attachment.conn_id, "g": attachment.group_id,
                                                "who": attachment.who, "reattach": reattach,
                                                "lh": attachment.conn.last_heard})
        except BusTimeout:
            self.attached.pop(attachment.conn_id, None)
            raise ApiError(503, "unavailable", "the process hosting this group does not answer; "
                           "reconnect in a moment") from None
        if reply.get("moved"):
            await self._attach(attachment, reattach)
        elif "err" in reply:
            self.attached.pop(attachment.conn_id, None)
            err = reply["err"]
            raise ApiError(err["status"], err["code"], err["message"], **err.get("extra", {}))

    async def move(self, group_id: str) -> None:
        """The group has a new host: take its sockets held here there."""
        for attachment in [a for a in self.attached.values() if a.group_id == group_id]:
            try:
                await self._attach(attachment, reattach=True)
            except (ApiError, *UNAVAILABLE):
                attachment.conn.close(CLOSE_RESTART, "server restarting")

    def restate(self) -> None:
        """The bus was cut and is back: messages may have been lost both ways, so every socket
        held here for another host says again who it is (a host that knows it answers at once)."""
        for group_id in {a.group_id for a in self.attached.values()}:
            asyncio.create_task(self.move(group_id))

    def lost(self, group_id: str) -> None:
        """This process lost a group's lease while alive (it stalled past the timeout): its
        sockets reconnect, and find the new host."""
        door = self.lobby.doors.pop(group_id, None)
        if door is not None:
            door.close_all(CLOSE_RESTART, "server restarting")
            door.let_go()

    # -- the process hosting the group ------------------------------------------------------

    def on_message(self, message: Message) -> None:
        kind = message.get("t")
        if kind == "sendmany":
            for conn_id in message["cs"]:
                if (held := self.attached.get(conn_id)) is not None:
                    held.conn.send_text(message["x"])
        elif kind in ("send", "close", "rejoin"):
            attachment = self.attached.get(message.get("c", ""))
            if attachment is None:
                return
            if kind == "send":
                attachment.conn.send_text(message["x"])
            elif kind == "close":
                attachment.conn.close(message["code"], message["reason"])
            else:
                asyncio.create_task(self.move(attachment.group_id))
        elif kind == "moved":
            asyncio.create_task(self.move(message["g"]))
        elif kind == "join":
            peer = self.peers.get(message["c"])
            if peer is None:
                peer = self.peers[message["c"]] = RemotePeer(self.bus, message["from"], message["c"], message["g"],
                                                             message["who"], message["lh"])
                peer.task = asyncio.create_task(self._serve(peer))
            peer.inbox.put_nowait(message)
        elif kind in ("frame", "gone"):
            peer = self.peers.get(message["c"])
            if peer is not None:
                peer.inbox.put_nowait(message)
            elif kind == "frame":  # this process does not know the socket (it took the group over)
                self.bus.send(message["from"], {"t": "rejoin", "c": message["c"]})
        else:
            self.cluster.on_message(message)

    async def _serve(self, peer: RemotePeer) -> None:
        door: Door | None = None
        try:
            while True:
                message = await peer.inbox.get()
                kind = message["t"]
                if kind == "join":
                    door = await self._join(peer, message, door)
                    if door is None:
                        return
                elif kind == "frame" and door is not None:
                    await self._frame(peer, door, message["f"])
                elif kind == "gone":
                    peer.last_heard = message["lh"]
                    if door is not None:
                        await _leave(door, peer)
                    return
        finally:
            if self.peers.get(peer.conn_id) is peer:
                del self.peers[peer.conn_id]

    async def _join(self, peer: RemotePeer, message: Message, door: Door | None) -> Door | None:
        if door is not None:  # said again (its bus was cut): nothing changed here
            self.bus.reply(message, {"ok": True})
            return door
        try:
            if not await self.cluster.mine(peer.group_id):
                self.bus.reply(message, {"moved": True})
                return None
            door = self.lobby.door(peer.group_id)
            await enter(door, peer, peer.who, bool(message.get("reattach")))
        except ApiError as exc:
            self.bus.reply(message, {"err": {"status": exc.status, "code": str(exc.code), "message": exc.message,
                                             "extra": exc.extra}})
            return None
        except UNAVAILABLE:
            self.bus.reply(message, {"err": {"status": 503, "code": "unavailable",
                                             "message": "the service is temporarily unavailable"}})
            return None
        self.bus.reply(message, {"ok": True})
        return door

    async def _frame(self, peer: RemotePeer, door: Door, frame: dict[str, Any]) -> None:
        try:
            await frames.dispatch(frames.Sender(peer, door), frame)
        except (FrameError, ApiError) as exc:
            peer.send({"type": "error", "code": str(exc.code), "message": exc.message})
        except UNAVAILABLE:
            peer.send({"type": "error", "code": "unavailable", "message": "the service is temporarily unavailable"})
            peer.close(1013, "unavailable")

    # -- the round ----------------------------------------------------------------------------

    async def tick(self) -> None:
        """Sockets held here follow their groups' hosts; sockets held by a process that died
        leave their doors at the moment that process was last heard from."""
        by_group: dict[str, set[str]] = defaultdict(set)
        for attachment in self.attached.values():
            by_group[attachment.group_id].add(attachment.owner)
        with contextlib.suppress(*UNAVAILABLE):
            hosts = await owners.owners(self.lobby.redis, list(by_group))
            for group_id, host in hosts.items():
                if host is None or by_group[group_id] != {host}:
                    await self.move(group_id)
        now = self.clock.now()
        timeout = self.cluster.node.timeout_ms / 1000
        for node_id in {peer.node_id for peer in self.peers.values()} - set(self.cluster.live):
            try:
                seen = await last_seen(self.lobby.redis, node_id)
            except UNAVAILABLE:
                continue
            if seen is not None and now - seen / 1000 <= timeout:
                continue  # alive after all (it started after the last look)
            at = seen / 1000 if seen else now - timeout
            for peer in [p for p in self.peers.values() if p.node_id == node_id]:
                peer.inbox.put_nowait({"t": "gone", "lh": at})


async def _leave(door: Door, peer: RemotePeer) -> None:
    if peer.patient_id is not None:
        await door.patient_left(peer, voluntary=False)
    else:
        await door.staff_gone(peer)
