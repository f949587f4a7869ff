"""Negotiation (seconds): SDP offers and answers, renegotiation, and the restart of a connection
whose offer went unanswered.

Each admitted participant has up to two peer connections (CONTRACT.md): *publish*, where the
client offers its audio and video and the server answers, and *subscribe*, where the server
offers every other participant's tracks and re-offers whenever that set changes (the server
is the only offerer there, so there is no glare: a change during an unanswered offer waits
for the answer). Negotiation creates the per-packet objects (`tracks.Source` for a published
track, `tracks.Forward` for a viewer track) and retires them; it does not forward packets.

`Negotiation` is the half of `room.MediaRoom` that does this; the room (membership) decides
who is in it and calls `renegotiate` when the tracks a viewer should see change.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

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
from aiortc.sdp import SessionDescription

from server.media import glue, inbound
from server.media.opus import offered_dtx, with_fec
from server.media.outbound import Outlet
from server.media.port import MediaPort
from server.media.simulcast import accept_layers, offered_layers
from server.media.tracks import Forward, Source

if TYPE_CHECKING:
    from server.media.room import Member

log = logging.getLogger(__name__)

ANSWER_TIMEOUT = 15.0  # a subscribe offer unanswered this long: that connection starts over


class MediaError(Exception):
    """A media request refused; `code` and `message` go back to the client in an error frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def rtc_configuration(ice_servers: tuple[dict[str, Any], ...]) -> RTCConfiguration:
    servers = [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
               for s in ice_servers]
    return RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


SCREEN = "screen"  # a publish offer's video section whose msid track id starts so is a screen share


def section_label(media: Any) -> str:
    """What a publish offer's media section carries: "audio", "video" (the camera) or "screen"
    (a second video section whose msid track id starts with "screen", CONTRACT.md v1.1)."""
    if media.kind != "video":
        return str(media.kind)
    track_id = (media.msid or "").split()[1:2]
    return SCREEN if track_id and track_id[0].startswith(SCREEN) else "video"


def check_publish_offer(sdp: str) -> bool:
    """A publish offer is well-formed SDP with at most one audio, one camera and one screen
    section. True if it shares a screen (its screen section sends)."""
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises whatever the bad line provokes
        raise MediaError("bad_sdp", f"the SDP could not be read ({type(exc).__name__})") from None
    if not parsed.media:
        raise MediaError("bad_sdp", "the offer has no media")
    labels = [section_label(m) for m in parsed.media]
    live = [label for label, m in zip(labels, parsed.media, strict=True) if m.port and m.direction != "inactive"]
    if any(label not in ("audio", "video", SCREEN) for label in labels) or len(set(live)) < len(live):
        raise MediaError("bad_sdp", "a publish offer carries at most one audio, one video and one screen track")
    for media in parsed.media:
        if media.ice is None or not media.ice.usernameFragment or not media.dtls or not media.dtls.fingerprints:
            raise MediaError("bad_sdp", "the offer lacks ICE credentials or a DTLS fingerprint")
    return SCREEN in live


def offered_labels(sdp: str) -> dict[str, str]:
    """Each section's mid -> what it carries (see section_label)."""
    return {m.rtp.muxId: section_label(m) for m in SessionDescription.parse(sdp).media}


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


