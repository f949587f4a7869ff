"""One synthetic participant for bench/media.py, in its own process.

It checks in with a patient link, waits to be admitted, publishes pre-encoded Opus and
640x360 VP8 frames on a fixed schedule: video frame k is
captured at T0 + k/fps, for every participant of the run alike. Each frame's bytes are
known in advance, so a viewer recognises a frame from the start of its first packet and
knows when it was captured. Viewers read RTP straight off the subscribe connection's socket
(Viewer.read_socket) and count a frame when its last packet arrives: capture-to-receive latency
per frame and frames per second per remote participant, inside the measurement window.

    python -m bench.media_client URL TOKEN FRAMES_FILE T0 WINDOW_START WINDOW_END OUT --offsets FILE
                                 [--offset K] [--decode] [--view N [--tile WxH]] [--speaker] [--remb]
                                 [--janus ROOM]

Publishers are spread over the loop (--offset), so their keyframes do not all fall in the same
frame interval, as they would not in a real group.

With --decode the participant (the probe viewer) decodes two of the video streams with aiortc
(their packets go through aiortc's receive path, the others come off the socket as above) and
reports decoded frames per second for them. With --view N it is a phone whose grid shows N
of the others (a `view` frame); every viewer reports its downlink bytes in the window. With
--speaker its audio says it is loud (RFC 6464), so the server names it the active speaker; with
--remb it estimates its downlink as a browser does and sends REMB, and reports its audio gaps.
With --janus ROOM, URL is a Janus HTTP API and TOKEN this publisher's feed id: it joins that
VideoRoom instead (bench/janus.py), with one publish and one multistream subscribe connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import resource
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import av
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.mediastreams import MediaStreamError
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci
from aiortc.sdp import SessionDescription

from bench import janus
from bench.simulcast import LAYERS, LayerSender, Pictures, layer_file, simulcast_offer
from server.media import glue, inbound

FPS = 15
KEY = 48  # bytes of a frame that identify it
PROBE_DECODES = 2  # video streams the probe viewer decodes
RETRYABLE = {"not_admitted", "media_unavailable"}  # a refused publish offer worth sending again
RETRIES = 5
GAP_S = 0.2  # audio silent this long at a viewer is a gap a listener hears
DTX_FRAMES = 20  # Opus DTX: one frame per 400 ms while silent
OPUS_SILENCE = bytes([0xF8, 0xFF, 0xFE])  # a 20 ms CELT frame of silence, as DTX sends
KEYFRAME_MIN_S = 0.3  # a publisher makes a keyframe on request at most this often
LOUD_DBOV = -20  # the speaker's audio level (RFC 6464), so the server names them the active speaker


def load_frames(path: Path) -> list[bytes]:
    data = path.read_bytes()
    frames, i = [], 0
    while i < len(data):
        (size,) = struct.unpack_from("!I", data, i)
        frames.append(data[i + 4:i + 4 + size])
        i += 4 + size
    return frames


class PreEncoded(MediaStreamTrack):
    """Hands aiortc's sender encoded VP8 frames (av.Packet): it only packetizes them. Asked for a
    keyframe (the server's PLI, `request_keyframe`), it sends one (bench.simulcast.Pictures)."""

    kind = "video"

    def __init__(self, frames: list[bytes], t0: float, offset: int, keyframes: list[bytes] | None = None) -> None:
        super().__init__()
        self.pictures = Pictures(frames, keyframes, KEYFRAME_MIN_S)
        self.t0 = t0
        self.offset = offset  # where in the loop this publisher is at k = 0: keyframes not all at once
        self.k = max(0, int((time.time() - t0) * FPS) + 1)
        self.k += (-(self.k + offset)) % len(frames)  # start at a keyframe

    async def recv(self) -> av.Packet:
        due = self.t0 + self.k / FPS
        if (delay := due - time.time()) > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(self.pictures.frame((self.k + self.offset) % len(self.pictures.frames)))
        packet.pts = self.k * (90000 // FPS)
        packet.time_base = fractions.Fraction(1, 90000)
        self.k += 1
        return packet

    def request_keyframe(self) -> None:
        self.pictures.ask()


class PreEncodedAudio(MediaStreamTrack):
    """Opus packets (20 ms each) on a fixed schedule; aiortc's sender only packetizes them.
    With `silent`, a listener's microphone under Opus DTX: a silence frame every 400 ms, as a
    browser sends while its user says nothing (usedtx=1, which the page asks for)."""

    kind = "audio"

    def __init__(self, packets: list[bytes], t0: float, silent: bool = False) -> None:
        super().__init__()
        self.packets = packets
        self.t0 = t0
        self.step = DTX_FRAMES if silent else 1
        self.k = max(0, int((time.time() - t0) * 50) + 1)

    async def recv(self) -> av.Packet:
        due = self.t0 + self.k / 50
        if (delay := due - time.time()) > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(OPUS_SILENCE if self.step > 1 else self.packets[self.k % len(self.packets)])
        packet.pts = self.k * 960
        packet.time_base = fractions.Fraction(1, 48000)
        self.k += self.step
        return packet


class Viewer:
    def __init__(self, frames: list[bytes], t0: float, window: tuple[float, float], offsets: dict[str, int],
                 layers: dict[str, tuple[list[bytes], list[bytes]]] | None = None,
                 keyframes: list[bytes] | None = None) -> None:
        self.index = {frame[:KEY]: i for i, frame in enumerate(keyframes or [])}  # a frame sent on request
        self.index |= {frame[:KEY]: i for i, frame in enumerate(frames)}
        self.layer_of: dict[bytes, str] = {}  # simulcast: a frame's first bytes -> its layer's RID
        for rid, loops in (layers or {}).items():
            for layer in loops:  # its frames, and the same pictures as keyframes (sent on request)
                self.index |= {frame[:KEY]: i for i, frame in enumerate(layer)}
                self.layer_of |= {frame[:KEY]: rid for frame in layer}
        self.offsets = offsets  # each publisher's place in the loop at k = 0
        self.loop_len = len(frames)
        self.t0 = t0
        self.window = window
        self.streams: dict[str, dict[str, Any]] = {}
        self.decoded: dict[str, int] = {}
        self.decoding: set[str] = set()
        self.downlink_bytes = 0  # every datagram on the subscribe connection's sockets, in the window
        self.downlink_kinds = {"video": 0, "audio": 0, "other": 0}  # the same bytes: RTP by kind; RTCP, STUN
        self.audio: dict[str, dict[str, Any]] = {}  # per publisher: packets, gaps over GAP_S, longest gap
        self.last_audio: dict[str, float] = {}
        self.estimator: RemoteBitrateEstimator | None = None  # with --remb: the connection's estimate
        self.send_time_id = 3  # abs-send-time's id in the server's offers (aiortc's numbering)
        self.send_remb: Any = None
        self.estimates: list[int] = []  # REMB sent in the window, bps

    def audio_packet(self, pid: str, now: float) -> None:
        """One audio packet from `pid`: a silence longer than GAP_S inside the window is a gap."""
        audio = self.audio.setdefault(pid, {"packets": 0, "gaps": 0, "longest_gap_ms": 0.0})
        last = self.last_audio.get(pid)
        self.last_audio[pid] = now
        if not self.window[0] <= now <= self.window[1]:
            return
        audio["packets"] += 1
        if last is not None and last >= self.window[0]:
            audio["longest_gap_ms"] = max(audio["longest_gap_ms"], (now - last) * 1000)
            audio["gaps"] += now - last > GAP_S

    def send_time(self, extensions: bytes) -> int | None:
        """abs-send-time from one-byte header extensions (RFC 8285), if present."""
        i = 0
        while i < len(extensions):
            if extensions[i] == 0:
                i += 1
                continue
            ext_id, length = extensions[i] >> 4, (extensions[i] & 0x0F) + 1
            if ext_id == self.send_time_id and length == 3:
                return int.from_bytes(extensions[i + 1:i + 4], "big")
            i += 1 + length
        return None

    def estimate(self, send_time: int, now: float, size: int, ssrc: int) -> None:
        """A browser's receive-side estimate over everything the connection receives; REMB back."""
        assert self.estimator is not None
        remb = self.estimator.add(abs_send_time=send_time, arrival_time_ms=int(now * 1000),
                                  payload_size=size, ssrc=ssrc)
        if remb is not None and self.send_remb is not None:
            self.send_remb(*remb)
            if self.window[0] <= now <= self.window[1]:
                self.estimates.append(remb[0])

    def video_packet(self, pid: str, payload: bytes, marker: int, now: float) -> None:
        """One VP8 packet from `pid`: a frame is counted (and timed) when its last packet arrives."""
        stream = self.streams.get(pid)
        if stream is None:
            stream = self.streams[pid] = {"frames": 0, "latency_ms": [], "packets": 0, "idx": None, "layers": {}}
        stream["packets"] += 1
        try:
            descriptor, data = VpxPayloadDescriptor.parse(payload)
        except ValueError:
            return
        if descriptor.partition_start and descriptor.partition_id == 0:
            stream["idx"] = self.index.get(data[:KEY])
            stream["layer"] = self.layer_of.get(data[:KEY])
        if not marker:
            return
        idx, stream["idx"] = stream["idx"], None
        if not self.window[0] <= now <= self.window[1]:
            return
        stream["frames"] += 1
        if (layer := stream.get("layer")) is not None:  # simulcast: which layer this frame came from
            stream["layers"][layer] = stream["layers"].get(layer, 0) + 1
        if idx is None:
            return  # not one of the pre-encoded frames (the re-encoding path): no latency
        k = int((now - self.t0) * FPS)
        k -= (k + self.offsets.get(pid, 0) - idx) % self.loop_len  # the latest capture of this frame
        stream["latency_ms"].append((now - (self.t0 + k / FPS)) * 1000)

    def tap(self, pid: str, receiver: Any, kind: str) -> None:
        """Take packets at an aiortc receiver (after its SRTP, parsing and routing)."""

        def deliver(packet: Any, codec: Any) -> None:
            if kind == "video" and codec.mimeType.lower() == "video/vp8":
                self.video_packet(pid, packet.payload, packet.marker, time.time())

        inbound.tap_receiver(receiver, deliver, estimate_bandwidth=False)

    def read_socket(self, subscribe: RTCPeerConnection, owners: dict[int, tuple[str, str]]) -> None:
        """Take the subscribe connection's RTP straight off its socket: SRTP, then the header.

        aiortc's receive path costs ~100 us a packet in Python; twelve viewers in one 2-core
        machine cannot afford it beside the server. What the forwarder sends has a 12-byte
        header and at most the abs-send-time extension, read here by hand (Janus's, a few more
        one-byte extensions, skipped). RTCP, STUN and DTLS still go to aiortc (ICE consent,
        sender reports), and so does the video of the streams the probe decodes."""
        dtls = subscribe.getTransceivers()[0].receiver.transport

        def hook(protocol: Any) -> None:
            original = protocol.datagram_received

            def datagram_received(data: bytes, addr: Any) -> None:
                rtp = 127 < data[0] < 192 and not 192 <= data[1] <= 223
                ssrc = int.from_bytes(data[8:12], "big")  # not encrypted
                owner = owners.get(ssrc) if rtp else None
                if self.window[0] <= time.time() <= self.window[1]:
                    self.downlink_bytes += len(data) + 28  # with the IPv4 and UDP headers
                    self.downlink_kinds[owner[1] if owner is not None else "other"] += len(data) + 28
                srtp = dtls._rx_srtp
                if srtp is None or not rtp:
                    original(data, addr)
                    return
                if owner is not None and owner[1] == "video" and owner[0] in self.decoding:
                    original(data, addr)  # the probe decodes this one with aiortc
                    return
                try:
                    plain = srtp.unprotect(data)
                except Exception:  # pylibsrtp.Error: a replay or a bad packet
                    return
                now = time.time()
                start = 12 + 4 * (plain[0] & 0x0F)  # after the CSRCs
                send_time = None
                if plain[0] & 0x10 and len(plain) >= start + 4:  # header extensions (abs-send-time)
                    words = int.from_bytes(plain[start + 2:start + 4], "big")
                    send_time = self.send_time(plain[start + 4:start + 4 + 4 * words])
                    start += 4 + 4 * words
                if self.estimator is not None and send_time is not None:
                    self.estimate(send_time, now, len(plain) - start, ssrc)
                if owner is not None and owner[1] == "video":
                    self.video_packet(owner[0], plain[start:], plain[1] >> 7, now)
                elif owner is not None and owner[1] == "audio":
                    self.audio_packet(owner[0], now)

            protocol.datagram_received = datagram_received

        for protocol in dtls.transport._connection._protocols:  # every local candidate's socket
            hook(protocol)

    async def decode(self, pid: str, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                if track.kind == "video" and self.window[0] <= time.time() <= self.window[1]:
                    self.decoded[pid] = self.decoded.get(pid, 0) + 1


async def run(args: argparse.Namespace) -> dict[str, Any]:
    frames = load_frames(Path(args.frames))
    layers = {rid: (load_frames(layer_file(Path(args.frames), rid)),
                    load_frames(layer_file(Path(args.frames), rid).with_suffix(".key")))
              for rid, _, _ in LAYERS} if args.simulcast else {}
    keys = Path(args.frames).with_suffix(".key")
    keyframes = load_frames(keys) if keys.exists() else None
    window = (args.window_start, args.window_end)
    offsets: dict[str, int] = json.loads(Path(args.offsets).read_text())
    viewer = Viewer(frames, args.t0, window, offsets, layers, keyframes)
    config = RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    publish = RTCPeerConnection(config)
    subscribe = RTCPeerConnection(config)
    msids: dict[str, str] = {}  # the subscribe connection's mid -> publisher
    owners: dict[int, tuple[str, str]] = {}  # SSRC -> (publisher, kind), from the server's offers
    tasks: list[asyncio.Task[Any]] = []

    def on_track(track: MediaStreamTrack) -> None:
        for transceiver in subscribe.getTransceivers():
            if transceiver.receiver.track is track:
                pid = msids[str(transceiver.mid)]
                if args.decode and track.kind == "video" and len(viewer.decoding) < PROBE_DECODES:
                    # The probe: aiortc decodes a few video streams (all of them would starve
                    # two shared cores at N=12); the others are taken at the receiver.
                    viewer.decoding.add(pid)
                    tasks.append(asyncio.ensure_future(viewer.decode(pid, track)))
                elif pid not in viewer.decoding:
                    viewer.tap(pid, transceiver.receiver, track.kind)

    def on_publish_state() -> None:
        if publish.connectionState == "connected" and layer_sender and not tasks_started:
            tasks_started.append(True)
            task = asyncio.ensure_future(layer_sender[0].run())
            task.add_done_callback(lambda t: t.cancelled() or t.exception() is None or t.print_stack())
            tasks.append(task)

    def on_state() -> None:
        if subscribe.connectionState == "connected" and not reading:
            reading.append(True)
            viewer.read_socket(subscribe, owners)
            if args.remb:
                remb_through(viewer, subscribe)

    def add_tracks() -> None:
        tone = load_frames(Path(args.frames).with_suffix(".opus"))
        audio = publish.addTransceiver(PreEncodedAudio(tone, args.t0, silent=args.silent), direction="sendonly")
        if args.speaker:
            speak(audio.sender)
        if layers:  # the layers are written by a LayerSender; aiortc's own sender sends nothing
            video = publish.addTransceiver(glue.HeldTrack("video", "camera"), direction="sendonly")
            layer_sender.append(LayerSender(video, layers, args.t0, FPS, args.offset, KEYFRAME_MIN_S))
        else:
            camera = PreEncoded(frames, args.t0, args.offset, keyframes)
            video = publish.addTransceiver(camera, direction="sendonly")
            video.sender._send_keyframe = camera.request_keyframe  # the server's PLI (aiortc's asks its encoder)
            cameras.append(camera)

    def learn(streams: dict[str, str], sdp: str) -> None:
        """The server's offer on the subscribe connection: which publisher each mid and SSRC is."""
        msids.update(streams)
        for media in SessionDescription.parse(sdp).media:
            pid = streams.get(str(media.rtp.muxId))
            if pid is not None:
                owners.update({s.ssrc: (pid, media.kind) for s in media.ssrc})

    reading: list[bool] = []
    layer_sender: list[LayerSender] = []
    tasks_started: list[bool] = []
    publish.on("connectionstatechange", on_publish_state)
    cameras: list[PreEncoded] = []
    if args.decode:
        subscribe.on("track", on_track)
    subscribe.on("connectionstatechange", on_state)
    refusals, speakers = 0, []
    async with asyncio.timeout(args.window_end + 20 - time.time()), aiohttp.ClientSession() as http:
        if args.janus:
            published, errors = await janus.participate(
                http, args.url, args.janus, int(args.token), len(offsets) - 1, args.window_start - 4,
                args.window_end + 2, publish, subscribe, add_tracks,
                lambda streams, sdp: learn({str(s["mid"]): str(s["feed_id"]) for s in streams if "feed_id" in s},
                                           sdp))
        else:
            published, refusals, errors, speakers = await porchlight(
                http, args, publish, subscribe, add_tracks, learn, msids)
        for task in tasks:
            task.cancel()
        for pc in (publish, subscribe):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pc.close(), 5)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"streams": viewer.streams, "decoded": viewer.decoded, "cpu_s": usage.ru_utime + usage.ru_stime,
            "published": published, "refusals": refusals, "errors": errors,
            "downlink_bytes": viewer.downlink_bytes, "downlink_kinds": viewer.downlink_kinds,
            "view": args.view, "audio": viewer.audio,
            "estimates": viewer.estimates, "speakers": speakers, "grid": args.grid,
            "layers_sent": layer_sender[0].report() if layer_sender else None,
            "keyframes_on_request": sum(camera.pictures.sent for camera in cameras)
            + sum(layer.pictures.sent for sender in layer_sender for layer in sender.layers)}


async def porchlight(http: aiohttp.ClientSession, args: argparse.Namespace, publish: RTCPeerConnection,
                     subscribe: RTCPeerConnection, add_tracks: Callable[[], None],
                     learn: Callable[[dict[str, str], str], None], msids: dict[str, str],
                     ) -> tuple[bool, int, list[str], list[str]]:
    """Porchlight's signalling until the window's end: check in, publish once admitted (offering
    again when refused), answer the subscribe connection's offers. Returns whether it published,
    the refused offers, the other errors and the active speakers announced."""
    ws_url = args.url.replace("http", "ws", 1) + "/api/v1/ws"
    published, refusals, errors = False, 0, []
    speakers: list[str] = []
    offer = ""
    async with http.ws_connect(ws_url, max_msg_size=0) as ws:

        async def send(frame: dict[str, Any]) -> None:
            await ws.send_str(json.dumps(frame))

        await send({"type": "hello", "token": args.token, "location": "home"})
        deadline = args.window_end + 2
        while time.time() < deadline:
            try:  # not receive(timeout=): each server ping would restart that timer
                async with asyncio.timeout(max(0.1, deadline - time.time())):
                    msg = await ws.receive()
            except TimeoutError:
                break
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            kind = frame["type"]
            if kind == "active_speaker":
                speakers.append(frame["id"])
            if kind == "admitted":
                add_tracks()
                await publish.setLocalDescription(await publish.createOffer())
                offer = publish.localDescription.sdp
                if args.simulcast:  # as a browser with sendEncodings writes it
                    offer = simulcast_offer(offer, [rid for rid, _, _ in LAYERS])
                await send({"type": "offer", "pc": "publish", "sdp": offer})
            elif kind == "error" and frame["code"] in RETRYABLE and not published and refusals < RETRIES:
                # The offer was refused (e.g. not yet admitted to media): offer again, and say so.
                refusals += 1
                await asyncio.sleep(0.25 * refusals)
                await send({"type": "offer", "pc": "publish", "sdp": offer})
            elif kind == "error":
                errors.append(frame["code"])
            elif kind == "answer":
                await publish.setRemoteDescription(RTCSessionDescription(sdp=frame["sdp"], type="answer"))
                published = True
            elif kind == "offer":
                learn({str(media.rtp.muxId): media.msid.split()[0]
                       for media in SessionDescription.parse(frame["sdp"]).media if media.msid}, frame["sdp"])
                await subscribe.setRemoteDescription(RTCSessionDescription(sdp=frame["sdp"], type="offer"))
                await subscribe.setLocalDescription(await subscribe.createAnswer())
                await send({"type": "answer", "pc": "subscribe", "sdp": subscribe.localDescription.sdp})
                if args.view or args.grid:  # a phone's grid: the first few of the others on screen,
                    shown = sorted(set(msids.values()))  # the rest not; a laptop's: all of them
                    shown = shown[:args.view] if args.view else [] if args.grid == "hidden" else shown
                    size = args.tile if args.view else "0x0" if args.grid == "hidden" else args.grid
                    width, height = (int(side) for side in size.split("x"))
                    await send({"type": "view", "tiles": [{"id": pid, "width": width, "height": height}
                                                          for pid in shown]})
    return published, refusals, errors, speakers


def speak(sender: Any) -> None:
    """Mark this publisher's audio loud (the RFC 6464 level aiortc sets only when it encodes)."""
    original = sender._next_encoded_frame

    async def loud(codec: Any) -> Any:
        frame = await original(codec)
        if frame is not None:
            frame.audio_level = LOUD_DBOV
        return frame

    sender._next_encoded_frame = loud


def remb_through(viewer: Viewer, subscribe: RTCPeerConnection) -> None:
    """Estimate the subscribe connection's bandwidth as a browser does, and send it back as REMB."""
    receiver = subscribe.getTransceivers()[0].receiver
    rtcp_ssrc = subscribe.getTransceivers()[0].sender._ssrc
    loop = asyncio.get_running_loop()
    viewer.estimator = RemoteBitrateEstimator()

    def send(bitrate: int, ssrcs: list[int]) -> None:
        packet = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, ssrcs))
        loop.create_task(receiver._send_rtcp(packet))

    viewer.send_remb = send


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("url", "token", "frames"):
        parser.add_argument(name)
    for name in ("t0", "window_start", "window_end"):
        parser.add_argument(name, type=float)
    parser.add_argument("out")
    parser.add_argument("--decode", action="store_true")
    parser.add_argument("--offsets", required=True, help="JSON file: publisher id -> loop offset")
    parser.add_argument("--offset", type=int, default=0, help="this publisher's loop offset")
    parser.add_argument("--view", type=int, default=0, help="show only this many of the others (a phone grid)")
    parser.add_argument("--tile", default="360x270", help="the size those tiles are shown at, device pixels")
    parser.add_argument("--grid", default="", metavar="WxH",
                        help="show every other participant at this size, device pixels (a laptop's grid); "
                             "hidden: show none (a tab in the background: sound only)")
    parser.add_argument("--simulcast", action="store_true",
                        help="publish the camera as three layers (bench/simulcast.py), as browsers do")
    parser.add_argument("--speaker", action="store_true", help="publish loud audio: the active speaker")
    parser.add_argument("--silent", action="store_true", help="a listener: Opus DTX silence, a frame per 400 ms")
    parser.add_argument("--remb", action="store_true", help="estimate the downlink and send REMB, as browsers do")
    parser.add_argument("--janus", type=int, default=0, metavar="ROOM",
                        help="URL is a Janus API, TOKEN this publisher's feed id: join this VideoRoom")
    args = parser.parse_args()
    glue.send_times_on_audio()  # as the server: the estimate counts audio too
    if args.simulcast:
        glue.accept_simulcast()  # aiortc offers the RID extension (the server does the same)
    result = asyncio.run(run(args))
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
