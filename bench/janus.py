"""Janus (Debian's `janus` 1.1.2, VideoRoom) beside Porchlight, for `bench/media.py --sides`.

The server side, used by bench/media.py: a minimal configuration written into a temporary
directory (the VideoRoom plugin and the HTTP transport only, both found through folders that
hold nothing else; the Janus API and the Admin API bound to one address; ICE on that address
only), the process started and stopped, a room created, and the Admin API's packet counters.

The client side, used by bench/media_client.py --janus: the VideoRoom signalling over Janus's
HTTP API (a long poll for events). Each participant has one publish connection and one
multistream subscribe connection carrying every other publisher's audio and video, the shape of
Porchlight's (one publish and one subscribe connection per participant).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import signal
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription

LIBRARIES = Path("/usr/lib", sysconfig.get_config_var("MULTIARCH") or "", "janus")  # Debian's package
HTTP_PORT, ADMIN_PORT = 8088, 7088  # inside the benchmark's own network namespace: nothing else binds
INSTALL = "Janus is not installed: `apt-get install -y janus` (Debian's 1.1.2), then run this again."


def installed() -> bool:
    return shutil.which("janus") is not None and (LIBRARIES / "plugins" / "libjanus_videoroom.so").exists()


def write_config(folder: Path, address: str, event_loops: int = 0) -> Path:
    """Janus's configuration for the benchmark in `folder`; returns the main file's path.

    Plugins and transports are loaded from folders of their own that hold only VideoRoom and
    HTTP; no event handlers or loggers. Everything else is Janus's default; in particular
    `event_loops` is unset unless given (unset: a loop thread per handle)."""
    for kind, library in (("plugins", "libjanus_videoroom.so"), ("transports", "libjanus_http.so")):
        (folder / kind).mkdir()
        (folder / kind / library).symlink_to(LIBRARIES / kind / library)
    (folder / "none").mkdir()
    main = folder / "janus.jcfg"
    loops = f"\n    event_loops = {event_loops}" if event_loops else ""
    main.write_text(f"""general: {{
    configs_folder = "{folder}"
    plugins_folder = "{folder / 'plugins'}"
    transports_folder = "{folder / 'transports'}"
    events_folder = "{folder / 'none'}"
    loggers_folder = "{folder / 'none'}"
    interface = "{address}"
    debug_level = 4{loops}
}}
media: {{
}}
nat: {{
    nice_debug = false
    ignore_mdns = true
    ice_enforce_list = "{address}"
}}
plugins: {{
}}
transports: {{
}}
events: {{
    broadcast = false
}}
""")
    (folder / "janus.plugin.videoroom.jcfg").write_text("general: {\n}\n")
    (folder / "janus.transport.http.jcfg").write_text(f"""general: {{
    json = "compact"
    base_path = "/janus"
    http = true
    ip = "{address}"
    port = {HTTP_PORT}
    https = false
}}
admin: {{
    admin_base_path = "/admin"
    admin_http = true
    admin_ip = "{address}"
    admin_port = {ADMIN_PORT}
    admin_https = false
}}
""")
    return main


@dataclass
class Janus:
    proc: asyncio.subprocess.Process
    url: str  # the Janus API
    admin: str  # the Admin API
    log: Path


async def start(folder: Path, address: str, event_loops: int = 0) -> Janus:
    """Start Janus with the benchmark's configuration and wait until its HTTP API answers."""
    config = write_config(folder, address, event_loops)
    log = folder / "janus.log"
    proc = await asyncio.create_subprocess_exec(
        "janus", "-C", str(config), "-F", str(folder), "-L", str(log), "-N", "-o",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    janus = Janus(proc, f"http://{address}:{HTTP_PORT}/janus", f"http://{address}:{ADMIN_PORT}/admin", log)
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{janus.url}/info") as response:
                    if response.status == 200:
                        return janus
            if proc.returncode is not None or time.monotonic() > deadline:
                await stop(janus)
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"janus did not start (exit {proc.returncode}); its log ends:\n{tail}")
            await asyncio.sleep(0.2)


async def stop(janus: Janus, wait_s: float = 10.0) -> None:
    """SIGTERM (Janus closes its sessions and plugins), then SIGKILL if it hangs."""
    if janus.proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            janus.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(janus.proc.wait(), wait_s)
        except TimeoutError:
            print(f"  ! janus did not exit {wait_s:.0f} s after SIGTERM; killing it", flush=True)
            with contextlib.suppress(ProcessLookupError):
                janus.proc.kill()
            await janus.proc.wait()


def transaction() -> str:
    return secrets.token_hex(6)


