"""A viewer's bandwidth and data saver with real aiortc peers (issue 13): the viewer's REMB,
sent over its real RTCP, caps what the server sends it (the others' video pauses before the
speaker's, and audio keeps flowing); `"data_saver": true` in its view leaves audio and the
speaker's video only."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci

from server.media.budget import HEADROOM, MIN_RATE
from server.media.room import MediaRoom
from tests.helpers import Api
from tests.test_media import Participant, everyone_sees_everyone, join_all

pytestmark = pytest.mark.timeout(120)


async def speaking(room_people: list[Participant], speaker: Participant) -> None:
    assert speaker.peer.audio_track is not None
    speaker.peer.audio_track.speaking = True
    for person in room_people:
        assert (await person.until("active_speaker"))["id"] == speaker.pid


@contextlib.asynccontextmanager
async def reporting(viewer: Participant, media: MediaRoom, bitrate: list[int]) -> AsyncIterator[None]:
    """The viewer's own receiver sends REMB for all it receives, every 0.5 s, of `bitrate[0]`
    (in place of its estimate: the figures are the test's)."""
    slots = media.members[viewer.pid].slots
    transceivers = viewer.peer.subscribe_pc.getTransceivers()
    for transceiver in transceivers:  # its own estimate (abs-send-time) would report other figures
        transceiver.receiver._RTCRtpReceiver__remote_bitrate_estimator = None  # type: ignore[attr-defined]
    receiver = next(t.receiver for t in transceivers if t.kind == "video")

    async def send() -> None:
        while True:
            ssrcs = [forward.outlet.ssrc for _, forward in slots.values()]
            rtcp_ssrc = receiver._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined]
            await receiver._send_rtcp(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0,
                                                     fci=pack_remb_fci(bitrate[0], ssrcs)))
            await asyncio.sleep(0.5)

    task = asyncio.ensure_future(send())
    try:
        yield
    finally:
        task.cancel()


async def until(condition: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.05)


async def test_a_viewers_remb_pauses_the_others_video_before_the_speakers_and_audio_goes_on(api: Api) -> None:
    async with await join_all(api, await api.world(patients=2), patients=2) as room:
        staff, speaker, other = room.people
        await everyone_sees_everyone(room.people)
        await speaking(room.people, speaker)
        assert speaker.peer.audio_track is not None
        speaker.peer.audio_track.speaking = False  # they stay the speaker until someone else speaks
        media = room.media()
        viewer = media.members[staff.pid]
        speaker_video = viewer.slots[(speaker.pid, "video")][1]
        other_video = viewer.slots[(other.pid, "video")][1]
        def measured() -> dict[str, dict[str, float]]:  # each publisher's bps as the server measures it
            return {m.pid: {k: (s.rate.bps if k == "audio" else max([0.0] + [y.rate.bps for y in s.layers.values()]))
                            for k, s in media.members[m.pid].sources.items()} for m in (speaker, other)}

        await until(lambda: all(bps > 0 for kinds in measured().values() for bps in kinds.values()))
        audio, settled = 0.0, False
        while not settled:  # the speaker's voice raised their audio rate: wait until it is quiet again
            await asyncio.sleep(0.5)
            rates = measured()
            now = rates[speaker.pid]["audio"] + rates[other.pid]["audio"]
            settled, audio = abs(now - audio) < 0.03 * now, now
        video = max(rates[speaker.pid]["video"], MIN_RATE)
        # Room for the speaker's video with half as much again to spare, not for both videos.
        bitrate = [int((audio + 1.5 * video) / HEADROOM)]
        seen = staff.peer.seen
        async with reporting(staff, media, bitrate):
            await until(lambda: viewer.bandwidth.estimate(media_time()) == pytest.approx(bitrate[0], rel=1e-3))
            await until(lambda: other_video.paused and other_video.rewriter.held and not speaker_video.rewriter.held)
            frames = {pid: (seen[pid].video_frames, seen[pid].audio_frames) for pid in (speaker.pid, other.pid)}
            await until(lambda: seen[speaker.pid].video_frames >= frames[speaker.pid][0] + 15)
            await until(lambda: all(seen[p].audio_frames >= frames[p][1] + 50 for p in (speaker.pid, other.pid)))
            assert seen[other.pid].video_frames <= frames[other.pid][0] + 1  # at most one frame in flight

            bitrate[0] = 10_000_000  # the link is good again: the other's video comes back at once
            before = seen[other.pid].video_frames
            await until(lambda: not other_video.paused and seen[other.pid].video_frames >= before + 3, timeout=5)

            bitrate[0] = int(audio / HEADROOM)  # room for audio only: the speaker's video still goes out
            await until(lambda: other_video.paused)
            shown = seen[speaker.pid].video_frames
            await until(lambda: seen[speaker.pid].video_frames >= shown + 15)
            assert not speaker_video.paused
            heard = {p: seen[p].audio_frames for p in (speaker.pid, other.pid)}
            await until(lambda: all(seen[p].audio_frames >= heard[p] + 50 for p in (speaker.pid, other.pid)))


