"""One session's media room: who is in it (membership, minutes), and what they are sending.

Who is in the room is decided by the door (admission); `sync` is told the admitted members
and their connections, and drops anyone else at once: their packets stop being forwarded in
the same call, and their peer connections close in the background. The room also weighs each
member's own media_state against what their tracks actually do and reports changes (`on_state`),
and its tick has viewers still waiting for a keyframe ask again.

The room is one of three time scales, each in its own module:

- room.py (this): membership, media state, the tick, the end;
- negotiation.py: offers and answers (`Negotiation`, which `MediaRoom` is made of too);
- tracks.py and forwarding.py: the per-packet path (`Source`, `Forward`) and its pure decisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiortc import RTCPeerConnection, RTCRtpTransceiver

from server.media import glue
from server.media.adapt import SpeakerPicker, View, fitting
from server.media.budget import Bandwidth, Track, allocate, video_budget
from server.media.negotiation import SCREEN, MediaError, Negotiation, quietly_close, rtc_configuration
from server.media.port import MediaPort
from server.media.tracks import Forward, Source

__all__ = ["MediaError", "MediaRoom", "MediaRooms", "Member", "Peer", "Source", "StateSink", "rtc_configuration"]

log = logging.getLogger(__name__)

TICK = 0.25  # seconds between keyframe / media-state / speaker checks
SILENT = 0.5  # an audio track that sent nothing this long is not speaking (DTX, a dropped link)
DRAIN_TIMEOUT = 5.0  # at shutdown, how long peer connections get to close

StateSink = Callable[[str, bool, bool, bool], Awaitable[None]]  # (participant, is_patient, audio, video)
Permission = Callable[[str], bool]  # may this patient share their screen now (staff always may)


class Peer(Protocol):
    """What the room needs of a member's connection: whether it is a patient's, and a way to
    send them signalling frames (subscribe offers). The identity of the object tells one
    connection from the next (a reconnect is a new member)."""

    @property
    def patient_id(self) -> str | None: ...

    def send(self, message: dict[str, Any]) -> None: ...


class Member:
    """One admitted participant's media."""

    def __init__(self, room: MediaRoom, pid: str, conn: Peer) -> None:
        self.room = room
        self.pid = pid
        self.conn = conn
        self.is_patient = conn.patient_id is not None
        self.publish_pc: RTCPeerConnection | None = None
        self.subscribe_pc: RTCPeerConnection | None = None
        self.sources: dict[str, Source] = {}
        self.slots: dict[tuple[str, str], tuple[RTCRtpTransceiver, Forward]] = {}
        # Inactive viewer tracks by (publisher, kind), kept for that publisher's return (a
        # reconnect, a re-admission): reusing the m-line keeps the SDP from growing all session.
        self.idle: dict[tuple[str, str], tuple[RTCRtpTransceiver, Forward]] = {}
        self.publish_lock = asyncio.Lock()
        self.subscribe_lock = asyncio.Lock()
        self.dirty = False
        self.restart = False  # the next subscribe offer is on a new connection
        self.closed = False
        self.view: View | None = None  # what this viewer shows of the others (None: all, until it says)
        self.data_saver = False  # audio and the speaker's smallest layer only (its `view` says)
        self.bandwidth = Bandwidth()  # what its link takes, from its REMB reports
        self.budgeted = False  # its video follows a budget (an estimate, or data saver)
        self.declared = (True, True)
        self.recorded: tuple[bool, bool] | None = None
        self.report_lock = asyncio.Lock()

    def state(self, now: float) -> tuple[bool, bool] | None:
        """What this participant is sending now: (audio, video); None before they publish."""
        if self.publish_pc is None:
            return None
        audio = self.sources.get("audio")
        video = self.sources.get("video")
        return (self.declared[0] and audio is not None and audio.sending(now),
                self.declared[1] and video is not None and video.sending(now))


