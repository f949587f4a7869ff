"""PORCHLIGHT_BILLING_FORMAT=hl7v2: each billing record reaches the endpoint as a signed DFT^P03
charge message, which an independent HL7 parser (the `hl7` package) reads back."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import hl7
import pytest
from aiohttp import web

from server.app import create_app
from server.billing.hl7v2 import dft_p03
from server.clock import ManualClock
from server.settings import Settings, SettingsError
from server.store import keys
from server.store.connection import Redis
from tests.helpers import Api
from tests.test_billing import SECRET, run_session, verify_standard_webhook


class Hl7Receiver:
    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((dict(request.headers), await request.read()))
        return web.Response(status=200)


@pytest.fixture
async def hl7_billing(aiohttp_client: Any, aiohttp_server: Any, settings: Settings, redis: Redis,
                      clock: ManualClock) -> tuple[Api, Hl7Receiver]:
    receiver = Hl7Receiver()
    app = web.Application()
    app.router.add_post("/charges", receiver.handle)
    receiver.url = str((await aiohttp_server(app)).make_url("/charges"))
    configured = settings.replace(
        billing_webhook_url=receiver.url, billing_webhook_secrets=(SECRET,), billing_format="hl7v2",
        heartbeat_timeout_seconds=6 * 3600, staff_idle_timeout_seconds=6 * 3600,
    )
    client = await aiohttp_client(create_app(configured, redis=redis, clock=clock))
    return Api(client, redis, clock, configured), receiver


async def _delivered(api: Api, count: int) -> None:
    async with asyncio.timeout(10):
        while await api.redis.zcard(keys.billing_by_status("delivered")) < count:
            await asyncio.sleep(0.02)


def field(message: hl7.Message, segment: str, number: int) -> str:
    return str(message.segment(segment)[number])


async def test_each_billing_record_arrives_as_a_signed_dft_p03_that_parses_back(
    hl7_billing: tuple[Api, Hl7Receiver],
) -> None:
    api, receiver = hl7_billing
    world, session_id, _ = await run_session(api)
    await _delivered(api, 2)
    assert len(receiver.got) == 2
    for headers, body in receiver.got:
        assert verify_standard_webhook(SECRET, headers, body, api.clock.now())
        assert headers["Content-Type"].startswith("x-application/hl7-v2+er7")
        record = json.loads(await api.redis.get(keys.billing_record(headers["webhook-id"])))
        data = record["data"]
        message = hl7.parse(body.decode())
        assert [str(s[0]) for s in message] == ["MSH", "EVN", "PID", "PV1", "FT1"]
        assert field(message, "MSH", 9) == "DFT^P03^DFT_P03"
        assert field(message, "MSH", 10) == data["record_id"] == headers["webhook-id"]
        assert field(message, "MSH", 12) == "2.5.1"
        assert field(message, "EVN", 1) == "P03"
        assert message.extract_field("PID", 1, 3, 1, 1) == data["patient_id"]
        assert field(message, "PV1", 2) == "O"
        assert message.extract_field("PV1", 1, 7, 1, 1) == "1234567893"
        assert field(message, "PV1", 19) == session_id
        assert field(message, "PV1", 44) == data["first_join"].replace("-", "").replace(":", "")[:-1].replace(
            "T", "") + "+0000"
        ft1 = message.segment("FT1")
        assert str(ft1[4]) == data["service_date"].replace("-", "")  # date of service
        assert str(ft1[6]) == "CG"
        assert message.extract_field("FT1", 1, 7, 1, 1) == "90853"
        assert message.extract_field("FT1", 1, 7, 1, 3) == "C4"  # CPT-4
        assert message.extract_field("FT1", 1, 25, 1, 1) == "90853"
        assert int(str(ft1[10])) == data["suggested"]["units"] == 1
        assert str(ft1[16]) == data["place_of_service"]
        assert [str(m) for m in ft1[26]] == data["suggested"]["modifiers"]
    by_place = sorted(str(hl7.parse(b.decode()).segment("FT1")[16]) for _, b in receiver.got)
    assert by_place == ["02", "10"]  # Alex at home, Blair elsewhere

    # A correction supersedes: the new charge names the record it replaces (FT1-31).
    alex = world.patients[0]
    first = next(h["webhook-id"] for h, b in receiver.got if alex["id"] in b.decode())
    rows = (await api.get(world.admin, f"/sessions/{session_id}/attendance"))["records"]
    row = next(r for r in rows if r["patient_id"] == alex["id"])
    await api.post(world.admin, f"/sessions/{session_id}/attendance/{alex['id']}/correction", {
        "intervals": [[row["intervals"][0][0], row["intervals"][-1][1]]], "reason": "one stretch"})
    await _delivered(api, 3)
    headers, body = receiver.got[-1]
    message = hl7.parse(body.decode())
    assert str(message.segment("FT1")[31]) == first
    assert field(message, "MSH", 10) == headers["webhook-id"] != first


def test_text_with_delimiters_is_escaped_and_hcpcs_codes_are_named_so() -> None:
    record = {
        "type": "session_duration.recorded", "timestamp": "2026-03-02T18:04:05Z",
        "data": {
            "record_id": "rec_abc", "supersedes": None, "session_id": "ses_1", "patient_id": "pat_1",
            "external_patient_id": "MRN|7^8~9&\\", "service_date": "2026-03-02",
            "first_join": "2026-03-02T15:00:00Z", "last_leave": "2026-03-02T18:00:00Z",
            "place_of_service": "02", "facilitator": {"id": "usr_1", "npi": None},
            "suggested": {"code": "H0015", "units": 0, "modifiers": [], "rule": "r"},
        },
    }
    message = hl7.parse(dft_p03(record).decode())
    assert message.extract_field("PID", 1, 3, 2, 1) == "MRN|7^8~9&\\"
    assert message.extract_field("PID", 1, 3, 2, 5) == "MR"
    assert message.extract_field("FT1", 1, 7, 1, 3) == "HCPCS"
    assert str(message.segment("FT1")[10]) == "0" and message.extract_field("FT1", 1, 26, 1, 1) == ""
    assert message.extract_field("PV1", 1, 7, 1, 1) == ""  # no NPI on file: no attending doctor
    assert str(message.segment("MSH")[7]) == "20260302180405+0000"


def test_the_billing_format_setting_is_json_or_hl7v2() -> None:
    assert Settings.from_env({"PORCHLIGHT_BILLING_FORMAT": "hl7v2", "PORCHLIGHT_SECRET_KEY": "k" * 32}
                             ).billing_format == "hl7v2"
    with pytest.raises(SettingsError, match="PORCHLIGHT_BILLING_FORMAT"):
        Settings.from_env({"PORCHLIGHT_BILLING_FORMAT": "x12", "PORCHLIGHT_SECRET_KEY": "k" * 32})
