"""Attendance becomes billing: the whole journey to a real webhook receiver on loopback."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import hmac
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web

from server.app import create_app
from server.clock import ManualClock
from server.services import SERVICES
from server.settings import Settings
from server.store.connection import Redis
from tests.helpers import Api, World

SECRET = "whsec_" + base64.b64encode(b"porchlight-test-webhook-secret!!").decode()
NEXT_SECRET = "whsec_" + base64.b64encode(b"the-next-secret-during-rotation!").decode()
MIN = 60


def verify_standard_webhook(secret: str, headers: Any, body: bytes, now: float) -> bool:
    """An independent reading of the Standard Webhooks spec, written for this test."""
    msg_id, stamp, signatures = headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"]
    if abs(now - int(stamp)) > 300:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest())
    for candidate in signatures.split(" "):
        version, _, sig = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(sig.encode(), expected):
            return True
    return False


@dataclass
class Receiver:
    """A billing system on loopback that answers with the statuses it is given, then 200."""

    script: list[int] = field(default_factory=list)
    attempts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.attempts.append((dict(request.headers), body))
        self.arrived.set()
        status = self.script.pop(0) if self.script else 200
        if status == 200:
            self.accepted.setdefault(request.headers["webhook-id"], json.loads(body))  # de-duplicate by id
        headers = {"Retry-After": "1"} if status == 429 else {}
        return web.Response(status=status, headers=headers)

    async def wait(self, condition: Callable[[], bool], clock: ManualClock, step: float = 30.0) -> None:
        """Let retries come due (the server's clock is manual) until `condition` holds."""
        async with asyncio.timeout(10):
            while not condition():
                self.arrived.clear()
                clock.advance(step)
                try:
                    await asyncio.wait_for(self.arrived.wait(), 0.2)
                except TimeoutError:
                    pass


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/billing", rec.handle)
    server = await aiohttp_server(app)
    rec.url = str(server.make_url("/billing"))
    return rec


@pytest.fixture
async def billing(aiohttp_client: Any, settings: Settings, redis: Redis, clock: ManualClock,
                  receiver: Receiver) -> Api:
    configured = settings.replace(
        billing_webhook_url=receiver.url, billing_webhook_secrets=(SECRET, NEXT_SECRET),
        billing_retry_base_seconds=1.0, heartbeat_timeout_seconds=6 * 3600, staff_idle_timeout_seconds=6 * 3600,
    )
    client = await aiohttp_client(create_app(configured, redis=redis, clock=clock))
    return Api(client, redis, clock, configured)


async def run_session(api: Api) -> tuple[World, str, float]:
    """Alex drops at 20 min and is back at 21; Blair waits 10 min first; Casey never comes."""
    world = await api.world(patients=3, billing={"code": "90853", "min_billable_minutes": 45})
    alex, blair, _ = world.patients
    session_id = await api.open(world)
    opened = api.clock.now()
    a = await api.patient(world.tokens[0], "home")
    b = await api.patient(world.tokens[1], "other")
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [alex["id"]]})
    await a.until("admitted")
    await a.send({"type": "media_state", "audio": True, "video": True})
    await _settle(api, session_id, 1)

    api.clock.advance(10 * MIN)
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [blair["id"]]})
    await b.until("admitted")
    await b.send({"type": "media_state", "audio": True, "video": False})  # audio only
    await _settle(api, session_id, 2)

    api.clock.advance(10 * MIN)  # +20: Alex is last heard, then the connection dies
    await a.send({"type": "still_here"})  # any frame is a sign of life; this one is answered, so
    await a.until("error")                # the test knows the server has heard it
    await a.close()
    await _until_event(api, world, session_id, lambda e: e["type"] == "left" and e["patient_id"] == alex["id"])
    api.clock.advance(1 * MIN)  # +21: back within the grace period
    a = await api.patient(world.tokens[0], "home", expect="admitted")
    await a.send({"type": "media_state", "audio": True, "video": True})  # as before: no new event

    api.clock.advance(39 * MIN)  # +60
    await api.post(world.facilitator, f"/sessions/{session_id}/end")
    return world, session_id, opened


async def _settle(api: Api, session_id: str, media_events: int) -> None:
    from server.store import keys

    async with asyncio.timeout(5):
        while True:
            raws = await api.redis.lrange(keys.session_events(session_id), 0, -1)
            if sum('"media_state"' in r for r in raws) >= media_events:
                return
            await asyncio.sleep(0.01)


async def _until_event(api: Api, world: World, session_id: str, match: Callable[[dict[str, Any]], bool]) -> None:
    async with asyncio.timeout(5):
        while not [e for e in await api.events(world.facilitator, session_id) if match(e)]:
            await asyncio.sleep(0.01)


