"""/unsubscribe/{token}: stop meeting reminders from the link in a reminder, without signing in.

GET asks (a mail scanner that follows links must not unsubscribe anyone); POST stops them, from
the page's button or a mail client's one-click unsubscribe (RFC 8058 List-Unsubscribe-Post).
"""

from __future__ import annotations

from aiohttp import web

from server.clinic.patients import get_patient, update_patient
from server.pages.render import render
from server.reminders.unsubscribe import UnsubscribeLinks
from server.services import services


def _patient_id(request: web.Request) -> str | None:
    svc = services(request)
    links = UnsubscribeLinks(svc.settings.signing_keys, svc.settings.public_url)
    return links.read(request.match_info["token"])


async def unsubscribe_page(request: web.Request) -> web.Response:
    svc = services(request)
    patient_id = _patient_id(request)
    patient = await get_patient(svc.redis, patient_id) if patient_id else None
    if patient is None:
        return render(request, "unsubscribe.html", {"state": "invalid"}, status=404)
    return render(request, "unsubscribe.html", {"state": "ask" if patient.get("reminders") else "stopped"})


async def unsubscribe(request: web.Request) -> web.Response:
    svc = services(request)
    patient_id = _patient_id(request)
    patient = await get_patient(svc.redis, patient_id) if patient_id else None
    if patient_id is None or patient is None:
        return render(request, "unsubscribe.html", {"state": "invalid"}, status=404)
    if patient.get("reminders"):
        await update_patient(svc.redis, patient_id, {"reminders": False})
        await svc.audit.append("patient.unsubscribe", None, patient_id=patient_id)
    return render(request, "unsubscribe.html", {"state": "stopped"})
