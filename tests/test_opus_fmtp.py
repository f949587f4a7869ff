"""Opus in-band FEC and DTX negotiated through the server (issue 13), with real aiortc peers: the
publish answer carries `useinbandfec=1` (and `usedtx=1` to a publisher that offered it, as a
browser does), each viewer's subscribe offer carries them on that publisher's audio, and the
peers accept both and hear each other."""

from __future__ import annotations

from typing import Any

import pytest

from server.media.opus import offered_dtx, with_fec
from tests.helpers import Api
from tests.test_media import Room, everyone_sees_everyone

pytestmark = pytest.mark.timeout(120)


def opus_fmtp(sdp: str) -> list[str]:
    """The Opus fmtp parameters of each audio section, in order ("" where it has none)."""
    found = []
    for section in sdp.split("m=")[1:]:
        if not section.startswith("audio"):
            continue
        lines = section.splitlines()
        pt = next(x.split()[0].split(":")[1] for x in lines if x.startswith("a=rtpmap:") and " opus/" in x.lower())
        found.append(next((x.split(" ", 1)[1] for x in lines if x.startswith(f"a=fmtp:{pt} ")), ""))
    return found


def as_a_browser_offers(sdp: str) -> str:
    """What Chrome writes for Opus, which aiortc does not: `minptime=10;useinbandfec=1;usedtx=1`."""
    lines = sdp.split("\r\n")
    pt = next(x.split()[0].split(":")[1] for x in lines if x.startswith("a=rtpmap:") and " opus/" in x.lower())
    at = next(i for i, x in enumerate(lines) if x.startswith(f"a=rtpmap:{pt} "))
    return "\r\n".join(lines[:at + 1] + [f"a=fmtp:{pt} minptime=10;useinbandfec=1;usedtx=1"] + lines[at + 1:])


async def test_fec_is_asked_for_on_both_connections_and_dtx_where_the_publisher_offered_it(api: Api) -> None:
    async with await Room.open(api, await api.world(patients=2)) as room:
        dtx_patient = await room.admit(0)
        plain_patient = await room.admit(1)
        staff = room.people[0]
        answers: dict[str, str] = {}
        offers: list[str] = []
        for person in room.people:
            send, peer = person.sock.send, person.peer

            async def rewrite(frame: dict[str, Any], send: Any = send, person: Any = person) -> None:
                if frame["type"] == "offer" and person is dtx_patient:
                    frame = {**frame, "sdp": as_a_browser_offers(frame["sdp"])}
                await send(frame)

            peer.send = rewrite
            handle = peer.handle

            async def keep(frame: dict[str, Any], handle: Any = handle, person: Any = person) -> bool:
                if frame["type"] == "answer" and frame.get("pc") == "publish":
                    answers[person.pid] = frame["sdp"]
                if frame["type"] == "offer" and person is staff:
                    offers.append(frame["sdp"])
                return bool(await handle(frame))

            peer.handle = keep  # type: ignore[method-assign]
        for person in room.people:
            await person.peer.publish()
        await everyone_sees_everyone(room.people)  # the peers took these descriptions and hear each other

        assert opus_fmtp(answers[dtx_patient.pid]) == ["useinbandfec=1;usedtx=1"]
        assert opus_fmtp(answers[plain_patient.pid]) == ["useinbandfec=1"]
        assert opus_fmtp(answers[staff.pid]) == ["useinbandfec=1"]
        # The facilitator's latest subscribe offer: one audio section per patient, in the order
        # they were offered; DTX on the one who offered it.
        sdp = offers[-1]
        by_stream = {}
        for section in sdp.split("m=")[1:]:
            if section.startswith("audio"):
                msid = next(x.split(":", 1)[1].split()[0] for x in section.splitlines() if x.startswith("a=msid:"))
                by_stream[msid] = opus_fmtp("m=" + section)[0]
        assert by_stream == {dtx_patient.pid: "useinbandfec=1;usedtx=1", plain_patient.pid: "useinbandfec=1"}


def test_fec_is_added_to_an_existing_fmtp_and_dtx_only_where_asked() -> None:
    sdp = ("v=0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n"
           "a=fmtp:111 minptime=10;usedtx=1\r\na=rtpmap:0 PCMU/8000\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\n"
           "a=mid:1\r\na=rtpmap:96 opus/48000/2\r\nm=video 9 UDP/TLS/RTP/SAVPF 97\r\na=mid:2\r\n"
           "a=rtpmap:97 VP8/90000\r\na=fmtp:97 x=1\r\n")
    assert offered_dtx(sdp) == {"0"}
    out = with_fec(sdp, {"0"})
    assert opus_fmtp(out) == ["minptime=10;usedtx=1;useinbandfec=1", "useinbandfec=1"]
    assert "a=fmtp:97 x=1\r\n" in out and out.endswith("\r\n") and "a=rtpmap:0 PCMU/8000" in out
    assert with_fec(out, {"0"}) == out  # applied twice, the same
