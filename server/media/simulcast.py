"""Simulcast in SDP (RFC 8853, RIDs per RFC 8851), which aiortc reads none of: the layers a
publish offer sends, and the lines that accept them in the server's answer. Pure text in, text
out; the per-packet side is tracks.Source (layers by SSRC) and forwarding.Rewriter (one layer
per viewer).
"""

from __future__ import annotations

import re

MAX_LAYERS = 4
RID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


def sections(sdp: str) -> list[str]:
    """The session part, then one string per media section (each starting with "m=")."""
    return re.split(r"\r?\n(?=m=)", sdp)


def attributes(section: str, name: str) -> list[str]:
    prefix = f"a={name}:"
    return [line[len(prefix):].strip() for line in section.splitlines() if line.startswith(prefix)]


def offered_layers(sdp: str) -> dict[str, list[str]]:
    """Each video section's mid -> the RIDs it sends as simulcast layers, in the offer's order
    (only sections with two or more). Paused layers (~rid) and alternatives beyond the first
    are left out; RIDs must also be declared with `a=rid:<rid> send`."""
    layers: dict[str, list[str]] = {}
    for section in sections(sdp)[1:]:
        if not section.startswith("m=video"):
            continue
        mids = attributes(section, "mid")
        declared = {rid.split()[0] for rid in attributes(section, "rid") if rid.split()[1:2] == ["send"]}
        for simulcast in attributes(section, "simulcast"):
            words = simulcast.split()
            if len(words) < 2 or words[0] != "send":
                continue
            listed = words[1].removeprefix("rid=").split(";")
            rids = [choice.split(",")[0] for choice in listed if not choice.startswith("~")]
            rids = [rid for rid in rids if RID.match(rid) and rid in declared][:MAX_LAYERS]
            if mids and len(rids) > 1:
                layers[mids[0]] = rids
    return layers


def accept_layers(answer: str, layers: dict[str, list[str]]) -> str:
    """The answer, with each simulcast section accepting its layers: `a=rid:<rid> recv` and
    `a=simulcast:recv <rid>;<rid>` (without them the browser sends one layer only)."""
    if not layers:
        return answer
    newline = "\r\n" if "\r\n" in answer else "\n"
    parts = sections(answer)
    for i, section in enumerate(parts):
        mids = attributes(section, "mid")
        rids = layers.get(mids[0]) if mids else None
        if not rids or not section.startswith("m=video"):
            continue
        body = section.rstrip("\r\n")
        lines = [f"a=rid:{rid} recv" for rid in rids] + [f"a=simulcast:recv {';'.join(rids)}"]
        parts[i] = body + newline + newline.join(lines) + (newline if section != body else "")
    return newline.join(parts)
