"""`porchlight demo`: a demo clinic with brand, a group, staff and three patients.

The first run also records the group's meetings of the last three weeks (server/demo_history.py),
so the attendance pages have something to show. Run again, it reuses the same clinic, links and
staff passwords: the passwords are kept in `<data dir>/demo-logins.json` (mode 600; delete it
for new ones). The report it returns is printed as the last lines of `porchlight demo`.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from server.audit import AuditLog
from server.auth.links import LinkSigner
from server.auth.staff import Role, create_user, set_password
from server.clinic import enrollments, groups, patients
from server.clock import Clock
from server.demo_history import seed_history
from server.settings import Settings
from server.store import keys
from server.store.connection import Redis

BRAND = {
    "name": "Lakeside Behavioral Health",
    "primary_color": "#2f5d8a",
    "accent_color": "#f2b134",
    "welcome_text": "Welcome to Evening DBT Skills. Your facilitator will let you in shortly.",
    "support_phone": "+1 555 0100",
}
PATIENTS = ["Alex R.", "Jordan M.", "Sam T."]
LOGINS_FILE = "demo-logins.json"
END = "Press Ctrl-C to stop the server."  # the banner's last line


def _logins(data_dir: Path) -> dict[str, str]:
    """The demo staff's passwords: the same across restarts of the same data dir."""
    path = data_dir / LOGINS_FILE
    try:
        stored = json.loads(path.read_text())
        if isinstance(stored, dict) and all(isinstance(stored.get(k), str) for k in ("facilitator", "admin")):
            return {"facilitator": stored["facilitator"], "admin": stored["admin"]}
    except (OSError, ValueError):
        pass
    passwords = {"facilitator": secrets.token_urlsafe(9), "admin": secrets.token_urlsafe(9)}
    data_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(passwords, out)
    return passwords


async def create_demo(redis: Redis, settings: Settings, clock: Clock) -> str:
    passwords = _logins(settings.data_dir)
    raw = await redis.get(keys.demo())
    if raw:
        ids = json.loads(raw)
        for name in ("facilitator", "admin"):
            await set_password(redis, ids[name], passwords[name])
    else:
        facilitator = await create_user(redis, "facilitator", passwords["facilitator"], Role.FACILITATOR,
                                        "Dana Whitfield, LCSW", "1234567893")
        admin = await create_user(redis, "admin", passwords["admin"], Role.ADMIN, "Clinic Admin")
        group = await groups.create_group(redis, {
            "name": "Evening DBT Skills", "program": "IOP", "facilitator_ids": [facilitator.id],
            "timezone": "America/Chicago", "capacity": 12,
            "schedule": [{"weekday": d, "start": "18:00", "minutes": 180} for d in (0, 2, 3)],
            "billing": {"code": "90853", "min_billable_minutes": 45}, "brand": BRAND,
        }, clock.now())
        enrolled, patient_ids = [], []
        for name in PATIENTS:
            patient = await patients.create_patient(redis, {"display_name": name, "external_id": None}, clock.now())
            enrollment = await enrollments.create_enrollment(
                redis, group["id"], {"patient_id": patient["id"], "starts_on": None, "ends_on": None}, clock.now())
            enrolled.append(enrollment["id"])
            patient_ids.append(patient["id"])
        ids = {"facilitator": facilitator.id, "admin": admin.id, "group": group["id"], "enrollments": enrolled}
        await seed_history(redis, AuditLog(redis, clock), group, patient_ids, facilitator.id, clock.now())
        await redis.set(keys.demo(), json.dumps(ids))
    links = LinkSigner(settings.signing_keys, settings.public_url)
    lines = [
        "",
        "Demo clinic: Lakeside Behavioral Health, group \"Evening DBT Skills\" (IOP)",
        f"  group id:     {ids['group']}",
        f"  facilitator:  username facilitator  password {passwords['facilitator']}",
        f"  admin:        username admin        password {passwords['admin']}",
        f"  staff sign-in: {settings.public_url}/login  (API: POST /api/v1/login)",
        "  patient links (each is a secret; open one per browser):",
    ]
    for name, enrollment_id in zip(PATIENTS, ids["enrollments"], strict=True):
        current = await enrollments.get_enrollment(redis, enrollment_id)
        assert current is not None
        lines.append(f"    {name:10} {links.url(enrollment_id, current['link_version'])}")
    lines += [
        f"  (the passwords stay the same on every start; they are kept in {settings.data_dir / LOGINS_FILE})",
        "",
        "Try it:",
        f"  1. Open {settings.public_url}/login and sign in as facilitator.",
        "  2. Press \"Start session\" (it asks for your camera and microphone).",
        "  3. Open Alex R.'s link in a private window (another person), and press \"Check in\".",
        "  4. On the console, press \"Admit\": you see and hear each other.",
        "  The admin login shows attendance, billing and the group's settings.",
        "",
        END,
    ]
    return "\n".join(lines)
