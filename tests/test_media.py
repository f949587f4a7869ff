"""Group media through the server with real aiortc peers: synthetic audio and video, decoded."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack

from server.media import inbound, sink
from server.media.room import MediaRoom
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


class Room:
    """One open session with its participants; closes their media and sockets at the end."""

    def __init__(self, api: Api, world: World, session_id: str) -> None:
        self.api = api
        self.world = world
        self.session_id = session_id
        self.people: list[Participant] = []

    @classmethod
    async def open(cls, api: Api, world: World, **media: Any) -> Room:
        """The facilitator opens the session and takes part in it."""
        room = cls(api, world, await api.open(world))
        staff = await api.staff_socket(world.facilitator, session_id=room.session_id)
        room.people.append(Participant(world.facilitator.user_id, staff, **media))
        return room

    async def admit(self, i: int, **media: Any) -> Participant:
        """Patient i checks in and is admitted (not yet publishing)."""
        sock = await self.api.patient(self.world.tokens[i])
        pid = self.world.patients[i]["id"]
        await self.api.post(self.world.facilitator, f"/sessions/{self.session_id}/admit", {"patient_ids": [pid]})
        assert (await sock.until("admitted"))["ice_servers"] == []
        person = Participant(pid, sock, **media)
        self.people.append(person)
        return person

    def media(self) -> MediaRoom:
        from server.services import SERVICES

        room = self.api.client.app[SERVICES].lobby.door(self.world.group["id"]).media_room()
        assert room is not None
        return room

    async def __aenter__(self) -> Room:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for person in self.people:
            await person.close()


async def join_all(api: Api, world: World, patients: int, **media: Any) -> Room:
    """The facilitator and `patients` admitted patients, all publishing."""
    room = await Room.open(api, world, **media)
    for i in range(patients):
        await room.admit(i, **media)
    for person in room.people:
        await person.peer.publish()
    return room


async def everyone_sees_everyone(people: list[Participant]) -> None:
    await asyncio.gather(*(viewer.peer.sees(other.pid) for viewer in people for other in people if other is not viewer))


async def test_four_people_see_and_hear_each_other(api: Api) -> None:
    async with await join_all(api, await api.world(patients=3), patients=3) as room:
        people = room.people
        await everyone_sees_everyone(people)
        for viewer in people:
            assert set(viewer.peer.seen) == {p.pid for p in people if p is not viewer}
            for pid, seen in viewer.peer.seen.items():
                assert seen.size == (160, 120), pid
        # The server took the media the lean way (inbound.py), not through aiortc's queue.
        for member in room.media().members.values():
            for source in member.sources.values():
                receiver = source.transceiver.receiver
                lean = inbound.listen(receiver.transport)
                assert lean.taken > 0 and lean.dropped == 0
                assert lean.taps[receiver].full_way < lean.taken  # at most the first few, while DTLS came up
        # And sends them the compiled way where it is built: once a run has started, its packets go
        # out without the Python path (a run's first packets take it, so the count is waited for).
        if sink.FANOUT is not None:
            outlets = [forward.outlet for member in room.media().members.values()
                       for source in member.sources.values() for forward in source.forwards]
            async with asyncio.timeout(10):
                while any(outlet.sink.fanned < 20 for outlet in outlets):
                    await asyncio.sleep(0.05)


async def test_removed_participant_vanishes_for_everyone_within_a_second(api: Api) -> None:
    world = await api.world(patients=3)
    async with await join_all(api, world, patients=3) as room:
        staff, stays, gone = room.people[0], room.people[1], room.people[3]
        await everyone_sees_everyone(room.people)
        offers_before = stays.peer.offers
        await api.post(world.facilitator, f"/sessions/{room.session_id}/remove", {"patient_id": gone.pid})
        removed_at = time.monotonic()
        media = room.media()
        async with asyncio.timeout(1.0):  # the roster push drops them from the media room
            while gone.pid in media.members:
                await asyncio.sleep(0.01)
        # Nothing of theirs is forwarded any more, and the others are re-offered without them.
        assert all(len(s.forwards) == 2 for s in media.members[staff.pid].sources.values())
        assert all(f.source.owner.pid != gone.pid for m in media.members.values() for _, f in m.slots.values())
        await asyncio.sleep(max(0.0, removed_at + 1.0 - time.monotonic()))
        frozen = {v.pid: v.peer.seen[gone.pid].video_frames for v in (staff, stays)}
        # Half a second of video from the others arrives, and with it nothing more of theirs: the
        # window is measured in frames that did arrive, so a slow machine cannot make it vacuous.
        pairs = ((staff, stays), (stays, staff))
        others = {(v.pid, p.pid): v.peer.seen[p.pid].video_frames for v, p in pairs}
        async with asyncio.timeout(10):
            while any(v.peer.seen[p.pid].video_frames < others[v.pid, p.pid] + 8 for v, p in pairs):
                await asyncio.sleep(0.02)
        assert {v.pid: v.peer.seen[gone.pid].video_frames for v in (staff, stays)} == frozen
        async with asyncio.timeout(5):
            while stays.peer.offers == offers_before:
                await asyncio.sleep(0.02)
        # The others still see each other.
        before = stays.peer.seen[staff.pid].video_frames
        async with asyncio.timeout(5):
            while stays.peer.seen[staff.pid].video_frames < before + 5:
                await asyncio.sleep(0.05)


async def test_late_joiner_decodes_video_within_a_second(api: Api) -> None:
    async with await join_all(api, await api.world(patients=2), patients=1) as room:
        await everyone_sees_everyone(room.people)
        late = await room.admit(1)
        await late.peer.publish()
        await everyone_sees_everyone(room.people)
        connected = late.peer.subscribe_connected_at
        assert connected is not None
        for person in room.people[:2]:
            first = late.peer.seen[person.pid].first_video_at
            assert first is not None
            assert first - connected < 1.0, f"first frame {first - connected:.2f}s after connecting"


async def test_h264_publisher_is_seen_by_vp8_publishers(api: Api) -> None:
    async with await Room.open(api, await api.world(patients=2)) as room:
        h264 = await room.admit(0, video_codec="video/H264")
        vp8 = await room.admit(1)
        for person in room.people:
            await person.peer.publish()
        await everyone_sees_everyone(room.people)
        assert room.media().members[h264.pid].sources["video"].mime == "video/H264"
        assert room.media().members[vp8.pid].sources["video"].mime == "video/VP8"


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
    room = await Room.open(api, world)
    staff = room.people[0]
    patient = await room.admit(0, video=False)  # joins with audio only
    session_id = room.session_id

    async def states() -> list[tuple[bool, bool]]:
        return [(e["audio"], e["video"]) for e in await api.events(world.facilitator, session_id)
                if e["type"] == "media_state" and e.get("patient_id") == patient.pid]

    async def until_state(expected: tuple[bool, bool]) -> None:
        async with asyncio.timeout(10):
            while (await states())[-1:] != [expected]:
                await asyncio.sleep(0.05)

    async with room:
        for person in room.people:
            await person.peer.publish()
        await staff.peer.seen.setdefault(patient.pid, Seen()).audio_event.wait()
        await until_state((True, False))  # audio only: the patient has no camera track

        await api.post(world.facilitator, f"/sessions/{session_id}/mute", {"patient_id": patient.pid})
        await patient.until("muted")
        await until_state((False, False))
        assert room.media().members[patient.pid].sources["audio"].blocked

        await patient.sock.send({"type": "media_state", "audio": True, "video": False})  # they unmute themselves
        await until_state((True, False))
        assert not room.media().members[patient.pid].sources["audio"].blocked
        assert await states() == [(True, False), (False, False), (True, False)]


@contextlib.contextmanager
def stalled_viewer(viewer: MediaPeer) -> Iterator[None]:
    """The viewer stops reading, with a tiny socket buffer: what the server sends is lost."""
    udp = viewer.subscribe_socket()
    sock = udp.get_extra_info("socket")
    size = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    udp.pause_reading()
    try:
        yield
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size // 2)  # the kernel doubles what it is given
        udp.resume_reading()


async def test_a_viewer_that_stops_reading_slows_nobody_and_recovers(api: Api) -> None:
    async with await join_all(api, await api.world(patients=2), patients=2) as room:
        staff, slow, steady = room.people
        await everyone_sees_everyone(room.people)
        with stalled_viewer(slow.peer):
            steady_before = steady.peer.seen[staff.pid].video_frames
            await asyncio.sleep(0.5)  # a stalled viewer, for half the second its packets are kept
            assert steady.peer.seen[staff.pid].video_frames - steady_before >= 5  # 15 fps for the others, still
            outlets = [f.outlet for _, f in room.media().members[slow.pid].slots.values()]
            assert all(o.sink.capacity <= 512 for o in outlets)  # nothing piles up for the slow one
        stalled = {pid: seen.video_frames for pid, seen in slow.peer.seen.items()}
        async with asyncio.timeout(10):  # it decodes again: the lost packets are sent again
            while any(slow.peer.seen[pid].video_frames < n + 15 for pid, n in stalled.items()):
                await asyncio.sleep(0.05)
        assert sum(o.retransmitted for o in outlets) > 0


async def test_a_viewer_stalled_longer_than_packets_are_kept_gets_a_keyframe_asked_for(api: Api) -> None:
    async with await join_all(api, await api.world(patients=1), patients=1) as room:
        staff, slow = room.people
        await everyone_sees_everyone(room.people)
        with stalled_viewer(slow.peer):
            await asyncio.sleep(sink.KEEP_SECONDS + 0.5)
            forward = next(f for _, f in room.media().members[slow.pid].slots.values() if f.source.kind == "video")
            asked = forward.source.keyframe_requests
        # The viewer NACKs what it lost; what was lost over a second ago is no longer kept, and
        # cannot complete its picture: the publisher is asked for a keyframe instead. (aiortc's
        # receiver waits for every lost packet, so this viewer decodes again only 512 packets on;
        # a browser's skips to the keyframe.)
        async with asyncio.timeout(10):
            while not (forward.outlet.forgotten and forward.source.keyframe_requests > asked):
                await asyncio.sleep(0.05)


async def test_a_viewers_nack_gets_the_packet_again(api: Api) -> None:
    async with await join_all(api, await api.world(patients=1), patients=1) as room:
        staff, patient = room.people
        await everyone_sees_everyone(room.people)
        forward = next(f for _, f in room.media().members[patient.pid].slots.values() if f.source.kind == "video")
        receiver = next(t.receiver for t in patient.peer.subscribe_pc.getTransceivers() if t.kind == "video")
        outlet = forward.outlet
        before = outlet.retransmitted
        await receiver._send_rtcp_nack(outlet.ssrc, [forward.rewriter.last_seq])  # as if it never arrived
        async with asyncio.timeout(10):
            while outlet.retransmitted == before:
                await asyncio.sleep(0.02)


async def test_a_patient_who_joined_with_sound_only_turns_the_camera_on(api: Api) -> None:
    async with await Room.open(api, await api.world(patients=1)) as room:
        staff = room.people[0]
        patient = await room.admit(0, video=False)
        for person in room.people:
            await person.peer.publish()
        await staff.peer.seen.setdefault(patient.pid, Seen()).audio_event.wait()
        offers = staff.peer.offers
        await patient.peer.start_video()  # a re-offer on the same publish connection
        await staff.peer.sees(patient.pid)  # their video now decodes at the facilitator
        assert staff.peer.offers > offers  # the facilitator was re-offered with the new track
        assert set(room.media().members[patient.pid].sources) == {"audio", "video"}


async def test_a_patient_whose_connection_is_replaced_comes_back_on_screen(api: Api) -> None:
    world = await api.world(patients=1)
    async with await join_all(api, world, patients=1) as room:
        staff, first = room.people
        await everyone_sees_everyone(room.people)
        # The same link in a new tab: the old socket is replaced, its media dropped at once.
        sock = await api.patient(world.tokens[0], expect="admitted")  # within the reconnect grace
        again = Participant(first.pid, sock)
        room.people.append(again)
        offers = staff.peer.offers
        await again.peer.publish()
        assert list(room.media().members) == [staff.pid, first.pid]  # one member per person
        before = staff.peer.seen[first.pid].video_frames
        async with asyncio.timeout(10):  # the new tab's video reaches the facilitator (on the same m-line)
            while staff.peer.seen[first.pid].video_frames < before + 10:
                await asyncio.sleep(0.05)
        await again.peer.sees(staff.pid)  # and the facilitator's reaches the new tab
        assert staff.peer.offers > offers  # re-offered: the old tab's tracks out, the new tab's in


async def test_sent_back_and_readmitted_patients_reuse_their_place_in_the_others_connections(api: Api) -> None:
    world = await api.world(patients=1)
    async with await join_all(api, world, patients=1) as room:
        staff, patient = room.people
        await everyone_sees_everyone(room.people)
        for _ in range(3):
            await api.post(world.facilitator, f"/sessions/{room.session_id}/send-back", {"patient_id": patient.pid})
            await patient.until("sent_back")
            await patient.peer.close()  # the server closed its side; the page starts afresh
            patient.peer = MediaPeer(patient.sock.send)
            await api.post(world.facilitator, f"/sessions/{room.session_id}/admit", {"patient_ids": [patient.pid]})
            await patient.until("admitted")
            before = staff.peer.seen[patient.pid].video_frames
            await patient.peer.publish()
            async with asyncio.timeout(10):  # their video plays again at the facilitator's
                while staff.peer.seen[patient.pid].video_frames < before + 10:
                    await asyncio.sleep(0.05)
            await patient.peer.sees(staff.pid)
        # Still one audio and one video m-line for the patient: the SDP does not grow with churn.
        assert len(staff.peer.subscribe_pc.getTransceivers()) == 2


async def test_an_answer_that_breaks_the_bundle_is_refused_and_harms_no_one(api: Api) -> None:
    async with await Room.open(api, await api.world(patients=2)) as room:
        staff = room.people[0]
        bad = await room.admit(0)
        good = await room.admit(1)
        answers: list[dict[str, Any]] = []
        send = bad.sock.send

        async def mangle_first_answer(frame: dict[str, Any]) -> None:
            if frame["type"] == "answer" and not answers:
                answers.append(frame)
                frame = {**frame, "sdp": frame["sdp"].replace("a=group:BUNDLE ", "a=group:BUNDLE bogus ")}
            await send(frame)

        bad.peer.send = mangle_first_answer
        for person in room.people:
            await person.peer.publish()
        assert (await bad.until("error"))["code"] == "bad_sdp"
        await send(answers[0])  # the real answer is still welcome
        await everyone_sees_everyone(room.people)  # and everyone, the other viewers too, sees everyone
        assert staff.pid in bad.peer.seen and good.pid in staff.peer.seen


async def test_an_unanswered_subscribe_offer_starts_that_connection_over(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from server.media import negotiation

    monkeypatch.setattr(negotiation, "ANSWER_TIMEOUT", 1.0)
    async with await Room.open(api, await api.world(patients=1)) as room:
        staff = room.people[0]
        patient = await room.admit(0)
        patient.peer.ignore_offers = 1  # the first offer goes unanswered (a client that failed)
        for person in room.people:
            await person.peer.publish()
        await everyone_sees_everyone(room.people)  # after the restart offer, on a new connection
        assert patient.peer.offers >= 2
        assert staff.pid in patient.peer.seen


async def test_with_admit_all_a_patient_who_offers_the_instant_it_is_admitted_gets_its_answer(api: Api) -> None:
    """Ten patients wait, each with its publish offer ready; "Admit all"; each sends the offer
    in the same moment its `admitted` frame arrives. Every one must get an answer."""
    world = await api.world(patients=10)
    session_id = await api.open(world)
    pcs: list[RTCPeerConnection] = []
    try:
        ready: list[tuple[Socket, str]] = []
        for token in world.tokens:
            sock = await api.patient(token)
            pc = RTCPeerConnection()
            pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            pcs.append(pc)
            ready.append((sock, pc.localDescription.sdp))

        async def offer_when_admitted(sock: Socket, sdp: str) -> dict[str, Any]:
            await sock.until("admitted")
            await sock.send({"type": "offer", "pc": "publish", "sdp": sdp})  # no await in between
            async with asyncio.timeout(20):
                while True:
                    frame = await sock.next()
                    if frame["type"] == "error" or (frame["type"] == "answer" and frame.get("pc") == "publish"):
                        return frame

        replies = asyncio.gather(*(offer_when_admitted(sock, sdp) for sock, sdp in ready))
        await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"all": True})
        answers = await replies
        assert [frame["type"] for frame in answers] == ["answer"] * 10, answers
        for sock, _ in ready:
            await sock.close()
    finally:
        for pc in pcs:
            await pc.close()
