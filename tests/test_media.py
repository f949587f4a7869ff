"""Group media through the server with real aiortc peers: synthetic audio and video, decoded."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from server.lobby.door import Door
from tests.helpers import Api, Socket, World
from tests.media_peer import MediaPeer, Seen

pytestmark = pytest.mark.timeout(120)


class Participant:
    """A WebSocket and a media peer; signalling frames go to the peer, the rest to `frames`."""

    def __init__(self, pid: str, sock: Socket, **media: Any) -> None:
        self.pid = pid
        self.sock = sock
        self.peer = MediaPeer(sock.send, **media)
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pump = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        while True:
            try:
                frame = await self.sock.next(timeout=120)
            except (AssertionError, aiohttp.ClientError):
                return  # the socket closed
            if not await self.peer.handle(frame):
                await self.frames.put(frame)

    async def until(self, kind: str, timeout: float = 20.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.frames.get()
                if frame["type"] == kind:
                    return frame

    async def close(self) -> None:
        if self.pump.done() and not self.pump.cancelled() and (exc := self.pump.exception()) is not None:
            raise exc  # a signalling frame the peer could not take
        self.pump.cancel()
        await self.peer.close()
        await self.sock.close()


async def join_all(api: Api, world: World, patients: int, **media: Any) -> tuple[str, list[Participant]]:
    """The facilitator opens and joins the session; `patients` patients are admitted; all publish."""
    session_id = await api.open(world)
    staff = await api.staff_socket(world.facilitator, session_id=session_id)
    people = [Participant(world.facilitator.user_id, staff, **media)]
    for i in range(patients):
        sock = await api.patient(world.tokens[i])
        await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [world.patients[i]["id"]]})
        admitted = await sock.until("admitted")
        assert admitted["ice_servers"] == []
        people.append(Participant(world.patients[i]["id"], sock, **media))
    for person in people:
        await person.peer.publish()
    return session_id, people


def door_of(api: Api, world: World) -> Door:
    from server.services import SERVICES

    return api.client.app[SERVICES].lobby.door(world.group["id"])


async def everyone_sees_everyone(people: list[Participant]) -> None:
    await asyncio.gather(*(viewer.peer.sees(other.pid) for viewer in people for other in people if other is not viewer))


async def test_four_people_see_and_hear_each_other(api: Api) -> None:
    world = await api.world(patients=3)
    _, people = await join_all(api, world, patients=3)
    try:
        await everyone_sees_everyone(people)
        for viewer in people:
            assert set(viewer.peer.seen) == {p.pid for p in people if p is not viewer}
            for pid, seen in viewer.peer.seen.items():
                assert seen.size == (160, 120), pid
    finally:
        for person in people:
            await person.close()


async def test_removed_participant_vanishes_for_everyone_within_a_second(api: Api) -> None:
    world = await api.world(patients=3)
    session_id, people = await join_all(api, world, patients=3)
    staff, stays, gone = people[0], people[1], people[3]
    try:
        await everyone_sees_everyone(people)
        offers_before = stays.peer.offers
        await api.post(world.facilitator, f"/sessions/{session_id}/remove", {"patient_id": gone.pid})
        removed_at = time.monotonic()
        room = door_of(api, world).media_room()
        assert room is not None
        async with asyncio.timeout(1.0):  # the roster push drops them from the media room
            while gone.pid in room.members:
                await asyncio.sleep(0.01)
        # Nothing of theirs is forwarded any more, and the others are re-offered without them.
        assert all(len(s.forwards) == 2 for s in room.members[staff.pid].sources.values())
        assert all(f.source.owner.pid != gone.pid for m in room.members.values() for _, f in m.slots.values())
        await asyncio.sleep(max(0.0, removed_at + 1.0 - time.monotonic()))
        frozen = {v.pid: v.peer.seen[gone.pid].video_frames for v in (staff, stays)}
        await asyncio.sleep(0.5)
        assert {v.pid: v.peer.seen[gone.pid].video_frames for v in (staff, stays)} == frozen
        async with asyncio.timeout(5):
            while stays.peer.offers == offers_before:
                await asyncio.sleep(0.02)
        # The others still see each other.
        before = stays.peer.seen[staff.pid].video_frames
        async with asyncio.timeout(5):
            while stays.peer.seen[staff.pid].video_frames < before + 5:
                await asyncio.sleep(0.05)
    finally:
        for person in people:
            await person.close()


async def test_late_joiner_decodes_video_within_a_second(api: Api) -> None:
    world = await api.world(patients=2)
    session_id, people = await join_all(api, world, patients=1)
    try:
        await everyone_sees_everyone(people)
        sock = await api.patient(world.tokens[1])
        await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [world.patients[1]["id"]]})
        await sock.until("admitted")
        late = Participant(world.patients[1]["id"], sock)
        people.append(late)
        await late.peer.publish()
        await everyone_sees_everyone(people)
        connected = late.peer.subscribe_connected_at
        assert connected is not None
        for pid in (people[0].pid, people[1].pid):
            first = late.peer.seen[pid].first_video_at
            assert first is not None
            assert first - connected < 1.0, f"first frame {first - connected:.2f}s after connecting"
    finally:
        for person in people:
            await person.close()


async def test_h264_publisher_is_seen_by_vp8_publishers(api: Api) -> None:
    world = await api.world(patients=2)
    session_id = await api.open(world)
    staff = Participant(world.facilitator.user_id, await api.staff_socket(world.facilitator, session_id=session_id))
    people = [staff]
    for i, codec in enumerate(["video/H264", None]):
        sock = await api.patient(world.tokens[i])
        await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [world.patients[i]["id"]]})
        await sock.until("admitted")
        people.append(Participant(world.patients[i]["id"], sock, video_codec=codec))
    try:
        for person in people:
            await person.peer.publish()
        await everyone_sees_everyone(people)
        room = door_of(api, world).media_room()
        assert room is not None
        assert room.members[people[1].pid].sources["video"].mime == "video/H264"
        assert room.members[people[2].pid].sources["video"].mime == "video/VP8"
    finally:
        for person in people:
            await person.close()


async def test_signalling_errors_are_answered_and_change_nothing(api: Api) -> None:
    world = await api.world(patients=2)
    session_id = await api.open(world)
    waiting = await api.patient(world.tokens[1])
    await waiting.send({"type": "offer", "pc": "publish", "sdp": "v=0"})
    assert (await waiting.until("error"))["code"] == "not_admitted"

    sock = await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [world.patients[0]["id"]]})
    await sock.until("admitted")
    for frame, code in [
        ({"type": "offer", "pc": "publish", "sdp": "this is not sdp"}, "bad_sdp"),
        ({"type": "offer", "pc": "publish", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"}, "bad_sdp"),
        ({"type": "offer", "pc": "publish"}, "bad_request"),
        ({"type": "offer", "pc": "sideways", "sdp": "v=0"}, "bad_request"),
        ({"type": "answer", "pc": "subscribe", "sdp": "v=0"}, "out_of_turn"),
        ({"type": "offer", "pc": "subscribe", "sdp": "v=0"}, "out_of_turn"),
        ({"type": "answer", "pc": "publish", "sdp": "v=0"}, "out_of_turn"),
    ]:
        await sock.send(frame)
        assert (await sock.until("error"))["code"] == code, frame
    # The socket is still open and the patient can publish properly afterwards.
    person = Participant(world.patients[0]["id"], sock)
    try:
        await person.peer.publish()
        async with asyncio.timeout(10):
            await person.peer.answered.wait()
    finally:
        await person.close()


async def test_media_state_follows_the_tracks_and_the_facilitators_mute(api: Api) -> None:
    world = await api.world(patients=1)
    session_id = await api.open(world)
    staff = Participant(world.facilitator.user_id, await api.staff_socket(world.facilitator, session_id=session_id))
    sock = await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [world.patients[0]["id"]]})
    await sock.until("admitted")
    patient = Participant(world.patients[0]["id"], sock, video=False)  # joins with audio only
    people = [staff, patient]

    async def states() -> list[tuple[bool, bool]]:
        return [(e["audio"], e["video"]) for e in await api.events(world.facilitator, session_id)
                if e["type"] == "media_state" and e.get("patient_id") == patient.pid]

    async def until_state(expected: tuple[bool, bool]) -> None:
        async with asyncio.timeout(10):
            while (await states())[-1:] != [expected]:
                await asyncio.sleep(0.05)

    try:
        for person in people:
            await person.peer.publish()
        await staff.peer.seen.setdefault(patient.pid, Seen()).audio_event.wait()
        await until_state((True, False))  # audio only: the patient has no camera track

        await api.post(world.facilitator, f"/sessions/{session_id}/mute", {"patient_id": patient.pid})
        await patient.until("muted")
        await until_state((False, False))
        room = door_of(api, world).media_room()
        assert room is not None and room.members[patient.pid].sources["audio"].blocked

        await sock.send({"type": "media_state", "audio": True, "video": False})  # they unmute themselves
        await until_state((True, False))
        assert not room.members[patient.pid].sources["audio"].blocked
        assert await states() == [(True, False), (False, False), (True, False)]
    finally:
        for person in people:
            await person.close()