async def test_ended_session_reaches_billing_signed_and_matches_the_admin_minutes(
    billing: Api, receiver: Receiver
) -> None:
    receiver.script = [500, 503, 429]  # the billing system fails three times, then accepts
    world, session_id, opened = await run_session(billing)
    alex, blair, casey = world.patients
    await receiver.wait(lambda: len(receiver.accepted) == 2, billing.clock)

    # Every attempt is signed (one signature per configured secret); the id is stable across retries.
    for headers, body in receiver.attempts:
        assert verify_standard_webhook(SECRET, headers, body, billing.clock.now())
        assert verify_standard_webhook(NEXT_SECRET, headers, body, billing.clock.now())
        assert not verify_standard_webhook("whsec_" + base64.b64encode(b"x" * 32).decode(), headers, body,
                                           billing.clock.now())
    ids = [h["webhook-id"] for h, _ in receiver.attempts]
    assert len(set(ids)) == 2 and len(ids) == 5
    records = {r["data"]["patient_id"]: r for r in receiver.accepted.values()}
    assert set(records) == {alex["id"], blair["id"]}  # Casey was absent: no record

    a, b = records[alex["id"]]["data"], records[blair["id"]]["data"]
    assert records[alex["id"]]["type"] == "session_duration.recorded"
    assert a["attended_seconds"] == 59 * MIN and a["attended_minutes"] == 59
    assert len(a["intervals"]) == 2 and a["waited_seconds"] == 0
    assert a["place_of_service"] == "10" and a["modality"] == "video" and a["below_minimum"] is False
    assert a["suggested"] == {"code": "90853", "units": 1, "modifiers": ["95"], "rule": a["suggested"]["rule"]}
    assert "90853" in a["suggested"]["rule"]
    assert b["attended_seconds"] == 50 * MIN and b["waited_seconds"] == 10 * MIN
    assert b["place_of_service"] == "02" and b["modality"] == "audio_only"
    assert b["suggested"]["modifiers"] == ["93"]
    for data in (a, b):
        assert data["session_seconds"] == 60 * MIN and data["participants_present"] == 2
        assert data["facilitator"] == {"id": world.facilitator.user_id, "npi": "1234567893"}
        assert data["supersedes"] is None and data["program"] == "IOP"

    # What the admin pulls matches what billing received, to the second.
    pulled = await billing.get(world.admin, "/attendance")
    rows = {r["patient_id"]: r for r in pulled["records"] if r["session_id"] == session_id}
    assert rows[casey["id"]]["status"] == "absent" and rows[casey["id"]]["attended_seconds"] == 0
    for pid, data in ((alex["id"], a), (blair["id"], b)):
        for key in ("attended_seconds", "attended_minutes", "waited_seconds", "intervals", "first_join",
                    "last_leave", "video_seconds", "audio_only_seconds", "service_date"):
            assert rows[pid][key] == data[key], key
    assert rows[alex["id"]]["reconnects"] == 1

    resp = await billing.request(world.admin, "GET", "/api/v1/attendance.csv", expect=200)
    parsed = list(csv.DictReader(io.StringIO(resp)))
    assert len(parsed) == len(pulled["records"])
    for row in parsed:
        record = next(r for r in pulled["records"] if r["patient_id"] == row["patient_id"]
                      and r["session_id"] == row["session_id"])
        for key in ("attended_seconds", "attended_minutes", "waited_seconds", "reconnects", "video_seconds",
                    "audio_only_seconds"):
            assert int(row[key]) == record[key]
        assert row["intervals"] == ";".join(f"{s}/{e}" for s, e in record["intervals"])
        assert row["status"] == record["status"]

    deliveries = await billing.get(world.admin, "/billing/deliveries?status=delivered")
    assert {d["record_id"] for d in deliveries["deliveries"]} == set(receiver.accepted)
    assert all(d["attempts"] >= 1 for d in deliveries["deliveries"])


async def test_finalisation_happens_once_even_when_raced(billing: Api, receiver: Receiver) -> None:
    from server.attendance.finalise import finalise
    from server.audit import AuditLog
    from server.store import keys

    world, session_id, _ = await run_session(billing)
    await receiver.wait(lambda: len(receiver.accepted) == 2, billing.clock)
    async with asyncio.timeout(10):  # the receiver has them; the worker stores the outcomes next
        while await billing.redis.zcard(keys.billing_by_status("delivered")) < 2:
            await asyncio.sleep(0.01)
    # The session is final already; racing more finalisations changes nothing.
    await billing.redis.sadd(keys.finalise_pending(), session_id)
    results = await asyncio.gather(*(finalise(billing.redis, billing.clock, AuditLog(billing.redis, billing.clock),
                                              session_id) for _ in range(5)))
    assert results == [False] * 5
    assert await billing.redis.zcard(keys.billing_by_status("delivered")) == 2
    assert await billing.redis.zcard(keys.billing_by_status("pending")) == 0


