"""Measures, alerts and feedback (CONTRACT.md v1.1): questionnaires offered by cadence while
patients wait, scored per the published rules, a safety alert at every staff socket of the group
and a signed event at a real receiver, acknowledgement, authorisation, feedback once only."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from server.app import ALERT_DELIVERY, create_app
from server.auth.staff import Role
from server.clock import ManualClock
from server.measures.due import is_due
from server.measures.instruments import GAD7, PHQ9, Instrument, checked_answers, score
from server.settings import Settings
from server.store import keys
from server.store.connection import Redis
from tests.helpers import Api, Socket, World
from tests.test_bad_input import _snapshot as _everything
from tests.test_billing import SECRET, Receiver, verify_standard_webhook

DAY = 24 * 3600


def answers_summing_to(instrument: Instrument, total: int, item9: int = 0) -> dict[str, int]:
    """Answers with the given total (item 9 of PHQ-9 fixed first), filled from the first item."""
    out = {item.id: 0 for item in instrument.items}
    if instrument is PHQ9:
        out["9"] = item9
        total -= item9
    for item in instrument.items:
        if total <= 0:
            break
        if out[item.id] == 0:
            out[item.id] = min(3, total)
            total -= out[item.id]
    assert total == 0
    return out


# The published bands (Kroenke 2001; Spitzer 2006), at every edge.
BANDS = [
    (PHQ9, 0, "minimal"), (PHQ9, 4, "minimal"), (PHQ9, 5, "mild"), (PHQ9, 9, "mild"), (PHQ9, 10, "moderate"),
    (PHQ9, 14, "moderate"), (PHQ9, 15, "moderately severe"), (PHQ9, 19, "moderately severe"),
    (PHQ9, 20, "severe"), (PHQ9, 27, "severe"),
    (GAD7, 0, "minimal"), (GAD7, 4, "minimal"), (GAD7, 5, "mild"), (GAD7, 9, "mild"), (GAD7, 10, "moderate"),
    (GAD7, 14, "moderate"), (GAD7, 15, "severe"), (GAD7, 21, "severe"),
]


def test_instruments_are_the_published_ones_in_order() -> None:
    assert [i.id for i in PHQ9.items] == [str(n) for n in range(1, 10)]
    assert [i.id for i in GAD7.items] == [str(n) for n in range(1, 8)]
    assert PHQ9.items[8].text == "Thoughts that you would be better off dead or of hurting yourself in some way"
    assert GAD7.items[0].text == "Feeling nervous, anxious, or on edge"
    options = PHQ9.frame_items()[0]["options"]
    assert options == [{"value": 0, "label": "Not at all"}, {"value": 1, "label": "Several days"},
                       {"value": 2, "label": "More than half the days"}, {"value": 3, "label": "Nearly every day"}]
    assert (PHQ9.max_score, GAD7.max_score) == (27, 21)
    for instrument in (PHQ9, GAD7):
        with pytest.raises(ValueError):
            instrument.band(instrument.max_score + 1)


def test_cadences() -> None:
    zone = ZoneInfo("America/Chicago")
    monday_18 = int(datetime(2027, 1, 18, 18, 0, tzinfo=zone).timestamp() * 1000)  # days count in the zone
    assert is_due("week", None, monday_18, zone, None)
    assert not is_due("week", monday_18, monday_18 + 6 * DAY * 1000 + 5 * 3600 * 1000, zone, None)  # Sunday 23:00
    assert is_due("week", monday_18, monday_18 + 7 * DAY * 1000 - 3600 * 1000, zone, None)  # the same weekday
    assert not is_due("2weeks", monday_18, monday_18 + 13 * DAY * 1000, zone, None)
    assert is_due("2weeks", monday_18, monday_18 + 14 * DAY * 1000, zone, None)
    assert not is_due("session", monday_18, monday_18 + 60_000, zone, None)  # no session has ended since
    assert is_due("session", monday_18, monday_18 + DAY * 1000, zone, monday_18 + 3600_000)
    assert not is_due("session", monday_18 + 3600_001, monday_18 + DAY * 1000, zone, monday_18 + 3600_000)


@pytest.fixture
async def alerting(aiohttp_client: Any, aiohttp_server: Any, settings: Settings, redis: Redis,
                   clock: ManualClock) -> tuple[Api, Receiver]:
    from aiohttp import web

    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/alerts", receiver.handle)
    server = await aiohttp_server(app)
    receiver.url = str(server.make_url("/alerts"))
    configured = settings.replace(alert_webhook_url=receiver.url, billing_webhook_secrets=(SECRET,),
                                  billing_retry_base_seconds=1.0, heartbeat_timeout_seconds=6 * 3600,
                                  staff_idle_timeout_seconds=30 * DAY, staff_session_max_seconds=30 * DAY)
    client = await aiohttp_client(create_app(configured, redis=redis, clock=clock))
    return Api(client, redis, clock, configured), receiver


async def _snapshot(api: Api) -> dict[str, Any]:
    """Redis as test_bad_input sees it, less the open session's alive mark (the background round
    writes it, whatever the test does)."""
    out = await _everything(api)
    for key, value in out.items():
        if key.startswith("pl:session:") and isinstance(value, dict):
            value.pop("alive_at", None)
    return out


QUESTIONNAIRES = [{"instrument": "PHQ-9", "every": "week"}, {"instrument": "GAD-7", "every": "session"}]


async def _checked_in(api: Api, world: World, index: int = 0) -> tuple[Socket, dict[str, dict[str, Any]]]:
    """A patient checks in; the questionnaires they are due, by instrument, follow `waiting`."""
    sock = await api.patient(world.tokens[index])
    due = {}
    for _ in world.group["questionnaires"]:
        frame = await sock.until("questionnaire")
        due[frame["instrument"]] = frame
    return sock, due


async def _due_now(api: Api, token: str) -> set[str]:
    """Which instruments a fresh check-in is offered (the frames follow `waiting` at once, or none)."""
    sock = await api.patient(token)
    await sock.send({"type": "ping_for_the_test"})  # answered after any questionnaire frames
    await sock.until("error")
    offered = {f["instrument"] for f in sock.seen if f["type"] == "questionnaire"}
    await sock.send({"type": "leave"})
    await sock.closed()
    return offered


async def test_questionnaires_are_offered_by_cadence(api: Api) -> None:
    world = await api.world(patients=1, questionnaires=QUESTIONNAIRES)
    session_id = await api.open(world)
    sock, due = await _checked_in(api, world)
    phq = due["PHQ-9"]
    assert phq["items"][8]["id"] == "9" and len(phq["items"]) == 9 and len(due["GAD-7"]["items"]) == 7
    assert [o["value"] for o in phq["items"][0]["options"]] == [0, 1, 2, 3]
    assert sock.seen[0]["type"] == "waiting"  # after `waiting`

    await sock.send({"type": "questionnaire_response", "id": phq["id"],
                     "answers": answers_summing_to(PHQ9, 12)})
    assert (await sock.until("questionnaire_saved"))["id"] == phq["id"]
    await sock.send({"type": "leave"})
    await sock.closed()
    # Back in the same session: the unanswered GAD-7 again, with the same id; PHQ-9 is done.
    again = await api.patient(world.tokens[0])
    gad = await again.until("questionnaire")
    assert gad["id"] == due["GAD-7"]["id"]
    await again.send({"type": "questionnaire_skip", "id": gad["id"]})
    assert (await again.until("questionnaire_saved"))["skipped"] is True
    await again.send({"type": "leave"})
    await again.closed()
    assert await _due_now(api, world.tokens[0]) == set()
    await api.post(world.facilitator, f"/sessions/{session_id}/end")

    api.clock.advance(2 * DAY)  # the next session: GAD-7 (every session) again, PHQ-9 (weekly) not
    world.facilitator = await api.login("dana", "correct horse battery")  # signed out while days passed
    world.admin = await api.login("admin", "correct horse battery")
    second = await api.open(world)
    assert await _due_now(api, world.tokens[0]) == {"GAD-7"}
    # Ended before the clock moves on: a session left open for days is ended by the sweep of
    # abandoned sessions, which would race the next check-in.
    await api.post(world.facilitator, f"/sessions/{second}/end")
    api.clock.advance(5 * DAY)  # the session a week after the PHQ-9
    world.facilitator = await api.login("dana", "correct horse battery")
    world.admin = await api.login("admin", "correct horse battery")
    await api.open(world)
    assert await _due_now(api, world.tokens[0]) == {"PHQ-9", "GAD-7"}

    measures = (await api.get(world.admin, f"/patients/{world.patients[0]['id']}/measures"))["measures"]
    assert [(m["instrument"], m["score"], m["band"], m["session_id"]) for m in measures] == [
        ("PHQ-9", 12, "moderate", session_id)]


async def test_a_group_without_questionnaires_offers_none_and_bad_settings_are_refused(api: Api) -> None:
    world = await api.world(patients=1)
    assert await _due_now(api, world.tokens[0]) == set()
    gid = world.group["id"]
    for bad in ([{"instrument": "PHQ-2", "every": "week"}], [{"instrument": "PHQ-9", "every": "month"}],
                [{"instrument": "PHQ-9", "every": "week"}, {"instrument": "PHQ-9", "every": "session"}],
                {"instrument": "PHQ-9"}, [{"instrument": "PHQ-9", "every": "week", "extra": 1}]):
        refused = await api.request(world.admin, "PATCH", f"/api/v1/groups/{gid}", {"questionnaires": bad},
                                    expect=400)
        assert refused["error"]["code"] == "bad_request"
    patched = await api.request(world.admin, "PATCH", f"/api/v1/groups/{gid}",
                                {"questionnaires": [{"instrument": "GAD-7", "every": "2weeks"}]})
    assert patched["questionnaires"] == [{"instrument": "GAD-7", "every": "2weeks"}]
    assert await _due_now(api, world.tokens[0]) == {"GAD-7"}


@pytest.mark.parametrize(("instrument", "total", "band"), BANDS, ids=[f"{i.name}-{t}" for i, t, _ in BANDS])
def test_scores_and_bands_follow_the_published_rules(instrument: Instrument, total: int, band: str) -> None:
    answers = checked_answers(instrument, answers_summing_to(instrument, total))
    assert score(instrument, answers) == total
    assert instrument.band(total) == band


async def test_the_stored_measure_carries_the_score_and_band(api: Api) -> None:
    world = await api.world(patients=1, questionnaires=[{"instrument": "GAD-7", "every": "session"}])
    await api.open(world)
    sock, due = await _checked_in(api, world)
    offered = due["GAD-7"]
    await sock.send({"type": "questionnaire_response", "id": offered["id"], "answers": answers_summing_to(GAD7, 15)})
    await sock.until("questionnaire_saved")
    (measure,) = (await api.get(world.admin, f"/patients/{world.patients[0]['id']}/measures"))["measures"]
    assert (measure["instrument"], measure["score"], measure["band"]) == ("GAD-7", 15, "severe")
    assert measure["id"] == offered["id"] and measure["at"].endswith("Z")


BAD_ANSWERS = [
    {str(n): 1 for n in range(1, 9)},  # item 9 missing
    {**{str(n): 1 for n in range(1, 10)}, "3": 4},  # out of range
    {**{str(n): 1 for n in range(1, 10)}, "3": -1},
    {**{str(n): 1 for n in range(1, 10)}, "3": "2"},  # not a number
    {**{str(n): 1 for n in range(1, 10)}, "3": True},
    {**{str(n): 1 for n in range(1, 10)}, "3": 1.5},
    {**{str(n): 1 for n in range(1, 10)}, "10": 1},  # no such item
    {},
]


async def test_bad_answers_are_refused_and_nothing_is_stored(api: Api) -> None:
    world = await api.world(patients=1, questionnaires=[{"instrument": "PHQ-9", "every": "session"}])
    await api.open(world)
    sock, due = await _checked_in(api, world)
    qid = due["PHQ-9"]["id"]
    before = await _snapshot(api)
    for answers in BAD_ANSWERS:
        await sock.send({"type": "questionnaire_response", "id": qid, "answers": answers})
        assert (await sock.until("error"))["code"] == "bad_request", answers
    for frame in ({"type": "questionnaire_response", "id": qid}, {"type": "questionnaire_response", "answers": {}},
                  {"type": "questionnaire_response", "id": qid, "answers": [1, 2]}, {"type": "questionnaire_skip"}):
        await sock.send(frame)
        assert (await sock.until("error"))["code"] == "bad_request", frame
    await sock.send({"type": "questionnaire_response", "id": "qst_nope", "answers": answers_summing_to(PHQ9, 3)})
    assert (await sock.until("error"))["code"] == "not_found"
    assert await _snapshot(api) == before
    assert (await api.get(world.admin, f"/patients/{world.patients[0]['id']}/measures"))["measures"] == []

    # Then a good answer is stored once; a second answer (another tab) is refused.
    await sock.send({"type": "questionnaire_response", "id": qid, "answers": answers_summing_to(PHQ9, 3)})
    await sock.until("questionnaire_saved")
    await sock.send({"type": "questionnaire_response", "id": qid, "answers": answers_summing_to(PHQ9, 6)})
    assert (await sock.until("error"))["code"] == "already_answered"
    measures = (await api.get(world.admin, f"/patients/{world.patients[0]['id']}/measures"))["measures"]
    assert [m["score"] for m in measures] == [3]


async def test_an_admitted_patient_may_finish_their_questionnaire(api: Api) -> None:
    world = await api.world(patients=1, questionnaires=[{"instrument": "GAD-7", "every": "session"}])
    session_id = await api.open(world)
    sock, due = await _checked_in(api, world)
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"all": True})
    await sock.until("admitted")
    await sock.send({"type": "questionnaire_response", "id": due["GAD-7"]["id"],
                     "answers": answers_summing_to(GAD7, 15)})
    await sock.until("questionnaire_saved")


async def test_item_9_alerts_every_staff_socket_of_the_group_at_once_and_reaches_the_receiver(
    alerting: tuple[Api, Receiver]
) -> None:
    api, receiver = alerting
    world = await api.world(patients=2, questionnaires=[{"instrument": "PHQ-9", "every": "session"}],
                            brand={"support_phone": "+1 555 0100"})
    other = await api.staff("robin", Role.FACILITATOR)
    elsewhere = await api.post(world.admin, "/groups", {"name": "Other", "program": "PHP",
                                                        "facilitator_ids": [other.user_id]}, expect=201)
    session_id = await api.open(world)
    host = await api.staff_socket(world.facilitator, session_id=session_id)
    watcher = await api.staff_socket(world.admin, group_id=world.group["id"])
    outsider = await api.staff_socket(other, group_id=elsewhere["id"])
    sock, due = await _checked_in(api, world)
    pid = world.patients[0]["id"]

    started = time.monotonic()
    await sock.send({"type": "questionnaire_response", "id": due["PHQ-9"]["id"],
                     "answers": answers_summing_to(PHQ9, 8, item9=2)})
    raised = [await s.until("safety_alert", timeout=1.0) for s in (host, watcher)]
    assert time.monotonic() - started < 1.0
    alert = raised[0]["alert"]
    assert raised[1]["alert"] == alert
    assert {k: alert[k] for k in ("patient_id", "display_name", "session_id", "instrument", "item", "value",
                                  "status")} == {
        "patient_id": pid, "display_name": "Patient 0", "session_id": session_id, "instrument": "PHQ-9",
        "item": "9", "value": 2, "status": "open"}
    assert alert["id"] and alert["at"].endswith("Z")
    saved = await sock.until("questionnaire_saved")
    assert saved["crisis"] == {"support_phone": "+1 555 0100", "crisis_line": "988"}
    assert "score" not in saved and "band" not in saved  # the patient is never shown a score
    await outsider.send({"type": "activity"})
    await asyncio.sleep(0)
    assert not [f for f in outsider.seen if f["type"] == "safety_alert"]

    # The signed event, through the outbox, to a real receiver.
    await api.client.app[ALERT_DELIVERY].run_once()
    await receiver.wait(lambda: len(receiver.accepted) == 1, api.clock, step=1)
    headers, body = receiver.attempts[-1]
    assert verify_standard_webhook(SECRET, headers, body, api.clock.now())  # the billing secret, by default
    assert headers["webhook-id"] == alert["id"]
    event = receiver.accepted[alert["id"]]
    assert event["type"] == "safety_alert.raised"
    assert {k: event["data"][k] for k in ("alert_id", "patient_id", "group_id", "session_id", "item", "value")} == {
        "alert_id": alert["id"], "patient_id": pid, "group_id": world.group["id"], "session_id": session_id,
        "item": "9", "value": 2}
    assert "display_name" not in event["data"] and "score" not in event["data"]
    audit = await api.client.app[ALERT_DELIVERY].audit.entries()
    assert any(e["action"] == "safety_alert.raise" and e["details"]["alert_id"] == alert["id"] for e in audit)
    async with asyncio.timeout(10):  # the alert woke the worker: its outcome is stored once the answer is in
        while not any(e["action"] == "safety_alert.delivered" for e in audit):
            await asyncio.sleep(0.01)
            audit = await api.client.app[ALERT_DELIVERY].audit.entries()

    # Acknowledged, with who and when; every console hears of it; once only.
    assert [a["id"] for a in (await api.get(world.facilitator, "/alerts?status=open"))["alerts"]] == [alert["id"]]
    api.clock.advance(90)
    done = await api.post(world.facilitator, f"/alerts/{alert['id']}/acknowledge", {"note": "Called her; safe"})
    assert done["status"] == "acknowledged" and done["acknowledged_by"] == world.facilitator.user_id
    assert done["acknowledged_at"] and done["note"] == "Called her; safe"
    for s in (host, watcher):
        assert (await s.until("safety_alert"))["alert"]["status"] == "acknowledged"
    again = await api.post(world.admin, f"/alerts/{alert['id']}/acknowledge", {}, expect=409)
    assert again["error"]["code"] == "already_acknowledged"
    assert (await api.get(world.facilitator, "/alerts?status=open"))["alerts"] == []
    assert [a["id"] for a in (await api.get(world.admin, "/alerts?status=acknowledged"))["alerts"]] == [alert["id"]]
    assert (await api.get(world.admin, "/alerts?status=maybe", expect=400))["error"]["code"] == "bad_request"
    audit = await api.client.app[ALERT_DELIVERY].audit.entries()
    assert any(e["action"] == "safety_alert.acknowledge" and e["actor"] == world.facilitator.user_id for e in audit)


async def test_a_facilitator_of_another_group_sees_nothing(api: Api) -> None:
    world = await api.world(patients=1, questionnaires=[{"instrument": "PHQ-9", "every": "session"}])
    other = await api.staff("robin", Role.FACILITATOR)
    await api.post(world.admin, "/groups", {"name": "Other", "program": "PHP", "facilitator_ids": [other.user_id]},
                   expect=201)
    await api.open(world)
    sock, due = await _checked_in(api, world)
    await sock.send({"type": "questionnaire_response", "id": due["PHQ-9"]["id"],
                     "answers": answers_summing_to(PHQ9, 4, item9=1)})
    await sock.until("questionnaire_saved")
    pid = world.patients[0]["id"]
    alert_id = (await api.get(world.admin, "/alerts"))["alerts"][0]["id"]

    assert (await api.get(other, f"/patients/{pid}/measures", expect=403))["error"]["code"] == "forbidden"
    assert (await api.get(other, "/alerts"))["alerts"] == []
    assert (await api.get(other, "/alerts?status=open"))["alerts"] == []
    assert (await api.post(other, f"/alerts/{alert_id}/acknowledge", {}, expect=403))["error"]["code"] == "forbidden"
    assert (await api.get(other, "/feedback", expect=403))["error"]["code"] == "forbidden"
    assert (await api.get(world.facilitator, "/feedback", expect=403))["error"]["code"] == "forbidden"
    assert len((await api.get(world.facilitator, f"/patients/{pid}/measures"))["measures"]) == 1
    assert (await api.get(None, f"/patients/{pid}/measures", expect=401))["error"]["code"] == "unauthorized"
    assert (await api.get(None, "/alerts", expect=401))["error"]["code"] == "unauthorized"
    assert (await api.get(world.admin, "/patients/pat_nobody/measures", expect=404))["error"]["code"] == "not_found"
    # Staff cannot answer a patient's questionnaire.
    host = await api.staff_socket(world.facilitator, group_id=world.group["id"])
    await host.send({"type": "questionnaire_response", "id": due["PHQ-9"]["id"], "answers": {}})
    assert (await host.until("error"))["code"] == "bad_request"


async def test_feedback_is_asked_of_attending_patients_and_taken_once(api: Api) -> None:
    world = await api.world(patients=2)
    session_id = await api.open(world)
    alex = await api.patient(world.tokens[0])
    blair = await api.patient(world.tokens[1])  # waits, never admitted
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [world.patients[0]["id"]]})
    await alex.until("admitted")
    await api.post(world.facilitator, f"/sessions/{session_id}/end")
    await alex.until("session_ended")
    request = await alex.until("feedback_request")
    assert request == {"type": "feedback_request", "session_id": session_id,
                       "question": "How helpful was today's group?"}
    await blair.closed()
    assert not [f for f in blair.seen if f["type"] == "feedback_request"]

    later = await api.patient(world.tokens[0])  # the page of their link, a while later
    for bad in (0, 6, "5", True, None):
        await later.send({"type": "feedback", "session_id": session_id, "rating": bad})
        assert (await later.until("error"))["code"] == "bad_request", bad
    await later.send({"type": "feedback", "session_id": session_id, "rating": 4, "comment": "Good group"})
    assert await later.until("feedback_saved") == {"type": "feedback_saved", "session_id": session_id}
    await later.send({"type": "feedback", "session_id": session_id, "rating": 5})
    assert (await later.until("error"))["code"] == "already_answered"
    post = await api.request(None, "POST", f"/j/{world.tokens[0]}/feedback",
                             {"session_id": session_id, "rating": 2}, expect=409)
    assert post["error"]["code"] == "already_answered"

    # Blair did not take part: refused. The page's POST works the same way.
    refused = await api.request(None, "POST", f"/j/{world.tokens[1]}/feedback",
                                {"session_id": session_id, "rating": 5}, expect=403)
    assert refused["error"]["code"] == "forbidden"
    assert (await api.request(None, "POST", "/j/forged/feedback", {"session_id": session_id, "rating": 5},
                              expect=404))["error"]["code"] == "not_found"

    answers = (await api.get(world.admin, f"/feedback?group_id={world.group['id']}"))["feedback"]
    assert [(f["patient_id"], f["rating"], f["comment"], f["facilitator_id"]) for f in answers] == [
        (world.patients[0]["id"], 4, "Good group", world.facilitator.user_id)]


async def test_feedback_from_the_link_page_closes_a_day_after_the_session(api: Api) -> None:
    world = await api.world(patients=1)
    session_id = await api.open(world)
    alex = await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"all": True})
    await alex.until("admitted")
    await api.post(world.facilitator, f"/sessions/{session_id}/end")
    page = await api.request(None, "GET", f"/j/{world.tokens[0]}")
    assert f'data-feedback-session="{session_id}"' in page
    api.clock.advance(DAY + 60)
    late = await api.request(None, "POST", f"/j/{world.tokens[0]}/feedback", {"session_id": session_id, "rating": 5},
                             expect=400)
    assert late["error"]["code"] == "bad_request"
    assert f'data-feedback-session="{session_id}"' not in await api.request(None, "GET", f"/j/{world.tokens[0]}")


async def test_measures_alerts_and_feedback_follow_export_and_retention(api: Api) -> None:
    from datetime import UTC, timedelta

    from server.backup import export_lines, purge

    world = await api.world(patients=1, questionnaires=[{"instrument": "PHQ-9", "every": "session"}])
    session_id = await api.open(world)
    sock, due = await _checked_in(api, world)
    await sock.send({"type": "questionnaire_response", "id": due["PHQ-9"]["id"],
                     "answers": answers_summing_to(PHQ9, 5, item9=1)})
    await sock.until("questionnaire_saved")
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"all": True})
    await sock.until("admitted")
    await api.post(world.facilitator, f"/sessions/{session_id}/end")
    later = await api.patient(world.tokens[0])
    await later.send({"type": "feedback", "session_id": session_id, "rating": 5})
    await later.until("feedback_saved")

    day = datetime.fromtimestamp(api.clock.now(), tz=UTC).date()
    lines = [line async for line in export_lines(api.redis, day - timedelta(days=1), day)]
    kinds = [line["kind"] for line in lines]
    # The answered PHQ-9, and the next session's, offered at the check-in after this one ended.
    assert kinds.count("measure") == 2 and kinds.count("safety_alert") == 1 and kinds.count("feedback") == 1
    measures = [line["record"] for line in lines if line["kind"] == "measure"]
    answered = next(m for m in measures if m["status"] == "answered")
    assert answered["score"] == 5 and answered["answers"]["9"] == 1
    assert {m["status"] for m in measures} == {"answered", "open"}

    api.clock.advance(11 * 366 * DAY)
    counts = await purge(api.redis, api.clock, 10, dry_run=False)
    assert (counts["measures"], counts["safety_alerts"], counts["feedback"]) == (2, 1, 1)
    leftovers = [k for k in await api.redis.keys("*") if k.startswith(("pl:measure", "pl:alert", "pl:feedback"))
                 or ":measures" in k or ":alerts" in k or k.endswith(":feedback") or k.startswith("pl:alerts:")]
    assert leftovers == []


async def test_trends_and_flags_on_the_patient_page_and_feedback_averages_for_admins(api: Api) -> None:
    world = await api.world(patients=1, questionnaires=[{"instrument": "PHQ-9", "every": "session"}])
    other = await api.staff("robin", Role.FACILITATOR)
    pid = world.patients[0]["id"]
    for total in (4, 11):  # two sessions: worse by 7 points
        session_id = await api.open(world)
        sock, due = await _checked_in(api, world)
        await sock.send({"type": "questionnaire_response", "id": due["PHQ-9"]["id"],
                         "answers": answers_summing_to(PHQ9, total)})
        await sock.until("questionnaire_saved")
        await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"all": True})
        await sock.until("admitted")
        await api.post(world.facilitator, f"/sessions/{session_id}/end")
        api.clock.advance(60)
    later = await api.patient(world.tokens[0])
    await later.send({"type": "feedback", "session_id": session_id, "rating": 4, "comment": "Helpful <b>today</b>"})
    await later.until("feedback_saved")

    page = await api.request(world.facilitator, "GET", f"/patients/{pid}")
    assert "<svg" in page and "PHQ-9 scores over time, 2 answers: first 4 (minimal), latest 11 (moderate)" in page
    assert "PHQ-9 worse by 7 points than the previous (4 → 11)" in page
    refused = await api.request(other, "GET", f"/patients/{pid}", expect=403)
    assert "not available to you" in refused and "PHQ-9" not in refused
    attendance = await api.request(world.admin, "GET", "/admin/attendance")
    assert "PHQ-9 worse by 7 points" in attendance
    console = await api.request(world.facilitator, "GET", "/console")
    assert f'href="/patients/{pid}"' in console and 'id="safety-alerts"' in console

    feedback = await api.request(world.admin, "GET", "/admin/feedback")
    assert "Evening DBT" in feedback and "4.0" in feedback and "Dana W." in feedback
    assert "Helpful &lt;b&gt;today&lt;/b&gt;" in feedback  # escaped
    assert (await api.request(world.facilitator, "GET", "/admin/feedback", expect=403))


def test_a_patient_who_stops_answering_is_flagged() -> None:
    from server.measures.store import Questionnaire
    from server.measures.trends import flags

    def q(n: int, status: str) -> Questionnaire:
        return Questionnaire(f"qst_{n}", "pat", "grp", "PHQ-9", n * DAY * 1000, None, status,
                             None if status == "open" else n * DAY * 1000 + 60_000)

    now = 30 * DAY * 1000
    assert flags([q(1, "answered"), q(8, "answered")], now) == []
    assert [f.kind for f in flags([q(1, "answered"), q(8, "skipped"), q(15, "skipped")], now)] == ["not_answering"]
    assert [f.kind for f in flags([q(1, "answered"), q(8, "skipped"), q(15, "open")], now)] == ["not_answering"]
    # An offer still open (answerable) does not count yet.
    assert flags([q(1, "answered"), q(8, "skipped"), q(15, "open")], 15 * DAY * 1000 + 60_000) == []


def test_falling_session_ratings_join_the_flags() -> None:
    from server.measures.trends import flags

    assert flags([], 0, [5, 4, 4]) == []
    assert flags([], 0, [3, 5, 4, 2])[0].text == "session ratings falling (5 → 4 → 2)"
    assert flags([], 0, [5, 4]) == []


async def test_a_safety_alert_wakes_the_delivery_processes_at_once(
    aiohttp_client: Any, settings: Settings, redis: Redis, clock: ManualClock
) -> None:
    """With delivery in a process of its own (the default), the alert's event is announced over
    Redis as soon as it is queued, so it goes out now rather than at the next poll."""
    from server.billing.wake import listen

    configured = settings.replace(delivery="process", heartbeat_timeout_seconds=6 * 3600,
                                  staff_idle_timeout_seconds=30 * DAY, staff_session_max_seconds=30 * DAY)
    api = Api(await aiohttp_client(create_app(configured, redis=redis, clock=clock)), redis, clock, configured)
    world = await api.world(patients=1, questionnaires=[{"instrument": "PHQ-9", "every": "session"}])
    await api.open(world)
    sock, due = await _checked_in(api, world)
    woken, subscribed = asyncio.Event(), asyncio.Event()
    listening = asyncio.create_task(listen(redis, {"alerts": woken}, subscribed))
    try:
        await asyncio.wait_for(subscribed.wait(), 10)
        await sock.send({"type": "questionnaire_response", "id": due["PHQ-9"]["id"],
                         "answers": answers_summing_to(PHQ9, 8, item9=2)})
        await asyncio.wait_for(woken.wait(), 10)
        assert await redis.zcard(keys.outbox_by_status("alerts", "pending")) == 1  # waiting for that process
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
