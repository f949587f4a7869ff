"""Two real `porchlight serve` processes on one Redis, both running the reminder worker on the
real clock: every patient gets exactly one reminder of a meeting, however their rounds interleave."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.store.connection import Redis
from tests.conftest import RedisServer, free_port
from tests.helpers import metric_samples
from tests.smtp_receiver import SmtpReceiver
from tests.test_billing_crash import start
from tests.test_cli import PORCHLIGHT, _env

PATIENTS = 12
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


async def rounds(http: aiohttp.ClientSession, base: str) -> tuple[float, float]:
    samples = metric_samples(await (await http.get(f"{base}/metrics")).text())
    return samples.get("porchlight_reminder_rounds_total", 0.0), samples.get("porchlight_reminders_sent_total", 0.0)


async def test_two_processes_send_each_reminder_exactly_once(
    tmp_path: Path, redis_server: RedisServer, redis: Redis,
) -> None:
    common = {"PORCHLIGHT_REDIS_URL": redis_server.url, "PORCHLIGHT_SECRET_KEY": "shared-secret-key-" + "k" * 32,
              "PORCHLIGHT_REMINDER_POLL_SECONDS": "0.1", "PORCHLIGHT_REMINDER_MINUTES": "60"}
    added = subprocess.run([*PORCHLIGHT, "user", "add", "admin", "--role", "admin"], input="a long password\n",
                           text=True, capture_output=True, env=_env(tmp_path / "cli", **common), timeout=60)
    assert added.returncode == 0, added.stderr
    # A meeting whose reminder fell due at the start of this minute, in UTC.
    start_at = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=60)
    with SmtpReceiver(free_port()) as smtp:
        env = {**common, "PORCHLIGHT_SMTP_URL": smtp.url}
        # The first process's API sets the clinic up; the second starts once it is there.
        first, base1 = await start(_env(tmp_path / "one", **env))
        processes = [first]
        try:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                login = await http.post(f"{base1}/api/v1/login",
                                        json={"username": "admin", "password": "a long password"})
                csrf = (await login.json())["csrf_token"]

                async def call(method: str, path: str, body: Any) -> Any:
                    resp = await http.request(method, f"{base1}/api/v1{path}", json=body,
                                              headers={"X-CSRF-Token": csrf})
                    assert resp.status in (200, 201), await resp.text()
                    return await resp.json()

                group = await call("POST", "/groups", {
                    "name": "Morning group", "program": "IOP", "facilitator_ids": [], "timezone": "UTC",
                    "schedule": [{"weekday": start_at.weekday(), "start": start_at.strftime("%H:%M"), "minutes": 90}]})
                for i in range(PATIENTS):
                    patient = await call("POST", "/patients", {"display_name": f"P{i}", "email": f"p{i}@example.org",
                                                               "reminders": True})
                    await call("POST", f"/groups/{group['id']}/enrollments", {"patient_id": patient["id"]})

                second, base2 = await start(_env(tmp_path / "two", **env))
                processes.append(second)
                try:
                    async with asyncio.timeout(60):
                        while len(smtp.inbox.to()) < PATIENTS:
                            await asyncio.sleep(0.05)
                except TimeoutError:
                    for process in processes:
                        process.send_signal(signal.SIGTERM)
                    outs = [(await p.stdout.read()).decode() for p in processes if p.stdout]
                    raise AssertionError(f"{len(smtp.inbox.to())} emails; " + "\n".join(outs)) from None
                # Both processes have looked again since: whatever they would send, they have sent.
                after = [await rounds(http, base) for base in (base1, base2)]
                async with asyncio.timeout(60):
                    while True:
                        now = [await rounds(http, base) for base in (base1, base2)]
                        if all(n[0] >= a[0] + 2 for n, a in zip(now, after, strict=True)):
                            break
                        await asyncio.sleep(0.05)
                assert Counter(smtp.inbox.to()) == Counter(f"p{i}@example.org" for i in range(PATIENTS))
                assert sum(sent for _, sent in now) == PATIENTS
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                assert await asyncio.wait_for(process.wait(), 30) == 0
