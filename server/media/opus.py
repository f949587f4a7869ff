"""Opus in-band FEC and DTX in SDP (RFC 7587), which aiortc writes nothing of: its Opus has no
fmtp line. Pure text in, text out.

The server forwards Opus packets as they come, so FEC and DTX pass through as long as the SDP
asks for them: `useinbandfec=1` in the publish answer makes the browser put FEC in what it sends
(audio survives a lost packet), and in the subscribe offer says the server's streams may carry
it; `usedtx=1` is answered only to a publisher that offered it (a browser sends almost nothing
while its user is silent), and written on the viewer's m-line of that publisher's audio.
"""

from __future__ import annotations

import re
from collections.abc import Container

from server.media.simulcast import attributes, sections

OPUS = re.compile(r"^a=rtpmap:(\d+) opus/48000", re.IGNORECASE)


def _opus_types(section: str) -> list[str]:
    return [m.group(1) for line in section.splitlines() if (m := OPUS.match(line))]


def _fmtp(section: str, payload_type: str) -> dict[str, str]:
    for value in attributes(section, "fmtp"):
        pt, _, parameters = value.partition(" ")
        if pt == payload_type:
            return dict(p.strip().partition("=")[::2] for p in parameters.split(";") if p.strip())
    return {}


def offered_dtx(sdp: str) -> set[str]:
    """The mids of the audio sections whose Opus fmtp asks for DTX (`usedtx=1`)."""
    mids: set[str] = set()
    for section in sections(sdp)[1:]:
        mid = attributes(section, "mid")
        if section.startswith("m=audio") and mid and any(
                _fmtp(section, pt).get("usedtx") == "1" for pt in _opus_types(section)):
            mids.add(mid[0])
    return mids


def with_fec(sdp: str, dtx_mids: Container[str] = ()) -> str:
    """The SDP with `useinbandfec=1` in every Opus fmtp, and `usedtx=1` in those of the sections
    whose mid is in `dtx_mids` (an fmtp line is added after the rtpmap where there is none)."""
    newline = "\r\n" if "\r\n" in sdp else "\n"
    parts = sections(sdp)
    for i, section in enumerate(parts):
        if not section.startswith("m=audio"):
            continue
        mid = attributes(section, "mid")
        dtx = bool(mid) and mid[0] in dtx_mids
        lines = section.split(newline)
        for pt in _opus_types(section):
            parameters = _fmtp(section, pt) | {"useinbandfec": "1"} | ({"usedtx": "1"} if dtx else {})
            line = f"a=fmtp:{pt} " + ";".join(f"{k}={v}" if v else k for k, v in parameters.items())
            lines = [x for x in lines if not x.startswith(f"a=fmtp:{pt} ")]
            at = next(j for j, x in enumerate(lines) if x.startswith(f"a=rtpmap:{pt} "))
            lines.insert(at + 1, line)
        parts[i] = newline.join(lines)
    return newline.join(parts)
