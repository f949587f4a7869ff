"""A real aiortc participant for tests and benchmarks: publishes synthetic audio and video over
the contract's publish connection, answers the server's subscribe offers, decodes what arrives
and remembers, per remote participant (the msid stream id), what it decoded and when."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import (
    AudioStreamTrack,
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import SessionDescription

Send = Callable[[dict[str, Any]], Awaitable[None]]


class SyntheticVideo(MediaStreamTrack):
    """Small frames whose brightness changes every frame, at a steady rate."""

    kind = "video"

    def __init__(self, width: int = 160, height: int = 120, fps: int = 15) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.count = 0
        self.start: float | None = None
        self.sent_at: dict[int, float] = {}  # pts -> wall time it was captured (for latency)

    async def recv(self) -> av.VideoFrame:
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.count / self.fps
        if (delay := due - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        luma = bytes([(self.count * 7) % 200 + 20]) * (frame.planes[0].line_size * self.height)
        frame.planes[0].update(luma)
        for plane in frame.planes[1:]:
            plane.update(bytes([128]) * (plane.line_size * (self.height // 2)))
        frame.pts = self.count * (90000 // self.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        self.sent_at[frame.pts] = time.monotonic()
        self.count += 1
        return frame


class Voice(AudioStreamTrack):
    """Silence, or a loud tone while `speaking` (the sender measures its level, RFC 6464)."""

    def __init__(self) -> None:
        super().__init__()
        self.speaking = False

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()
        if self.speaking:
            tone = (8000 if i % 8 < 4 else -8000 for i in range(frame.samples))  # a 1 kHz square wave at 8 kHz
            frame.planes[0].update(b"".join(v.to_bytes(2, "little", signed=True) for v in tone))
        return frame


@dataclass
class Seen:
    """What one viewer decoded from one remote participant."""

    video_frames: int = 0
    audio_frames: int = 0
    first_video_at: float | None = None
    last_video_at: float | None = None
    size: tuple[int, int] | None = None
    video_event: asyncio.Event = field(default_factory=asyncio.Event)
    audio_event: asyncio.Event = field(default_factory=asyncio.Event)


class MediaPeer:
    def __init__(self, send: Send, video: bool = True, audio: bool = True, video_codec: str | None = None,
                 width: int = 160, height: int = 120, fps: int = 15) -> None:
        self.send = send
        self.video_track = SyntheticVideo(width, height, fps) if video else None
        self.audio_track = Voice() if audio else None
        self.video_codec = video_codec
        self.config = RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        self.publish_pc = RTCPeerConnection(self.config)
        self.subscribe_pc = RTCPeerConnection(self.config)
        self.ignore_offers = 0  # subscribe offers to leave unanswered (a client that fails to answer)
        self.seen: dict[str, Seen] = {}
        self.msids: dict[str, str] = {}  # mid -> msid stream id, from the server's offers
        self.answered = asyncio.Event()
        self.offers = 0
        self.subscribe_connected_at: float | None = None
        self.tasks: list[asyncio.Task[Any]] = []
        self.screen_track: SyntheticVideo | None = None
        self.screen_transceiver: RTCRtpTransceiver | None = None
        self._listen(self.subscribe_pc)

    def _listen(self, pc: RTCPeerConnection) -> None:
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_subscribe_state)

    def _on_subscribe_state(self) -> None:
        if self.subscribe_pc.connectionState == "connected" and self.subscribe_connected_at is None:
            self.subscribe_connected_at = time.monotonic()

    async def publish(self) -> None:
        """Offer our tracks on the publish connection (again, after start_video, to add video)."""
        pc = self.publish_pc
        self.answered.clear()
        sending = {t.sender.track for t in pc.getTransceivers()} | {self.screen_track}
        if self.audio_track is not None and self.audio_track not in sending:
            pc.addTransceiver(self.audio_track, direction="sendonly")
        if self.video_track is not None and self.video_track not in sending:
            transceiver = pc.addTransceiver(self.video_track, direction="sendonly")
            if self.video_codec:
                caps = RTCRtpSender.getCapabilities("video").codecs
                transceiver.setCodecPreferences([c for c in caps if c.mimeType.lower() == self.video_codec.lower()])
        await pc.setLocalDescription(await pc.createOffer())
        assert pc.localDescription is not None
        await self.send({"type": "offer", "pc": "publish", "sdp": pc.localDescription.sdp})

    async def share_screen(self, width: int = 320, height: int = 180) -> None:
        """Add a screen share: a second video section whose msid track id starts with "screen"
        (aiortc writes a track's id there). Sharing again reuses the section."""
        screen = SyntheticVideo(width, height, fps=5)
        screen._id = f"screen-{screen.id}"
        self.screen_track = screen
        if self.screen_transceiver is None:
            self.screen_transceiver = self.publish_pc.addTransceiver(screen, direction="sendonly")
        else:
            self.screen_transceiver.sender.replaceTrack(screen)
            self.screen_transceiver.direction = "sendonly"
        await self.publish()

    async def stop_screen(self) -> None:
        """Stop sharing: the screen section goes inactive in a re-offer."""
        assert self.screen_transceiver is not None
        self.screen_transceiver.direction = "inactive"
        await self.publish()

    async def start_video(self) -> None:
        """Turn the camera on after joining with sound only: a re-offer on the publish connection."""
        self.video_track = SyntheticVideo()
        await self.publish()

    async def handle(self, frame: dict[str, Any]) -> bool:
        """Take a signalling frame from the server; True if it was one."""
        if frame["type"] == "answer" and frame.get("pc") == "publish":
            await self.publish_pc.setRemoteDescription(RTCSessionDescription(sdp=frame["sdp"], type="answer"))
            self.answered.set()
            return True
        if frame["type"] == "offer" and frame.get("pc") == "subscribe":
            self.offers += 1
            if self.ignore_offers > 0:
                self.ignore_offers -= 1
                return True
            if frame.get("restart"):  # the server started the subscribe connection over
                await self.subscribe_pc.close()
                self.subscribe_pc = RTCPeerConnection(self.config)
                self._listen(self.subscribe_pc)
            pc = self.subscribe_pc
            for media in SessionDescription.parse(frame["sdp"]).media:
                if media.msid:
                    self.msids[media.rtp.muxId] = media.msid.split()[0]
            await pc.setRemoteDescription(RTCSessionDescription(sdp=frame["sdp"], type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            assert pc.localDescription is not None
            await self.send({"type": "answer", "pc": "subscribe", "sdp": pc.localDescription.sdp})
            return True
        return False

    def stream_of(self, track: MediaStreamTrack) -> str:
        """The msid stream id (the publishing participant's id) of a received track."""
        for transceiver in self.subscribe_pc.getTransceivers():
            if transceiver.receiver.track is track and transceiver.mid in self.msids:
                return self.msids[transceiver.mid]
        raise AssertionError("a received track without an msid")

    def _on_track(self, track: MediaStreamTrack) -> None:
        pid = self.stream_of(track)
        self.tasks.append(asyncio.ensure_future(self._consume(pid, track)))

    async def _consume(self, pid: str, track: MediaStreamTrack) -> None:
        seen = self.seen.setdefault(pid, Seen())
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if track.kind == "video":
                    seen.video_frames += 1
                    seen.last_video_at = now
                    seen.size = (frame.width, frame.height)
                    if seen.first_video_at is None:
                        seen.first_video_at = now
                    seen.video_event.set()
                else:
                    seen.audio_frames += 1
                    seen.audio_event.set()

    async def sees(self, pid: str, timeout: float = 20.0) -> Seen:
        """Wait until video and audio from `pid` have both been decoded."""
        seen = self.seen.setdefault(pid, Seen())
        async with asyncio.timeout(timeout):
            await seen.video_event.wait()
            await seen.audio_event.wait()
            return seen

    async def reset(self) -> None:
        """`media_reset`: the session's media moved to another process; both connections start
        over and we publish again (what media.js does)."""
        await self.publish_pc.close()
        await self.subscribe_pc.close()
        self.publish_pc = RTCPeerConnection(self.config)
        self.subscribe_pc = RTCPeerConnection(self.config)
        self._listen(self.subscribe_pc)
        self.seen = {}
        self.msids = {}
        if self.video_track is not None:
            self.video_track = SyntheticVideo()
        self.audio_track = AudioStreamTrack() if self.audio_track is not None else None
        await self.publish()

    def subscribe_socket(self) -> asyncio.DatagramTransport:
        """The UDP socket the subscribe connection receives on (aioice's selected pair)."""
        dtls = self.subscribe_pc.getTransceivers()[0].receiver.transport
        transport: asyncio.DatagramTransport = dtls.transport._connection._nominated[1].protocol.transport
        return transport

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.publish_pc.close()
        await self.subscribe_pc.close()