class MediaRoom(Negotiation):
    """One session's media: its members, their tracks, and (through `Negotiation`) their connections."""

    def __init__(self, session_id: str, ice_servers: tuple[dict[str, Any], ...], on_state: StateSink,
                 patient_may_share: Permission | None = None, on_roster: Callable[[], None] | None = None,
                 port: MediaPort | None = None) -> None:
        super().__init__()
        self.session_id = session_id
        self.ice_servers = ice_servers
        self.port = port  # PORCHLIGHT_MEDIA_PORT: every connection's host candidates on this one port
        self.on_state = on_state
        self.patient_may_share = patient_may_share
        self.on_roster = on_roster  # who shares a screen changed: the roster says so
        self.speakers = SpeakerPicker()
        self.members: dict[str, Member] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closed = False
        self.ticker = asyncio.get_running_loop().create_task(self._tick())

    def spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("media task failed in session %s: %r", self.session_id, exc)

    # -- membership (from the door) -----------------------------------------------------------

    def sync(self, members: Mapping[str, Peer]) -> None:
        """Make the room's members exactly these admitted participants (and connections)."""
        if self.closed:
            return
        for pid, member in list(self.members.items()):
            if members.get(pid) is not member.conn:
                self._drop(member)
        fresh = [Member(self, pid, conn) for pid, conn in members.items() if pid not in self.members]
        for member in fresh:
            self.members[member.pid] = member
            if self.speakers.current is not None:
                member.conn.send({"type": "active_speaker", "id": self.speakers.current})
            if any(m.sources for m in self.members.values() if m is not member):
                self.spawn(self.renegotiate(member))

    def _drop(self, member: Member) -> None:
        """Stop everything to and from this member now; close its connections in the background."""
        member.closed = True
        del self.members[member.pid]
        for source in member.sources.values():
            source.closed = True
            source.forwards.clear()
        for _, forward in member.slots.values():
            with contextlib.suppress(ValueError):
                forward.source.forwards.remove(forward)
        member.slots.clear()
        for other in self.members.values():
            if any(owner == member.pid for owner, _ in other.slots):
                self.spawn(self.renegotiate(other))
        for pc in (member.publish_pc, member.subscribe_pc):
            if pc is not None:
                self.spawn(quietly_close(pc))

    def member(self, pid: str, conn: Peer) -> Member:
        member = self.members.get(pid)
        if member is None or member.conn is not conn or self.closed:
            raise MediaError("not_admitted", "media is available only after admission")
        return member

    # -- signalling (from the member's socket) ------------------------------------------------

    async def publish(self, pid: str, conn: Peer, sdp: str) -> str:
        """Take the participant's publish offer; return the server's answer."""
        member = self.member(pid, conn)
        sharing = self.sharing(pid)
        answer = await self.answer_publish(member, sdp)
        self.spawn(self._report(member))  # a new track may change what they are sending
        if self.sharing(pid) != sharing and self.on_roster is not None:
            self.on_roster()
        return answer

    async def subscribed(self, pid: str, conn: Peer, sdp: str) -> None:
        """The participant's answer to the last subscribe offer."""
        await self.take_answer(self.member(pid, conn), sdp)

    def view(self, pid: str, conn: Peer, view: View, data_saver: bool = False) -> None:
        """The viewer's `view`: the others' videos it shows, at what size; the rest is not sent.
        With data saver, only the speaker's smallest layer."""
        member = self.member(pid, conn)
        member.view, member.data_saver = view, data_saver
        self.adapt_viewer(member)

    def adapt_viewer(self, member: Member) -> None:
        """Apply a viewer's view and budget to each of its video tracks."""
        now = asyncio.get_running_loop().time()
        view = member.view
        videos: list[tuple[tuple[str, str], Forward]] = []
        for key, (_, forward) in member.slots.items():
            if forward.source.kind == "video":
                owner, label = key
                shown_at = None if view is None else view.get(f"{owner}:{SCREEN}" if label == SCREEN else owner)
                forward.visible, forward.shown_at = view is None or shown_at is not None, shown_at
                videos.append((key, forward))
        self._budget(member, videos, now)
        for _, forward in videos:
            forward.adapt(now)

    def _budget(self, member: Member, videos: list[tuple[tuple[str, str], Forward]], now: float) -> None:
        """With an estimate of the viewer's link (REMB) or data saver, the layers that fit it
        (budget.allocate: audio first, then the speaker's video, then the others')."""
        estimate = member.bandwidth.estimate(now)
        member.budgeted = estimate is not None or member.data_saver
        if not member.budgeted:
            for _, forward in videos:
                forward.unbudget()
            return
        audio = sum(forward.source.rate.bps for _, forward in member.slots.values()
                    if forward.source.kind == "audio" and not forward.source.blocked)
        tracks = []
        for key, forward in videos:
            if forward.visible:
                order, want = fitting(forward.source.layers.values(), forward.shown_at, now)
                shown = forward.shown_at
                tracks.append(Track(key, tuple((layer.ssrc, layer.rate.bps) for layer in order), want,
                                    speaker=key == (self.speakers.current, "video"),
                                    area=shown[0] * shown[1] if shown else 1 << 30, current=forward.current))
        allocation = allocate(tracks, video_budget(estimate, audio), member.data_saver)
        for key, forward in videos:
            if forward.visible:
                forward.allot(allocation.get(key))
            else:
                forward.unbudget()

    # -- screen share (CONTRACT.md v1.1) ---------------------------------------------------------

    def may_share(self, member: Member) -> bool:
        return not member.is_patient or (self.patient_may_share is not None and self.patient_may_share(member.pid))

    def sharing(self, pid: str) -> bool:
        member = self.members.get(pid)
        return member is not None and SCREEN in member.sources

    def stop_screen(self, pid: str) -> None:
        """No longer allowed: their screen stops being forwarded now, and leaves the viewers' offers."""
        member = self.members.get(pid)
        if member is not None and SCREEN in member.sources:
            self.retire_source(member, SCREEN)
            self.renegotiate_others(member)

    # -- media state ----------------------------------------------------------------------------

    def declare(self, pid: str, audio: bool, video: bool) -> bool:
        """The participant's own media_state; True if the room records it (it knows the tracks)."""
        member = self.members.get(pid)
        if member is None:
            return False
        member.declared = (audio, video)
        if audio and (source := member.sources.get("audio")) is not None:
            source.blocked = False  # unmuting themselves after the facilitator muted them
        if member.publish_pc is None:
            return False
        self.spawn(self._report(member))
        return True

    def mute(self, pid: str) -> None:
        """The facilitator muted this participant: their audio stops being forwarded."""
        member = self.members.get(pid)
        if member is not None:
            member.declared = (False, member.declared[1])
            if (source := member.sources.get("audio")) is not None:
                source.blocked = True
            self.spawn(self._report(member))

    async def _report(self, member: Member) -> None:
        async with member.report_lock:  # one write at a time: two reports of one change are one event
            state = member.state(asyncio.get_running_loop().time())
            if state is None or state == member.recorded or member.closed:
                return
            await self.on_state(member.pid, member.is_patient, *state)
            member.recorded = state  # only once written: a failed write is tried again at the next tick

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK)
            try:
                self._check(loop.time())
            except Exception:
                log.exception("media room check failed in session %s", self.session_id)

    def _check(self, now: float) -> None:
        """Keyframes for viewers still waiting for one; media state changes to record; the speaker."""
        levels: dict[str, float] = {}
        for member in list(self.members.values()):
            for source in member.sources.values():
                source.measure(now)
                source.ask_for_waiting_viewers(now)
            if member.state(now) != member.recorded:
                self.spawn(self._report(member))
            audio = member.sources.get("audio")
            if audio is not None and now - audio.last_packet < SILENT:
                levels[member.pid] = audio.loudness
        if (speaker := self.speakers.update(levels)) is not None:
            for member in self.members.values():
                member.conn.send({"type": "active_speaker", "id": speaker})
        for member in list(self.members.values()):
            if member.budgeted or member.data_saver or member.bandwidth.reports:
                self.adapt_viewer(member)  # rates, the estimate and the speaker move: budgets follow

    # -- the end ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """The session ended: all forwarding stops now; connections close in the background."""
        self.closed = True
        self.ticker.cancel()
        for timer in list(self.timers):
            timer.cancel()
        for member in list(self.members.values()):
            self._drop(member)

    async def drained(self) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=DRAIN_TIMEOUT)

    def stats(self) -> dict[str, int]:
        sources = [s for m in self.members.values() for s in m.sources.values()]
        return {
            "members": len(self.members),
            "sources": len(sources),
            "forwards": sum(len(s.forwards) for s in sources),
            "packets_in": sum(s.packets for s in sources),
            "packets_out": sum(f.outlet.sent for s in sources for f in s.forwards),
        }


