"""This process among the others of a deployment (CONTRACT.md, "Several processes and machines").

Each group's live state (its door: the session, who is connected, the media room) is hosted
by one process at a time, its owner, held by a lease in Redis (`server.store.owners`). Any
process serves any request: an HTTP action on a group hosted elsewhere is sent to the owner
over the bus (`act`), and a WebSocket held here for a group hosted elsewhere is relayed to it
(`server.realtime.relay`). A group without a live owner goes to the least-loaded live process
(fewest participants, then fewest sessions; this one on a tie, which saves a hop).

Every `tick` (about once a second): heartbeat with the load, renew the leases, learn which
processes are alive, and find sessions whose host has gone (lease lapsed) to give them a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from server.clock import to_ms
from server.errors import ApiError, ErrorCode
from server.lobby.actions import ACTIONS, Args
from server.store import keys, owners
from server.store.bus import Bus, BusTimeout, Message
from server.store.connection import UNAVAILABLE
from server.store.nodes import NodeRegistry, live_nodes

if TYPE_CHECKING:
    from server.lobby.registry import Lobby

log = logging.getLogger(__name__)


class Cluster:
    def __init__(self, lobby: Lobby, node: NodeRegistry, bus: Bus, tick_seconds: float) -> None:
        self.lobby = lobby
        self.node = node
        self.bus = bus
        self.lease_ms = node.timeout_ms
        self.tick_seconds = tick_seconds
        self.reattach_window_ms = to_ms(max(2.0, 3 * tick_seconds))
        self.owned: set[str] = set()  # groups whose lease this process holds
        self.live: dict[str, dict[str, Any]] = {}  # the processes heard from lately, by id
        self.on_lost: Callable[[str], None] = lambda group_id: None  # a lease gone while alive

    @property
    def node_id(self) -> str:
        return self.node.node_id

    def others_serving(self) -> bool:
        """Is another live process taking new work (so a draining one can hand its sessions over)?"""
        return any(node_id != self.node_id and not info.get("draining") for node_id, info in self.live.items())

    def crowded(self) -> bool:
        """Are other processes alive (so some of a group's sockets may be held elsewhere)?"""
        return any(node_id != self.node_id for node_id in self.live)

    # -- where a group lives -----------------------------------------------------------------

    async def owner_of(self, group_id: str, claim: bool = True) -> str | None:
        """The process hosting the group; with `claim`, one is chosen if none is."""
        if group_id in self.owned:
            return self.node_id
        current = await owners.owner(self.lobby.redis, group_id)
        if current is None and claim:
            current = await owners.claim(self.lobby.redis, group_id, self.choose(), self.lease_ms)
            if current in self.live:  # count it at once, so a burst of openings spreads
                self.live[current]["sessions"] = int(self.live[current].get("sessions", 0)) + 1
        if current == self.node_id:
            self.owned.add(group_id)
        return current

    def choose(self) -> str:
        candidates = {node_id: info for node_id, info in self.live.items() if not info.get("draining")}
        if not self.lobby.draining:
            load = self.lobby.load()
            candidates[self.node_id] = {"participants": load.participants, "sessions": load.sessions}
        if not candidates:
            return self.node_id

        def weight(item: tuple[str, dict[str, Any]]) -> tuple[int, int, int]:
            node_id, info = item
            return int(info.get("participants", 0)), int(info.get("sessions", 0)), node_id != self.node_id

        return min(candidates.items(), key=weight)[0]

    async def mine(self, group_id: str) -> bool:
        """Whether a request for this group may run here (another process may think it does)."""
        if group_id in self.owned:
            return True
        if await owners.owner(self.lobby.redis, group_id) == self.node_id:
            self.owned.add(group_id)
            return True
        return False

    # -- staff actions, wherever the group lives ------------------------------------------------

    async def act(self, group_id: str, name: str, args: Args) -> Any:
        spec = ACTIONS[name]
        for _ in range(3):  # the owner may change under us (a takeover): ask again
            owner = await self.owner_of(group_id, claim=spec.loaded)
            if owner is None:
                return None
            if owner == self.node_id:
                return await self.act_here(group_id, name, args)
            try:
                reply = await self.bus.call(owner, {"t": "act", "g": group_id, "name": name, "args": args})
            except BusTimeout:
                raise ApiError(503, ErrorCode.UNAVAILABLE, "the process hosting this group does not answer; "
                               "try again in a moment") from None
            if reply.get("moved"):
                continue
            if "err" in reply:
                err = reply["err"]
                raise ApiError(err["status"], err["code"], err["message"], **err.get("extra", {}))
            return reply.get("ok")
        raise ApiError(503, ErrorCode.UNAVAILABLE, "this group is moving between processes; try again")

    async def act_here(self, group_id: str, name: str, args: Args) -> Any:
        return await self.lobby.act_here(group_id, name, args)

    def on_message(self, message: Message) -> None:
        kind = message.get("t")
        if kind == "act":
            asyncio.create_task(self._answer(message))
        elif kind == "adopt":
            asyncio.create_task(self._adopt(message["g"]))

    async def _answer(self, message: Message) -> None:
        try:
            if not await self.mine(message["g"]):
                self.bus.reply(message, {"moved": True})
                return
            result = await self.act_here(message["g"], message["name"], message["args"])
            self.bus.reply(message, {"ok": result})
        except ApiError as exc:
            self.bus.reply(message, {"err": {"status": exc.status, "code": str(exc.code), "message": exc.message,
                                             "extra": exc.extra}})
        except UNAVAILABLE:
            self.bus.reply(message, {"err": {"status": 503, "code": "unavailable",
                                             "message": "the service is temporarily unavailable"}})
        except Exception:
            log.exception("cluster: the %r action failed", message.get("name"))
            self.bus.reply(message, {"err": {"status": 500, "code": "internal_error", "message": "internal error"}})

    async def _adopt(self, group_id: str) -> None:
        with contextlib.suppress(*UNAVAILABLE, ApiError):
            if await self.mine(group_id):
                await self.lobby.door(group_id).settle()  # loads it: the takeover starts

    # -- the round ----------------------------------------------------------------------------

    async def tick(self) -> None:
        """One round (see the module's docstring). Each step is retried next round if Redis fails."""
        lobby = self.lobby
        now = to_ms(lobby.clock.now())
        with contextlib.suppress(*UNAVAILABLE):
            await self.node.beat(now, lobby.load(), draining=lobby.draining)
            self.live = {n["id"]: n for n in await live_nodes(lobby.redis, now, self.node.timeout_ms, raw=True)}
            for group_id in await owners.renew(lobby.redis, self.node_id, self.owned, self.lease_ms):
                await self._lapsed(group_id)
        for door in list(lobby.doors.values()):
            with contextlib.suppress(*UNAVAILABLE):
                await door.drop_orphans(self.reattach_window_ms)
        if not lobby.draining:
            with contextlib.suppress(*UNAVAILABLE):
                await self.rehome_orphaned_sessions()

    async def _lapsed(self, group_id: str) -> None:
        """This process stalled past its lease. If no other process took the group meanwhile, it
        keeps it, and reloads it from Redis before its next action (what it holds in memory may
        be behind what another process did in the gap); otherwise its sockets reconnect."""
        if await owners.claim(self.lobby.redis, group_id, self.node_id, self.lease_ms) == self.node_id:
            log.warning("cluster: the lease of a group lapsed while this process was alive; taken back")
            if (door := self.lobby.doors.get(group_id)) is not None:
                door.reload_later()
            return
        self.owned.discard(group_id)
        log.warning("cluster: the lease of a group lapsed while this process was alive; another took it")
        self.on_lost(group_id)

    async def rehome_orphaned_sessions(self) -> None:
        """Open sessions whose host has gone get a new one (which loads and takes them over)."""
        redis = self.lobby.redis
        group_ids = await redis.zrange(keys.groups(), 0, -1)
        if not group_ids:
            return
        open_ids = await redis.mget([keys.group_open_session(g) for g in group_ids])
        hosted = await owners.owners(redis, [g for g, s in zip(group_ids, open_ids, strict=True) if s])
        for group_id, owner in hosted.items():
            if owner is None:
                new_owner = await self.owner_of(group_id)
                if new_owner == self.node_id:
                    await self._adopt(group_id)
                elif new_owner is not None:
                    self.bus.send(new_owner, {"t": "adopt", "g": group_id})

    async def hand_off(self) -> None:
        """Draining: give up every group hosted here (after the sockets held here are closed).
        The processes that hold its other sockets hear `moved` and take them elsewhere."""
        lobby = self.lobby
        groups = list(self.owned)
        for group_id in groups:
            door = lobby.doors.get(group_id)
            if door is not None:
                with contextlib.suppress(*UNAVAILABLE):
                    await door.settle()
                door.let_go()
                del lobby.doors[group_id]
        self.owned.clear()
        await owners.release(lobby.redis, self.node_id, groups)
        for node_id in self.live:
            if node_id != self.node_id:
                for group_id in groups:
                    self.bus.send(node_id, {"t": "moved", "g": group_id})
