"""Typed settings from PORCHLIGHT_* environment variables, validated at start-up."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from server.store import sentinel

# PORCHLIGHT_DELIVERY: where the outboxes' webhook workers run. "process": `porchlight serve` starts
# one delivery process (`porchlight deliver`) and supervises it, and no serving process delivers;
# "inline": every serving process delivers on its own event loop; "external": no serving process
# delivers and none is started, the operator runs `porchlight deliver` (one or several, anywhere).
DELIVERY_MODES = ("process", "inline", "external")


class SettingsError(Exception):
    """One or more settings are invalid; `problems` holds one message per bad value."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Setting:
    env: str
    help: str
    default: str


# Every setting, in the order `serve --help` lists them.
SETTINGS: tuple[Setting, ...] = (
    Setting("PORCHLIGHT_HOST", "address to listen on", "127.0.0.1"),
    Setting("PORCHLIGHT_PORT", "TCP port to listen on (0 picks a free one)", "8080"),
    Setting("PORCHLIGHT_REDIS_URL", "redis:// or redis+sentinel://host:port,.../service; unset: embedded", ""),
    Setting("PORCHLIGHT_REDIS_POOL_SIZE", "Redis connections one process may open; more requests wait for one", "50"),
    Setting("PORCHLIGHT_REDIS_POOL_TIMEOUT_SECONDS", "wait this long for a free Redis connection, then 503", "2"),
    Setting("PORCHLIGHT_REDIS_TIMEOUT_SECONDS", "a Redis command unanswered this long fails (503)", "2"),
    Setting("PORCHLIGHT_DATA_DIR", "embedded Redis data (AOF) and the generated secret key", "./porchlight-data"),
    Setting("PORCHLIGHT_SECRET_KEY", "signs cookies and links (>= 32 chars); unset: made once in the data dir", ""),
    Setting("PORCHLIGHT_PUBLIC_URL", "absolute URL clients reach the server at; join links are built from it", "http://{host}:{port}"),
    Setting("PORCHLIGHT_BILLING_WEBHOOK_URL", "billing system endpoint for session-duration records", ""),
    Setting("PORCHLIGHT_BILLING_WEBHOOK_SECRET", "Standard Webhooks secret (whsec_...)", ""),
    Setting("PORCHLIGHT_BILLING_RETRY_BASE_SECONDS", "first billing retry delay in seconds", "5"),
    Setting("PORCHLIGHT_BILLING_ALLOW_LINK_LOCAL", "1 lets the webhook URL resolve to link-local addresses", "0"),
    Setting("PORCHLIGHT_BILLING_FORMAT", "billing webhook body: json, or hl7v2 for a DFT^P03 charge message", "json"),
    Setting("PORCHLIGHT_ALERT_WEBHOOK_URL", "endpoint for signed safety_alert.raised events (unset: kept pending)", ""),
    Setting("PORCHLIGHT_ALERT_WEBHOOK_SECRET", "Standard Webhooks secret for alerts (default: the billing one)", ""),
    Setting("PORCHLIGHT_SMTP_URL", "smtp:// or smtps://user:password@host[:port] for reminder emails; unset: none", ""),
    Setting("PORCHLIGHT_SMTP_FROM", "From address of reminder emails", "no-reply@{public URL's host}"),
    Setting("PORCHLIGHT_REMINDER_MINUTES", "remind enrolled patients this long before each scheduled meeting", "60"),
    Setting("PORCHLIGHT_REMINDER_POLL_SECONDS", "how often each process looks for reminders that are due", "10"),
    Setting("PORCHLIGHT_NOTIFY_WEBHOOK_URL", "endpoint for signed reminder.due events (a clinic's SMS system)", ""),
    Setting("PORCHLIGHT_NOTIFY_WEBHOOK_SECRET", "whsec_... for reminder.due events (default: the billing secret)", ""),
    Setting("PORCHLIGHT_AUTO_END_SECONDS", "end a session this long after it empties with no facilitator", "900"),
    Setting("PORCHLIGHT_MIN_ATTENDED_SECONDS",
            "a join shorter than this is recorded but flagged short, and billed as below minimum", "60"),
    Setting("PORCHLIGHT_RETENTION_YEARS", "keep attendance, billing and audit records this many years", "10"),
    Setting("PORCHLIGHT_ICE_SERVERS", "JSON list of RTCIceServer objects given to clients", "[]"),
    Setting("PORCHLIGHT_TURN_URLS", "TURN server(s) given to clients with minted credentials (turn:host:3478,...)", ""),
    Setting("PORCHLIGHT_TURN_SECRET", "coturn's static-auth-secret (use-auth-secret); >= 16 chars", ""),
    Setting("PORCHLIGHT_TURN_TTL_SECONDS", "a minted TURN credential works this long (longer than a session)", "28800"),
    Setting("PORCHLIGHT_RECONNECT_GRACE_SECONDS", "a dropped patient back within this goes straight in", "120"),
    Setting("PORCHLIGHT_HEARTBEAT_INTERVAL_SECONDS", "WebSocket ping interval", "10"),
    Setting("PORCHLIGHT_HEARTBEAT_TIMEOUT_SECONDS", "a client silent this long is dropped", "30"),
    Setting("PORCHLIGHT_STAFF_IDLE_TIMEOUT_SECONDS", "staff sessions end after this much inactivity", "900"),
    Setting("PORCHLIGHT_STAFF_SESSION_MAX_SECONDS", "a staff sign-in ends this long after it began", "43200"),
    Setting("PORCHLIGHT_LOGIN_MAX_FAILURES_PER_IP", "failed logins per IP before 429, per window", "20"),
    Setting("PORCHLIGHT_LOGIN_MAX_FAILURES_PER_USER", "failures at a username from one address before lock-out", "5"),
    Setting("PORCHLIGHT_LOGIN_FAILURE_WINDOW_SECONDS", "window for counting failed logins", "900"),
    Setting("PORCHLIGHT_LOGIN_LOCKOUT_SECONDS", "first lock-out of an address from a username; doubles", "60"),
    Setting("PORCHLIGHT_LOGIN_LOCKOUT_MAX_SECONDS", "longest lock-out of an address from a username", "3600"),
    Setting("PORCHLIGHT_LOGIN_SLOW_AFTER_FAILURES_PER_USER",
            "failed logins at a username from all addresses, per window, before it is slowed", "100"),
    Setting("PORCHLIGHT_LOGIN_SLOW_MAX_SECONDS", "longest wait between attempts at a slowed username", "30"),
    Setting("PORCHLIGHT_PASSWORD_CHECKS_AT_ONCE", "password hashes computed at once (each takes a core)", "2"),
    Setting("PORCHLIGHT_PASSWORD_CHECKS_QUEUE", "sign-ins that may wait for a password check; more get 503", "32"),
    Setting("PORCHLIGHT_WS_SEND_QUEUE", "frames queued to one client before it is dropped as too slow", "256"),
    Setting("PORCHLIGHT_WS_BEFORE_HELLO_PER_ADDRESS", "sockets one address may have open before hello (429)", "50"),
    Setting("PORCHLIGHT_WS_BEFORE_HELLO_MAX", "sockets all may have open before hello (429)", "1000"),
    Setting("PORCHLIGHT_TRUSTED_PROXIES", "proxies (IPs or CIDRs) whose X-Forwarded-For names the client", ""),
    Setting("PORCHLIGHT_NODE_TIMEOUT_SECONDS", "a process silent this long loses its sessions to live ones", "10"),
    Setting("PORCHLIGHT_MEDIA_ADDRESS", "ICE host candidate address (loopback is offered too), in /api/v1/nodes", ""),
    Setting("PORCHLIGHT_MEDIA_PORT", "one UDP port for all media (0: one per connection); workers take the next ones",
            "0"),
    Setting("PORCHLIGHT_DRAIN_SECONDS", "on SIGTERM, wait this long for sessions to end before closing", "30"),
    Setting("PORCHLIGHT_WORKERS", "worker processes behind the one port (an integer, or auto: one per CPU)", "1"),
    Setting("PORCHLIGHT_DELIVERY", "who sends the webhooks (billing, alerts, reminders): process (a delivery "
            "process beside the server's), inline (each serving process), external (`porchlight deliver`, run apart)",
            "process"),
    Setting("PORCHLIGHT_LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR", "INFO"),
    Setting("PORCHLIGHT_LOG_FORMAT", "text, or json for one JSON object a line", "text"),
)


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    redis_url: str | None = field(default=None, repr=False)  # may hold a password
    redis_pool_size: int = 50
    redis_pool_timeout_seconds: float = 2.0
    redis_timeout_seconds: float = 2.0
    # Sockets that have not said hello cost memory and prove nothing: capped per address and in all.
    ws_before_hello_per_address: int = 50
    ws_before_hello_max: int = 1000
    data_dir: Path = Path("./porchlight-data")
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    previous_secret_keys: tuple[str, ...] = field(default=(), repr=False)  # still verify, never sign
    public_url: str = "http://127.0.0.1:8080"
    billing_webhook_url: str | None = None
    billing_webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    billing_retry_base_seconds: float = 5.0
    billing_allow_link_local: bool = False
    billing_format: str = "json"  # or "hl7v2": the webhook body is a DFT^P03 message (billing/hl7v2.py)
    alert_webhook_url: str | None = None
    alert_webhook_secrets: tuple[str, ...] = field(default=(), repr=False)  # empty: the billing secrets sign
    smtp_url: str | None = field(default=None, repr=False)  # holds the SMTP password
    smtp_from: str | None = None
    reminder_minutes: int = 60
    reminder_poll_seconds: float = 10.0
    notify_webhook_url: str | None = None
    notify_webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    auto_end_seconds: float = 900.0
    min_attended_seconds: int = 60  # shorter joins: recorded, flagged short_join, billed below minimum
    retention_years: int = 10
    ice_servers: tuple[dict[str, Any], ...] = ()
    # TURN with credentials minted per participant (server/media/ice.py); no secret, no TURN.
    turn_urls: tuple[str, ...] = ()
    turn_secret: str | None = field(default=None, repr=False)
    turn_ttl_seconds: int = 8 * 3600
    reconnect_grace_seconds: float = 120.0
    heartbeat_interval_seconds: float = 10.0
    heartbeat_timeout_seconds: float = 30.0
    staff_idle_timeout_seconds: float = 900.0
    staff_session_max_seconds: float = 12 * 3600.0
    login_max_failures_per_ip: int = 20
    login_max_failures_per_user: int = 5
    login_failure_window_seconds: int = 900
    # One address locked out of one username, doubling; every address only slowed at a username.
    login_lockout_seconds: float = 60.0
    login_lockout_max_seconds: float = 3600.0
    login_slow_after_failures_per_user: int = 100
    login_slow_max_seconds: float = 30.0
    # Password hashing is the costly part of a sign-in: a few at once, a bounded line for them.
    password_checks_at_once: int = 2
    password_checks_queue: int = 32
    ws_send_queue: int = 256
    log_level: str = "INFO"
    log_format: str = "text"
    # Limits on what clients may send; not environment settings.
    max_json_bytes: int = 64 * 1024
    max_ws_frame_bytes: int = 64 * 1024
    hello_deadline_seconds: float = 10.0
    # Frames one connection may send: a steady rate with a burst on top (pings included).
    ws_frame_rate: float = 10.0
    ws_frame_burst: int = 40
    # Check-ins of one patient per minute: a hello/leave loop cannot ring the chime without end.
    check_ins_per_minute: int = 10
    node_timeout_seconds: float = 10.0
    media_address: str | None = None
    media_port: int = 0  # 0: each peer connection has its own ephemeral UDP port
    drain_seconds: float = 30.0
    workers: int = 1
    # Webhook delivery (server/deliver.py): "process", "inline" or "external" (see DELIVERY_MODES).
    delivery: str = "process"
    # Reverse proxies whose X-Forwarded-For is believed (the client address for per-address limits).
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @property
    def signing_keys(self) -> tuple[str, ...]:
        """The key that signs first, then older ones that still verify (during a rotation)."""
        return (self.secret_key, *self.previous_secret_keys)

    @property
    def alert_signing_secrets(self) -> tuple[str, ...]:
        """PORCHLIGHT_ALERT_WEBHOOK_SECRET, or the billing webhook's secrets when it is unset."""
        return self.alert_webhook_secrets or self.billing_webhook_secrets

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        problems: list[str] = []
        values: dict[str, Any] = {}
        env = _read_secret_files(_without_service_links(env), problems)

        def get(name: str) -> str | None:
            raw = env.get(name)
            return raw.strip() if raw is not None and raw.strip() != "" else None

        def number(name: str, attr: str, kind: Callable[[str], Any], low: float, high: float) -> None:
            raw = get(name)
            if raw is None:
                return
            try:
                value = kind(raw)
            except ValueError:
                problems.append(f"{name}={raw!r}: not a {'whole ' if kind is int else ''}number")
                return
            if not low <= value <= high:
                problems.append(f"{name}={raw!r}: must be between {low:g} and {high:g}")
                return
            values[attr] = value

        if (host := get("PORCHLIGHT_HOST")) is not None:
            values["host"] = host
        number("PORCHLIGHT_PORT", "port", int, 0, 65535)
        if (url := get("PORCHLIGHT_REDIS_URL")) is not None:
            scheme = url.partition("://")[0].lower() if "://" in url else ""
            if scheme == sentinel.SCHEME:
                try:
                    sentinel.parse(url)
                    values["redis_url"] = url
                except ValueError as exc:
                    problems.append(f"PORCHLIGHT_REDIS_URL: {exc}")
            elif scheme not in ("redis", "rediss", "unix"):
                problems.append(f"PORCHLIGHT_REDIS_URL: redis://, rediss://, unix:// or {sentinel.SCHEME}:// "
                                f"(not {scheme!r})")
            else:
                values["redis_url"] = url
        number("PORCHLIGHT_REDIS_POOL_SIZE", "redis_pool_size", int, 1, 10000)
        number("PORCHLIGHT_REDIS_POOL_TIMEOUT_SECONDS", "redis_pool_timeout_seconds", float, 0, 60)
        number("PORCHLIGHT_REDIS_TIMEOUT_SECONDS", "redis_timeout_seconds", float, 0.1, 60)
        if (data_dir := get("PORCHLIGHT_DATA_DIR")) is not None:
            values["data_dir"] = Path(data_dir)
        if (key := env.get("PORCHLIGHT_SECRET_KEY")) is not None and key.strip() != "":
            # Rotation: several keys, separated by spaces or commas; the first signs, all verify.
            given = key.replace(",", " ").split()
            if any(len(k) < 32 for k in given):
                problems.append("PORCHLIGHT_SECRET_KEY: each key must be at least 32 characters")
            else:
                values["secret_key"], values["previous_secret_keys"] = given[0], tuple(given[1:])
        if (public := get("PORCHLIGHT_PUBLIC_URL")) is not None:
            parsed = urlparse(public)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                problems.append(f"PORCHLIGHT_PUBLIC_URL={public!r}: must be an absolute http(s) URL")
            else:
                values["public_url"] = public.rstrip("/")
        if (hook := get("PORCHLIGHT_BILLING_WEBHOOK_URL")) is not None:
            if urlparse(hook).scheme not in ("http", "https"):
                problems.append(f"PORCHLIGHT_BILLING_WEBHOOK_URL={hook!r}: must be an http(s) URL")
            else:
                values["billing_webhook_url"] = hook
        for kind in ("BILLING", "ALERT"):
            name = f"PORCHLIGHT_{kind}_WEBHOOK_SECRET"
            if (whsec := env.get(name)) is not None and whsec.strip() != "":
                # Several secrets (space or comma separated) during a rotation: all of them sign.
                secrets_ = [part for part in whsec.replace(",", " ").split() if part]
                if not all(_valid_whsec(part) for part in secrets_):
                    problems.append(f"{name}: whsec_<base64>, several separated by spaces")
                else:
                    values[f"{kind.lower()}_webhook_secrets"] = tuple(secrets_)
        if (alert_hook := get("PORCHLIGHT_ALERT_WEBHOOK_URL")) is not None:
            if urlparse(alert_hook).scheme not in ("http", "https"):
                problems.append(f"PORCHLIGHT_ALERT_WEBHOOK_URL={alert_hook!r}: must be an http(s) URL")
            else:
                values["alert_webhook_url"] = alert_hook
        number("PORCHLIGHT_BILLING_RETRY_BASE_SECONDS", "billing_retry_base_seconds", float, 0.01, 86400)
        if (allow := get("PORCHLIGHT_BILLING_ALLOW_LINK_LOCAL")) is not None:
            if allow not in ("0", "1"):
                problems.append("PORCHLIGHT_BILLING_ALLOW_LINK_LOCAL: 0 or 1")
            else:
                values["billing_allow_link_local"] = allow == "1"
        if (billing_format := get("PORCHLIGHT_BILLING_FORMAT")) is not None:
            if billing_format not in ("json", "hl7v2"):
                problems.append(f"PORCHLIGHT_BILLING_FORMAT={billing_format!r}: json or hl7v2")
            else:
                values["billing_format"] = billing_format
        if (smtp := get("PORCHLIGHT_SMTP_URL")) is not None:
            parsed = urlparse(smtp)
            if parsed.scheme not in ("smtp", "smtps") or not parsed.hostname:
                problems.append("PORCHLIGHT_SMTP_URL: smtp://user:password@host[:port] or smtps://...")
            else:
                values["smtp_url"] = smtp
        if (sender := get("PORCHLIGHT_SMTP_FROM")) is not None:
            values["smtp_from"] = sender
        number("PORCHLIGHT_REMINDER_MINUTES", "reminder_minutes", int, 1, 7 * 24 * 60)
        number("PORCHLIGHT_REMINDER_POLL_SECONDS", "reminder_poll_seconds", float, 0.05, 30)
        if (notify := get("PORCHLIGHT_NOTIFY_WEBHOOK_URL")) is not None:
            if urlparse(notify).scheme not in ("http", "https"):
                problems.append(f"PORCHLIGHT_NOTIFY_WEBHOOK_URL={notify!r}: must be an http(s) URL")
            else:
                values["notify_webhook_url"] = notify
        if (whsec := get("PORCHLIGHT_NOTIFY_WEBHOOK_SECRET")) is not None:
            secrets_ = whsec.replace(",", " ").split()
            if not all(_valid_whsec(part) for part in secrets_):
                problems.append("PORCHLIGHT_NOTIFY_WEBHOOK_SECRET: whsec_<base64>, several separated by spaces")
            else:
                values["notify_webhook_secrets"] = tuple(secrets_)
        number("PORCHLIGHT_AUTO_END_SECONDS", "auto_end_seconds", float, 1, 86400)
        number("PORCHLIGHT_MIN_ATTENDED_SECONDS", "min_attended_seconds", int, 0, 3600)
        number("PORCHLIGHT_RETENTION_YEARS", "retention_years", int, 1, 100)
        if (ice := get("PORCHLIGHT_ICE_SERVERS")) is not None:
            try:
                servers = json.loads(ice)
                if not isinstance(servers, list) or not all(
                    isinstance(s, dict) and "urls" in s for s in servers
                ):
                    raise ValueError
                values["ice_servers"] = tuple(servers)
            except ValueError:
                problems.append("PORCHLIGHT_ICE_SERVERS: must be a JSON list of objects with \"urls\"")
        _turn(get, values, problems)
        number("PORCHLIGHT_TURN_TTL_SECONDS", "turn_ttl_seconds", int, 60, 7 * 86400)
        number("PORCHLIGHT_RECONNECT_GRACE_SECONDS", "reconnect_grace_seconds", float, 0, 3600)
        number("PORCHLIGHT_HEARTBEAT_INTERVAL_SECONDS", "heartbeat_interval_seconds", float, 0.01, 600)
        number("PORCHLIGHT_HEARTBEAT_TIMEOUT_SECONDS", "heartbeat_timeout_seconds", float, 0.05, 3600)
        number("PORCHLIGHT_STAFF_IDLE_TIMEOUT_SECONDS", "staff_idle_timeout_seconds", float, 10, 86400)
        number("PORCHLIGHT_STAFF_SESSION_MAX_SECONDS", "staff_session_max_seconds", float, 60, 7 * 86400)
        number("PORCHLIGHT_LOGIN_MAX_FAILURES_PER_IP", "login_max_failures_per_ip", int, 1, 100000)
        number("PORCHLIGHT_LOGIN_MAX_FAILURES_PER_USER", "login_max_failures_per_user", int, 1, 100000)
        number("PORCHLIGHT_LOGIN_FAILURE_WINDOW_SECONDS", "login_failure_window_seconds", int, 1, 86400)
        number("PORCHLIGHT_LOGIN_LOCKOUT_SECONDS", "login_lockout_seconds", float, 1, 86400)
        number("PORCHLIGHT_LOGIN_LOCKOUT_MAX_SECONDS", "login_lockout_max_seconds", float, 1, 7 * 86400)
        number("PORCHLIGHT_LOGIN_SLOW_AFTER_FAILURES_PER_USER", "login_slow_after_failures_per_user", int, 1, 10000000)
        number("PORCHLIGHT_LOGIN_SLOW_MAX_SECONDS", "login_slow_max_seconds", float, 1, 3600)
        number("PORCHLIGHT_PASSWORD_CHECKS_AT_ONCE", "password_checks_at_once", int, 1, 64)
        number("PORCHLIGHT_PASSWORD_CHECKS_QUEUE", "password_checks_queue", int, 0, 100000)
        number("PORCHLIGHT_WS_SEND_QUEUE", "ws_send_queue", int, 4, 100000)
        number("PORCHLIGHT_NODE_TIMEOUT_SECONDS", "node_timeout_seconds", float, 1, 3600)
        number("PORCHLIGHT_DRAIN_SECONDS", "drain_seconds", float, 0, 3600)
        number("PORCHLIGHT_MEDIA_PORT", "media_port", int, 0, 65535)
        if (workers := get("PORCHLIGHT_WORKERS")) is not None and workers.strip().lower() == "auto":
            values["workers"] = os.cpu_count() or 1
        else:
            number("PORCHLIGHT_WORKERS", "workers", int, 1, 256)
        if values.get("media_port", 0) + values.get("workers", 1) - 1 > 65535:
            problems.append("PORCHLIGHT_MEDIA_PORT: each worker takes the next port; the last would pass 65535")
        if (delivery := get("PORCHLIGHT_DELIVERY")) is not None:
            if delivery.lower() not in DELIVERY_MODES:
                problems.append(f"PORCHLIGHT_DELIVERY={delivery!r}: process, inline or external")
            else:
                values["delivery"] = delivery.lower()
        if (media_address := get("PORCHLIGHT_MEDIA_ADDRESS")) is not None:
            values["media_address"] = media_address
        number("PORCHLIGHT_WS_BEFORE_HELLO_PER_ADDRESS", "ws_before_hello_per_address", int, 1, 1000000)
        number("PORCHLIGHT_WS_BEFORE_HELLO_MAX", "ws_before_hello_max", int, 1, 1000000)
        if (proxies := get("PORCHLIGHT_TRUSTED_PROXIES")) is not None:
            try:
                values["trusted_proxies"] = tuple(
                    ipaddress.ip_network(part, strict=False) for part in proxies.replace(",", " ").split())
            except ValueError:
                problems.append(f"PORCHLIGHT_TRUSTED_PROXIES={proxies!r}: addresses or networks (CIDR), "
                                "separated by commas")
        if (level := get("PORCHLIGHT_LOG_LEVEL")) is not None:
            if level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
                problems.append(f"PORCHLIGHT_LOG_LEVEL={level!r}: must be DEBUG, INFO, WARNING or ERROR")
            else:
                values["log_level"] = level.upper()
        if (log_format := get("PORCHLIGHT_LOG_FORMAT")) is not None:
            if log_format.lower() not in ("text", "json"):
                problems.append(f"PORCHLIGHT_LOG_FORMAT={log_format!r}: must be text or json")
            else:
                values["log_format"] = log_format.lower()
        known = {s.env for s in SETTINGS} | {f"{name}_FILE" for name in SECRET_FILES} | INTERNAL
        for name in env:
            if name.startswith("PORCHLIGHT_") and name not in known:
                problems.append(f"{name}: unknown setting (see `porchlight serve --help`)")
        if problems:
            raise SettingsError(problems)

        if "public_url" not in values:
            host = values.get("host", cls.host)
            shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
            values["public_url"] = f"http://{shown}:{values.get('port', cls.port)}"
        if "notify_webhook_secrets" not in values and "billing_webhook_secrets" in values:
            values["notify_webhook_secrets"] = values["billing_webhook_secrets"]
        if "secret_key" not in values:
            values["secret_key"] = load_or_create_secret(values.get("data_dir", cls.data_dir))
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        current.update(changes)
        return Settings(**current)


