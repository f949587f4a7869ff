"""Staff pages: /login, /console (facilitators), /admin... (admins).

Pages render from the same service functions the API uses; every change a page makes goes
through the public API from the browser (with the session's CSRF token, which the page
carries in a meta tag). A visit without a staff session is sent to /login; a signed-in user
of the wrong role gets a plain 403 page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web

from server.api.common import may_run
from server.auth.sessions import COOKIE_NAME, StaffSession
from server.auth.staff import Role, all_users
from server.billing import outbox
from server.clinic import enrollments, groups, patients
from server.clinic.calendar import describe_schedule, meetings_today
from server.pages.render import render
from server.services import Services, services
from server.store import keys, sessions

HOME = {Role.ADMIN: "/admin", Role.FACILITATOR: "/console"}


def _safe_next(raw: str | None) -> str | None:
    """A path on this server, or None: never an open redirect. Browsers drop tabs and newlines
    from a URL and read a backslash as a slash, so "/%09/evil.example" (a tab) is "//evil.example",
    another host: any control character, whitespace or backslash refuses the value, and what is
    left must start with exactly one slash."""
    if not raw or any(ch.isspace() or ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or ch == "\\" for ch in raw):
        return None
    if raw.startswith("/") and not raw.startswith("//"):
        return raw
    return None


async def _signed_in(request: web.Request, *roles: Role) -> StaffSession | web.Response:
    """The caller's staff session; or a redirect to /login; or a 403 page for another role."""
    svc = services(request)
    staff = await svc.staff_sessions.resume(request.cookies.get(COOKIE_NAME))
    if staff is None:
        raise web.HTTPFound("/login?" + urlencode({"next": request.path_qs}))
    if roles and staff.user.role not in roles:
        return render(request, "notice.html", {
            **_base(staff, "Not available"), "heading": "This page is not available to you",
            "message": "Your account does not have access to this page. If you think it should, ask a clinic admin.",
        }, status=403)
    return staff


def _base(staff: StaffSession, title: str) -> dict[str, Any]:
    return {"user": staff.user, "csrf_token": staff.csrf_token, "title": title,
            "is_admin": staff.user.role is Role.ADMIN}


def _local(ms: int | str | None, zone: ZoneInfo, fmt: str = "%-I:%M %p") -> str:
    if ms in (None, ""):
        return ""
    return datetime.fromtimestamp(int(ms) / 1000, tz=zone).strftime(fmt)


def _local_iso(value: str | None, zone: ZoneInfo, fmt: str = "%-I:%M %p") -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(zone).strftime(fmt)


# -- sign-in ---------------------------------------------------------------------------


async def login_page(request: web.Request) -> web.Response:
    svc = services(request)
    wanted = _safe_next(request.query.get("next"))
    staff = await svc.staff_sessions.resume(request.cookies.get(COOKIE_NAME), touch=False)
    if staff is not None:
        raise web.HTTPFound(wanted or HOME[staff.user.role])
    # Why the console sent them here, in words (the console signs out an idle tab itself).
    idle = svc.settings.staff_idle_timeout_seconds
    span = f"{round(idle / 60)} minutes" if idle >= 120 else f"{int(idle)} seconds"
    reasons = {
        "idle": f"You were signed out after {span} without activity, "
                "to keep patients' information safe. Sign in to carry on.",
        "ended": "Your sign-in has ended. Sign in again to carry on.",
    }
    return render(request, "login.html", {"next": wanted or "", "reason": reasons.get(request.query.get("reason", ""))})


async def home(request: web.Request) -> web.Response:
    staff = await _signed_in(request)
    if isinstance(staff, web.Response):
        return staff
    raise web.HTTPFound(HOME[staff.user.role])


# -- the facilitator's console -----------------------------------------------------------


async def _sessions_today(request: web.Request, group: dict[str, Any]) -> list[dict[str, str]]:
    svc = services(request)
    zone = ZoneInfo(group.get("timezone") or "UTC")
    local_now = datetime.fromtimestamp(svc.clock.now(), tz=zone)
    midnight = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    ids = await svc.redis.zrangebyscore(keys.group_sessions(group["id"]), int(midnight.timestamp() * 1000), "+inf")
    return [{"id": r.id, "state": r.state, "started": _local(r.started_at, zone), "ended": _local(r.ended_at, zone)}
            for r in await sessions.read_many(svc.redis, list(ids))]


async def console(request: web.Request) -> web.Response:
    staff = await _signed_in(request, Role.FACILITATOR, Role.ADMIN)
    if isinstance(staff, web.Response):
        return staff
    svc = services(request)
    now = svc.clock.now()
    cards = []
    for group in await groups.all_groups(svc.redis):
        if not may_run(staff, group):
            continue
        zone = ZoneInfo(group.get("timezone") or "UTC")
        cards.append({
            "id": group["id"],
            "name": group["name"],
            "program": group["program"],
            "schedule": describe_schedule(group),
            "open_session_id": await svc.redis.get(keys.group_open_session(group["id"])) or "",
            "meetings": [f"{m.start:%-I:%M}–{m.end:%-I:%M %p}" for m in meetings_today(group, now)],
            "sessions": await _sessions_today(request, group),
            "today": datetime.fromtimestamp(now, tz=zone).strftime("%A %-d %B"),
            "brand": groups.brand_of(group),
            "patients": await _enrolled(svc, group["id"]),
        })
    return render(request, "console.html", {**_base(staff, "Console"), "groups": cards,
                                            "idle_seconds": int(svc.settings.staff_idle_timeout_seconds)})


