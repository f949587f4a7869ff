"""Screen share (contract v1.1) with real aiortc peers: a second video section whose msid track id
starts with "screen" reaches the others under `<participant id>:screen`; staff may share, a
patient only while the facilitator allows it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.audit import AuditLog
from tests.helpers import Api
from tests.media_peer import Seen
from tests.test_media import Participant, Room, join_all

pytestmark = pytest.mark.timeout(120)


async def roster_entry(person: Participant, pid: str, where: Any) -> dict[str, Any]:
    """The next roster this person receives in which `pid`'s entry satisfies `where`."""
    async with asyncio.timeout(10):
        while True:
            frame = await person.until("roster")
            entry = next((p for p in frame["participants"] if p["id"] == pid), None)
            if entry is not None and where(entry):
                return entry


async def frames_of(person: Participant, stream: str, more: int) -> Seen:
    """Wait until `more` further video frames of `stream` have been decoded."""
    seen = person.peer.seen.setdefault(stream, Seen())
    target = seen.video_frames + more
    async with asyncio.timeout(20):
        while seen.video_frames < target:
            await asyncio.sleep(0.05)
    return seen


async def test_the_facilitators_shared_screen_reaches_everyone_beside_their_camera(api: Api) -> None:
    async with await join_all(api, await api.world(patients=2), patients=2) as room:
        staff, first, second = room.people
        for viewer in (first, second):
            await viewer.peer.sees(staff.pid)
        await staff.peer.share_screen(320, 180)
        await roster_entry(first, staff.pid, lambda e: e.get("screen") is True)
        for viewer in (first, second):
            screen = await frames_of(viewer, f"{staff.pid}:screen", 3)
            assert screen.size == (320, 180)  # the screen, as its own stream
            assert viewer.peer.seen[staff.pid].size == (160, 120)  # the camera carries on beside it
            await frames_of(viewer, staff.pid, 3)
        assert set(room.media().members[staff.pid].sources) == {"audio", "video", "screen"}

        await staff.peer.stop_screen()  # the browser's "stop sharing": the section goes inactive
        await roster_entry(first, staff.pid, lambda e: "screen" not in e)
        assert set(room.media().members[staff.pid].sources) == {"audio", "video"}
        before = first.peer.seen[f"{staff.pid}:screen"].video_frames
        await frames_of(first, staff.pid, 10)  # the camera goes on; the screen has stopped
        assert first.peer.seen[f"{staff.pid}:screen"].video_frames <= before + 1


async def test_a_patient_shares_only_while_the_facilitator_allows_it(api: Api) -> None:
    world = await api.world(patients=1)
    async with await join_all(api, world, patients=1) as room:
        staff, patient = room.people
        await staff.peer.sees(patient.pid)
        url = f"/sessions/{room.session_id}/screen-share"

        await patient.peer.share_screen()  # not allowed: refused, and nothing changes
        error = await patient.until("error")
        assert error["code"] == "not_allowed"
        assert set(room.media().members[patient.pid].sources) == {"audio", "video"}
        await frames_of(staff, patient.pid, 5)  # their camera still reaches the facilitator

        answer = await api.post(world.facilitator, url, {"patient_id": patient.pid, "allowed": True})
        assert answer == {"patient_id": patient.pid, "allowed": True}
        assert (await patient.until("screen_share"))["allowed"] is True
        await roster_entry(patient, patient.pid, lambda e: e.get("screen_allowed") is True)
        await patient.peer.publish()  # the same offer, now allowed
        await roster_entry(staff, patient.pid, lambda e: e.get("screen") is True)
        screen = await frames_of(staff, f"{patient.pid}:screen", 3)
        assert screen.size == (320, 180)

        await api.post(world.facilitator, url, {"patient_id": patient.pid, "allowed": False})
        assert (await patient.until("screen_share"))["allowed"] is False
        await roster_entry(staff, patient.pid, lambda e: "screen" not in e and "screen_allowed" not in e)
        assert "screen" not in room.media().members[patient.pid].sources  # forwarding stopped at once
        entries = [e for e in await AuditLog(api.redis, api.clock).entries() if e["action"] == "patient.screen_share"]
        assert [(e["actor"], e["details"]["patient_id"], e["details"]["allowed"]) for e in entries] == [
            (world.facilitator.user_id, patient.pid, True), (world.facilitator.user_id, patient.pid, False)]


async def test_screen_share_permission_needs_a_patient_in_the_session(api: Api) -> None:
    world = await api.world(patients=2)
    async with await Room.open(api, world) as room:
        await room.admit(0)
        url = f"/sessions/{room.session_id}/screen-share"
        waiting = world.patients[1]["id"]
        await api.patient(world.tokens[1])
        error = await api.post(world.facilitator, url, {"patient_id": waiting, "allowed": True}, expect=409)
        assert error["error"]["code"] == "not_in_session"
        error = await api.post(world.facilitator, url, {"patient_id": waiting}, expect=400)
        assert error["error"]["code"] == "bad_request"
