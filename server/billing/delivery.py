"""Delivering an outbox's records to the clinic's endpoint, signed, until acknowledged.

One worker per outbox channel (`Endpoint`): billing records to PORCHLIGHT_BILLING_WEBHOOK_URL,
safety alerts to PORCHLIGHT_ALERT_WEBHOOK_URL; the same signing, retries and dead letter.

Only a 2xx counts as delivered. 410 disables the endpoint (the record is kept as failed);
anything else is retried with exponential backoff and full jitter, honouring Retry-After,
for about three days; then the record is kept as failed, for an admin to replay.

A round keeps IN_FLIGHT requests going, claiming more as answers come back, up to BATCH
records: answers come back a few at a time, so the event loop resumes a handful of requests
per pass instead of a whole round's at once, and no request waits for a round's slowest to
finish before it is sent. The outcomes that have come back are stored together (group commit):
their new statuses and their audit entries, one chained entry per record, in one transaction,
so a delivery and its audit entry are never separated and the audit log takes one transaction
per group instead of one per record. A process killed mid-round leaves the records whose
outcomes were not stored claimed; they are due again when the lease runs out (the receiver
de-duplicates by webhook-id).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Any, cast
from urllib.parse import urlparse

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from server.audit import Action, AuditLog
from server.billing import hl7v2, outbox, signing
from server.clock import Clock, to_ms
from server.metrics import Metrics
from server.settings import Settings
from server.store import keys
from server.store.connection import UNAVAILABLE, Redis
from server.tasks import stop_if_cancelled

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 15.0
LEASE_SECONDS = 60.0  # > REQUEST_TIMEOUT: a claimed job is due again after this if its process died
GIVE_UP_AFTER = 3 * 24 * 3600.0
BATCH = 200  # deliveries claimed per round (then `run` checks for cancellation and starts the next)
IN_FLIGHT = 16  # requests sent at once: more answers at once resume together on the loop
MAX_STEP = 6 * 3600.0
METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def backoff(attempt: int, base: float, rng: random.Random) -> float:
    """Delay before retry number `attempt` (1-based): base * 2^(attempt-1), full jitter in its upper half."""
    step: float = min(MAX_STEP, base * 2.0 ** (attempt - 1))
    return step / 2 + rng.random() * step / 2


def retry_after(value: str | None, now: float) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, float(parsedate_to_datetime(value).timestamp()) - now)
    except (TypeError, ValueError):
        return None


def as_ipv4(address: IPv4Address | IPv6Address) -> IPv4Address | IPv6Address:
    """The IPv4 address an IPv6 address carries (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, NAT64
    64:ff9b::a.b.c.d), which is where a connection to it goes; any other address as it is."""
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if int(address) >> 32 == 0 and int(address) > 1:  # compatible; :: and ::1 are IPv6's own
            return IPv4Address(int(address))
        if address in NAT64:
            return IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def refusal(address: IPv4Address | IPv6Address, allow_link_local: bool) -> str | None:
    """Why a webhook must not be sent to `address` (metadata or link-local), or None."""
    plain = as_ipv4(address)
    if plain in METADATA_ADDRESSES or (plain.is_link_local and not allow_link_local):
        return f"the webhook host resolves to {address}, a link-local or metadata address"
    return None


def literal_refusal(url: str, allow_link_local: bool) -> str | None:
    """The check for a URL whose host is an IP address (aiohttp connects to those without asking
    the resolver); a host name is checked by VettedResolver when connecting."""
    host = urlparse(url).hostname
    if host is None:
        return "the webhook URL has no host"
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None
    return refusal(address, allow_link_local)


class RefusedAddress(OSError):
    """The webhook host resolved to an address it must not be sent to."""


class VettedResolver(AbstractResolver):
    """Resolves once and hands aiohttp only addresses that passed `refusal`, so the connection goes
    to the address that was checked: a DNS answer that changes between a check and the connect
    (rebinding) cannot redirect it. A host with any refused address is refused whole."""

    def __init__(self, allow_link_local: bool, inner: AbstractResolver | None = None) -> None:
        self.allow_link_local = allow_link_local
        self.inner = inner or aiohttp.DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        answers = await self.inner.resolve(host, port, family)
        for answer in answers:
            why = refusal(ipaddress.ip_address(answer["host"].split("%")[0]), self.allow_link_local)
            if why is not None:
                raise RefusedAddress(why)
        return answers

    async def close(self) -> None:
        await self.inner.close()


def webhook_session(allow_link_local: bool, resolver: AbstractResolver | None = None) -> aiohttp.ClientSession:
    """The HTTP client webhooks are sent with: every host name goes through VettedResolver."""
    connector = aiohttp.TCPConnector(resolver=VettedResolver(allow_link_local, resolver))
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))


@dataclass(frozen=True)
class Endpoint:
    """Where one outbox channel's records go, signed with which secrets, named how in the audit log."""

    channel: str  # the outbox's keys (server.billing.outbox)
    url: str | None
    secrets: tuple[str, ...]
    audit_prefix: str  # "billing" -> billing.delivered, billing.failed, billing.endpoint_disabled
    format: str = "json"  # or "hl7v2" (billing only)
    counted: bool = False  # the billing metrics count this channel's attempts


