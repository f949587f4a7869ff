"""Every HTTP route, named, in one place."""

from __future__ import annotations

from aiohttp import web

from server.api import attendance, auth, billing, clinic, fhir, measures, ops, sessions, staff
from server.pages import attendance as attendance_pages
from server.pages import measures as measure_pages
from server.pages import patient as patient_pages
from server.pages import reminders as reminder_pages
from server.pages import staff as staff_pages
from server.realtime.ws import websocket

API = "/api/v1"


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/healthz", ops.healthz, name="healthz")
    r.add_get("/readyz", ops.healthz, name="readyz")
    r.add_get("/livez", ops.livez, name="livez")
    r.add_get("/metrics", ops.metrics, name="metrics")
    r.add_get(f"{API}/openapi.json", ops.openapi, name="openapi")
    r.add_post(f"{API}/login", auth.login, name="login")
    r.add_post(f"{API}/logout", auth.logout, name="logout")
    r.add_get(f"{API}/me", auth.me, name="me")
    r.add_get(f"{API}/nodes", ops.nodes, name="nodes")
    r.add_post(f"{API}/groups", clinic.create_group, name="groups.create")
    r.add_get(f"{API}/groups", clinic.list_groups, name="groups.list")
    r.add_get(f"{API}/groups/{{group_id}}", clinic.get_group, name="groups.get")
    r.add_patch(f"{API}/groups/{{group_id}}", clinic.patch_group, name="groups.patch")
    r.add_get(f"{API}/groups/{{group_id}}/enrollments", clinic.list_enrollments, name="enrollments.list")
    r.add_post(f"{API}/groups/{{group_id}}/enrollments", clinic.create_enrollment, name="enrollments.create")
    r.add_post(f"{API}/groups/{{group_id}}/sessions", sessions.open_session, name="sessions.open")
    r.add_get(f"{API}/clinic/brand", clinic.get_clinic_brand, name="clinic.brand")
    r.add_put(f"{API}/clinic/brand", clinic.put_clinic_brand, name="clinic.brand_set")
    r.add_get(f"{API}/users", staff.list_users, name="users.list")
    r.add_post(f"{API}/users", staff.add_user, name="users.create")
    r.add_patch(f"{API}/users/{{user_id}}", staff.patch_user, name="users.patch")
    r.add_get(f"{API}/patients", clinic.list_patients, name="patients.list")
    r.add_post(f"{API}/patients", clinic.create_patient, name="patients.create")
    r.add_patch(f"{API}/patients/{{patient_id}}", clinic.patch_patient, name="patients.patch")
    r.add_post(f"{API}/enrollments/{{enrollment_id}}/rotate-link", clinic.rotate_link, name="enrollments.rotate")
    r.add_post(f"{API}/enrollments/{{enrollment_id}}/end", clinic.end_enrollment, name="enrollments.end")
    r.add_get(f"{API}/sessions/{{session_id}}", sessions.get_session, name="sessions.get")
    r.add_post(f"{API}/sessions/{{session_id}}/admit", sessions.admit, name="sessions.admit")
    r.add_post(f"{API}/sessions/{{session_id}}/decline", sessions.decline, name="sessions.decline")
    r.add_post(f"{API}/sessions/{{session_id}}/remove", sessions.remove, name="sessions.remove")
    r.add_post(f"{API}/sessions/{{session_id}}/send-back", sessions.send_back, name="sessions.send_back")
    r.add_post(f"{API}/sessions/{{session_id}}/message", sessions.message, name="sessions.message")
    r.add_post(f"{API}/sessions/{{session_id}}/mute", sessions.mute, name="sessions.mute")
    r.add_post(f"{API}/sessions/{{session_id}}/chat", sessions.chat, name="sessions.chat")
    r.add_post(f"{API}/sessions/{{session_id}}/screen-share", sessions.screen_share, name="sessions.screen_share")
    r.add_post(f"{API}/sessions/{{session_id}}/end", sessions.end, name="sessions.end")
    r.add_get(f"{API}/sessions/{{session_id}}/events", sessions.attendance_events, name="sessions.events")
    r.add_get(f"{API}/sessions/{{session_id}}/attendance", attendance.session_attendance, name="sessions.attendance")
    r.add_post(f"{API}/sessions/{{session_id}}/attendance/{{patient_id}}/correction", attendance.correction,
               name="attendance.correct")
    r.add_get(f"{API}/attendance", attendance.attendance, name="attendance")
    r.add_get(f"{API}/attendance/weekly", attendance.attendance_weekly, name="attendance.weekly")
    r.add_get(f"{API}/attendance.csv", attendance.attendance_csv, name="attendance.csv")
    r.add_get(f"{API}/billing/deliveries", billing.deliveries, name="billing.deliveries")
    r.add_post(f"{API}/billing/deliveries/{{record_id}}/replay", billing.replay, name="billing.replay")
    r.add_get(f"{API}/fhir/Encounter", fhir.search_encounters, name="fhir.encounters")
    r.add_get(f"{API}/fhir/Observation", fhir.search_observations, name="fhir.observations")
    r.add_get(f"{API}/fhir/QuestionnaireResponse", fhir.search_questionnaire_responses,
              name="fhir.questionnaire_responses")
    for kind in fhir.READABLE:
        r.add_get(f"{API}/fhir/{kind}/{{fhir_id}}", fhir.read_resource, name=f"fhir.{kind.lower()}")
    r.add_get(f"{API}/patients/{{patient_id}}/measures", measures.patient_measures, name="patients.measures")
    r.add_get(f"{API}/alerts", measures.list_alerts, name="alerts.list")
    r.add_post(f"{API}/alerts/{{alert_id}}/acknowledge", measures.acknowledge_alert, name="alerts.acknowledge")
    r.add_get(f"{API}/feedback", measures.list_feedback, name="feedback.list")
    r.add_get(f"{API}/ws", websocket, name="ws")
    r.add_get("/j/{token}", patient_pages.join_page, name="join")
    r.add_get("/j/{token}/calendar.ics", patient_pages.calendar, name="join.calendar")
    r.add_post("/j/{token}/feedback", patient_pages.feedback, name="join.feedback")
    r.add_get("/unsubscribe/{token}", reminder_pages.unsubscribe_page, name="unsubscribe")
    r.add_post("/unsubscribe/{token}", reminder_pages.unsubscribe, name="unsubscribe.confirm")
    r.add_get("/", staff_pages.home, name="home")
    r.add_get("/login", staff_pages.login_page, name="page.login")
    r.add_get("/console", staff_pages.console, name="page.console")
    r.add_get("/admin", staff_pages.admin_home, name="page.admin")
    r.add_get("/admin/groups/{group_id}", staff_pages.admin_group, name="page.admin.group")
    r.add_get("/admin/brand", staff_pages.admin_brand, name="page.admin.brand")
    r.add_get("/admin/attendance", attendance_pages.admin_attendance, name="page.admin.attendance")
    r.add_get("/console/attendance", attendance_pages.facilitator_attendance, name="page.console.attendance")
    r.add_get("/admin/billing", staff_pages.admin_billing, name="page.admin.billing")
    r.add_get("/admin/feedback", measure_pages.admin_feedback, name="page.admin.feedback")
    r.add_get("/patients/{patient_id}", measure_pages.patient_page, name="page.patient")
