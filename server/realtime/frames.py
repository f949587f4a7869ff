"""The frames a client may send after `hello`, each declared once with what it needs.

A frame is registered with `@frame("type", field=type, ..., admitted=True)`: its required
fields and their types are checked before its handler runs (a bad frame gets `bad_request`
and changes nothing), and `admitted=True` frames are refused with `not_admitted` until the
sender has been admitted. A new client frame is one function here. (The style of Home
Assistant's `websocket_api` command registry.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from server.lobby.door import Door
from server.lobby.peer import Peer
from server.media.adapt import parse_view
from server.media.room import MediaError


class FrameError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Sender:
    """Who sent the frame, and the door of their group."""

    conn: Peer  # the socket here, or one another process holds (lobby/remote.py)
    door: Door

    @property
    def participant_id(self) -> str | None:
        return self.conn.patient_id or self.conn.user_id


Handler = Callable[[Sender, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class FrameSpec:
    kind: str
    handle: Handler
    fields: dict[str, type] = field(default_factory=dict)
    admitted: bool = False  # only from someone admitted (staff in the session count)
    refusal: str = "you have not been admitted"

    def check(self, frame: dict[str, Any]) -> None:
        for name, kind in self.fields.items():
            if not isinstance(frame.get(name), kind):
                wanted = " and ".join(f"{n} ({t.__name__})" for n, t in self.fields.items())
                raise FrameError("bad_request", f"{self.kind} needs {wanted}")


FRAMES: dict[str, FrameSpec] = {}


def frame(kind: str, *, admitted: bool = False, refusal: str = "you have not been admitted",
          **fields: type) -> Callable[[Handler], Handler]:
    def register(handle: Handler) -> Handler:
        FRAMES[kind] = FrameSpec(kind, handle, fields, admitted, refusal)
        return handle
    return register


async def dispatch(sender: Sender, frame_: dict[str, Any]) -> None:
    kind = frame_["type"]
    spec = FRAMES.get(kind)
    if spec is None:
        raise FrameError("bad_request", f"unknown message type {kind[:40]!r}")
    spec.check(frame_)
    if spec.admitted and not sender.door.is_admitted(sender.conn):
        raise FrameError("not_admitted", spec.refusal)
    await spec.handle(sender, frame_)


# -- the frames ------------------------------------------------------------------------------


@frame("hello")
async def _hello_again(sender: Sender, frame_: dict[str, Any]) -> None:
    raise FrameError("bad_request", "hello was already accepted")


@frame("leave")
async def _leave(sender: Sender, frame_: dict[str, Any]) -> None:
    if sender.conn.patient_id is not None:
        sender.door.depart(sender.conn, voluntary=True)  # remembered now, committed below or later
    sender.conn.close(1000, "left")
    await sender.door.settle()


@frame("activity")
async def _activity(sender: Sender, frame_: dict[str, Any]) -> None:
    """The console's user is there (a click, a key, live media): any frame resets the staff
    idle timer, and this one says nothing else."""


@frame("media_state", admitted=True, audio=bool, video=bool)
async def _media_state(sender: Sender, frame_: dict[str, Any]) -> None:
    """`microphone` and `camera` (optional, default true): whether the participant has one that
    works at all, so the staff can tell "no microphone" from "muted"."""
    devices = (frame_.get("microphone", True), frame_.get("camera", True))
    if not all(isinstance(d, bool) for d in devices):
        raise FrameError("bad_request", "media_state: microphone and camera are true or false")
    door = sender.door
    await door.run(lambda: door.media_state(sender.conn, frame_["audio"], frame_["video"], devices))


@frame("hand", admitted=True, raised=bool)
async def _hand(sender: Sender, frame_: dict[str, Any]) -> None:
    door = sender.door

    async def change() -> None:
        door.hand(sender.conn, frame_["raised"])

    await door.run(change)


@frame("chat", text=str)
async def _chat(sender: Sender, frame_: dict[str, Any]) -> None:
    """To everyone in the session, or `"to": "staff"` (the only kind a waiting patient may send)."""
    door = sender.door

    async def send() -> None:
        door.chat(sender.conn, frame_["text"], frame_.get("to"))

    await door.run(send)


@frame("offer", admitted=True, refusal="media is available only after admission", pc=str, sdp=str)
async def _offer(sender: Sender, frame_: dict[str, Any]) -> None:
    """publish: the client offers, the server answers."""
    room, pid = _media(sender, "offer", frame_["pc"], "publish")
    try:
        answer = await room.publish(pid, sender.conn, frame_["sdp"])
    except MediaError as exc:
        raise FrameError(exc.code, exc.message) from None
    sender.conn.send({"type": "answer", "pc": "publish", "sdp": answer})


@frame("answer", admitted=True, refusal="media is available only after admission", pc=str, sdp=str)
async def _answer(sender: Sender, frame_: dict[str, Any]) -> None:
    """subscribe: the server offers, the client answers."""
    room, pid = _media(sender, "answer", frame_["pc"], "subscribe")
    try:
        await room.subscribed(pid, sender.conn, frame_["sdp"])
    except MediaError as exc:
        raise FrameError(exc.code, exc.message) from None


@frame("view", admitted=True, refusal="media is available only after admission", tiles=list)
async def _view(sender: Sender, frame_: dict[str, Any]) -> None:
    """The others' videos the client shows, and how large (README, "Per-viewer adaptation"): the
    server sends nothing of the rest, and the simulcast layer that fits each tile. With
    `"data_saver": true`, only the active speaker's smallest layer (and everyone's audio)."""
    try:
        view = parse_view(frame_["tiles"])
    except ValueError as exc:
        raise FrameError("bad_request", str(exc)) from None
    data_saver = frame_.get("data_saver", False)
    if not isinstance(data_saver, bool):
        raise FrameError("bad_request", "data_saver, when given, is true or false")
    room, pid = sender.door.media_room(), sender.participant_id
    if room is None or pid is None:
        raise FrameError("media_unavailable", "media is not available for this session")
    try:
        room.view(pid, sender.conn, view, data_saver)
    except MediaError as exc:
        raise FrameError(exc.code, exc.message) from None


def _media(sender: Sender, kind: str, pc: str, expected: str) -> tuple[Any, str]:
    if pc not in ("publish", "subscribe"):
        raise FrameError("bad_request", f"{kind} needs pc (publish|subscribe) and sdp")
    if pc != expected:
        raise FrameError("out_of_turn", f"the server does not take an {kind} on the {pc} connection")
    room = sender.door.media_room()
    pid = sender.participant_id
    if room is None or pid is None:
        raise FrameError("media_unavailable", "media is not available for this session")
    return room, pid


# -- measures and feedback (server/measures): from patients, waiting or admitted -------------


def _patient(sender: Sender, kind: str) -> str:
    if sender.conn.patient_id is None:
        raise FrameError("bad_request", f"{kind} is a patient's frame")
    return sender.conn.patient_id


@frame("questionnaire_response", id=str, answers=dict)
async def _questionnaire_response(sender: Sender, frame_: dict[str, Any]) -> None:
    pid = _patient(sender, "questionnaire_response")
    sender.conn.send(await sender.door.answer_questionnaire(pid, frame_["id"], frame_["answers"]))


@frame("questionnaire_skip", id=str)
async def _questionnaire_skip(sender: Sender, frame_: dict[str, Any]) -> None:
    pid = _patient(sender, "questionnaire_skip")
    sender.conn.send(await sender.door.skip_questionnaire(pid, frame_["id"]))


@frame("feedback", session_id=str)
async def _feedback(sender: Sender, frame_: dict[str, Any]) -> None:
    pid = _patient(sender, "feedback")
    sender.conn.send(await sender.door.give_feedback(pid, frame_["session_id"], frame_.get("rating"),
                                                     frame_.get("comment")))
