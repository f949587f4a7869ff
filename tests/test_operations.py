"""Health, metrics, OpenAPI, Redis outages, logs and headers: what an operator relies on."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from server.app import create_app
from server.audit import AuditLog
from server.clock import ManualClock
from server.settings import Settings
from server.store.connection import connect
from tests.conftest import RedisServer
from tests.helpers import Api, metric_samples, scrape


async def test_healthz_answers_ok_with_redis(api: Api) -> None:
    resp = await api.client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


async def test_metrics_count_waiting_in_session_and_errors(api: Api) -> None:
    world = await api.world(patients=2)
    session_id = await api.open(world)
    first = await api.patient(world.tokens[0])
    await api.patient(world.tokens[1])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [world.patients[0]["id"]]})
    await first.until("admitted")
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": ["pat_x"]}, expect=409)
    resp = await api.client.get("/metrics")
    assert resp.status == 200 and resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    metrics = metric_samples(await resp.text())
    assert metrics["porchlight_patients_waiting"] == 1
    assert metrics["porchlight_patients_in_session"] == 1
    assert metrics["porchlight_sessions_open"] == 1
    assert metrics['porchlight_errors_total{code="not_waiting"}'] == 1
    assert metrics['porchlight_ws_messages_total{direction="in"}'] >= 2
    assert metrics['porchlight_ws_messages_total{direction="out"}'] >= 3
    assert metrics['porchlight_http_responses_total{status="2xx"}'] >= 1


async def test_metrics_have_latency_histograms_process_metrics_and_the_build(api: Api) -> None:
    world = await api.world(patients=1)
    session_id = await api.open(world)
    patient = await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [world.patients[0]["id"]]})
    await patient.until("admitted")
    metrics = await scrape(api.client)
    # One successful admission, in every bucket up to +Inf (cumulative).
    assert metrics['porchlight_admission_duration_seconds_bucket{le="+Inf"}'] == 1
    assert metrics["porchlight_admission_duration_seconds_count"] == 1
    assert metrics['porchlight_admission_duration_seconds_bucket{le="5.0"}'] == 1
    # HTTP latency by route name: ids and join tokens never become label values.
    assert metrics['porchlight_http_request_duration_seconds_count{route="sessions.admit"}'] == 1
    assert metrics['porchlight_http_request_duration_seconds_bucket{le="+Inf",route="sessions.admit"}'] == 1
    routes = {key for key in metrics if key.startswith("porchlight_http_request_duration_seconds_count")}
    assert not any("/" in key for key in routes), routes
    assert not any('route="ws"' in key for key in routes)  # a WebSocket's lifetime is not a latency
    assert metrics["process_resident_memory_bytes"] > 0
    [build] = [key for key in metrics if key.startswith("porchlight_build_info{")]
    assert metrics[build] == 1 and 'version="' in build


async def test_openapi_lists_exactly_the_real_routes(api: Api) -> None:
    resp = await api.client.get("/api/v1/openapi.json")
    document = await resp.json()
    assert document["openapi"].startswith("3.")
    documented = {(m.upper(), path) for path, ops in document["paths"].items() for m in ops}
    routed = set()
    for route in api.client.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method in ("HEAD", "*") or path is None or path.startswith("/static"):
            continue
        routed.add((route.method, path))
    assert documented == routed
    for (method, path) in documented:
        op = document["paths"][path][method.lower()]
        assert op["summary"] and op["responses"]


async def test_openapi_describes_ids_parameters_media_types_and_errors(api: Api) -> None:
    document = await (await api.client.get("/api/v1/openapi.json")).json()
    ops = {(m.upper(), path): op for path, item in document["paths"].items() for m, op in item.items()}
    names = {route.name for route in api.client.app.router.routes() if route.name}
    ids = [op["operationId"] for op in ops.values()]
    assert len(ids) == len(set(ids)) == len(ops)
    assert {i.replace("_", ".") for i in ids} <= {n.replace("_", ".") for n in names}

    def params(method: str, path: str) -> dict[tuple[str, str], dict[str, Any]]:
        out = {}
        for p in ops[(method, path)].get("parameters", []):
            if "$ref" in p:
                p = document["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]]
            out[(p["in"], p["name"])] = p
        return out

    for (method, path), op in ops.items():
        declared = params(method, path)
        for name in re.findall(r"{(\w+)}", path):  # every path parameter, typed
            assert declared[("path", name)]["schema"]["type"] == "string"
        # Staff changes carry the CSRF token; sign-in, a patient's feedback and a reminder's unsubscribe link
        # (the link is the credential; no session) cannot.
        state_changing = method in {"POST", "PUT", "PATCH", "DELETE"} and path not in (
            "/api/v1/login", "/j/{token}/feedback", "/unsubscribe/{token}")
        assert (("header", "X-CSRF-Token") in declared) == state_changing, (method, path)
        if state_changing:
            assert {"401", "403", "503"} <= set(op["responses"]), (method, path)
        if "requestBody" in op:  # every body has a schema with its required fields, and can be too large
            body = op["requestBody"]["content"]["application/json"]["schema"]
            assert "required" in body or "oneOf" in body, (method, path)
            assert {"400", "413"} <= set(op["responses"]), (method, path)
    for path in ("/api/v1/attendance", "/api/v1/attendance.csv"):
        assert {("query", q) for q in ("from", "to", "group_id", "patient_id")} <= set(params("GET", path))
    assert params("GET", "/api/v1/attendance")[("query", "from")]["schema"]["format"] == "date"
    assert params("GET", "/api/v1/billing/deliveries")[("query", "status")]["schema"]["enum"] == [
        "pending", "delivered", "failed"]
    assert {"429", "401"} <= set(ops[("POST", "/api/v1/login")]["responses"])
    assert "409" in ops[("POST", "/api/v1/groups/{group_id}/sessions")]["responses"]

    def media(method: str, path: str) -> set[str]:
        return set(ops[(method, path)]["responses"]["200"]["content"])

    assert media("GET", "/api/v1/attendance.csv") == {"text/csv"}
    assert media("GET", "/j/{token}/calendar.ics") == {"text/calendar"}
    assert media("GET", "/j/{token}") == {"text/html"}
    assert media("GET", "/metrics") == {"text/plain; version=0.0.4"}
    assert media("GET", "/api/v1/groups") == {"application/json"}
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["required"] == ["code", "message"]
    assert "request_id" in error["properties"]["error"]["properties"]


async def test_a_method_the_route_lacks_is_405_with_allow(api: Api) -> None:
    world = await api.world(patients=0)
    answer = await api.client.delete(f"/api/v1/groups/{world.group['id']}")
    assert answer.status == 405
    assert set(answer.headers["Allow"].split(",")) >= {"GET", "PATCH"}
    assert (await answer.json())["error"]["code"] == "method_not_allowed"


async def test_security_headers_and_no_referrer_on_the_join_page(api: Api) -> None:
    world = await api.world(patients=1)
    resp = await api.client.get(f"/j/{world.tokens[0]}")
    assert resp.status == 200
    html = await resp.text()
    assert "Where are you joining from?" in html and "Check in" in html and "Patient 0" in html
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert (await api.client.get("/j/forged.token")).status == 404


async def test_brand_text_is_escaped_on_the_join_page(api: Api) -> None:
    world = await api.world(patients=1, brand={"name": "<script>alert(1)</script>", "welcome_text": "a & b"})
    html = await (await api.client.get(f"/j/{world.tokens[0]}")).text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html and "a &amp; b" in html


async def test_group_brand_change_reaches_the_waiting_room(api: Api) -> None:
    world = await api.world(patients=1)
    await api.open(world)
    await api.request(world.admin, "PATCH", f"/api/v1/groups/{world.group['id']}",
                      {"brand": {"name": "Riverbend Clinic", "primary_color": "#112233"}})
    patient = await api.patient(world.tokens[0])
    brand = patient.seen[-1]["brand"]
    assert brand["name"] == "Riverbend Clinic" and brand["primary_color"] == "#112233"
    assert brand["accent_color"]  # defaults fill what the group did not set


async def test_redis_outage_gives_503_and_the_server_recovers(
    aiohttp_client: Any, settings: Settings, tmp_path: Path
) -> None:
    own = RedisServer(tmp_path)
    own.start()
    redis = connect(own.url)
    try:
        api = Api(await aiohttp_client(create_app(settings, redis=redis, clock=ManualClock())), redis,
                  ManualClock(), settings)
        world = await api.world(patients=1)
        before = await redis.dbsize()
        own.stop()

        health = await api.client.get("/healthz")
        assert health.status == 503
        down = await api.post(world.admin, "/patients", {"display_name": "X"}, expect=503)
        assert down["error"]["code"] == "unavailable"
        sock = await api.ws()
        await sock.send({"type": "hello", "token": world.tokens[0], "location": "home"})
        assert (await sock.until("error"))["code"] == "unavailable"

        own.start()  # the same port: the client reconnects by itself
        await _until_healthy(api.client)
        # The AOF-less test server lost its data; a real deployment keeps it. Recovery is what is tested here.
        assert before > 0
        assert (await api.client.get("/healthz")).status == 200
    finally:
        own.stop()
        await redis.aclose()


async def _until_healthy(client: TestClient) -> None:
    async with asyncio.timeout(10):
        while (await client.get("/healthz")).status != 200:
            await asyncio.sleep(0.05)


async def test_audit_log_is_hash_chained_and_tampering_is_found(api: Api) -> None:
    world = await api.world(patients=1)
    session_id = await api.open(world)
    patient = await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [world.patients[0]["id"]]})
    await patient.until("admitted")
    audit = AuditLog(api.redis, api.clock)
    entries = await audit.entries()
    actions = [e["action"] for e in entries]
    assert {"login.success", "group.create", "patient.create", "enrollment.create", "session.open",
            "patient.admit"} <= set(actions)
    assert entries[0]["prev"] == "0" * 64
    assert all(b["prev"] == a["hash"] for a, b in zip(entries, entries[1:], strict=False))
    assert (await audit.verify()).ok

    import json

    from server.store import keys

    tampered = dict(entries[3])
    tampered["actor"] = "someone-else"
    await api.redis.lset(keys.audit_log(), 3, json.dumps(tampered))
    result = await audit.verify()
    assert not result.ok and "entry 4" in (result.problem or "")

    await api.redis.lset(keys.audit_log(), 3, json.dumps(entries[3]))
    assert (await audit.verify()).ok
    await api.redis.rpop(keys.audit_log())
    assert not (await audit.verify()).ok  # the last entry removed: the head no longer matches


def test_the_wheel_lists_every_server_package() -> None:
    """pyproject.toml names packages one by one; a new one left out would be missing when installed."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "server").rglob("__init__.py")}
    assert found - listed == set()