# Settings that may instead name a file holding the value (`<NAME>_FILE`), as container
# orchestrators mount secrets.
# Set by the server for its own processes, never by an operator: a worker's listening socket,
# passed by the supervisor (server/workers.py).
INTERNAL = frozenset({"PORCHLIGHT_LISTEN_FD"})

SECRET_FILES = ("PORCHLIGHT_SECRET_KEY", "PORCHLIGHT_BILLING_WEBHOOK_SECRET", "PORCHLIGHT_ALERT_WEBHOOK_SECRET",
                "PORCHLIGHT_REDIS_URL", "PORCHLIGHT_SMTP_URL", "PORCHLIGHT_NOTIFY_WEBHOOK_SECRET",
                "PORCHLIGHT_TURN_SECRET")

# What Kubernetes injects for a Service named "porchlight" (enableServiceLinks, on by default):
# PORCHLIGHT_PORT=tcp://10.0.0.1:8080, PORCHLIGHT_SERVICE_HOST, PORCHLIGHT_PORT_8080_TCP_ADDR...
_SERVICE_LINK = re.compile(r"^PORCHLIGHT_(SERVICE_(HOST|PORT)(_.*)?|PORT_\d+_(TCP|UDP|SCTP)(_.*)?)$")


def service_links(env: Mapping[str, str]) -> list[str]:
    """Variables that are Kubernetes service links, not settings (they are ignored)."""
    return sorted(name for name, value in env.items()
                  if _SERVICE_LINK.match(name)
                  or (name == "PORCHLIGHT_PORT" and re.match(r"^(tcp|udp|sctp)://", value.strip())))


