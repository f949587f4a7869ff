"""Attendance: per session (facilitators), reports, weekly totals, CSV, corrections (admins)."""

from __future__ import annotations

from datetime import date

from aiohttp import web

from server import validation as v
from server.api.common import json_response, read_json, require_group_rights, require_staff
from server.attendance import reports
from server.attendance.corrections import correct
from server.auth.staff import Role
from server.clinic import patients
from server.clinic.groups import require_group
from server.errors import bad_request, not_found
from server.services import services
from server.store import keys, sessions

MAX_REASON = 500
MAX_RANGE_DAYS = 3 * 366


def date_range(request: web.Request) -> tuple[date, date]:
    start_default, end_default = reports.default_range(services(request).clock)

    def day(name: str, default: date) -> date:
        raw = request.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise bad_request(f"{name}: a date YYYY-MM-DD") from None

    start, end = day("from", start_default), day("to", end_default)
    if end < start:
        raise bad_request("to: must not be before from")
    if (end - start).days > MAX_RANGE_DAYS:
        raise bad_request(f"a range covers at most {MAX_RANGE_DAYS} days")
    return start, end


def _optional_id(request: web.Request, name: str) -> str | None:
    raw = request.query.get(name)
    return v.an_id(raw, name) if raw else None


async def session_attendance(request: web.Request) -> web.Response:
    svc = services(request)
    staff = await require_staff(request)
    session_id = v.an_id(request.match_info["session_id"], "session_id")
    record = await sessions.read(svc.redis, session_id)
    if record is None:
        raise not_found("session")
    require_group_rights(staff, await require_group(svc.redis, record.group_id))
    rows = await reports.session_records(svc.redis, session_id, record.started_at)
    # The names the group knows them by, for the facilitator's end-of-session summary.
    known = await patients.patients_by_id(svc.redis, sorted({str(r["patient_id"]) for r in rows}))
    return json_response({"final": bool(await svc.redis.exists(keys.session_finalised(session_id))),
                          "records": rows, "names": {pid: p["display_name"] for pid, p in known.items()}})


async def _audited(request: web.Request, fmt: str, user_id: str, rows: int, start: date, end: date) -> None:
    """Every pull is an export, and the audit log says so."""
    await services(request).audit.append("attendance.export", user_id, format=fmt, rows=rows,
                                         **{"from": start.isoformat(), "to": end.isoformat()})


async def attendance(request: web.Request) -> web.Response:
    svc = services(request)
    staff = await require_staff(request, Role.ADMIN)
    start, end = date_range(request)
    chosen = await reports.chosen(svc.redis, start, end, _optional_id(request, "group_id"),
                                  _optional_id(request, "patient_id"))
    await _audited(request, "json", staff.user.id, len(chosen.texts), start, end)
    return web.Response(body=reports.records_json(chosen.texts), content_type="application/json")


async def attendance_csv(request: web.Request) -> web.Response:
    svc = services(request)
    staff = await require_staff(request, Role.ADMIN)
    start, end = date_range(request)
    text, rows = await reports.export_csv(svc.redis, start, end, _optional_id(request, "group_id"),
                                          _optional_id(request, "patient_id"))
    await _audited(request, "csv", staff.user.id, rows, start, end)
    return web.Response(text=text, content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="attendance-{start}-{end}.csv"'})


async def attendance_weekly(request: web.Request) -> web.Response:
    svc = services(request)
    await require_staff(request, Role.ADMIN)
    start, end = date_range(request)
    return json_response({"weeks": await reports.weekly(svc.redis, start, end, _optional_id(request, "group_id"))})


async def correction(request: web.Request) -> web.Response:
    svc = services(request)
    staff = await require_staff(request, Role.ADMIN)
    session_id = v.an_id(request.match_info["session_id"], "session_id")
    patient_id = v.an_id(request.match_info["patient_id"], "patient_id")
    body = v.body_object(await read_json(request), {"intervals", "reason"})
    reason = v.required_text(body, "reason", MAX_REASON, multiline=True)
    if "intervals" not in body:
        raise bad_request("intervals: required")
    record = await correct(svc.redis, svc.clock, session_id, patient_id, body["intervals"], reason,
                           svc.settings.min_attended_seconds)
    await svc.audit.append("attendance.correct", staff.user.id, session_id=session_id, patient_id=patient_id,
                           version=record["version"], reason=reason, billing_record_id=record["billing_record_id"])
    svc.lobby.delivery_wake.set()
    return json_response(record)
