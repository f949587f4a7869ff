"""Simulcast in SDP (server/media/simulcast.py): the layers a publish offer sends, and the answer
lines that accept them, on the SDP browsers write."""

from __future__ import annotations

from server.media.simulcast import accept_layers, offered_layers

# The video section of a Chrome offer with three encodings (RIDs q, h, f), trimmed.
CHROME = "\r\n".join([
    "v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0 1",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0", "a=sendonly", "a=rtpmap:111 opus/48000/2",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97", "a=mid:1", "a=sendonly",
    "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", "a=rtpmap:96 VP8/90000",
    "a=rid:q send", "a=rid:h send", "a=rid:f send", "a=simulcast:send q;h;f", "",
])


def test_the_layers_of_a_chrome_offer_in_its_order() -> None:
    assert offered_layers(CHROME) == {"1": ["q", "h", "f"]}


def test_paused_alternative_and_undeclared_layers_are_left_out() -> None:
    offer = CHROME.replace("a=simulcast:send q;h;f", "a=simulcast:send rid=~q;h,x;f;zz")
    assert offered_layers(offer) == {"1": ["h", "f"]}  # ~q paused, x an alternative, zz not declared
    assert offered_layers(CHROME.replace("a=simulcast:send q;h;f", "a=simulcast:send q")) == {}  # one layer
    assert offered_layers(CHROME.replace("a=simulcast:send", "a=simulcast:recv")) == {}
    assert offered_layers(CHROME.replace("a=rid:h send", "a=rid:h recv")) == {"1": ["q", "f"]}


def test_the_answer_accepts_the_layers_in_the_same_section() -> None:
    answer = "\r\n".join(["v=0", "s=-", "m=audio 9 X 111", "a=mid:0", "m=video 9 X 96", "a=mid:1",
                          "a=recvonly", ""])
    accepted = accept_layers(answer, {"1": ["q", "h", "f"]})
    assert accepted == "\r\n".join(["v=0", "s=-", "m=audio 9 X 111", "a=mid:0", "m=video 9 X 96", "a=mid:1",
                                    "a=recvonly", "a=rid:q recv", "a=rid:h recv", "a=rid:f recv",
                                    "a=simulcast:recv q;h;f", ""])
    assert offered_layers(accepted) == {}  # what the answer says is receiving, not sending
    assert accept_layers(answer, {}) == answer
    middle = answer.replace("a=recvonly\r\n", "a=recvonly\r\nm=video 9 X 96\r\na=mid:2\r\n")
    assert accept_layers(middle, {"1": ["a", "b"]}).count("a=simulcast:recv a;b") == 1
    assert "a=mid:1\r\na=recvonly\r\na=rid:a recv\r\na=rid:b recv\r\na=simulcast:recv a;b\r\nm=video" in (
        accept_layers(middle, {"1": ["a", "b"]}))