def billing_endpoint(settings: Settings) -> Endpoint:
    return Endpoint(outbox.BILLING, settings.billing_webhook_url, settings.billing_webhook_secrets, "billing",
                    settings.billing_format, counted=True)


@dataclass
class Outcome:
    status: int | None
    error: str | None
    retry_after: float | None
    refused: bool = False  # the address is forbidden: retrying cannot help


@dataclass(frozen=True)
class Attempt:
    """What one delivery attempt changes: the record's status and fields, and its audit entry."""

    record_id: str
    status: str  # delivered | failed | pending (to be retried)
    at_ms: int
    fields: dict[str, int | str]
    audit: Action | None
    result: str  # the metrics label: delivered | failed | retry
    disables: str | None = None  # the endpoint answered 410: this URL is disabled


def decide(job: outbox.Job, outcome: Outcome, url: str, now: float, retry_base: float,
           rng: random.Random, audit: str = "billing") -> Attempt:
    """The stored result of one attempt (no I/O): delivered on 2xx, the endpoint disabled on 410,
    failed when refused or after GIVE_UP_AFTER, otherwise retried after a backoff."""
    record_id, delivery = job.record_id, job.delivery
    attempts = int(delivery.get("attempts", 0)) + 1
    first = int(delivery.get("first_attempt_at") or to_ms(now))
    fields: dict[str, int | str] = {
        "attempts": attempts, "first_attempt_at": first, "last_attempt_at": to_ms(now),
        "last_status": outcome.status or "", "last_error": outcome.error or "",
    }
    if outcome.status is not None and 200 <= outcome.status < 300:
        return Attempt(record_id, "delivered", to_ms(now), {**fields, "delivered_at": to_ms(now)},
                       Action(f"{audit}.delivered", None, {"record_id": record_id, "attempts": attempts}), "delivered")
    if outcome.status == 410:
        return Attempt(record_id, "failed", to_ms(now), fields,
                       Action(f"{audit}.endpoint_disabled", None, {"record_id": record_id}), "failed", disables=url)
    if outcome.refused or (now * 1000 - first) / 1000 >= GIVE_UP_AFTER:
        return Attempt(record_id, "failed", to_ms(now), fields,
                       Action(f"{audit}.failed", None, {"record_id": record_id, "attempts": attempts}), "failed")
    delay = backoff(attempts, retry_base, rng)
    if outcome.retry_after is not None:
        delay = max(delay, min(outcome.retry_after, 24 * 3600.0))
    fields["next_attempt_at"] = to_ms(now + delay)
    return Attempt(record_id, "pending", to_ms(now), fields, None, "retry")


