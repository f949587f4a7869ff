"""Opening, running and ending sessions (facilitators of the group, and admins)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from server import validation as v
from server.api.common import json_response, read_json, require_group_rights, require_staff
from server.auth.sessions import StaffSession
from server.clinic.groups import require_group
from server.errors import ApiError, ErrorCode, bad_request
from server.lobby.registry import Lobby
from server.services import services

MAX_MESSAGE = 500
MAX_REASON = 200


async def open_session(request: web.Request) -> web.Response:
    svc = services(request)
    staff = await require_staff(request)
    group = await require_group(svc.redis, v.an_id(request.match_info["group_id"], "group_id"))
    require_group_rights(staff, group)
    if svc.lobby.draining:
        raise ApiError(503, ErrorCode.UNAVAILABLE, "this server is restarting; try again in a moment")
    session = await svc.lobby.act(group["id"], "open", by=staff.user.id)
    return json_response(session, status=201)


@dataclass(frozen=True)
class SessionDoor:
    """A session's door as a handler reaches it: actions by name (lobby/actions.py), run by
    whichever process hosts the group."""

    lobby: Lobby
    group_id: str
    session_id: str
    by: str

    async def act(self, name: str, **args: Any) -> Any:
        return await self.lobby.act(self.group_id, name, session_id=self.session_id, by=self.by, **args)


async def _session_door(request: web.Request) -> tuple[StaffSession, SessionDoor, str]:
    svc = services(request)
    staff = await require_staff(request)
    session_id = v.an_id(request.match_info["session_id"], "session_id")
    group_id = await svc.lobby.session_group(session_id)
    group = await require_group(svc.redis, group_id)
    require_group_rights(staff, group)
    return staff, SessionDoor(svc.lobby, group_id, session_id, staff.user.id), session_id


async def get_session(request: web.Request) -> web.Response:
    _, _, session_id = await _session_door(request)
    return json_response(await services(request).lobby.describe(session_id))


async def _body(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    return v.body_object(await read_json(request), allowed)


async def admit(request: web.Request) -> web.Response:
    staff, door, session_id = await _session_door(request)
    body = await _body(request, {"patient_ids", "all"})
    everyone = v.boolean(body, "all")
    if everyone and "patient_ids" in body or not everyone and "patient_ids" not in body:
        raise bad_request("give either patient_ids or all: true")
    ids = None if everyone else v.id_list(body, "patient_ids")
    started = time.perf_counter()
    admitted = await door.act("admit", patient_ids=ids)
    # door.admit returns once the admitted frames are queued: what a waiting patient waits for.
    services(request).metrics.admission_duration.observe(time.perf_counter() - started)
    return json_response({"admitted": admitted})


async def decline(request: web.Request) -> web.Response:
    staff, door, session_id = await _session_door(request)
    body = await _body(request, {"patient_id", "message"})
    patient_id = v.an_id(body.get("patient_id"), "patient_id")
    message = v.text(body, "message", MAX_MESSAGE, required=False, multiline=True)
    await door.act("decline", patient_id=patient_id, message=message)
    return json_response({"declined": patient_id})


async def remove(request: web.Request) -> web.Response:
    staff, door, session_id = await _session_door(request)
    body = await _body(request, {"patient_id", "reason"})
    patient_id = v.an_id(body.get("patient_id"), "patient_id")
    reason = v.text(body, "reason", MAX_REASON, required=False)
    await door.act("remove", patient_id=patient_id, reason=reason)
    return json_response({"removed": patient_id})


async def send_back(request: web.Request) -> web.Response:
    staff, door, session_id = await _session_door(request)
    body = await _body(request, {"patient_id"})
    patient_id = v.an_id(body.get("patient_id"), "patient_id")
    await door.act("send_back", patient_id=patient_id)
    return json_response({"sent_back": patient_id})


async def message(request: web.Request) -> web.Response:
    staff, door, session_id = await _session_door(request)
    body = await _body(request, {"text", "patient_id"})
    text = v.required_text(body, "text", MAX_MESSAGE, multiline=True)
    patient_id = v.an_id(body["patient_id"], "patient_id") if body.get("patient_id") is not None else None
    delivered = await door.act("message", text=text, patient_id=patient_id)
    await services(request).audit.append("waiting_room.message", staff.user.id, session_id=session_id,
                                         patient_id=patient_id)
    return json_response({"delivered": delivered})


async def mute(request: web.Request) -> web.Response:
    staff, door, session_id = await _session_door(request)
    body = await _body(request, {"patient_id", "all"})
    if v.boolean(body, "all"):
        if "patient_id" in body:
            raise bad_request("give either patient_id or all: true")
        muted = await door.act("mute_all")
        return json_response({"muted": muted})
    patient_id = v.an_id(body.get("patient_id"), "patient_id")
    await door.act("mute", patient_id=patient_id)
    return json_response({"muted": patient_id})


async def chat(request: web.Request) -> web.Response:
    """Group chat on or off (messages to the staff always go)."""
    staff, door, session_id = await _session_door(request)
    body = await _body(request, {"enabled"})
    enabled = v.boolean(body, "enabled")
    if enabled is None:
        raise bad_request("enabled: true or false")
    await door.act("set_chat", enabled=enabled)
    return json_response({"chat_enabled": enabled})


async def screen_share(request: web.Request) -> web.Response:
    """Let a patient share their screen, or stop them (staff always may)."""
    staff, door, session_id = await _session_door(request)
    body = await _body(request, {"patient_id", "allowed"})
    patient_id = v.an_id(body.get("patient_id"), "patient_id")
    allowed = v.boolean(body, "allowed")
    if allowed is None:
        raise bad_request("allowed: true or false")
    await door.act("allow_screen", patient_id=patient_id, allowed=allowed)
    return json_response({"patient_id": patient_id, "allowed": allowed})


async def end(request: web.Request) -> web.Response:
    staff, door, session_id = await _session_door(request)
    ended = await door.act("end")
    return json_response(ended)


async def attendance_events(request: web.Request) -> web.Response:
    """The raw attendance events of a session, in the order recorded."""
    _, _, session_id = await _session_door(request)
    events = await services(request).lobby.events(session_id)
    return json_response({"events": events})