async def test_racing_first_finalisations_commit_exactly_once(billing: Api) -> None:
    from server.attendance.finalise import finalise
    from server.audit import AuditLog
    from server.store import keys

    world = await billing.world(patients=2)
    session_id = await billing.open(world)
    sock = await billing.patient(world.tokens[0])
    await billing.post(world.facilitator, f"/sessions/{session_id}/admit", {"all": True})
    await sock.until("admitted")
    billing.clock.advance(50 * MIN)
    # End the session without the server finalising it (as if the process died right after).
    billing.client.app[SERVICES].lobby.doors[world.group["id"]].on_end = None
    await billing.post(world.facilitator, f"/sessions/{session_id}/end")
    assert await billing.redis.sismember(keys.finalise_pending(), session_id)
    audit = AuditLog(billing.redis, billing.clock)
    results = await asyncio.gather(*(finalise(billing.redis, billing.clock, audit, session_id) for _ in range(6)))
    # The server's own sweeper races these six too; exactly one of all of them commits.
    assert sum(results) <= 1
    assert await billing.redis.exists(keys.session_finalised(session_id))
    commits = [e for e in await audit.entries() if e["action"] == "attendance.finalise"]
    assert len(commits) == 1
    assert await billing.redis.hlen(keys.billing_session_records(session_id)) == 1
    assert await billing.redis.zcard(keys.billing_due()) + await billing.redis.zcard(
        keys.billing_by_status("delivered")) >= 1
    assert not await billing.redis.sismember(keys.finalise_pending(), session_id)


async def test_410_disables_the_endpoint_and_replay_delivers(billing: Api, receiver: Receiver) -> None:
    receiver.script = [410, 410]
    world, session_id, _ = await run_session(billing)
    failed = await _deliveries_until(billing, world, "failed", 2)
    assert {d["last_status"] for d in failed} == {410}
    attempts_before = len(receiver.attempts)
    billing.clock.advance(3600)
    from server.app import DELIVERY

    assert await billing.client.app[DELIVERY].run_once() == 0  # disabled: nothing more is tried
    assert len(receiver.attempts) == attempts_before

    for delivery in failed:
        replayed = await billing.post(world.admin, f"/billing/deliveries/{delivery['id']}/replay")
        assert replayed["status"] == "pending"
    await receiver.wait(lambda: len(receiver.accepted) == 2, billing.clock)
    again = await billing.post(world.admin, f"/billing/deliveries/{failed[0]['id']}/replay", expect=409)
    assert again["error"]["code"] == "not_failed"
    actions = [e["action"] for e in await _audit(billing)]
    assert "billing.endpoint_disabled" in actions and "billing.replay" in actions


async def test_records_that_keep_failing_end_in_the_dead_letter_list(billing: Api, receiver: Receiver) -> None:
    receiver.script = [500] * 10_000
    world, _, _ = await run_session(billing)
    # Three days of retries pass in big steps of the manual clock.
    await receiver.wait(lambda: False if not receiver.attempts else
                        billing.clock.now() - receiver_first(receiver) > 3 * 24 * 3600 + 7200,
                        billing.clock, step=4 * 3600)
    world.admin = await billing.login("admin", "correct horse battery")  # days passed: sign in again
    failed = await _deliveries_until(billing, world, "failed", 2)
    assert all(d["last_status"] == 500 and d["attempts"] >= 5 for d in failed)


def receiver_first(receiver: Receiver) -> float:
    return float(receiver.attempts[0][0]["webhook-timestamp"])