async def call(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """One request to the Janus or Admin API; an error answer raises."""
    async with http.post(url, json={**body, "transaction": transaction()}) as response:
        answer: dict[str, Any] = await response.json(content_type=None)
    if answer.get("janus") == "error":
        raise RuntimeError(f"janus: {answer['error']}")
    return answer


async def create_room(url: str, room: int, publishers: int) -> None:
    """A VideoRoom for `publishers` people: VP8 and Opus, no bitrate cap, no periodic keyframes."""
    async with aiohttp.ClientSession() as http:
        session = (await call(http, url, {"janus": "create"}))["data"]["id"]
        handle = (await call(http, f"{url}/{session}", {"janus": "attach", "plugin": "janus.plugin.videoroom"}))
        answer = await call(http, f"{url}/{session}/{handle['data']['id']}", {"janus": "message", "body": {
            "request": "create", "room": room, "publishers": publishers, "videocodec": "vp8",
            "audiocodec": "opus", "bitrate": 0, "fir_freq": 0}})
        data = answer["plugindata"]["data"]
        if data.get("videoroom") != "created":
            raise RuntimeError(f"janus: the room was not created: {data}")
        await call(http, f"{url}/{session}", {"janus": "destroy"})


async def packet_counts(admin: str) -> tuple[float, float]:
    """RTP packets Janus sent to subscribers and received from publishers so far, over every
    handle (the Admin API's `handle_info`: webrtc.media[mid].stats.out/in.packets, audio and video)."""
    sent = received = 0.0
    async with aiohttp.ClientSession() as http:
        for session in (await call(http, admin, {"janus": "list_sessions"}))["sessions"]:
            handles = (await call(http, f"{admin}/{session}", {"janus": "list_handles"}))["handles"]
            for handle in handles:
                info = (await call(http, f"{admin}/{session}/{handle}", {"janus": "handle_info"}))["info"]
                for media in info.get("webrtc", {}).get("media", {}).values():
                    sent += media.get("stats", {}).get("out", {}).get("packets", 0)
                    received += media.get("stats", {}).get("in", {}).get("packets", 0)
    return sent, received


# The client side -------------------------------------------------------------------------------

@dataclass
class Events:
    """A participant's Janus session: its events come in by long poll, per handle."""

    http: aiohttp.ClientSession
    url: str
    session: int = 0
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    poller: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.session = (await call(self.http, self.url, {"janus": "create"}))["data"]["id"]
        self.poller = asyncio.create_task(self._poll())

    async def attach(self) -> int:
        answer = await call(self.http, f"{self.url}/{self.session}",
                            {"janus": "attach", "plugin": "janus.plugin.videoroom"})
        return int(answer["data"]["id"])

    async def message(self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None) -> None:
        await call(self.http, f"{self.url}/{self.session}/{handle}",
                   {"janus": "message", "body": body, **({"jsep": jsep} if jsep else {})})

    async def _poll(self) -> None:
        while True:
            try:
                async with self.http.get(f"{self.url}/{self.session}", params={"maxev": "10"}) as response:
                    events = await response.json(content_type=None)
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
                continue
            for event in events if isinstance(events, list) else [events]:
                if event.get("janus") != "keepalive":
                    self.queue.put_nowait(event)

    async def close(self) -> None:
        if self.poller is not None:
            self.poller.cancel()
        if self.session:
            with contextlib.suppress(Exception):
                await call(self.http, f"{self.url}/{self.session}", {"janus": "destroy"})


def jsep(description: Any) -> dict[str, Any]:
    """An aiortc session description as Janus's JSEP (aiortc does not trickle: no candidates follow)."""
    return {"type": description.type, "sdp": description.sdp, "trickle": False}


async def participate(http: aiohttp.ClientSession, url: str, room: int, feed: int, others: int, subscribe_by: float,
                      until: float, publish: RTCPeerConnection, subscribe: RTCPeerConnection,
                      add_tracks: Callable[[], None], learn: Callable[[list[dict[str, Any]], str], None],
                      ) -> tuple[bool, list[str]]:
    """One participant in a VideoRoom until `until`: join and publish (`add_tracks` puts the
    tracks on `publish`), then subscribe to the other publishers on one multistream connection,
    once all `others` have published or at `subscribe_by` (later ones are added to it);
    `learn(streams, sdp)` is told which feed each of its mids carries before every offer is
    taken. Returns whether it published, and the errors Janus answered."""
    events = Events(http, url)
    await events.open()
    publisher = await events.attach()
    await events.message(publisher, {"request": "join", "ptype": "publisher", "room": room, "id": feed,
                                      "display": f"Bench {feed}"})
    feeds: set[int] = set()
    subscribed: set[int] = set()
    subscriber, negotiating, published = 0, False, False
    errors: list[str] = []
    try:
        while time.time() < until:
            new = feeds - subscribed
            if new and not negotiating and (len(feeds) >= others or time.time() > subscribe_by):
                streams = [{"feed": f} for f in sorted(new)]
                if not subscriber:
                    subscriber = await events.attach()
                    await events.message(subscriber, {"request": "join", "ptype": "subscriber", "room": room,
                                                      "streams": streams})
                else:
                    await events.message(subscriber, {"request": "subscribe", "streams": streams})
                subscribed |= new
                negotiating = True
            try:
                async with asyncio.timeout(max(0.01, min(0.5, until - time.time()))):
                    event = await events.queue.get()
            except TimeoutError:
                continue
            data = event.get("plugindata", {}).get("data", {})
            offer = event.get("jsep", {})
            if "error_code" in data:
                errors.append(f"{data['error_code']}: {data.get('error', '')}")
                negotiating = negotiating and event.get("sender") != subscriber
            if event.get("sender") == publisher:
                feeds |= {int(p["id"]) for p in data.get("publishers", [])}
                if data.get("videoroom") == "joined":
                    add_tracks()
                    await publish.setLocalDescription(await publish.createOffer())
                    await events.message(publisher, {"request": "publish"}, jsep(publish.localDescription))
                elif offer.get("type") == "answer":
                    await publish.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="answer"))
                    published = True
            elif event.get("sender") == subscriber and offer.get("type") == "offer":
                learn(data.get("streams", []), offer["sdp"])
                await subscribe.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
                await subscribe.setLocalDescription(await subscribe.createAnswer())
                await events.message(subscriber, {"request": "start"}, jsep(subscribe.localDescription))
            elif event.get("sender") == subscriber and data.get("started") == "ok":
                negotiating = False
    finally:
        await events.close()
    return published, errors
