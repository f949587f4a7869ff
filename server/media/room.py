"""One session's media: who publishes what, who sees whom, and the packets in between.

Each admitted participant has up to two peer connections (CONTRACT.md): *publish*, where the
client offers its audio and video and the server answers, and *subscribe*, where the server
offers every other participant's tracks and re-offers whenever that set changes (the server
is the only offerer there, so there is no glare: a change during an unanswered offer waits
for the answer). Packets are forwarded as they arrive, without decoding: each viewer track
gets the publisher's payload under its own SSRC, sequence numbers (a fixed offset per run, so
gaps stay gaps) and timestamps. A video viewer starts, and after its socket backs up restarts,
at a keyframe; the room asks the publisher for one when a viewer becomes ready and again about
once a second until it has one, and passes viewers' PLI/FIR upstream at a limited rate.

Who is in the room is decided by the door (admission); `sync` is told the admitted members
and their connections, and drops anyone else at once: their packets stop being forwarded in
the same call, and their peer connections close in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidStateError
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.rtp import RtpPacket
from aiortc.sdp import SessionDescription

from server.media import glue
from server.media.packets import header, keyframe_start
from server.realtime.connection import Connection

log = logging.getLogger(__name__)

TICK = 0.25  # seconds between keyframe / media-state checks
KEYFRAME_RETRY = 1.0  # a viewer still waiting for a keyframe asks again after this long
KEYFRAME_MIN_INTERVAL = 0.3  # at most one PLI upstream per publisher track in this long
FLOW_TIMEOUT = 3.0  # a track silent this long counts as not sending
START_GRACE = 5.0  # a new track counts as sending while it connects
DRAIN_TIMEOUT = 5.0  # at shutdown, how long peer connections get to close
ANSWER_TIMEOUT = 15.0  # a subscribe offer unanswered this long: that connection starts over

StateSink = Callable[[str, bool, bool, bool], Awaitable[None]]  # (participant, is_patient, audio, video)


class MediaError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def rtc_configuration(ice_servers: tuple[dict[str, Any], ...]) -> RTCConfiguration:
    servers = [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
               for s in ice_servers]
    return RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


def check_publish_offer(sdp: str) -> None:
    """A publish offer is well-formed SDP with at most one audio and one video section."""
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises whatever the bad line provokes
        raise MediaError("bad_sdp", f"the SDP could not be read ({type(exc).__name__})") from None
    kinds = [m.kind for m in parsed.media]
    if not kinds:
        raise MediaError("bad_sdp", "the offer has no media")
    if any(k not in ("audio", "video") for k in kinds) or kinds.count("audio") > 1 or kinds.count("video") > 1:
        raise MediaError("bad_sdp", "a publish offer carries at most one audio and one video track")
    for media in parsed.media:
        if media.ice is None or not media.ice.usernameFragment or not media.dtls or not media.dtls.fingerprints:
            raise MediaError("bad_sdp", "the offer lacks ICE credentials or a DTLS fingerprint")


async def quietly_close(pc: RTCPeerConnection) -> None:
    """Close in the background; a connection a client broke may fail to close cleanly."""
    try:
        await pc.close()
    except Exception as exc:
        log.info("a peer connection did not close cleanly: %r", exc)


def keyed(description: SessionDescription) -> bool:
    """Every media section carries ICE credentials and a DTLS fingerprint (a session-level one
    counts: aiortc's parser copies it to each section). Without a fingerprint the DTLS handshake
    has nothing to check the peer's certificate against."""
    return all(
        m.ice is not None and m.ice.usernameFragment and m.dtls is not None and m.dtls.fingerprints
        for m in description.media
    )


def same_sections(offer: SessionDescription, answer: SessionDescription) -> bool:
    """An answer must keep the offer's media sections, in order, all in one BUNDLE group."""
    mids = [m.rtp.muxId for m in offer.media]
    if [m.rtp.muxId for m in answer.media] != mids or [m.kind for m in answer.media] != [m.kind for m in offer.media]:
        return False
    bundles = [g.items for g in answer.group if g.semantic == "BUNDLE"]
    return bundles == [mids]


def capability(codec: RTCRtpCodecParameters, kind: str) -> list[RTCRtpCodecCapability]:
    """Codec preferences that make a viewer track use exactly the publisher's codec.

    No RTX: lost packets are sent again as they were (same SSRC and sequence number), which
    every receiver takes. aiortc receivers drop RTX on a connection with several video tracks
    (their router knows no RTX SSRCs, and the RTX payload type is shared by all the tracks)."""
    caps = RTCRtpSender.getCapabilities(kind).codecs
    return [c for c in caps if c.mimeType.lower() == codec.mimeType.lower() and c.parameters == codec.parameters][:1]


class Source:
    """One published track and the viewers it is forwarded to."""

    def __init__(self, owner: Member, kind: str, transceiver: RTCRtpTransceiver, codec: RTCRtpCodecParameters) -> None:
        self.owner = owner
        self.kind = kind
        self.transceiver = transceiver
        self.codec = codec
        self.mime = codec.mimeType
        self.forwards: list[Forward] = []
        self.ssrc: int | None = None
        self.blocked = False  # audio muted by the facilitator: not forwarded
        self.packets = 0
        self.loop = asyncio.get_running_loop()
        self.created = self.loop.time()
        self.last_packet = 0.0
        self.last_keyframe_request = float("-inf")
        self.closed = False

    def deliver(self, packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
        """The hot path: one incoming packet, out to every viewer."""
        self.packets += 1
        self.last_packet = self.loop.time()
        self.ssrc = packet.ssrc
        if self.blocked or self.closed or not self.forwards or codec.mimeType != self.mime:
            return
        starts: bool | None = None
        broken: list[Forward] = []
        for forward in self.forwards:
            try:
                if forward.seq_delta is None or forward.src_ssrc != packet.ssrc:
                    if starts is None:
                        starts = keyframe_start(self.mime, packet.payload)
                    if not starts:
                        forward.seq_delta = None  # waiting for a keyframe (and asking for one)
                        continue
                    forward.rebase(packet, self.codec.clockRate, self.last_packet)
                forward.send(packet)
            except Exception:  # one broken viewer track must not stop the publisher's receive loop
                log.exception("forwarding to a viewer failed; that viewer track is dropped")
                broken.append(forward)
        for forward in broken:
            self.forwards.remove(forward)

    def request_keyframe(self, min_interval: float = KEYFRAME_MIN_INTERVAL) -> None:
        if self.kind != "video" or self.ssrc is None or self.closed:
            return
        now = self.loop.time()
        if now - self.last_keyframe_request < min_interval:
            return
        self.last_keyframe_request = now
        self.owner.room.spawn(glue.request_keyframe(self.transceiver.receiver, self.ssrc))

    def sending(self, now: float) -> bool:
        if self.closed or self.blocked:
            return False
        return now - self.last_packet < FLOW_TIMEOUT or (self.packets == 0 and now - self.created < START_GRACE)


class Forward:
    """One source to one viewer track: the rewriting state of that stream."""

    def __init__(self, source: Source, outlet: glue.Outlet) -> None:
        self.source = source
        self.outlet = outlet
        self.seq_delta: int | None = None  # None: waiting for a place to start (a keyframe)
        self.base_seq = 0  # the publisher's sequence number where this run started
        self.ts_delta = 0
        self.src_ssrc: int | None = None
        self.last_seq = random.getrandbits(15)
        self.last_ts = random.getrandbits(32)
        self.last_at: float | None = None
        self.asked_at = float("-inf")  # when this viewer last asked for a keyframe

    def rebase(self, packet: RtpPacket, clock_rate: int, now: float) -> None:
        """Start (or restart) the stream: contiguous sequence numbers, timestamps that move on."""
        self.base_seq = packet.sequence_number
        self.seq_delta = (self.last_seq + 1 - packet.sequence_number) & 0xFFFF
        target = self.last_ts if self.last_at is None else self.last_ts + int((now - self.last_at) * clock_rate)
        self.ts_delta = (target - packet.timestamp) & 0xFFFFFFFF
        self.src_ssrc = packet.ssrc

    def send(self, packet: RtpPacket) -> None:
        outlet = self.outlet
        if outlet.payload_type is None and not outlet.ready():
            self.seq_delta = None
            return
        assert outlet.payload_type is not None and self.seq_delta is not None
        if (packet.sequence_number - self.base_seq) & 0xFFFF >= 0x8000:
            return  # from before this run started (a late retransmission): it has no place here
        seq = (packet.sequence_number + self.seq_delta) & 0xFFFF
        ts = (packet.timestamp + self.ts_delta) & 0xFFFFFFFF
        data = header(packet.marker, outlet.payload_type, seq, ts, outlet.ssrc) + packet.payload
        if outlet.send(seq, ts, data):
            if (seq - self.last_seq) & 0xFFFF < 0x8000:  # only ever forwards: a rebase never reuses numbers
                self.last_seq, self.last_ts, self.last_at = seq, ts, self.source.last_packet
        elif self.source.kind == "video":
            self.seq_delta = None  # the viewer fell behind: resume at the next keyframe

    @property
    def waiting(self) -> bool:
        return self.source.kind == "video" and self.seq_delta is None


class Member:
    """One admitted participant's media."""

    def __init__(self, room: MediaRoom, pid: str, conn: Connection) -> None:
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


class MediaRoom:
    def __init__(self, session_id: str, ice_servers: tuple[dict[str, Any], ...], on_state: StateSink) -> None:
        self.session_id = session_id
        self.ice_servers = ice_servers
        self.on_state = on_state
        self.members: dict[str, Member] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.timers: set[asyncio.Future[Any]] = set()  # answer timeouts, cancelled at the end
        self.counter = itertools.count(1)
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

    def sync(self, members: dict[str, Connection]) -> None:
        """Make the room's members exactly these admitted participants (and connections)."""
        if self.closed:
            return
        for pid, member in list(self.members.items()):
            if members.get(pid) is not member.conn:
                self._drop(member)
        fresh = [Member(self, pid, conn) for pid, conn in members.items() if pid not in self.members]
        for member in fresh:
            self.members[member.pid] = member
            if any(m.sources for m in self.members.values() if m is not member):
                self.spawn(self._renegotiate(member))

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
                self.spawn(self._renegotiate(other))
        for pc in (member.publish_pc, member.subscribe_pc):
            if pc is not None:
                self.spawn(quietly_close(pc))

    def _retire_publish(self, member: Member) -> None:
        """Drop a member's dead publish connection and its tracks; the others are re-offered."""
        for source in member.sources.values():
            source.closed = True
            source.forwards.clear()
        member.sources.clear()
        if member.publish_pc is not None:
            self.spawn(quietly_close(member.publish_pc))
            member.publish_pc = None
        for other in self.members.values():
            if other is not member:
                self.spawn(self._renegotiate(other))

    def member(self, pid: str, conn: Connection) -> Member:
        member = self.members.get(pid)
        if member is None or member.conn is not conn or self.closed:
            raise MediaError("not_admitted", "media is available only after admission")
        return member

    # -- publish ------------------------------------------------------------------------------

    async def publish(self, pid: str, conn: Connection, sdp: str) -> str:
        """Take the participant's publish offer; return the server's answer."""
        member = self.member(pid, conn)
        check_publish_offer(sdp)
        async with member.publish_lock:
            pc = member.publish_pc
            if pc is not None and pc.connectionState in ("closed", "failed"):
                self._retire_publish(member)  # the client gave up on that connection: start afresh
                pc = None
            if pc is not None and pc.signalingState != "stable":
                raise MediaError("out_of_turn", "a publish offer is already being answered")
            fresh = pc is None
            if pc is None:
                pc = RTCPeerConnection(rtc_configuration(self.ice_servers))
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                answer = await pc.createAnswer()
                await pc.setLocalDescription(answer)
            except Exception as exc:
                if fresh:
                    self.spawn(quietly_close(pc))
                else:
                    self._retire_publish(member)  # a half-applied re-offer: the next offer starts afresh
                raise MediaError("bad_sdp", f"the offer was refused ({type(exc).__name__})") from None
            if member.closed:
                self.spawn(quietly_close(pc))
                raise MediaError("not_admitted", "media is available only after admission")
            member.publish_pc = pc
            added = False
            for transceiver in pc.getTransceivers():
                codecs = glue.negotiated_codecs(transceiver)
                kind = transceiver.kind
                if not codecs or kind in member.sources or transceiver.currentDirection not in ("recvonly", "sendrecv"):
                    continue
                member.sources[kind] = self.source(member, kind, transceiver, codecs[0])
                added = True
            if added:
                for other in self.members.values():
                    if other is not member:
                        self.spawn(self._renegotiate(other))
            self.spawn(self._report(member))
            assert pc.localDescription is not None
            return pc.localDescription.sdp

    # -- subscribe ----------------------------------------------------------------------------

    async def _renegotiate(self, member: Member) -> None:
        async with member.subscribe_lock:
            if member.closed or self.closed:
                return
            pc = member.subscribe_pc
            if pc is not None and pc.signalingState == "have-local-offer":
                member.dirty = True  # offered already: re-offer once the answer is in
                return
            member.dirty = False
            wanted = {(other.pid, kind): source for other in self.members.values() if other is not member
                      for kind, source in other.sources.items() if not source.closed}
            changed = False
            for key, (transceiver, forward) in list(member.slots.items()):
                if wanted.get(key) is not forward.source:
                    transceiver.direction = "inactive"
                    with contextlib.suppress(ValueError):
                        forward.source.forwards.remove(forward)
                    del member.slots[key]
                    member.idle[key] = (transceiver, forward)
                    changed = True
            for key, source in wanted.items():
                if key in member.slots:
                    continue
                if pc is None:
                    pc = member.subscribe_pc = RTCPeerConnection(rtc_configuration(self.ice_servers))
                idle = member.idle.pop(key, None)
                reused = self.reuse_viewer_track(*idle, source) if idle is not None else None
                member.slots[key] = reused or self.viewer_track(pc, source)
                changed = True
            if not changed or pc is None:
                return
            try:
                await pc.setLocalDescription(await pc.createOffer())
            except InvalidStateError:
                if member.closed or self.closed:
                    return  # dropped while the offer was being made
                raise
            if member.closed or pc.localDescription is None:
                return
            frame: dict[str, Any] = {"type": "offer", "pc": "subscribe", "sdp": pc.localDescription.sdp}
            if member.restart:
                frame["restart"] = True  # a new connection: drop the old one before answering
                member.restart = False
            member.conn.send(frame)
            timer = asyncio.ensure_future(self._restart_if_unanswered(member, pc, frame["sdp"]))
            self.timers.add(timer)
            timer.add_done_callback(self.timers.discard)

    async def _restart_if_unanswered(self, member: Member, pc: RTCPeerConnection, offered: str) -> None:
        """An offer nobody answered in time: start the viewer's subscribe connection over."""
        await asyncio.sleep(ANSWER_TIMEOUT)
        async with member.subscribe_lock:
            current = pc.localDescription
            if (not member.closed and not self.closed and member.subscribe_pc is pc
                    and pc.signalingState == "have-local-offer" and current is not None and current.sdp == offered):
                log.info("no answer to a subscribe offer in %ss; starting that connection over", ANSWER_TIMEOUT)
                self._rebuild_subscribe(member)

    def _rebuild_subscribe(self, member: Member) -> None:
        """Close a viewer's subscribe connection; the next offer comes on a new one (restart)."""
        for _, forward in list(member.slots.values()) + list(member.idle.values()):
            with contextlib.suppress(ValueError):
                forward.source.forwards.remove(forward)
        member.slots.clear()
        member.idle.clear()
        if member.subscribe_pc is not None:
            self.spawn(quietly_close(member.subscribe_pc))
            member.subscribe_pc = None
        member.restart = True
        member.dirty = False
        self.spawn(self._renegotiate(member))

    def source(self, member: Member, kind: str, transceiver: RTCRtpTransceiver,
               codec: RTCRtpCodecParameters) -> Source:
        """A newly published track: its packets come to `deliver`, nothing is decoded."""
        source = Source(member, kind, transceiver, codec)
        glue.stop_decoding(transceiver.receiver)
        glue.tap_receiver(transceiver.receiver, source.deliver)
        return source

    def viewer_track(self, pc: RTCPeerConnection, source: Source) -> tuple[RTCRtpTransceiver, Forward]:
        """A new sending track on a viewer's subscribe connection, fed from `source`."""
        owner, kind = source.owner.pid, source.kind
        transceiver = pc.addTransceiver(glue.HeldTrack(kind, f"{owner}-{kind}-{next(self.counter)}"),
                                        direction="sendonly")
        glue.set_stream_id(transceiver.sender, owner)
        if prefs := capability(source.codec, kind):
            transceiver.setCodecPreferences(prefs)
        forward = Forward(source, glue.Outlet(transceiver, source.request_keyframe))
        source.forwards.append(forward)
        return transceiver, forward

    def reuse_viewer_track(self, transceiver: RTCRtpTransceiver, old: Forward,
                           source: Source) -> tuple[RTCRtpTransceiver, Forward] | None:
        """The same publisher is back: send their new track on their old m-line, if the codec matches.

        The stream carries on from where the old one stopped (sequence numbers, timestamps), and
        starts again only once the viewer has accepted the m-line as active again."""
        if (old.source.codec.mimeType.lower(), old.source.codec.parameters) != (
                source.codec.mimeType.lower(), source.codec.parameters):
            return None
        transceiver.direction = "sendonly"
        old.outlet.retarget(source.request_keyframe)
        forward = Forward(source, old.outlet)
        forward.last_seq, forward.last_ts, forward.last_at = old.last_seq, old.last_ts, old.last_at
        source.forwards.append(forward)
        return transceiver, forward

    async def subscribed(self, pid: str, conn: Connection, sdp: str) -> None:
        """The participant's answer to the last subscribe offer."""
        member = self.member(pid, conn)
        async with member.subscribe_lock:
            pc = member.subscribe_pc
            if pc is None or pc.signalingState != "have-local-offer":
                raise MediaError("out_of_turn", "there is no subscribe offer waiting for an answer")
            offer = pc.localDescription
            try:
                answer = SessionDescription.parse(sdp)
            except Exception:
                raise MediaError("bad_sdp", "the answer could not be read") from None
            if offer is None or not same_sections(SessionDescription.parse(offer.sdp), answer):
                raise MediaError("bad_sdp", "the answer's media sections or BUNDLE group differ from the offer")
            if not keyed(answer):
                raise MediaError("bad_sdp", "the answer lacks ICE credentials or a DTLS fingerprint")
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            except Exception as exc:
                self._rebuild_subscribe(member)  # possibly half applied: start that connection over
                raise MediaError("bad_sdp", f"the answer was refused ({type(exc).__name__})") from None
            again = member.dirty
        if again:
            self.spawn(self._renegotiate(member))

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
        """Keyframes for viewers still waiting for one; media state changes to record."""
        for member in list(self.members.values()):
            for source in member.sources.values():
                waiting = [f for f in source.forwards if f.waiting and now - f.asked_at >= KEYFRAME_RETRY
                           and f.outlet.ready()]
                if waiting:
                    for forward in waiting:
                        forward.asked_at = now
                    source.request_keyframe(min_interval=0.0)
            if member.state(now) != member.recorded:
                self.spawn(self._report(member))

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

    def __init__(self, ice_servers: tuple[dict[str, Any], ...], room_class: type[MediaRoom] = MediaRoom) -> None:
        self.ice_servers = ice_servers
        self.room_class = room_class
        self.rooms: dict[str, MediaRoom] = {}
        glue.allow_loopback_candidates()

    def room(self, session_id: str, on_state: StateSink) -> MediaRoom:
        room = self.rooms.get(session_id)
        if room is None:
            room = self.rooms[session_id] = self.room_class(session_id, self.ice_servers, on_state)
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
