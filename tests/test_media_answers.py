"""A subscribe answer must key the DTLS handshake: one without a fingerprint is refused."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Api
from tests.test_media import Room, everyone_sees_everyone

pytestmark = pytest.mark.timeout(120)


async def test_an_answer_without_a_dtls_fingerprint_is_refused_and_the_real_one_still_works(api: Api) -> None:
    async with await Room.open(api, await api.world(patients=1)) as room:
        patient = await room.admit(0)
        answers: list[dict[str, Any]] = []
        send = patient.sock.send

        async def strip_fingerprints_from_first_answer(frame: dict[str, Any]) -> None:
            if frame["type"] == "answer" and not answers:
                answers.append(frame)
                lines = frame["sdp"].split("\r\n")
                assert any(line.startswith("a=fingerprint:") for line in lines)  # aiortc wrote them
                frame = {**frame, "sdp": "\r\n".join(x for x in lines if not x.startswith("a=fingerprint:"))}
            await send(frame)

        patient.peer.send = strip_fingerprints_from_first_answer
        for person in room.people:
            await person.peer.publish()
        error = await patient.until("error")
        assert error["code"] == "bad_sdp" and "fingerprint" in error["message"]
        await send(answers[0])  # the untouched answer is still welcome
        await everyone_sees_everyone(room.people)