def _without_service_links(env: Mapping[str, str]) -> dict[str, str]:
    links = set(service_links(env))
    return {name: value for name, value in env.items() if name not in links}


def _read_secret_files(env: dict[str, str], problems: list[str]) -> dict[str, str]:
    for name in SECRET_FILES:
        path = env.get(f"{name}_FILE", "").strip()
        if not path:
            continue
        if env.get(name, "").strip():
            problems.append(f"{name} and {name}_FILE: set one of them, not both")
            continue
        try:
            env[name] = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{name}_FILE: cannot read {path!r} ({type(exc).__name__})")
    return env


def _turn(get: Callable[[str], str | None], values: dict[str, Any], problems: list[str]) -> None:
    """TURN URLs and the shared secret come together: one without the other is a mistake."""
    urls, secret = get("PORCHLIGHT_TURN_URLS"), get("PORCHLIGHT_TURN_SECRET")
    if urls is not None:
        given = tuple(urls.replace(",", " ").split())
        if not all(re.match(r"^turns?:[^\s/?#]+(\?transport=(udp|tcp))?$", url) for url in given):
            problems.append("PORCHLIGHT_TURN_URLS: turn:host[:port] or turns:host[:port] (optionally "
                            "?transport=udp|tcp), separated by commas")
        else:
            values["turn_urls"] = given
    if secret is not None:
        if len(secret) < 16:
            problems.append("PORCHLIGHT_TURN_SECRET: at least 16 characters")
        else:
            values["turn_secret"] = secret
    if (urls is None) != (secret is None):
        problems.append("PORCHLIGHT_TURN_URLS and PORCHLIGHT_TURN_SECRET: set both (or neither)")


def _valid_whsec(secret: str) -> bool:
    if not secret.startswith("whsec_") or len(secret) < 16:
        return False
    try:
        base64.b64decode(secret[len("whsec_"):], validate=True)
    except ValueError:
        return False
    return True


def load_or_create_secret(data_dir: Path) -> str:
    """A secret generated once and kept in the data dir, so links survive restarts."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key
