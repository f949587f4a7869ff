"""The bench's simulcast publishers (bench/simulcast.py) offer what a browser with three
encodings offers: aiortc's offer, its video section given RIDs and an a=simulcast line and no
SSRCs. The server's own readers (server/media/simulcast.py, negotiation) must take it as such."""

from __future__ import annotations

from aiortc import RTCPeerConnection

from bench.simulcast import simulcast_offer
from server.media import glue
from server.media.negotiation import check_publish_offer, offered_labels
from server.media.simulcast import attributes, offered_layers, sections


async def test_an_aiortc_offer_becomes_a_browsers_simulcast_offer() -> None:
    glue.accept_simulcast()  # as the server and the bench's publishers do: aiortc offers the RID extension
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio", direction="sendonly")
        pc.addTransceiver(glue.HeldTrack("video", "camera"), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        assert pc.localDescription is not None
        original = pc.localDescription.sdp
        offer = simulcast_offer(original, ["q", "h", "f"])
    finally:
        await pc.close()

    audio, video = sections(offer)[1:]
    assert audio == sections(original)[1]  # the audio section as it was
    assert offered_layers(offer) == {attributes(video, "mid")[0]: ["q", "h", "f"]}
    assert attributes(video, "rid") == ["q send", "h send", "f send"]
    assert not attributes(video, "ssrc") and not attributes(video, "ssrc-group")
    assert attributes(sections(original)[2], "ssrc")  # aiortc had announced its one SSRC
    extensions = " ".join(attributes(video, "extmap"))
    assert "sdes:mid" in extensions and "sdes:rtp-stream-id" in extensions
    assert offer.endswith("\r\n") and "\r\n\r\n" not in offer
    assert check_publish_offer(offer) is False  # a camera, not a screen share: the server takes it
    assert sorted(offered_labels(offer).values()) == ["audio", "video"]