def media_time() -> float:
    return asyncio.get_running_loop().time()


async def test_an_estimate_of_video_alone_is_not_weighed_against_audio(api: Api) -> None:
    """aiortc's receivers each report their own video stream (now that forwarded packets carry
    abs-send-time): those cannot be set against the audio the server pays for first, so they
    cap nothing; the viewer's video keeps flowing."""
    async with await join_all(api, await api.world(patients=1), patients=1) as room:
        staff, patient = room.people
        await everyone_sees_everyone(room.people)
        viewer = room.media().members[staff.pid]
        video = viewer.slots[(patient.pid, "video")][1]
        receiver = next(t.receiver for t in staff.peer.subscribe_pc.getTransceivers() if t.kind == "video")
        rtcp_ssrc = receiver._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined]
        await receiver._send_rtcp(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0,
                                                 fci=pack_remb_fci(1_000, [video.outlet.ssrc])))
        before = staff.peer.seen[patient.pid].video_frames
        await until(lambda: staff.peer.seen[patient.pid].video_frames >= before + 15)
        assert viewer.bandwidth.estimate(media_time()) is None and not video.budgeted


async def test_data_saver_leaves_audio_and_the_speakers_video(api: Api) -> None:
    async with await join_all(api, await api.world(patients=2), patients=2) as room:
        staff, speaker, other = room.people
        await everyone_sees_everyone(room.people)
        await speaking(room.people, speaker)
        tiles = [{"id": p.pid, "width": 320, "height": 240} for p in (speaker, other)]
        await staff.sock.send({"type": "view", "tiles": tiles, "data_saver": True})
        viewer = room.media().members[staff.pid]
        other_video = viewer.slots[(other.pid, "video")][1]
        await until(lambda: other_video.rewriter.held)
        seen = staff.peer.seen
        frames = {pid: (seen[pid].video_frames, seen[pid].audio_frames) for pid in (speaker.pid, other.pid)}
        await until(lambda: seen[speaker.pid].video_frames >= frames[speaker.pid][0] + 15)
        await until(lambda: seen[other.pid].audio_frames >= frames[other.pid][1] + 50)
        assert seen[other.pid].video_frames <= frames[other.pid][0] + 1

        await staff.sock.send({"type": "view", "tiles": tiles})  # data saver off: everyone's video again
        before = seen[other.pid].video_frames
        await until(lambda: seen[other.pid].video_frames >= before + 3, timeout=5)


async def test_a_bad_data_saver_is_refused_and_changes_nothing(api: Api) -> None:
    async with await join_all(api, await api.world(patients=1), patients=1) as room:
        staff, patient = room.people
        await everyone_sees_everyone(room.people)
        tiles = [{"id": patient.pid, "width": 320, "height": 240}]
        for value in ("yes", 1, None, {"on": True}):
            await staff.sock.send({"type": "view", "tiles": tiles, "data_saver": value})
            error = await staff.until("error")
            assert error["code"] == "bad_request" and "data_saver" in error["message"], value
        viewer = room.media().members[staff.pid]
        assert not viewer.data_saver and viewer.view is None
        await staff.peer.sees(patient.pid)
