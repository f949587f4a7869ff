"""RTP facts the forwarder needs, read straight from the bytes: is this the start of a keyframe.

Pure functions, no aiortc: a new viewer must not get a video stream until a packet that starts a
keyframe, since nothing before it can be decoded.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

HEADER = struct.Struct("!BBHII")  # V=2 P X CC | M PT | sequence | timestamp | SSRC
RTP_VERSION_BYTE = 0x80  # version 2, no padding, no extension, no CSRC


# The header, then one-byte header extensions (RFC 8285: 0xBEDE, 1 word) holding abs-send-time
# (id/len + 24 bits): one struct call per packet and viewer.
HEADER_WITH_SEND_TIME = struct.Struct("!BBHIIHHI")
EXTENSION = struct.Struct("!HH")  # an extension block's profile | its length in 32-bit words
NTP_EPOCH = 2208988800  # seconds from 1900 (NTP, and aiortc's arrival times) to 1970 (Unix)
WITH_EXTENSION_BYTE = 0x90  # version 2 and X


def header(marker: int, payload_type: int, sequence: int, timestamp: int, ssrc: int,
           send_time_id: int = 0, now: float = 0.0) -> bytes:
    """A plain 12-byte RTP header; with `send_time_id`, followed by the abs-send-time extension
    (the time `now` in seconds, 6.18 fixed point, 24 bits), from which a viewer's receiver
    estimates its bandwidth and reports it back in REMB."""
    if not send_time_id:
        return HEADER.pack(RTP_VERSION_BYTE, (marker << 7) | payload_type, sequence, timestamp, ssrc)
    return HEADER_WITH_SEND_TIME.pack(WITH_EXTENSION_BYTE, (marker << 7) | payload_type, sequence, timestamp, ssrc,
                                      0xBEDE, 1, (send_time_id << 28) | (2 << 24) | (int(now * 262144) & 0xFFFFFF))


def vp8_keyframe_start(payload: bytes) -> bool:
    """The first packet of a VP8 keyframe (RFC 7741 payload descriptor, then the frame tag)."""
    i = _vp8_frame_start(payload)
    return i is not None and not payload[i] & 0x01  # P bit of the frame tag: 0 means keyframe


def vp8_keyframe_size(payload: bytes) -> tuple[int, int] | None:
    """The width and height a VP8 keyframe's first packet declares (RFC 6386 9.1), else None."""
    i = _vp8_frame_start(payload)
    if i is None or payload[i] & 0x01 or len(payload) < i + 10 or payload[i + 3:i + 6] != b"\x9d\x01\x2a":
        return None
    return (int.from_bytes(payload[i + 6:i + 8], "little") & 0x3FFF,
            int.from_bytes(payload[i + 8:i + 10], "little") & 0x3FFF)


def _vp8_frame_start(payload: bytes) -> int | None:
    """Where the VP8 frame begins in a packet that starts a frame's first partition, else None."""
    if len(payload) < 2:
        return None
    first = payload[0]
    start, partition = first & 0x10, first & 0x07
    if not start or partition:
        return None
    i = 1
    if first & 0x80:  # X: extension byte follows
        ext = payload[1]
        i = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            if i >= len(payload):
                return False
            i += 2 if payload[i] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            i += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX
            i += 1
    return i if i < len(payload) else None


NAL_IDR, NAL_SPS, NAL_STAP_A, NAL_FU_A = 5, 7, 24, 28


def h264_keyframe_start(payload: bytes) -> bool:
    """A packet that starts an H264 IDR picture or carries its SPS (RFC 6184)."""
    if not payload:
        return False
    nal = payload[0] & 0x1F
    if nal in (NAL_IDR, NAL_SPS):
        return True
    if nal == NAL_STAP_A:
        i = 1
        while i + 2 < len(payload):
            size = (payload[i] << 8) | payload[i + 1]
            if payload[i + 2] & 0x1F in (NAL_IDR, NAL_SPS):
                return True
            i += 2 + size
        return False
    if nal == NAL_FU_A and len(payload) > 1:
        return bool(payload[1] & 0x80) and payload[1] & 0x1F == NAL_IDR
    return False


def keyframe_detector(mime_type: str) -> Callable[[bytes], bool] | None:
    """The keyframe-start test for a codec, chosen once per track; None where every packet is a
    place to start (audio)."""
    return {"video/vp8": vp8_keyframe_start, "video/h264": h264_keyframe_start}.get(mime_type.lower())


def keyframe_start(mime_type: str, payload: bytes) -> bool:
    detect = keyframe_detector(mime_type)
    return detect is None or detect(payload)
