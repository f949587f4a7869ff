"""Attendance pages: /admin/attendance (every group) and /console/attendance (a facilitator's own).

Both are one view over the same reports (server/attendance/reports.py); they differ in which
groups the caller may see. A facilitator always looks at one of their own groups at a time:
weekly totals add a patient's minutes over the groups in view, and another group's minutes
must not reach them that way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web

from server.api.common import may_run
from server.attendance import reports
from server.auth.sessions import StaffSession
from server.auth.staff import Role
from server.clinic import enrollments, groups, patients
from server.clock import to_ms
from server.measures import trends
from server.pages.charts import weekly_hours_chart
from server.pages.render import render
from server.pages.staff import _base, _local_iso, _signed_in
from server.services import services


@dataclass(frozen=True)
class Scope:
    """What one view may show: its groups, and whether it may be any of them at once."""

    groups: list[dict[str, Any]]
    all_at_once: bool
    path: str
    section: str


def _parse_day(raw: str | None, default: date) -> date:
    try:
        return date.fromisoformat(raw) if raw else default
    except ValueError:
        return default


async def admin_attendance(request: web.Request) -> web.Response:
    staff = await _signed_in(request, Role.ADMIN)
    if isinstance(staff, web.Response):
        return staff
    everyone = await groups.all_groups(services(request).redis)
    return await _attendance(request, staff, Scope(everyone, True, "/admin/attendance", "attendance"))


async def facilitator_attendance(request: web.Request) -> web.Response:
    staff = await _signed_in(request, Role.FACILITATOR, Role.ADMIN)
    if isinstance(staff, web.Response):
        return staff
    mine = [g for g in await groups.all_groups(services(request).redis) if may_run(staff, g)]
    return await _attendance(request, staff, Scope(mine, False, "/console/attendance", "my-attendance"))


async def _attendance(request: web.Request, staff: StaffSession, scope: Scope) -> web.Response:
    svc = services(request)
    default_from, default_to = reports.default_range(svc.clock)
    start = _parse_day(request.query.get("from"), default_from)
    end = _parse_day(request.query.get("to"), default_to)
    if end < start:
        start, end = end, start
    end = min(end, start + timedelta(days=366))
    by_group = {g["id"]: g for g in scope.groups}
    group_id = request.query.get("group_id") if request.query.get("group_id") in by_group else None
    if group_id is None and not scope.all_at_once and scope.groups:
        group_id = scope.groups[0]["id"]
    if scope.all_at_once:
        everyone = await patients.all_patients(svc.redis)
    else:
        enrolled = await enrollments.group_enrollments(svc.redis, group_id) if group_id else []
        everyone = list((await patients.patients_by_id(svc.redis, [e["patient_id"] for e in enrolled])).values())
    names = {p["id"]: p["display_name"] for p in everyone}
    patient_id = request.query.get("patient_id") if request.query.get("patient_id") in names else None
    if scope.groups and (scope.all_at_once or group_id):
        rows = await reports.records(svc.redis, start, end, group_id, patient_id)
        weeks = await reports.weekly(svc.redis, start, end, group_id)
    else:
        rows, weeks = [], []
    # Looking at minutes is a pull like the API's: the audit log says who saw what range.
    await svc.audit.append("attendance.export", staff.user.id, format="page", rows=len(rows),
                           **{"from": start.isoformat(), "to": end.isoformat()})
    if patient_id is not None:
        weeks = [w for w in weeks if w["patient_id"] == patient_id]
    missing = {r["patient_id"] for r in rows} - set(names)  # no longer enrolled, still in the records
    former = await patients.patients_by_id(svc.redis, sorted(missing))
    names.update({pid: p["display_name"] for pid, p in former.items()})
    table = []
    for row in sorted(rows, key=lambda r: (r["service_date"], names.get(r["patient_id"], "")), reverse=True):
        zone = ZoneInfo(by_group.get(row["group_id"], {}).get("timezone") or "UTC")
        table.append({
            **row,
            "group_name": by_group.get(row["group_id"], {}).get("name", row["group_id"]),
            "display_name": names.get(row["patient_id"], row["patient_id"]),
            "joined": _local_iso(row.get("first_join"), zone),
            "left": _local_iso(row.get("last_leave"), zone),
            "waited_minutes": int(row.get("waited_seconds") or 0) // 60,
            "video_minutes": int(row.get("video_seconds") or 0) // 60,
            "audio_minutes": int(row.get("audio_only_seconds") or 0) // 60,
        })
    filters = {"from": start.isoformat(), "to": end.isoformat()}
    if group_id:
        filters["group_id"] = group_id
    if patient_id:
        filters["patient_id"] = patient_id
    flagged_risk = reports.at_risk(weeks)
    flagged = await trends.flags_of(svc.redis, sorted({r["patient_id"] for r in rows}), to_ms(svc.clock.now()))
    return render(request, "admin_attendance.html", {
        **_base(staff, "Attendance"),
        "section": scope.section,
        "action": scope.path,
        "all_groups_allowed": scope.all_at_once,
        "filters": filters,
        "csv_url": "/api/v1/attendance.csv?" + urlencode(filters) if staff.user.role is Role.ADMIN else "",
        "groups": scope.groups,
        "patients": sorted(everyone, key=lambda p: p["display_name"].lower()),
        "rows": table,
        "total_minutes": sum(int(r["attended_minutes"]) for r in rows),
        "chart": weekly_hours_chart(weeks, names, set(flagged_risk)) if weeks else None,
        "weeks": sorted(weeks, key=lambda w: (names.get(w["patient_id"], ""), w["week"])),
        "names": names,
        "at_risk": sorted((names.get(p, p), week) for p, week in flagged_risk.items()),
        "measure_flags": sorted((names.get(p, p), p, f.text) for p, found in flagged.items() for f in found),
        "min_attended_seconds": svc.settings.min_attended_seconds,
    })
