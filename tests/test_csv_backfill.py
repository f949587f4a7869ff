"""Records finalised before the CSV's rows were kept get their rows at start-up, with the same
reports: the JSON and the CSV are the same before and after, and equal to the records'."""

from __future__ import annotations

import asyncio
import hashlib

from server.attendance import backfill, reports
from server.attendance.spreadsheet import kept_row
from server.backup import purge
from server.clock import iso, to_ms
from server.store import keys
from server.store.connection import connect
from tests.conftest import RedisServer
from tests.helpers import Api, World


async def ended_session(api: Api, world: World) -> str:
    session_id = await api.open(world)
    patient = await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [world.patients[0]["id"]]})
    await patient.until("admitted")
    api.clock.advance(3 * 60)
    await api.post(world.facilitator, f"/sessions/{session_id}/end")
    return session_id


async def as_the_old_code_left_them(api: Api) -> dict[str, str]:
    """The records, with no kept rows and no mark (finalised before rows were kept)."""
    await api.redis.delete(keys.attendance_csv(), keys.attendance_csv_filled())
    return await api.redis.hgetall(keys.attendance_records())


async def test_records_without_kept_rows_get_them_and_the_reports_do_not_change(api: Api) -> None:
    world = await api.world(patients=3)
    for _ in range(2):
        await ended_session(api, world)
    records = await as_the_old_code_left_them(api)
    assert len(records) == 6

    async def both_reports() -> tuple[str, str]:
        return (await api.request(world.admin, "GET", "/api/v1/attendance"),
                await api.request(world.admin, "GET", "/api/v1/attendance.csv"))

    before = await both_reports()
    rows = await reports.records(api.redis, *reports.default_range(api.clock))
    people = await reports.readers(api.redis, {r["patient_id"] for r in rows})
    assert before[1] == reports.to_csv(rows, people)  # read whole: right, only slower

    assert await backfill.fill(api.redis, step=4) == 6  # two steps and a bit
    assert await api.redis.hgetall(keys.attendance_csv()) == {key: kept_row(raw) for key, raw in records.items()}
    assert await both_reports() == before  # now from the kept rows: the same bytes
    assert await backfill.fill(api.redis) == 0  # marked done: later start-ups do nothing


async def test_two_processes_filling_at_once_write_each_row_once(api: Api, own_redis: RedisServer) -> None:
    world = await api.world(patients=3)
    await ended_session(api, world)
    records = await as_the_old_code_left_them(api)
    # Two clients of one Redis, as two processes are; the app's Redis is another server here.
    first, second = connect(own_redis.url), connect(own_redis.url)
    try:
        async with first.pipeline(transaction=False) as pipe:
            pipe.hset(keys.attendance_records(), mapping=records)
            pipe.zadd(keys.attendance_by_start(), {key: 1 for key in records})
            await pipe.execute()
        written = await asyncio.gather(backfill.fill(first, step=1), backfill.fill(second, step=1))
        assert sum(written) == len(records)
        assert await first.hgetall(keys.attendance_csv()) == {key: kept_row(raw) for key, raw in records.items()}
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_row_computed_before_a_correction_or_the_purge_is_not_written(api: Api) -> None:
    world = await api.world(patients=2)
    session_id = await ended_session(api, world)
    records = await as_the_old_code_left_them(api)
    attended = next(key for key, raw in records.items() if '"attended"' in raw)
    text = records[attended]
    stale = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
    row = kept_row(text)
    assert row is not None

    # A correction since: the record's text changed, so the row of the old text is not written.
    patient_id = attended.split(":", 1)[1]
    opened = api.clock.now() - 3 * 60
    await api.post(world.admin, f"/sessions/{session_id}/attendance/{patient_id}/correction",
                   {"intervals": [[iso(to_ms(opened)), iso(to_ms(opened + 60))]], "reason": "left early"})
    await api.redis.hdel(keys.attendance_csv(), attended)  # as if the correction kept none
    assert await api.redis.eval(backfill._FILL, 2, keys.attendance_records(), keys.attendance_csv(),
                                attended, stale, row) == 0
    assert await api.redis.hget(keys.attendance_csv(), attended) is None

    # Purged since: nothing is left behind for a record that is gone.
    api.clock.advance(3 * 366 * 86400)
    await purge(api.redis, api.clock, 2, dry_run=False)
    assert await api.redis.hlen(keys.attendance_records()) == 0
    now = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
    assert await api.redis.eval(backfill._FILL, 2, keys.attendance_records(), keys.attendance_csv(),
                                attended, now, row) == 0
    assert await api.redis.hlen(keys.attendance_csv()) == 0
