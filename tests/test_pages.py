"""Pages as plain HTTP: who may see which page, the link pages, and the calendar feed."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import unquote

from server.auth.sessions import COOKIE_NAME
from server.clinic.calendar import ics_feed
from tests.helpers import Api


async def _page(api: Api, path: str, cookie: str | None = None) -> tuple[int, str, str]:
    headers = {"Cookie": f"{COOKIE_NAME}={cookie}"} if cookie else {}
    resp = await api.client.get(path, headers=headers, allow_redirects=False)
    return resp.status, resp.headers.get("Location", ""), await resp.text()


async def test_staff_pages_send_visitors_without_a_session_to_sign_in(api: Api) -> None:
    for path in ("/console", "/admin", "/admin/attendance", "/admin/billing"):
        status, location, _ = await _page(api, path)
        assert status == 302 and unquote(location) == f"/login?next={path}", (path, status, location)
    status, _, html = await _page(api, "/login")
    assert status == 200 and 'id="username"' in html and "Sign in" in html


async def test_a_facilitator_gets_a_plain_403_page_on_admin_pages(api: Api) -> None:
    world = await api.world(patients=1)
    status, _, html = await _page(api, "/admin/attendance", world.facilitator.cookie)
    assert status == 403 and "not available to you" in html
    status, _, html = await _page(api, "/console", world.facilitator.cookie)
    assert status == 200 and "Evening DBT" in html and "Start session" in html
    status, location, _ = await _page(api, "/login", world.facilitator.cookie)
    assert status == 302 and location == "/console"


async def test_login_page_never_redirects_off_site(api: Api) -> None:
    world = await api.world(patients=0)
    for wanted, expected in (("//evil.example/x", "/admin"), ("/admin/billing", "/admin/billing")):
        resp = await api.client.get(f"/login?next={wanted}", headers={"Cookie": f"{COOKIE_NAME}={world.admin.cookie}"},
                                    allow_redirects=False)
        assert resp.headers["Location"] == expected


async def test_admin_attendance_page_offers_the_csv_with_the_same_filters(api: Api) -> None:
    world = await api.world(patients=1)
    gid = world.group["id"]
    status, _, html = await _page(api, f"/admin/attendance?from=2027-01-01&to=2027-01-31&group_id={gid}",
                                  world.admin.cookie)
    assert status == 200
    assert f'href="/api/v1/attendance.csv?from=2027-01-01&amp;to=2027-01-31&amp;group_id={gid}"' in html
    assert "Download CSV" in html


async def test_join_page_escapes_brand_text_and_shows_the_name(api: Api) -> None:
    world = await api.world(patients=1, brand={"welcome_text": "<script>alert(1)</script>", "support_phone": "555"})
    status, _, html = await _page(api, f"/j/{world.tokens[0]}")
    assert status == 200
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "Patient 0" in html and "Where are you joining from?" in html


async def test_a_rotated_link_shows_the_clinic_phone_and_no_technical_text(api: Api) -> None:
    world = await api.world(patients=1, brand={"name": "Lakeside", "support_phone": "+1 555 0100"})
    await api.post(world.admin, f"/enrollments/{world.patients[0]['enrollment_id']}/rotate-link")
    status, _, html = await _page(api, f"/j/{world.tokens[0]}")
    assert status == 404 and "+1 555 0100" in html and "Lakeside" in html
    assert "error" not in html.lower() and "token" not in html.lower()
    status, _, html = await _page(api, "/j/not-a-real-link")
    assert status == 404 and "contact your clinic" in html


async def test_calendar_feed_for_a_link_and_404_for_a_bad_one(api: Api) -> None:
    world = await api.world(patients=1, schedule=[{"weekday": 0, "start": "18:00", "minutes": 180}])
    resp = await api.client.get(f"/j/{world.tokens[0]}/calendar.ics")
    assert resp.status == 200 and resp.content_type == "text/calendar"
    body = await resp.text()
    assert body.startswith("BEGIN:VCALENDAR\r\n") and body.endswith("END:VCALENDAR\r\n")
    assert body.count("BEGIN:VEVENT") == 8
    assert (await api.client.get("/j/forged/calendar.ics")).status == 404


def test_calendar_keeps_local_time_across_daylight_saving_and_folds_long_lines() -> None:
    group = {"id": "grp_1", "name": "Evening DBT, skills; group " + "x" * 80, "timezone": "America/Chicago",
             "schedule": [{"weekday": 0, "start": "18:00", "minutes": 180}]}
    # Monday 2026-02-23: the feed spans the switch to daylight time on 2026-03-08.
    now = datetime(2026, 2, 23, 12, 0, tzinfo=UTC).timestamp()
    brand = {"name": "Lakeside", "support_phone": "+1 555 0100"}
    feed = ics_feed(group, brand, "https://c.example/j/t", now, "c.example")
    starts = [line.split(":", 1)[1] for line in feed.split("\r\n") if line.startswith("DTSTART:")]
    assert starts[:4] == ["20260224T000000Z", "20260303T000000Z", "20260309T230000Z", "20260316T230000Z"]
    assert all(len(line.encode()) <= 75 for line in feed.split("\r\n"))
    unfolded = feed.replace("\r\n ", "")
    assert "SUMMARY:Evening DBT\\, skills\\; group " in unfolded
    assert "UID:grp_1-20260223T1800@c.example" in unfolded
    assert "Trouble joining? Call +1 555 0100." in unfolded