class DeliveryWorker:
    def __init__(self, redis: Redis, clock: Clock, settings: Settings, audit: AuditLog,
                 wake: asyncio.Event | None = None, rng: random.Random | None = None,
                 metrics: Metrics | None = None, endpoint: Endpoint | None = None) -> None:
        self.redis = redis
        self.endpoint = endpoint or billing_endpoint(settings)
        self.channel = self.endpoint.channel
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.settings = settings
        self.audit = audit
        self.rng = rng or random.Random()
        self.wake = wake or asyncio.Event()
        self.poll_seconds = min(1.0, max(0.02, settings.billing_retry_base_seconds / 4))
        self.stopping = False

    def stop(self) -> None:
        """Claim nothing more: `run` returns once the requests in flight are answered and their
        outcomes stored (a process stopping cleanly leaves nothing to wait out a lease)."""
        self.stopping = True
        self.wake.set()

    async def run(self) -> None:
        async with webhook_session(self.settings.billing_allow_link_local) as http:
            while not self.stopping:
                delivered = 0
                try:
                    delivered = await self.deliver_due(http)
                except UNAVAILABLE:
                    log.warning("%s delivery paused: redis unavailable", self.channel)
                stop_if_cancelled()
                if delivered >= BATCH:
                    continue  # a full batch: more are due now, do not wait for the next poll
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.poll_seconds)
                self.wake.clear()

    async def run_once(self) -> int:
        """One round of `run`, for tests and tools: deliver what is due now; how many were tried."""
        async with webhook_session(self.settings.billing_allow_link_local) as http:
            return await self.deliver_due(http)

    async def deliver_due(self, http: aiohttp.ClientSession) -> int:
        """One round: claim what is due, IN_FLIGHT at a time, and claim more as answers come back,
        until nothing more is due or BATCH were claimed; how many were claimed."""
        url, channel = self.endpoint.url, self.channel
        if not url or not self.endpoint.secrets:
            return 0  # records wait, pending, until an endpoint is configured
        if await self.redis.get(keys.outbox_endpoint_disabled(channel)) == url:
            return 0  # the endpoint answered 410; an admin's replay re-enables it
        refused = literal_refusal(url, self.settings.billing_allow_link_local)  # the same for the round
        claimed, due, disabled = 0, True, False
        posts: set[asyncio.Task[Attempt]] = set()
        outcomes: list[Attempt] = []  # back, not yet stored
        storing: asyncio.Task[None] | None = None
        try:
            while True:
                room = min(IN_FLIGHT - len(posts), BATCH - claimed)
                # Refill once half the requests are back (a claim and its read are two round trips),
                # or when nothing is being stored (slow answers hold the other slots).
                if due and not disabled and not self.stopping and room > 0 and (
                        room >= IN_FLIGHT // 2 or storing is None):
                    ids = await outbox.claim(self.redis, to_ms(self.clock.now()), to_ms(LEASE_SECONDS), room,
                                             channel)
                    claimed, due = claimed + len(ids), len(ids) == room
                    posts |= await self._start(http, url, ids, refused)
                if not posts and not outcomes and storing is None:
                    return claimed
                waiting: set[asyncio.Future[Any]] = {*posts, *([storing] if storing else [])}
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if storing is not None and storing in done:
                    done.discard(storing)
                    stored, storing = storing, None
                    stored.result()  # Redis failed: the round stops, what was not stored is due again
                for task in done:
                    posts.discard(cast(asyncio.Task[Attempt], task))
                    attempt = cast(Attempt, task.result())
                    outcomes.append(attempt)
                    disabled = disabled or attempt.disables is not None
                if storing is None and outcomes:
                    # Group commit: the outcomes that came back while the last store ran go in one
                    # transaction, and requests keep going meanwhile.
                    storing = asyncio.create_task(self._store(outcomes))
                    outcomes = []
        finally:
            # Cancelled, or Redis failed: attempts not stored are due again after the lease.
            unfinished = [*posts, *([storing] if storing else [])]
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)

    async def _start(self, http: aiohttp.ClientSession, url: str, ids: list[str],
                     refused: str | None) -> set[asyncio.Task[Attempt]]:
        """The requests of claimed records, started; a claimed record that is no longer pending
        (delivered or failed by another process meanwhile) leaves the due set."""
        if not ids:
            return set()
        jobs = await outbox.jobs(self.redis, ids, self.channel)
        if stale := [job.record_id for job in jobs if not job.pending]:
            await self.redis.zrem(keys.outbox_due(self.channel), *stale)
        return {asyncio.create_task(self._attempt(http, url, job, refused)) for job in jobs if job.pending}

    async def _attempt(self, http: aiohttp.ClientSession, url: str, job: outbox.Job, refused: str | None) -> Attempt:
        assert job.body is not None
        body, content_type = hl7v2.webhook_body(job.body, self.endpoint.format)
        if refused is not None:
            outcome = Outcome(None, refused, None, refused=True)
        else:
            outcome = await self._post(http, url, job.record_id, body, content_type)
        return decide(job, outcome, url, self.clock.now(), self.settings.billing_retry_base_seconds, self.rng,
                      self.endpoint.audit_prefix)

    async def _store(self, attempts: list[Attempt]) -> None:
        """Every attempt's new status and its audit entry, in one transaction."""

        def write(pipe: Any) -> None:
            for attempt in attempts:
                if attempt.disables is not None:
                    pipe.set(keys.outbox_endpoint_disabled(self.channel), attempt.disables)
            outbox.stage_statuses(pipe, [outbox.Change(a.record_id, a.status, a.at_ms, a.fields) for a in attempts],
                                  self.channel)

        await self.audit.commit_with([a.audit for a in attempts if a.audit is not None], write)
        for attempt in attempts:
            self._counted(attempt.result)

    def _counted(self, result: str) -> None:
        """After the outcome is stored: a count never runs ahead of what Redis says."""
        if not self.endpoint.counted:
            return
        self.metrics.billing_attempts.labels(result=result).inc()
        if result == "delivered":
            self.metrics.billing_delivered.inc()

    async def _post(self, http: aiohttp.ClientSession, url: str, record_id: str, body: bytes,
                    content_type: str) -> Outcome:
        stamp = int(self.clock.now())
        headers = signing.headers(list(self.endpoint.secrets), record_id, stamp, body, content_type)
        try:
            async with http.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                await resp.read()
                return Outcome(resp.status, None if resp.status < 300 else f"HTTP {resp.status}",
                               retry_after(resp.headers.get("Retry-After"), self.clock.now()))
        except TimeoutError:
            return Outcome(None, "timeout", None)
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, RefusedAddress):
                return Outcome(None, str(exc.os_error), None, refused=True)
            return Outcome(None, type(exc).__name__, None)
        except aiohttp.ClientError as exc:
            return Outcome(None, type(exc).__name__, None)
