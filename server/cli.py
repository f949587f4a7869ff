"""porchlight serve | demo | deliver | user add | audit verify | export | retention purge."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import date
from typing import Any, TextIO

from aiohttp import web

from server import logs
from server.audit import AuditLog
from server.auth.staff import Role, StaffError, create_user
from server.clock import SystemClock
from server.collector import CollectorPolicy
from server.settings import SETTINGS, Settings, SettingsError, service_links
from server.store.connection import UNAVAILABLE, Redis, connect
from server.store.embedded import EmbeddedRedis
from server.workers import DeliveryChild, inherited_socket, supervise

log = logging.getLogger("porchlight")


def _settings_help() -> str:
    width = max(len(s.env) for s in SETTINGS)
    lines = ["settings (environment variables):"]
    for s in SETTINGS:
        default = f" [default: {s.default}]" if s.default else ""
        lines.append(f"  {s.env.ljust(width)}  {s.help}{default}")
    return "\n".join(lines)


def _load_settings() -> Settings:
    if links := service_links(os.environ):
        print(f"porchlight: ignoring {len(links)} Kubernetes service-link variable(s) ({links[0]}, ...); "
              "set enableServiceLinks: false in the pod spec to silence this", file=sys.stderr)
    try:
        return Settings.from_env()
    except SettingsError as exc:
        print("porchlight: invalid settings:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        raise SystemExit(2) from None


@contextlib.asynccontextmanager
async def redis_for(settings: Settings, owner: bool) -> AsyncIterator[Redis]:
    """The configured Redis, or this data dir's embedded one (started here when not running)."""
    embedded: EmbeddedRedis | None = None
    if settings.redis_url:
        url = settings.redis_url
    else:
        embedded = EmbeddedRedis(settings.data_dir)
        if embedded.running_elsewhere():
            if owner:
                raise SystemExit(f"porchlight: another server already runs the embedded Redis of "
                                 f"{settings.data_dir}; stop it or use another PORCHLIGHT_DATA_DIR")
            embedded = None
            url = EmbeddedRedis(settings.data_dir).url
        else:
            await asyncio.to_thread(embedded.start)
            url = embedded.url
    client = connect(url, settings.redis_pool_size, settings.redis_pool_timeout_seconds, settings.redis_timeout_seconds)
    try:
        await client.ping()
        yield client
    finally:
        await client.aclose()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def _bind(settings: Settings) -> tuple[socket.socket, Settings]:
    if (inherited := inherited_socket()) is not None:  # a worker: the supervisor bound the port
        return inherited, settings
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        raise SystemExit(f"porchlight: cannot listen on {settings.host}:{settings.port}: {exc.strerror}") from None
    sock.listen(512)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    if port != settings.port and settings.public_url.endswith(f":{settings.port}"):
        settings = settings.replace(port=port, public_url=settings.public_url.rsplit(":", 1)[0] + f":{port}")
    return sock, settings


