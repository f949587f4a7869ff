"""Kept CSV rows (`attendance:csv`, spreadsheet.Kept) for records written before rows were kept.

The CSV export reads a record without a kept row whole: the same bytes, at the old speed. At
start-up each process walks the report index (ZSCAN, which returns every record present for the
whole walk) STEP records at a time (about 3 ms of CPU), yielding to the event loop between
steps, and writes the rows that are missing. A row is written only if its record is still the
text it was computed from and still has no row, checked in Redis in the same step (a Lua
script): a correction or the retention purge in between wins, and several processes walking at
once write each row once. A walk that reaches the end marks the store done
(`attendance:csv:filled`); later start-ups skip it. A record whose row cannot be kept (other
types than finalisation writes) stays read whole.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from server.attendance.spreadsheet import kept_row
from server.store import keys
from server.store.connection import UNAVAILABLE, Redis
from server.tasks import stop_if_cancelled

log = logging.getLogger(__name__)

STEP = 200  # records per step: their kept rows are about 3 ms of CPU to compute (15 µs each)
RETRY_SECONDS = 30.0

# KEYS: the records, the kept rows. ARGV: (member, sha1 of the record's text, row) per record.
_FILL = """
local written = 0
for i = 1, #ARGV, 3 do
  local text = redis.call('HGET', KEYS[1], ARGV[i])
  if text and redis.sha1hex(text) == ARGV[i + 1] and redis.call('HEXISTS', KEYS[2], ARGV[i]) == 0 then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
    written = written + 1
  end
end
return written
"""


async def fill(redis: Redis, step: int = STEP) -> int:
    """Write the missing kept rows, one step at a time; how many this call wrote (0 if the store
    is already marked done)."""
    if await redis.exists(keys.attendance_csv_filled()):
        return 0
    written, cursor = 0, 0
    while True:
        cursor, found = await redis.zscan(keys.attendance_by_start(), cursor, count=step)
        written += await _fill_step(redis, [member for member, _ in found])
        if cursor == 0:
            break
        await asyncio.sleep(0)
    await redis.set(keys.attendance_csv_filled(), 1)
    return written


async def _fill_step(redis: Redis, members: list[str]) -> int:
    if not members:
        return 0
    rows = await redis.hmget(keys.attendance_csv(), members)
    missing = [member for member, row in zip(members, rows, strict=True) if row is None]
    if not missing:
        return 0
    args: list[str] = []
    for member, text in zip(missing, await redis.hmget(keys.attendance_records(), missing), strict=True):
        if text is not None and (row := kept_row(text)) is not None:
            args += [member, hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest(), row]
    if not args:
        return 0
    return int(await redis.eval(_FILL, 2, keys.attendance_records(), keys.attendance_csv(), *args))


async def run(redis: Redis) -> None:
    """`fill` at start-up, again after RETRY_SECONDS while Redis is unavailable. A failure is
    logged and ends it: the export reads those records whole meanwhile."""
    while True:
        try:
            if written := await fill(redis):
                log.info("attendance CSV: kept rows written for %d older records", written)
            return
        except UNAVAILABLE:
            stop_if_cancelled()
            await asyncio.sleep(RETRY_SECONDS)
        except Exception:
            stop_if_cancelled()  # redis-py can turn a cancellation while connecting into another error
            log.exception("attendance CSV: writing the kept rows of older records failed")
            return