async def _enrolled(svc: Services, group_id: str) -> list[dict[str, Any]]:
    """The group's patients with an active enrolment, by name (links to their measures)."""
    active = [e["patient_id"] for e in await enrollments.group_enrollments(svc.redis, group_id)
              if e.get("ended_at") is None]
    found = await patients.patients_by_id(svc.redis, active)
    return sorted(found.values(), key=lambda p: p["display_name"].lower())


# -- admin -------------------------------------------------------------------------------


async def admin_home(request: web.Request) -> web.Response:
    staff = await _signed_in(request, Role.ADMIN)
    if isinstance(staff, web.Response):
        return staff
    svc = services(request)
    users = await all_users(svc.redis)
    names = {u.id: u.name for u in users}
    rows = []
    for group in await groups.all_groups(svc.redis):
        enrolled = await enrollments.group_enrollments(svc.redis, group["id"])
        rows.append({**group, "schedule_text": describe_schedule(group),
                     "facilitators": [names.get(i, i) for i in group.get("facilitator_ids", [])],
                     "active": sum(1 for e in enrolled if e.get("ended_at") is None)})
    return render(request, "admin.html", {
        **_base(staff, "Clinic"),
        "section": "clinic",
        "groups": rows,
        "patients": [patients.public(p) for p in await patients.all_patients(svc.redis)],
        "facilitators": [u for u in users if u.role is Role.FACILITATOR and u.active],
        "programs": list(groups.PROGRAMS),
        "staff": users,
    })


async def admin_group(request: web.Request) -> web.Response:
    staff = await _signed_in(request, Role.ADMIN)
    if isinstance(staff, web.Response):
        return staff
    svc = services(request)
    group = await groups.get_group(svc.redis, request.match_info["group_id"])
    if group is None:
        return render(request, "notice.html", {
            **_base(staff, "Not found"), "heading": "Group not found",
            "message": "There is no group at this address. It may have been mistyped.",
        }, status=404)
    everyone = await patients.all_patients(svc.redis)
    names = {p["id"]: p["display_name"] for p in everyone}
    enrolled = [enrollments.public(e, svc.links) for e in await enrollments.group_enrollments(svc.redis, group["id"])]
    active_ids = {e["patient_id"] for e in enrolled if e["active"]}
    for row in enrolled:
        row["display_name"] = names.get(row["patient_id"], row["patient_id"])
    current = set(group.get("facilitator_ids", []))
    # Who may run it: active facilitators, and whoever already does (an admin, or a deactivated account).
    choices = [u for u in await all_users(svc.redis)
               if u.id in current or (u.role is Role.FACILITATOR and u.active)]
    return render(request, "admin_group.html", {
        **_base(staff, group["name"]),
        "section": "clinic",
        "group": group,
        "schedule_text": describe_schedule(group),
        "brand": groups.brand_of(group),
        "own_brand": group.get("brand") or {},
        "clinic_brand": {**groups.DEFAULT_BRAND, **group.get(groups.CLINIC_BRAND, {})},
        "brand_target": "group",
        "facilitator_choices": choices,
        "weekdays": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
        "enrollments": sorted(enrolled, key=lambda e: (not e["active"], e["display_name"].lower())),
        "unenrolled": [p for p in everyone if p["id"] not in active_ids],
    })


async def admin_billing(request: web.Request) -> web.Response:
    staff = await _signed_in(request, Role.ADMIN)
    if isinstance(staff, web.Response):
        return staff
    svc = services(request)
    status = request.query.get("status") if request.query.get("status") in outbox.STATUSES else None
    rows = await outbox.deliveries(svc.redis, status, limit=500)
    # What a biller needs beside the delivery: the claim line the record suggests.
    records = await outbox.records_of(svc.redis, [d["record_id"] for d in rows])
    for delivery in rows:
        record = records.get(delivery["record_id"], {})
        suggested = record.get("suggested") or {}
        delivery["claim"] = {
            "service_date": record.get("service_date") or "", "code": suggested.get("code") or "",
            "units": suggested.get("units"), "modifiers": ", ".join(suggested.get("modifiers") or []),
            "place_of_service": record.get("place_of_service") or "",
            "below_minimum": bool(record.get("below_minimum")), "rule": suggested.get("rule") or "",
        }
    names = {p["id"]: p["display_name"] for p in await patients.all_patients(svc.redis)}
    counts = {name: await svc.redis.zcard(keys.billing_by_status(name)) for name in outbox.STATUSES}
    return render(request, "admin_billing.html", {
        **_base(staff, "Billing"),
        "section": "billing",
        "status": status or "",
        "statuses": outbox.STATUSES,
        "counts": counts,
        "rows": rows,
        "names": names,
        "webhook_configured": bool(svc.settings.billing_webhook_url),
    })



async def admin_brand(request: web.Request) -> web.Response:
    staff = await _signed_in(request, Role.ADMIN)
    if isinstance(staff, web.Response):
        return staff
    own = await groups.clinic_brand(services(request).redis)
    brand = {**groups.DEFAULT_BRAND, **own}
    return render(request, "admin_brand.html", {
        **_base(staff, "Clinic brand"), "section": "clinic", "brand": brand, "own_brand": brand,
        "clinic_brand": groups.DEFAULT_BRAND, "brand_target": "clinic", "preview_group": "Your group's name",
    })
