"""Meeting reminders by email, against a real SMTP server on loopback (aiosmtpd, AUTH required):
each enrolled patient who wants them gets one an hour before each meeting, once; late ones are
skipped; the unsubscribe link works without signing in. The worker is driven by `run_once` on
the test's clock."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from server.app import REMINDERS, create_app
from server.clock import ManualClock
from server.reminders.worker import ReminderWorker
from server.settings import Settings
from server.store.connection import Redis
from tests.conftest import free_port
from tests.helpers import Api, World
from tests.smtp_receiver import SmtpReceiver

CHICAGO = ZoneInfo("America/Chicago")
MONDAY_18 = datetime(2027, 1, 18, 18, 0, tzinfo=CHICAGO).timestamp()  # a Monday; the clock starts 2027-01-15
HOUR = 3600.0
# The receiver asks for AUTH without TLS (loopback); aiosmtpd warns about that on every connection.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver(free_port()) as receiver:
        yield receiver


@pytest.fixture
async def api(aiohttp_client: Any, settings: Settings, redis: Redis, clock: ManualClock, smtp: SmtpReceiver) -> Api:
    configured = settings.replace(smtp_url=smtp.url, smtp_from="Clinic reminders <reminders@clinic.test>",
                                  reminder_poll_seconds=30, staff_idle_timeout_seconds=30 * 86400,
                                  staff_session_max_seconds=30 * 86400)  # the clock moves days
    return Api(await aiohttp_client(create_app(configured, redis=redis, clock=clock)), redis, clock, configured)


def worker(api: Api) -> ReminderWorker:
    return api.client.server.app[REMINDERS]


async def a_group(api: Api, name: str = "Evening DBT skills", **fields: Any) -> World:
    """Patient 0 wants reminders and has an email; 1 has an email, no reminders; 2 wants them, no email."""
    world = await api.world(patients=3, schedule=[{"weekday": 0, "start": "18:00", "minutes": 180}], name=name,
                            **fields)
    people = world.patients
    await api.request(world.admin, "PATCH", f"/api/v1/patients/{people[0]['id']}",
                      {"email": "Robin.K@Example.ORG", "reminders": True})
    await api.request(world.admin, "PATCH", f"/api/v1/patients/{people[1]['id']}", {"email": "sam@example.org"})
    await api.request(world.admin, "PATCH", f"/api/v1/patients/{people[2]['id']}", {"reminders": True})
    return world


def text_and_html(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    return plain.get_content(), html.get_content()


async def test_a_patient_who_wants_reminders_gets_one_email_an_hour_before_the_meeting(
    api: Api, smtp: SmtpReceiver,
) -> None:
    world = await a_group(api)
    api.clock.set(MONDAY_18 - HOUR - 60)
    assert (await worker(api).run_once()).sent == 0  # not due yet
    api.clock.set(MONDAY_18 - HOUR + 5)
    assert (await worker(api).run_once()).sent == 1
    assert smtp.inbox.to() == ["Robin.K@example.org"]  # the domain is normalised
    assert smtp.inbox.logins  # user and password from PORCHLIGHT_SMTP_URL

    message = smtp.inbox.messages[0]
    plain, html = text_and_html(message)
    enrollments = (await api.get(world.admin, f"/groups/{world.group['id']}/enrollments"))["enrollments"]
    join_url = next(e["join_url"] for e in enrollments if e["patient_id"] == world.patients[0]["id"])
    assert message["Subject"] == "Reminder: your group session at 6:00 PM"  # no group name on a lock screen
    assert message["From"] == "Clinic reminders <reminders@clinic.test>"
    for body in (plain, html):
        assert "Evening DBT skills" in body
        assert "Monday, January 18 at 6:00 PM (America/Chicago)" in body
        assert join_url in body and f"{join_url}/calendar.ics" in body
        assert world.patients[0]["display_name"] not in body  # nothing about the patient but the group
    unsubscribe = re.search(r"http://porchlight\.test/unsubscribe/\S+", plain)
    assert unsubscribe is not None and message["List-Unsubscribe"] == f"<{unsubscribe.group()}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # Never twice: later rounds, by this worker or another process's, send nothing more.
    api.clock.advance(20)
    other = ReminderWorker(api.redis, api.clock, api.settings, worker(api).audit)
    assert (await worker(api).run_once()).sent == 0 and (await other.run_once()).sent == 0
    assert len(smtp.inbox.messages) == 1


async def test_a_patient_enrolled_after_the_first_round_is_still_reminded(api: Api, smtp: SmtpReceiver) -> None:
    world = await a_group(api)
    api.clock.set(MONDAY_18 - HOUR)
    assert (await worker(api).run_once()).sent == 1
    late = await api.post(world.admin, "/patients", {"display_name": "Lee", "email": "lee@example.org",
                                                     "reminders": True}, expect=201)
    await api.post(world.admin, f"/groups/{world.group['id']}/enrollments", {"patient_id": late["id"]}, expect=201)
    api.clock.advance(10)
    assert (await worker(api).run_once()).sent == 1
    assert sorted(smtp.inbox.to()) == ["Robin.K@example.org", "lee@example.org"]


async def test_the_time_is_in_the_groups_timezone_and_its_clock(api: Api, smtp: SmtpReceiver) -> None:
    await a_group(api, timezone="Europe/Berlin")
    monday_18_berlin = datetime(2027, 1, 18, 18, 0, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
    api.clock.set(monday_18_berlin - HOUR)
    assert (await worker(api).run_once()).sent == 1
    plain, _ = text_and_html(smtp.inbox.messages[0])
    assert "Monday, January 18 at 18:00 (Europe/Berlin)" in plain


async def test_a_reminder_more_than_15_minutes_late_is_not_sent(api: Api, smtp: SmtpReceiver) -> None:
    await a_group(api)
    api.clock.set(MONDAY_18 - HOUR + 15 * 60 + 1)  # the server was down when it was due
    assert (await worker(api).run_once()).sent == 0
    api.clock.set(MONDAY_18 - HOUR + 7 * 24 * HOUR + 14 * 60)  # next week's, 14 minutes late: still sent
    assert (await worker(api).run_once()).sent == 1
    assert len(smtp.inbox.messages) == 1


async def test_a_mail_server_that_says_later_gets_the_reminder_next_round(api: Api, smtp: SmtpReceiver) -> None:
    await a_group(api)
    smtp.inbox.defer = 1
    api.clock.set(MONDAY_18 - HOUR)
    assert (await worker(api).run_once()).failed == 1
    api.clock.advance(10)
    assert (await worker(api).run_once()).sent == 1
    assert len(smtp.inbox.messages) == 1


async def test_the_unsubscribe_link_works_without_signing_in(api: Api, smtp: SmtpReceiver) -> None:
    world = await a_group(api)
    api.clock.set(MONDAY_18 - HOUR)
    await worker(api).run_once()
    plain, _ = text_and_html(smtp.inbox.messages[0])
    link = re.search(r"http://porchlight\.test(/unsubscribe/\S+)", plain)
    assert link is not None
    path = link.group(1)

    page = await api.client.get(path)  # a mail scanner following the link changes nothing
    assert page.status == 200 and "Stop reminders" in await page.text()
    patients = {p["id"]: p for p in (await api.get(world.admin, "/patients"))["patients"]}
    assert patients[world.patients[0]["id"]]["reminders"] is True

    done = await api.client.post(path)
    assert done.status == 200 and "Reminders are off" in await done.text()
    patients = {p["id"]: p for p in (await api.get(world.admin, "/patients"))["patients"]}
    assert patients[world.patients[0]["id"]]["reminders"] is False
    assert patients[world.patients[0]["id"]]["email"] == "Robin.K@example.org"  # kept; only reminders stop

    api.clock.set(MONDAY_18 + 7 * 24 * HOUR - HOUR)  # next week: nothing
    assert (await worker(api).run_once()).sent == 0
    assert len(smtp.inbox.messages) == 1

    forged = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    assert (await api.client.get(forged)).status == 404
    assert (await api.client.post(forged)).status == 404


async def test_patients_email_and_reminders_through_the_api(api: Api) -> None:
    world = await api.world(patients=0)
    created = await api.post(world.admin, "/patients", {"display_name": "Kim", "email": "kim@example.org",
                                                        "reminders": True}, expect=201)
    assert created["email"] == "kim@example.org" and created["reminders"] is True
    path = f"/api/v1/patients/{created['id']}"
    for bad in ({"email": "kim@"}, {"email": "kim@example"}, {"email": "k m@example.org"}, {"email": 5},
                {"reminders": "yes"}, {}, {"phone": "1"}):
        answer = await api.request(world.admin, "PATCH", path, bad, expect=400)
        assert answer["error"]["code"] == "bad_request"
    changed = await api.request(world.admin, "PATCH", path, {"email": None, "reminders": False})
    assert changed["email"] is None and changed["reminders"] is False and changed["display_name"] == "Kim"
    await api.request(world.facilitator, "PATCH", path, {"reminders": True}, expect=403)
    await api.request(world.admin, "PATCH", "/api/v1/patients/pat_nobody", {"reminders": True}, expect=404)


async def test_reminder_due_events_reach_the_clinics_webhook_signed_once_each(
    aiohttp_client: Any, aiohttp_server: Any, settings: Settings, redis: Redis, clock: ManualClock,
    smtp: SmtpReceiver,
) -> None:
    import asyncio
    import base64
    import json

    from aiohttp import web

    from server.app import REMINDER_DELIVERY
    from tests.test_billing import verify_standard_webhook

    secret = "whsec_" + base64.b64encode(b"the-clinic-sms-system-secret-01").decode()
    got: list[tuple[dict[str, str], bytes]] = []

    async def receive(request: web.Request) -> web.Response:
        got.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    hook = web.Application()
    hook.router.add_post("/sms", receive)
    url = str((await aiohttp_server(hook)).make_url("/sms"))
    configured = settings.replace(smtp_url=smtp.url, notify_webhook_url=url, notify_webhook_secrets=(secret,),
                                  reminder_poll_seconds=30, staff_idle_timeout_seconds=30 * 86400,
                                  staff_session_max_seconds=30 * 86400)
    api = Api(await aiohttp_client(create_app(configured, redis=redis, clock=clock)), redis, clock, configured)
    world = await a_group(api)
    api.clock.set(MONDAY_18 - HOUR)
    app = api.client.server.app
    rivals = [app[REMINDERS], ReminderWorker(redis, clock, configured, app[REMINDERS].audit)]
    rounds = await asyncio.gather(*(w.run_once() for w in rivals))  # two processes at the same moment
    rounds += await asyncio.gather(*(w.run_once() for w in rivals))
    assert sum(r.events for r in rounds) == 2  # patients 0 and 2 want reminders (2 has no email: SMS only)
    assert sum(r.sent for r in rounds) == 1
    await app[REMINDER_DELIVERY].run_once()
    assert len(got) == 2
    events = {}
    for headers, body in got:
        assert verify_standard_webhook(secret, headers, body, api.clock.now())
        event = json.loads(body)
        assert event["type"] == "reminder.due" and headers["webhook-id"] == event["data"]["reminder_id"]
        events[event["data"]["patient_id"]] = event["data"]
    assert set(events) == {world.patients[0]["id"], world.patients[2]["id"]}
    data = events[world.patients[2]["id"]]
    assert data["group_name"] == "Evening DBT skills" and data["minutes_before"] == 60
    assert data["meeting_start"] == "2027-01-19T00:00:00Z"
    assert data["meeting_local"] == "Monday, January 18 at 6:00 PM (America/Chicago)"
    assert data["join_url"].startswith("http://porchlight.test/j/") and "email" not in data
    api.clock.advance(30)
    assert (await app[REMINDERS].run_once()).events == 0
    assert await app[REMINDER_DELIVERY].run_once() == 0 and len(got) == 2


async def test_a_round_claims_a_bounded_batch_and_the_next_round_sends_the_rest(
    api: Api, smtp: SmtpReceiver, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from server.reminders import worker as worker_module

    world = await a_group(api)
    await api.request(world.admin, "PATCH", f"/api/v1/patients/{world.patients[1]['id']}", {"reminders": True})
    monkeypatch.setattr(worker_module, "MAX_EMAILS_PER_ROUND", 1)
    api.clock.set(MONDAY_18 - HOUR)
    assert (await worker(api).run_once()).sent == 1
    api.clock.advance(10)
    assert (await worker(api).run_once()).sent == 1
    api.clock.advance(10)
    assert (await worker(api).run_once()).sent == 0
    assert sorted(smtp.inbox.to()) == ["Robin.K@example.org", "sam@example.org"]


@pytest.mark.parametrize(("zone", "hour", "minute", "spoken"), [
    ("America/Chicago", 18, 0, "6:00 PM"), ("America/New_York", 0, 5, "12:05 AM"),
    ("America/Denver", 12, 30, "12:30 PM"),
    ("Australia/Sydney", 9, 15, "9:15 AM"), ("Asia/Kolkata", 19, 0, "7:00 PM"),
    ("Europe/Berlin", 18, 0, "18:00"), ("Europe/London", 9, 5, "09:05"), ("UTC", 18, 0, "18:00"),
])
def test_the_clock_reads_as_the_zones_country_reads_it(zone: str, hour: int, minute: int, spoken: str) -> None:
    from server.reminders.schedule import clock_time, spoken_time

    moment = datetime(2027, 3, 1, hour, minute, tzinfo=ZoneInfo(zone))
    assert clock_time(moment, zone) == spoken
    assert spoken_time(moment, zone) == f"Monday, March 1 at {spoken} ({zone})"