async def test_correction_supersedes_the_delivered_record(billing: Api, receiver: Receiver) -> None:
    world, session_id, opened = await run_session(billing)
    alex = world.patients[0]
    await receiver.wait(lambda: len(receiver.accepted) == 2, billing.clock)
    first = next(r for r in receiver.accepted.values() if r["data"]["patient_id"] == alex["id"])
    from server.clock import iso, to_ms

    start, end = iso(to_ms(opened)), iso(to_ms(opened + 60 * MIN))
    corrected = await billing.post(world.admin, f"/sessions/{session_id}/attendance/{alex['id']}/correction",
                                   {"intervals": [[start, end]], "reason": "connection logs show no gap"})
    assert corrected["attended_seconds"] == 60 * MIN and corrected["version"] == 2 and corrected["corrected"]
    await receiver.wait(lambda: len(receiver.accepted) == 3, billing.clock)
    newest = next(r for r in receiver.accepted.values() if r["data"]["supersedes"])
    assert newest["data"]["supersedes"] == first["data"]["record_id"]
    assert newest["data"]["attended_minutes"] == 60
    pulled = await billing.get(world.admin, f"/attendance?patient_id={alex['id']}")
    assert [r["attended_seconds"] for r in pulled["records"]] == [60 * MIN]
    audit = [e for e in await _audit(billing) if e["action"] == "attendance.correct"]
    assert audit and audit[0]["details"]["reason"] == "connection logs show no gap"
    bad = await billing.post(world.admin, f"/sessions/{session_id}/attendance/{alex['id']}/correction",
                             {"intervals": [[end, start]], "reason": "x"}, expect=400)
    assert bad["error"]["code"] == "bad_request"
    await billing.post(world.facilitator, f"/sessions/{session_id}/attendance/{alex['id']}/correction",
                       {"intervals": [], "reason": "x"}, expect=403)


async def test_two_corrections_at_once_chain_instead_of_both_replacing_the_same_version(
        billing: Api, receiver: Receiver) -> None:
    import asyncio

    from server.clock import iso, to_ms

    world, session_id, opened = await run_session(billing)
    alex = world.patients[0]
    await receiver.wait(lambda: len(receiver.accepted) == 2, billing.clock)
    first = next(r for r in receiver.accepted.values() if r["data"]["patient_id"] == alex["id"])
    path = f"/sessions/{session_id}/attendance/{alex['id']}/correction"
    start = iso(to_ms(opened))
    both = await asyncio.gather(*[
        billing.post(world.admin, path, {"intervals": [[start, iso(to_ms(opened + minutes * MIN))]], "reason": why})
        for minutes, why in ((50, "first look at the logs"), (55, "second look at the logs"))])
    assert sorted(r["version"] for r in both) == [2, 3]  # one after the other, never both version 2
    await receiver.wait(lambda: len(receiver.accepted) == 4, billing.clock)
    bills = {r["data"]["record_id"]: r["data"] for r in receiver.accepted.values()
             if r["data"]["patient_id"] == alex["id"]}
    # One chain: the original, superseded by one correction, superseded by the other.
    chain = [first["data"]["record_id"]]
    while successor := [b for b in bills.values() if b["supersedes"] == chain[-1]]:
        assert len(successor) == 1, "two records supersede the same one"
        chain.append(successor[0]["record_id"])
    assert len(chain) == 3 == len(bills)
    final = max(both, key=lambda r: r["version"])
    assert bills[chain[-1]]["attended_minutes"] == final["attended_seconds"] // 60
    pulled = await billing.get(world.admin, f"/attendance?patient_id={alex['id']}")
    assert [(r["version"], r["attended_seconds"]) for r in pulled["records"]] == [(3, final["attended_seconds"])]


async def test_weekly_totals_against_the_program_minimum(billing: Api) -> None:
    world, session_id, _ = await run_session(billing)
    weeks = await billing.get(world.admin, "/attendance/weekly")
    by_patient = {w["patient_id"]: w for w in weeks["weeks"]}
    alex, blair, casey = world.patients
    assert by_patient[alex["id"]]["attended_seconds"] == 59 * MIN
    assert by_patient[alex["id"]]["minimum_seconds"] == 9 * 3600 and not by_patient[alex["id"]]["meets_minimum"]
    assert by_patient[casey["id"]]["attended_seconds"] == 0
    session = await billing.get(world.facilitator, f"/sessions/{session_id}/attendance")
    assert session["final"] and len(session["records"]) == 3


async def test_a_session_left_empty_ends_by_itself(billing: Api, receiver: Receiver) -> None:
    world = await billing.world(patients=1)
    session_id = await billing.open(world)
    sock = await billing.patient(world.tokens[0])
    await billing.post(world.facilitator, f"/sessions/{session_id}/admit", {"all": True})
    await sock.until("admitted")
    billing.clock.advance(30 * MIN)
    await sock.send({"type": "leave"})
    await sock.closed()
    billing.clock.advance(1)
    lobby = billing.client.app[SERVICES].lobby
    await lobby.tend()  # the room is seen empty
    billing.clock.advance(billing.settings.auto_end_seconds + 1)
    await lobby.tend()  # and ends
    await receiver.wait(lambda: len(receiver.accepted) == 1, billing.clock, step=1)
    described = await billing.get(world.facilitator, f"/sessions/{session_id}")
    assert described["state"] == "ended"
    (record,) = receiver.accepted.values()
    assert record["data"]["attended_seconds"] == 30 * MIN