class Negotiation:
    """Offers and answers for one room's members; mixed into `room.MediaRoom`, which provides
    the members, the closed flag and `spawn` (background work it waits for at the end)."""

    session_id: str
    ice_servers: tuple[dict[str, Any], ...]
    port: MediaPort | None
    members: dict[str, Member]
    closed: bool

    def __init__(self) -> None:
        self.timers: set[asyncio.Future[Any]] = set()  # answer timeouts, cancelled at the end
        self.counter = itertools.count(1)  # numbers viewer tracks, so their ids are unique

    def spawn(self, work: Awaitable[Any]) -> None:
        raise NotImplementedError  # the room's

    def peer_connection(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(rtc_configuration(self.ice_servers))
        if self.port is not None:
            glue.share_port(pc, self.port)
        return pc

    # -- publish ------------------------------------------------------------------------------

    async def answer_publish(self, member: Member, sdp: str) -> str:
        """Take a member's publish offer; return the server's answer. Their new tracks are
        offered to everyone else."""
        if check_publish_offer(sdp) and not self.may_share(member):
            raise MediaError("not_allowed", "the facilitator has not allowed you to share your screen")
        async with member.publish_lock:
            pc = member.publish_pc
            if pc is not None and pc.connectionState in ("closed", "failed"):
                self.retire_publish(member)  # the client gave up on that connection: start afresh
                pc = None
            if pc is not None and pc.signalingState != "stable":
                raise MediaError("out_of_turn", "a publish offer is already being answered")
            fresh = pc is None
            if pc is None:
                pc = self.peer_connection()
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                answer = await pc.createAnswer()
                await pc.setLocalDescription(answer)
            except Exception as exc:
                if fresh:
                    self.spawn(quietly_close(pc))
                else:
                    self.retire_publish(member)  # a half-applied re-offer: the next offer starts afresh
                raise MediaError("bad_sdp", f"the offer was refused ({type(exc).__name__})") from None
            if member.closed:
                self.spawn(quietly_close(pc))
                raise MediaError("not_admitted", "media is available only after admission")
            member.publish_pc = pc
            layers, dtx = offered_layers(sdp), offered_dtx(sdp)
            if self.take_tracks(member, pc, offered_labels(sdp), layers):
                self.renegotiate_others(member)
            if (audio := member.sources.get("audio")) is not None:
                audio.dtx = audio.transceiver.mid in dtx
            assert pc.localDescription is not None
            return with_fec(accept_layers(pc.localDescription.sdp, layers), dtx)

    def take_tracks(self, member: Member, pc: RTCPeerConnection, labels: dict[str, str],
                    layers: dict[str, list[str]]) -> bool:
        """Start forwarding the tracks an offer began sending, stop those it stopped (a screen
        share that ended: its section goes inactive), note simulcast layers. True if anything changed."""
        changed = False
        for transceiver in pc.getTransceivers():
            label = labels.get(transceiver.mid or "", transceiver.kind)
            receiving = transceiver.currentDirection in ("recvonly", "sendrecv")
            source = member.sources.get(label)
            codecs = glue.negotiated_codecs(transceiver)
            if source is not None and source.transceiver is transceiver and not receiving:
                self.retire_source(member, label)
                changed = True
            elif receiving and codecs and (source is None or source.transceiver is not transceiver):
                self.retire_source(member, label)
                member.sources[label] = self.source(member, transceiver.kind, transceiver, codecs[0], label)
                changed = True
            if receiving and (source := member.sources.get(label)) is not None:
                source.rids = layers.get(transceiver.mid or "", [])
        return changed

    def retire_source(self, member: Member, label: str) -> None:
        """Stop forwarding one of a member's tracks; the viewers' m-lines go inactive at the re-offer."""
        source = member.sources.pop(label, None)
        if source is not None:
            source.closed = True
            source.forwards.clear()

    def may_share(self, member: Member) -> bool:
        raise NotImplementedError  # the room's

    def adapt_viewer(self, member: Member) -> None:
        raise NotImplementedError  # the room's

    def retire_publish(self, member: Member) -> None:
        """Drop a member's dead publish connection and its tracks; the others are re-offered."""
        for source in member.sources.values():
            source.closed = True
            source.forwards.clear()
        member.sources.clear()
        if member.publish_pc is not None:
            self.spawn(quietly_close(member.publish_pc))
            member.publish_pc = None
        self.renegotiate_others(member)

    def source(self, member: Member, kind: str, transceiver: RTCRtpTransceiver,
               codec: RTCRtpCodecParameters, label: str) -> Source:
        """A newly published track: its packets come to `deliver`, nothing is decoded."""
        source = Source(member, kind, transceiver, codec, label)
        glue.stop_decoding(transceiver.receiver)
        inbound.tap_receiver(transceiver.receiver, source.deliver)
        glue.drop_estimate(transceiver.receiver)  # the tap estimates
        return source

    # -- subscribe ----------------------------------------------------------------------------

    def renegotiate_others(self, member: Member) -> None:
        """Everyone but `member` is offered what changed (`member`'s tracks came or went)."""
        for other in self.members.values():
            if other is not member:
                self.spawn(self.renegotiate(other))

    async def renegotiate(self, member: Member) -> None:
        """Offer the viewer every other member's tracks, if that set changed since the last offer."""
        async with member.subscribe_lock:
            if member.closed or self.closed:
                return
            pc = member.subscribe_pc
            if pc is not None and pc.signalingState == "have-local-offer":
                member.dirty = True  # offered already: re-offer once the answer is in
                return
            member.dirty = False
            wanted = {(other.pid, label): source for other in self.members.values() if other is not member
                      for label, source in other.sources.items() if not source.closed}
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
                    pc = member.subscribe_pc = self.peer_connection()
                idle = member.idle.pop(key, None)
                reused = self.reuse_viewer_track(*idle, source) if idle is not None else None
                member.slots[key] = reused or self.viewer_track(member, pc, source)
                changed = True
            if not changed or pc is None:
                return
            self.adapt_viewer(member)  # new tracks follow what the viewer shows
            try:
                await pc.setLocalDescription(await pc.createOffer())
            except InvalidStateError:
                if member.closed or self.closed:
                    return  # dropped while the offer was being made
                raise
            if member.closed or pc.localDescription is None:
                return
            offered = pc.localDescription.sdp
            dtx = {t.mid for t, forward in member.slots.values() if forward.source.dtx and t.mid is not None}
            frame: dict[str, Any] = {"type": "offer", "pc": "subscribe", "sdp": with_fec(offered, dtx)}
            if member.restart:
                frame["restart"] = True  # a new connection: drop the old one before answering
                member.restart = False
            member.conn.send(frame)
            timer = asyncio.ensure_future(self._restart_if_unanswered(member, pc, offered))
            self.timers.add(timer)
            timer.add_done_callback(self.timers.discard)

    async def take_answer(self, member: Member, sdp: str) -> None:
        """The member's answer to the last subscribe offer."""
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
            self.spawn(self.renegotiate(member))

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
        self.spawn(self.renegotiate(member))

    def viewer_track(self, member: Member, pc: RTCPeerConnection,
                     source: Source) -> tuple[RTCRtpTransceiver, Forward]:
        """A new sending track on a viewer's subscribe connection, fed from `source`; the viewer's
        REMB reports on it go to its bandwidth estimate."""
        owner, kind = source.owner.pid, source.kind
        transceiver = pc.addTransceiver(glue.HeldTrack(kind, f"{owner}-{source.label}-{next(self.counter)}"),
                                        direction="sendonly")
        glue.drop_estimate(transceiver.receiver)  # it never receives
        glue.set_stream_id(transceiver.sender, f"{owner}:{SCREEN}" if source.label == SCREEN else owner)
        if prefs := capability(source.codec, kind):
            transceiver.setCodecPreferences(prefs)
        loop = asyncio.get_running_loop()

        def on_remb(bitrate: int, ssrcs: list[int]) -> None:
            # Only an estimate of the whole connection, audio included, can be weighed against the
            # audio paid for first (aiortc's receivers each report their own video stream alone).
            audio = {f.outlet.ssrc for _, f in member.slots.values() if f.source.kind == "audio"}
            if audio & set(ssrcs):
                member.bandwidth.report(bitrate, ssrcs, loop.time())

        forward = Forward(source, Outlet(transceiver, source.request_keyframe, on_remb))
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
        forward = Forward(source, old.outlet, old.rewriter.continued(source.codec.clockRate))
        source.forwards.append(forward)
        return transceiver, forward
