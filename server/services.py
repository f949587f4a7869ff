"""What request handlers reach through the application: one typed object, one AppKey."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from server.audit import AuditLog
from server.auth.links import LinkSigner
from server.auth.passwords import PasswordChecks
from server.auth.ratelimit import LoginLimiter
from server.auth.sessions import StaffSessions
from server.clock import Clock
from server.lobby.registry import Lobby
from server.metrics import Metrics
from server.settings import Settings
from server.store.connection import Redis, RedisProbe
from server.tasks import Background

if TYPE_CHECKING:  # it reads the client address through server.api.common, which imports this module
    from server.realtime.hello_gate import HelloGate
    from server.realtime.relay import Relay


@dataclass
class Services:
    settings: Settings
    clock: Clock
    redis: Redis
    metrics: Metrics
    audit: AuditLog
    staff_sessions: StaffSessions
    limiter: LoginLimiter
    password_checks: PasswordChecks
    links: LinkSigner
    lobby: Lobby
    redis_probe: RedisProbe
    hello_gate: HelloGate
    relay: Relay  # WebSockets and the processes hosting their groups
    background: Background  # the process's rounds, workers and socket heartbeats


SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]