async def _deliveries_until(api: Api, world: World, status: str, count: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(10):
        while True:
            found = (await api.get(world.admin, f"/billing/deliveries?status={status}"))["deliveries"]
            if len(found) >= count:
                return list(found)
            await asyncio.sleep(0.02)


async def _audit(api: Api) -> list[dict[str, Any]]:
    from server.audit import AuditLog

    return await AuditLog(api.redis, api.clock).entries()


async def test_backup_export_holds_everything_and_retention_purges_only_old_sessions(
    billing: Api, receiver: Receiver
) -> None:
    from datetime import UTC, datetime, timedelta

    from server.audit import AuditLog
    from server.backup import export_lines, purge

    world, session_id, opened = await run_session(billing)
    await receiver.wait(lambda: len(receiver.accepted) == 2, billing.clock)
    day = datetime.fromtimestamp(opened, tz=UTC).date()
    lines = [line async for line in export_lines(billing.redis, day - timedelta(days=1), day)]
    kinds = [line["kind"] for line in lines]
    assert kinds.count("session") == 1 and kinds.count("attendance") == 3 and kinds.count("billing_record") == 2
    assert "audit" in kinds
    json.dumps(lines)  # JSON lines: every item serialises
    assert all(line["delivery"]["status"] == "delivered" for line in lines if line["kind"] == "billing_record")

    assert await purge(billing.redis, billing.clock, 10, dry_run=False) == {
        "sessions": 0, "attendance_records": 0, "billing_records": 0, "measures": 0, "safety_alerts": 0,
        "feedback": 0}
    billing.clock.advance(11 * 366 * 24 * 3600)
    counts = await purge(billing.redis, billing.clock, 10, dry_run=True)
    assert counts == {"sessions": 1, "attendance_records": 3, "billing_records": 2, "measures": 0,
                      "safety_alerts": 0, "feedback": 0}
    assert await purge(billing.redis, billing.clock, 10, dry_run=False) == counts
    assert [line async for line in export_lines(billing.redis, day - timedelta(days=1), day)
            if line["kind"] != "audit"] == []
    assert (await AuditLog(billing.redis, billing.clock).verify()).ok


async def test_dropout_risk_flags_two_missed_sessions_or_two_falling_weeks(redis: Redis) -> None:
    from datetime import date

    from server.attendance import reports
    from server.store import keys

    await redis.set(keys.group("grp_1"), json.dumps({"id": "grp_1", "weekly_minimum_hours": 9}))
    await redis.zadd(keys.groups(), {"grp_1": 1})
    rows = [  # (patient, service date, status, seconds): falls 3 h -> 2 h -> 1 h; or misses twice
        ("pat_fall", "2027-01-04", "attended", 3 * 3600), ("pat_fall", "2027-01-11", "attended", 2 * 3600),
        ("pat_fall", "2027-01-18", "attended", 3600),
        ("pat_miss", "2027-01-04", "attended", 3 * 3600), ("pat_miss", "2027-01-11", "absent", 0),
        ("pat_miss", "2027-01-18", "absent", 0),
        ("pat_ok", "2027-01-04", "attended", 9 * 3600), ("pat_ok", "2027-01-11", "attended", 9 * 3600),
        ("pat_ok", "2027-01-18", "attended", 9 * 3600),
    ]
    for i, (pid, day, status, seconds) in enumerate(rows):
        member = f"ses_{i}:{pid}"
        record = {"session_id": f"ses_{i}", "group_id": "grp_1", "patient_id": pid, "service_date": day,
                  "status": status, "attended_seconds": seconds}
        await redis.hset(keys.attendance_records(), member, json.dumps(record))
        start = int(datetime.fromisoformat(day + "T18:00:00+00:00").timestamp() * 1000)
        await redis.zadd(keys.attendance_by_start(), {member: start})
    weeks = await reports.weekly(redis, date(2027, 1, 1), date(2027, 1, 31))
    last = {w["patient_id"]: w for w in weeks if w["week"] == "2027-W03"}
    assert last["pat_fall"]["dropout_risk"] and last["pat_miss"]["dropout_risk"]
    assert not last["pat_ok"]["dropout_risk"] and last["pat_ok"]["meets_minimum"]
    assert last["pat_fall"]["minimum_seconds"] == 9 * 3600 and not last["pat_fall"]["meets_minimum"]
    first = {w["patient_id"]: w for w in weeks if w["week"] == "2027-W01"}
    assert not any(w["dropout_risk"] for w in first.values())
