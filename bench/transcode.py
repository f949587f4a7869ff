"""aiortc's default path, for comparison in bench/media.py: every incoming stream is decoded
(aiortc's receiver) and re-encoded for every viewer (one encoder per sending track, fed through
MediaRelay). Same rooms, same signalling; only how a viewer track gets its media differs.

    python -m bench.transcode serve     # `porchlight serve`, with transcoding rooms
"""

from __future__ import annotations

import sys
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpTransceiver
from aiortc.contrib.media import MediaRelay
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from server.media import glue, room


class Relayed:
    """Stands where a Forward would: a viewer track fed by aiortc itself, not by packets."""

    def __init__(self, source: room.Source) -> None:
        self.source = source


class TranscodingRoom(room.MediaRoom):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.relay = MediaRelay()

    def source(self, member: room.Member, kind: str, transceiver: RTCRtpTransceiver,
               codec: RTCRtpCodecParameters, label: str) -> room.Source:
        return room.Source(member, kind, transceiver, codec, label)  # no tap: aiortc decodes it

    def reuse_viewer_track(self, transceiver: RTCRtpTransceiver, old: Any, source: room.Source) -> Any:
        return None  # relayed tracks are not recycled

    def viewer_track(self, member: room.Member, pc: RTCPeerConnection, source: room.Source) -> Any:
        track = self.relay.subscribe(source.transceiver.receiver.track)
        transceiver = pc.addTransceiver(track, direction="sendonly")
        glue.set_stream_id(transceiver.sender, source.owner.pid)
        return transceiver, Relayed(source)


def main() -> int:
    room.MediaRooms.__init__.__defaults__ = (TranscodingRoom,)
    from server.cli import main as porchlight

    return porchlight(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
