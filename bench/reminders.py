"""Reminders for a whole clinic due at once: 500 patients in 40 groups, all meeting at 18:00.

A real redis-server (AOF, `appendfsync always`, as the embedded server runs) and a real SMTP
server (aiosmtpd, in a child process so it does not share this process's interpreter; it counts
what it accepts) on loopback. The clinic is built with the server's own functions; every patient
has an email and wants reminders. Then the server's `ReminderWorker.run_once()` runs at the due
moment on a manual clock, as the worker's loop would: it claims every reminder in Redis, composes
the emails and hands them to the SMTP server over `--connections` connections (the mailer's
default, 4, and 1 for comparison). Timed: the round, from its start until the SMTP server has
accepted the last message (the round returns only then). A second round shows what a round costs
once all is sent. Last, two workers (two processes' worth) race one round on a fresh clinic:
the SMTP server must have accepted each reminder exactly once.

Figures are printed, not asserted.

    python -m bench.reminders [--patients 500] [--groups 40] [--connections 4,1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.billing import RedisChild, die_with_parent
from server.audit import AuditLog
from server.clinic.enrollments import create_enrollment
from server.clinic.groups import create_group
from server.clinic.patients import create_patient
from server.clock import ManualClock
from server.reminders.mailer import Mailer, SmtpServer
from server.reminders.worker import ReminderWorker
from server.settings import Settings
from server.store.connection import Redis

ZONE = "America/Chicago"
MEETING = datetime(2027, 1, 18, 18, 0, tzinfo=ZoneInfo(ZONE))  # a Monday


# -- the SMTP server (child process) ----------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Counting:
    def __init__(self) -> None:
        self.accepted = 0
        self.recipients: dict[str, int] = {}

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.accepted += 1
        for rcpt in envelope.rcpt_tos:
            self.recipients[rcpt] = self.recipients.get(rcpt, 0) + 1
        return "250 OK"


def serve_smtp(port: int) -> None:
    """Run until stdin closes, then print what was accepted: `accepted N distinct D max-per-address M`."""
    from aiosmtpd.controller import Controller

    counting = Counting()
    controller = Controller(counting, hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "count":
            most = max(counting.recipients.values(), default=0)
            print(f"accepted {counting.accepted} distinct {len(counting.recipients)} max-per-address {most}",
                  flush=True)
        elif line.strip() == "reset":
            counting.accepted, counting.recipients = 0, {}
            print("ok", flush=True)
    controller.stop()


class SmtpChild:
    def __init__(self, port: int) -> None:
        self.port = port
        self.process = subprocess.Popen([sys.executable, "-m", "bench.reminders", "--serve-smtp", str(port)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        preexec_fn=die_with_parent)
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def ask(self, command: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def counts(self) -> tuple[int, int, int]:
        found = re.match(r"accepted (\d+) distinct (\d+) max-per-address (\d+)", self.ask("count"))
        assert found, "the SMTP child did not answer"
        return int(found.group(1)), int(found.group(2)), int(found.group(3))

    def stop(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


# -- the clinic ------------------------------------------------------------------------------------

async def build_clinic(redis: Redis, patients: int, groups: int, now: float) -> None:
    """`groups` groups meeting Mondays 18:00 Chicago; `patients` patients spread over them."""
    group_ids = []
    for g in range(groups):
        group = await create_group(redis, {
            "name": f"Bench group {g}", "program": "IOP", "facilitator_ids": [], "timezone": ZONE, "capacity": 50,
            "schedule": [{"weekday": 0, "start": "18:00", "minutes": 180}],
        }, now)
        group_ids.append(group["id"])
    gate = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with gate:
            patient = await create_patient(redis, {"display_name": f"P{i}", "external_id": None,
                                                   "email": f"patient{i}@example.org", "reminders": True}, now)
            await create_enrollment(redis, group_ids[i % groups], {"patient_id": patient["id"], "starts_on": None,
                                                                    "ends_on": None}, now)

    await asyncio.gather(*(one(i) for i in range(patients)))


@dataclass
class Run:
    label: str
    connections: int
    workers: int
    round_s: float
    sent: int
    accepted: int
    distinct: int
    most_per_address: int
    again_s: float


async def one_run(child: RedisChild, db: int, smtp: SmtpChild, args: argparse.Namespace, connections: int,
                  workers: int) -> Run:
    redis = child.client(db)
    try:
        await redis.flushdb()
        clock = ManualClock(MEETING.timestamp() - 2 * 86400)
        await build_clinic(redis, args.patients, args.groups, clock.now())
        settings = Settings(secret_key="bench-secret-key-" + "x" * 32, public_url="https://clinic.example",
                            smtp_url=f"smtp://127.0.0.1:{smtp.port}")
        audit = AuditLog(redis, clock)
        team = [ReminderWorker(redis, clock, settings, audit,
                               mailer=Mailer(SmtpServer.from_url(settings.smtp_url or ""), connections))
                for _ in range(workers)]
        smtp.ask("reset")
        clock.set(MEETING.timestamp() - settings.reminder_minutes * 60)  # the due moment
        started = time.perf_counter()
        rounds = await asyncio.gather(*(w.run_once() for w in team))
        round_s = time.perf_counter() - started
        accepted, distinct, most = smtp.counts()
        clock.advance(10)
        started = time.perf_counter()
        again = await team[0].run_once()
        again_s = time.perf_counter() - started
        assert again.sent == 0
        label = f"{workers} workers racing" if workers > 1 else "one worker"
        return Run(label, connections, workers, round_s, sum(r.sent for r in rounds), accepted, distinct, most,
                   again_s)
    finally:
        await redis.aclose()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.reminders", description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--groups", type=int, default=40)
    parser.add_argument("--connections", default="4,1", help="SMTP connections of the mailer, comma separated")
    parser.add_argument("--serve-smtp", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


async def amain(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="plbench-reminders-"))
    child = RedisChild(tmp, "always")
    child.start()
    smtp = SmtpChild(free_port())
    runs: list[Run] = []
    try:
        for connections in [int(c) for c in args.connections.split(",")]:
            runs.append(await one_run(child, 0, smtp, args, connections, 1))
            print(f"  {runs[-1]}", flush=True)
        runs.append(await one_run(child, 0, smtp, args, 4, 2))
        print(f"  {runs[-1]}", flush=True)
    finally:
        smtp.stop()
        await child.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\npython {platform.python_version()}, {platform.system()} {platform.machine()}; "
          f"{args.patients} patients in {args.groups} groups, every reminder due at once; "
          "redis AOF fsync always; aiosmtpd in a child process on loopback")
    print(f"{'run':<20} {'SMTP conns':>10} {'round s':>8} {'emails/s':>9} {'sent':>5} {'accepted':>8} "
          f"{'distinct':>8} {'max/addr':>8} {'next round ms':>13}")
    for r in runs:
        print(f"{r.label:<20} {r.connections:>10} {r.round_s:>8.2f} {r.sent / r.round_s:>9.0f} {r.sent:>5} "
              f"{r.accepted:>8} {r.distinct:>8} {r.most_per_address:>8} {r.again_s * 1000:>13.1f}")
    ok = all(r.accepted == r.sent == r.distinct == args.patients and r.most_per_address == 1 for r in runs)
    print("goal (issue, not asserted): all due reminders out within 60 s of their moment; each exactly once: "
          + ("met" if ok and max(r.round_s for r in runs) < 60 else "NOT met"))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_smtp is not None:
        with contextlib.suppress(KeyboardInterrupt):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            serve_smtp(args.serve_smtp)
        return 0
    return asyncio.run(amain(args))


if __name__ == "__main__":
    raise SystemExit(main())