class MediaRooms:
    """Every session's media room in this process, addressed by session id."""

    def __init__(self, ice_servers: tuple[dict[str, Any], ...], room_class: type[MediaRoom] = MediaRoom,
                 address: str | None = None, media_port: int = 0) -> None:
        self.ice_servers = ice_servers
        self.room_class = room_class
        self.rooms: dict[str, MediaRoom] = {}
        self.media_port = media_port  # PORCHLIGHT_MEDIA_PORT (0: a port per connection)
        self.port: MediaPort | None = None  # once opened
        glue.allow_loopback_candidates(address)  # PORCHLIGHT_MEDIA_ADDRESS
        glue.accept_simulcast()
        glue.send_times_on_audio()

    async def open(self) -> None:
        """Bind PORCHLIGHT_MEDIA_PORT on every address connections gather on, if it is set."""
        if self.media_port and self.port is None:
            self.port = await MediaPort.open(glue.host_addresses(), self.media_port)

    def room(self, session_id: str, on_state: StateSink, patient_may_share: Permission | None = None,
             on_roster: Callable[[], None] | None = None) -> MediaRoom:
        room = self.rooms.get(session_id)
        if room is None:
            room = self.rooms[session_id] = self.room_class(session_id, self.ice_servers, on_state,
                                                            patient_may_share, on_roster, self.port)
        return room

    def get(self, session_id: str) -> MediaRoom | None:
        return self.rooms.get(session_id)

    def end(self, session_id: str) -> None:
        room = self.rooms.pop(session_id, None)
        if room is not None:
            room.stop()

    async def close(self) -> None:
        rooms = list(self.rooms.values())
        self.rooms.clear()
        for room in rooms:
            room.stop()
        for room in rooms:
            await room.drained()
        if self.port is not None:
            self.port.close()
            self.port = None
