"""The reminder worker: every few seconds, each due reminder is claimed in Redis and sent once.

Exactly once, across processes and restarts: a reminder (one meeting, one patient, one channel)
is claimed with `SET key sending:<worker> NX PX <lease>`, so only one process sends it. When the
mail server takes it the key becomes `sent` (kept two days, past any retry window); when it
cannot be sent now the claim is released, and the next round (of any process) tries again while
the reminder is at most 15 minutes late. A process killed mid-send leaves its claim to expire
after the lease, and another process sends it: the one case where a reminder may go twice is a
process dying between the mail server's acceptance and the `sent` mark.

`run_once` is one round at the clock's `now`: tests and benchmarks drive it instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from redis.exceptions import WatchError

from server.audit import AuditLog
from server.auth.links import LinkSigner
from server.billing import outbox
from server.billing.wake import Wake
from server.clinic.enrollments import group_enrollments
from server.clinic.groups import all_groups
from server.clinic.patients import patients_by_id
from server.clock import Clock, to_ms
from server.ids import new_id
from server.metrics import Metrics
from server.reminders import message, schedule, webhook
from server.reminders.mailer import Mailer, Sent, SmtpServer
from server.reminders.unsubscribe import UnsubscribeLinks
from server.settings import Settings
from server.store import keys
from server.store.connection import UNAVAILABLE, Redis
from server.tasks import stop_if_cancelled

log = logging.getLogger(__name__)

LEASE_MS = 120_000  # > the mailer's timeout: a live process finishes (or gives up) within it
# Emails claimed per round: sent well within the lease even by a slow mail server (500 took 10-20 s
# on a loaded 2-core machine); a bigger clinic's rest goes in the next rounds, seconds later.
MAX_EMAILS_PER_ROUND = 1000
KEEP_SECONDS = 2 * 24 * 3600

# Release a claim only if it is still this worker's (its lease may have run out and passed on).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass
class Round:
    """What one round did (for tests, benchmarks and the log)."""

    meetings: int = 0
    events: int = 0  # reminder.due events queued for the clinic's webhook
    sent: int = 0
    refused: int = 0
    failed: int = 0
    by_meeting: dict[tuple[str, int], int] = field(default_factory=dict)


@dataclass(frozen=True)
class Claim:
    key: str
    enrollment: dict[str, Any]
    patient: dict[str, Any]


class ReminderWorker:
    def __init__(self, redis: Redis, clock: Clock, settings: Settings, audit: AuditLog,
                 metrics: Metrics | None = None, mailer: Mailer | None = None,
                 delivery_wake: Wake | None = None) -> None:
        self.redis = redis
        self.clock = clock
        self.settings = settings
        self.audit = audit
        self.links = LinkSigner(settings.signing_keys, settings.public_url)
        self.unsubscribe = UnsubscribeLinks(settings.signing_keys, settings.public_url)
        if mailer is None and settings.smtp_url:
            mailer = Mailer(SmtpServer.from_url(settings.smtp_url))
        self.mailer = mailer
        self.sender = settings.smtp_from or f"no-reply@{urlparse(settings.public_url).hostname or 'localhost'}"
        self.owner = "sending:" + secrets.token_urlsafe(8)
        self.delivery_wake = delivery_wake or Wake(webhook.CHANNEL)  # set when reminder.due events are queued
        self.rounds = 0
        self.sent = 0
        if metrics is not None:
            metrics.counter("porchlight_reminder_rounds", "Rounds of the reminder worker in this process.",
                            lambda: self.rounds)
            metrics.counter("porchlight_reminders_sent", "Reminder emails this process handed to the mail server.",
                            lambda: self.sent)

    @property
    def enabled(self) -> bool:
        return self.mailer is not None or self.settings.notify_webhook_url is not None

    async def run(self) -> None:
        """A round every PORCHLIGHT_REMINDER_POLL_SECONDS (10), so a reminder goes within that of its moment."""
        while True:
            await asyncio.sleep(self.settings.reminder_poll_seconds)
            try:
                await self.run_once()
            except UNAVAILABLE:
                log.warning("reminders paused: redis unavailable")
            except Exception:  # a bug must not stop every later reminder: say so, and go on next round
                log.exception("reminder round failed")
            stop_if_cancelled()

    async def run_once(self) -> Round:
        """One round at the clock's now: send every reminder that is due and not yet sent."""
        done = Round()
        if self.enabled:
            now = self.clock.now()
            # A due meeting is looked at every round until it is 15 minutes late, so a patient
            # enrolled (or given an email) meanwhile is reminded too; the claims keep it to once.
            claimed: list[tuple[schedule.DueMeeting, Claim]] = []
            for due in schedule.due_meetings(await all_groups(self.redis), now, self.settings.reminder_minutes):
                done.meetings += 1
                wanted = await self._wanted(due)
                if self.settings.notify_webhook_url and wanted:
                    await self._queue_events(due, wanted, now, done)
                if self.mailer is not None and len(claimed) < MAX_EMAILS_PER_ROUND:
                    room = MAX_EMAILS_PER_ROUND - len(claimed)
                    claimed += [(due, c) for c in await self._claim_emails(due, wanted, room)]
            if claimed:  # every meeting's emails in one batch, over the mailer's few connections
                await self._send_emails(claimed, now, done)
        self.rounds += 1
        return done

    async def _wanted(self, due: schedule.DueMeeting) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(enrolment, patient) of everyone enrolled on the meeting's date who wants reminders."""
        enrolled = [e for e in await group_enrollments(self.redis, due.group["id"])
                    if schedule.enrolled_on(e, due.local_date)]
        patients = await patients_by_id(self.redis, [e["patient_id"] for e in enrolled])
        return [(e, patients[e["patient_id"]]) for e in enrolled
                if e["patient_id"] in patients and patients[e["patient_id"]].get("reminders")]

    async def _claim_emails(self, due: schedule.DueMeeting, wanted: list[tuple[dict[str, Any], dict[str, Any]]],
                            room: int) -> list[Claim]:
        """Claim at most `room` of the meeting's emails that nobody has claimed."""
        with_email = [(e, p) for e, p in wanted if p.get("email")]
        if not with_email:
            return []
        candidates = [keys.reminder_claim(due.group["id"], due.start_ms, e["patient_id"], "email")
                      for e, _ in with_email]
        states = await self.redis.mget(candidates)
        open_ = [(key, ep) for key, ep, state in zip(candidates, with_email, states, strict=True) if state is None]
        open_ = open_[:room]
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, _ in open_:
                pipe.set(key, self.owner, nx=True, px=LEASE_MS)
            won = await pipe.execute() if open_ else []
        return [Claim(key, e, p) for (key, (e, p)), ok in zip(open_, won, strict=True) if ok]

    async def _send_emails(self, claimed: list[tuple[schedule.DueMeeting, Claim]], now: float, done: Round) -> None:
        assert self.mailer is not None
        messages = []
        for index, (due, claim) in enumerate(claimed):
            messages.append(self._email(due, claim, now))
            if index % 50 == 49:
                await asyncio.sleep(0)  # ~0.5 ms each: let the rooms of this process run between batches
        outcomes = await self.mailer.send(messages)
        await self._settle([claim for _, claim in claimed], outcomes)
        per_meeting: dict[tuple[str, int], list[Sent]] = {}
        for (due, _), outcome in zip(claimed, outcomes, strict=True):
            per_meeting.setdefault((due.group["id"], due.start_ms), []).append(outcome)
            setattr(done, outcome.value, getattr(done, outcome.value) + 1)
        self.sent += done.sent
        for (group_id, start_ms), results in per_meeting.items():
            sent = results.count(Sent.SENT)
            done.by_meeting[(group_id, start_ms)] = sent
            await self.audit.append("reminders.sent", None, group_id=group_id, meeting_start_ms=start_ms, sent=sent,
                                    refused=results.count(Sent.REFUSED), failed=results.count(Sent.FAILED))

    async def _queue_events(self, due: schedule.DueMeeting, wanted: list[tuple[dict[str, Any], dict[str, Any]]],
                            now: float, done: Round) -> None:
        """A reminder.due event per patient into the outbox, claimed in the same transaction: the
        claims are watched, so of two processes at the same moment one commits and the other
        leaves the rest to its next round. Once queued, the outbox delivers (and retries)."""
        group_id, timezone = due.group["id"], due.group.get("timezone") or "UTC"
        claim_keys = [keys.reminder_claim(group_id, due.start_ms, e["patient_id"], "webhook") for e, _ in wanted]
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(*claim_keys)
                states = await pipe.mget(claim_keys)
                fresh = [(key, e, p) for key, (e, p), state in zip(claim_keys, wanted, states, strict=True)
                         if state is None]
                if not fresh:
                    return
                pipe.multi()
                for key, enrollment, patient in fresh:
                    event_id = new_id("rmd")
                    body = webhook.event_body(
                        event_id=event_id, group=due.group, patient=patient,
                        meeting_start=due.meeting.start.timestamp(),
                        meeting_local=schedule.spoken_time(due.meeting.start, timezone),
                        minutes_before=self.settings.reminder_minutes,
                        join_url=self.links.url(enrollment["id"], enrollment["link_version"]), now=now)
                    pipe.set(key, "sent", ex=KEEP_SECONDS)
                    outbox.queue(pipe, event_id, body, {"group_id": group_id, "patient_id": patient["id"]},
                                 to_ms(now), webhook.CHANNEL)
                await pipe.execute()
            except WatchError:
                return
        done.events += len(fresh)
        self.delivery_wake.set()

    async def _settle(self, claims: list[Claim], outcomes: list[Sent]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for claim, outcome in zip(claims, outcomes, strict=True):
                if outcome is Sent.FAILED:
                    pipe.eval(_RELEASE, 1, claim.key, self.owner)
                else:
                    pipe.set(claim.key, outcome.value, ex=KEEP_SECONDS)
            await pipe.execute()

    def _email(self, due: schedule.DueMeeting, claim: Claim, now: float) -> message.Outgoing:
        timezone = due.group.get("timezone") or "UTC"
        join_url = self.links.url(claim.enrollment["id"], claim.enrollment["link_version"])
        return message.email(message.Reminder(
            to=claim.patient["email"], sender=self.sender, group_name=due.group.get("name") or "Your group",
            when=schedule.spoken_time(due.meeting.start, timezone),
            clock=schedule.clock_time(due.meeting.start, timezone),
            join_url=join_url, calendar_url=f"{join_url}/calendar.ics",
            unsubscribe_url=self.unsubscribe.url(claim.patient["id"]), sent_at=now,
        ))