async def _serve(settings: Settings, before: Callable[[Redis, Settings], Awaitable[str]] | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
    # The application (and with it the media stack: aiortc, PyAV, ~45 MB of a process's memory)
    # is imported by the command that serves it, not by `deliver` or the other commands; and
    # without PyAV, which aiortc imports and the forwarder never uses (~16 MB).
    from server.media import without_pyav

    without_pyav.leave_out()
    from server.app import create_app
    from server.media.port import PortUnavailable
    from server.services import SERVICES

    sock, settings = _bind(settings)
    async with redis_for(settings, owner=True) as redis, _delivery_process(settings):
        app = create_app(settings, redis=redis, clock=SystemClock())
        banner = await before(redis, settings) if before is not None else ""
        runner = web.AppRunner(
            app, access_log_class=logs.AccessLogger, handle_signals=False, shutdown_timeout=5
        )
        try:
            await runner.setup()
        except PortUnavailable as exc:
            raise SystemExit(f"porchlight: {exc.strerror}") from None
        site = web.SockSite(runner, sock, ssl_context=ssl_context)
        await site.start()
        where = f"embedded Redis in {settings.data_dir}" if not settings.redis_url else "Redis at the configured URL"
        # Start-up objects, then each full pass's survivors, stay out of the collector's full
        # passes, which otherwise pause every connection (server/collector.py).
        CollectorPolicy().install()
        print(f"Porchlight is running at {settings.public_url} ({where}).", flush=True)
        print(f"  staff API: {settings.public_url}/api/v1 (OpenAPI at /api/v1/openapi.json)", flush=True)
        print(f"  health:    {settings.public_url}/healthz", flush=True)
        if banner:  # the demo's logins, links and first steps: the last lines on the screen
            print(banner, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals: list[int] = []

        def received(sig: int) -> None:
            signals.append(sig)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, received, sig)
        await stop.wait()
        if signals[0] == signal.SIGTERM:
            # A restart or a move: take nothing new (/readyz 503), let running sessions finish for
            # up to PORCHLIGHT_DRAIN_SECONDS, then close the rest with 1012 (service restart).
            lobby = app[SERVICES].lobby
            lobby.draining = True
            assert lobby.cluster is not None
            with contextlib.suppress(*UNAVAILABLE):
                await lobby.cluster.tick()  # the others hear at once that this one takes nothing new
            if lobby.cluster.others_serving():
                # Its sockets close with 1012 and reconnect to the others, which take its sessions.
                print("Porchlight is draining: its sessions move to the other processes.", flush=True)
            else:
                print(f"Porchlight is draining (up to {settings.drain_seconds:g} s).", flush=True)
                stop.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(settings.drain_seconds):
                        waiting = asyncio.ensure_future(lobby.until_empty())
                        again = asyncio.ensure_future(stop.wait())  # a second signal: stop now
                        await asyncio.wait({waiting, again}, return_when=asyncio.FIRST_COMPLETED)
                        for task in (waiting, again):
                            task.cancel()
        print("Porchlight is stopping.", flush=True)
        await runner.cleanup()


@contextlib.asynccontextmanager
async def _delivery_process(settings: Settings) -> AsyncIterator[None]:
    """PORCHLIGHT_DELIVERY=process: the webhooks are sent by a process of their own, watched from
    here and stopped after the server (its drain's finalisations included), before the Redis."""
    if settings.delivery != "process":
        yield
        return
    # The same settings as this process; the embedded Redis's address when this process runs it
    # (a configured URL, or its _FILE, is in the environment already).
    embedded = {} if settings.redis_url else {"PORCHLIGHT_REDIS_URL": EmbeddedRedis(settings.data_dir).url}
    child = DeliveryChild({**os.environ, **embedded})
    child.start()

    async def watch() -> None:
        while True:
            child.check()
            await asyncio.sleep(0.5)

    watching = asyncio.create_task(watch())
    try:
        yield
    finally:
        watching.cancel()
        await asyncio.to_thread(child.stop)


async def _demo_setup(redis: Redis, settings: Settings) -> str:
    from server.demo import create_demo

    return await create_demo(redis, settings, SystemClock())


def _https_demo(settings: Settings) -> tuple[Settings, ssl.SSLContext]:
    """`demo --https`: reachable from a phone on the same network, with a self-signed certificate
    (a phone's browser gives a page its camera only over https). PORCHLIGHT_HOST and
    PORCHLIGHT_PUBLIC_URL, when set, still win."""
    from server import tls

    address = tls.lan_address()
    if "PORCHLIGHT_HOST" not in os.environ:
        settings = settings.replace(host="0.0.0.0")
    if "PORCHLIGHT_PUBLIC_URL" not in os.environ:
        settings = settings.replace(public_url=f"https://{address}:{settings.port}")
    cert, key = tls.self_signed(settings.data_dir, address)
    return settings, tls.server_context(cert, key)


async def _user_add(settings: Settings, args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("porchlight: the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    async with redis_for(settings, owner=False) as redis:
        try:
            user = await create_user(redis, args.username, password, Role(args.role), args.name, args.npi)
        except StaffError as exc:
            print(f"porchlight: {exc.message}", file=sys.stderr)
            return 1
        await AuditLog(redis, SystemClock()).append("user.create", None, user_id=user.id, role=str(user.role))
    print(f"created {user.role} {user.username} (id {user.id})")
    return 0


async def _audit_verify(settings: Settings) -> int:
    async with redis_for(settings, owner=False) as redis:
        result = await AuditLog(redis, SystemClock()).verify()
    if result.ok:
        print(f"audit log intact: {result.checked} entries verified")
        return 0
    print(f"audit log BROKEN after {result.checked} good entries: {result.problem}", file=sys.stderr)
    return 1


async def _export(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from server.backup import export_lines

    try:
        start, end = date.fromisoformat(args.start), date.fromisoformat(args.end)
    except ValueError:
        print("porchlight: --from and --to are dates YYYY-MM-DD", file=sys.stderr)
        return 2
    lines = 0
    async with redis_for(settings, owner=False) as redis:
        async for item in export_lines(redis, start, end):
            out.write(json.dumps(item, separators=(",", ":")) + "\n")
            lines += 1
        await AuditLog(redis, SystemClock()).append("backup.export", None, lines=lines,
                                                    **{"from": args.start, "to": args.end})
    print(f"exported {lines} lines", file=sys.stderr)
    return 0


async def _purge(settings: Settings, args: argparse.Namespace) -> int:
    from server.backup import purge

    async with redis_for(settings, owner=False) as redis:
        counts = await purge(redis, SystemClock(), settings.retention_years, args.dry_run)
        if not args.dry_run:
            await AuditLog(redis, SystemClock()).append("retention.purge", None, years=settings.retention_years,
                                                        **counts)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} (older than {settings.retention_years} years): " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="porchlight", description="Telehealth server for group programs.")
    sub = parser.add_subparsers(dest="command", required=True)
    epilog = _settings_help()
    fmt = argparse.RawDescriptionHelpFormatter
    sub.add_parser("serve", help="run the server", epilog=epilog, formatter_class=fmt,
                   description="Run the server. Without PORCHLIGHT_REDIS_URL it starts and owns an embedded Redis.")
    demo = sub.add_parser("demo", help="create a demo clinic, print its logins and links, then serve",
                          epilog=epilog, formatter_class=fmt)
    demo.add_argument("--https", action="store_true",
                      help="serve https with a self-signed certificate on this machine's network address, "
                           "to try it from a phone on the same network")
    deliver = sub.add_parser("deliver", help="send the webhooks (billing, alerts, reminders) from this process only",
                             epilog=epilog, formatter_class=fmt,
                             description="Run only the webhook delivery workers (as PORCHLIGHT_DELIVERY=process "
                                         "runs them beside `serve`). Several may run at once, on any machine: "
                                         "each record is claimed by one of them.")
    deliver.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)  # started by `serve`
    user = sub.add_parser("user", help="staff accounts").add_subparsers(dest="user_command", required=True)
    add = user.add_parser("add", help="create a staff user (password: first line of stdin, or prompted)",
                          epilog=epilog, formatter_class=fmt)
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--name")
    add.add_argument("--npi", help="10-digit National Provider Identifier")
    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="audit_command", required=True)
    audit.add_parser("verify", help="check the hash chain of the audit log", epilog=epilog, formatter_class=fmt)
    export = sub.add_parser("export", help="export sessions, attendance, billing and audit as JSON lines",
                            epilog=epilog, formatter_class=fmt)
    export.add_argument("--from", dest="start", required=True, help="first day, YYYY-MM-DD (UTC)")
    export.add_argument("--to", dest="end", required=True, help="last day, YYYY-MM-DD (UTC)")
    export.add_argument("--out", default="-", help="file to write (default: standard output)")
    retention = sub.add_parser("retention", help="the retention period").add_subparsers(
        dest="retention_command", required=True)
    purge_cmd = retention.add_parser("purge", help="remove sessions older than PORCHLIGHT_RETENTION_YEARS",
                                     epilog=epilog, formatter_class=fmt)
    purge_cmd.add_argument("--dry-run", action="store_true", help="count, remove nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = _load_settings()
    logs.configure(settings.log_level, settings.log_format)
    ssl_context = None
    if args.command == "demo" and args.https:
        settings, ssl_context = _https_demo(settings)
    runners: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
        "serve": lambda: _serve(settings),
        "demo": lambda: _serve(settings, before=_demo_setup, ssl_context=ssl_context),
    }
    if args.command in runners and settings.workers > 1:
        sock, settings = _bind(settings)
        return supervise(settings, sock, before=_demo_setup if args.command == "demo" else None)
    if args.command in runners:
        asyncio.run(runners[args.command]())
        return 0
    if args.command == "deliver":
        from server import deliver

        return asyncio.run(deliver.command(settings, args.supervised))
    if args.command == "user":
        return asyncio.run(_user_add(settings, args))
    if args.command == "export":
        with open(args.out, "w", encoding="utf-8") if args.out != "-" else contextlib.nullcontext(sys.stdout) as out:
            return asyncio.run(_export(settings, args, out))
    if args.command == "retention":
        return asyncio.run(_purge(settings, args))
    return asyncio.run(_audit_verify(settings))


if __name__ == "__main__":
    raise SystemExit(main())
