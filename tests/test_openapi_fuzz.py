"""Requests generated from /api/v1/openapi.json by schemathesis, sent as a signed-in admin (cookie
and X-CSRF-Token) to the real app on an ephemeral port: no answer is a 5xx, every answer conforms
to the document (status, media type, body schema), and a refused request (4xx) changes nothing in
Redis. Bounded: a few examples per operation, derandomized, so a run is repeatable and short."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import redis as sync_redis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from server.api.openapi import openapi_document
from server.auth.sessions import COOKIE_NAME
from tests.conftest import RedisServer
from tests.helpers import Api

EXAMPLES_PER_OPERATION = 10
# Not fuzzed: the WebSocket upgrade (its own tests), signing in (rate limits, tested in
# test_staff_auth) and out (it would end the session the fuzzing runs in).
SKIPPED = {("GET", "/api/v1/ws"), ("POST", "/api/v1/login"), ("POST", "/api/v1/logout")}
# What records attempts rather than state: audit entries, sign-in counters, staff sessions.
RECORDS_ATTEMPTS = ("pl:audit", "pl:login", "pl:staffsession", "pl:node")  # and process heartbeats
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _snapshot(client: sync_redis.Redis) -> dict[str, Any]:
    """Everything in Redis except what records attempts (as tests/test_bad_input.py's)."""
    out: dict[str, Any] = {}
    for key in sorted(client.keys("*")):
        if key.startswith(RECORDS_ATTEMPTS) or key.endswith(":staffsessions"):
            continue
        kind = client.type(key)
        if kind == "string":
            out[key] = client.get(key)
        elif kind == "hash":
            out[key] = client.hgetall(key)
        elif kind == "list":
            out[key] = client.lrange(key, 0, -1)
        elif kind == "zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        else:
            out[key] = client.smembers(key)
    return out


def _fuzz(document: dict[str, Any], base_url: str, redis_url: str, headers: dict[str, str],
          cookies: dict[str, str], real_ids: dict[str, str]) -> tuple[Counter[int], list[str]]:
    """Runs in a thread (schemathesis calls are blocking) while the app serves on the test's loop."""
    schema = schemathesis.openapi.from_dict(document)
    store = sync_redis.Redis.from_url(redis_url, decode_responses=True)
    http = requests.Session()
    statuses: Counter[int] = Counter()
    failures: list[str] = []

    def send(case: Case) -> None:
        before = _snapshot(store)
        response = case.call(base_url=base_url, session=http, timeout=10)
        statuses[response.status_code] += 1
        label = f"{case.method} {case.formatted_path} {case.query or ''} {case.body!r:.200}"
        assert response.status_code < 500, f"{label} -> {response.status_code} {response.text[:300]}"
        if 400 <= response.status_code < 500:
            assert _snapshot(store) == before, f"{label} -> {response.status_code} changed Redis"
        case.validate_response(response, checks=CHECKS)

    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        fixed = {"headers": headers, "cookies": cookies}
        names = [p.name for p in operation.path_parameters]
        strategies = [operation.as_strategy(GenerationMode.POSITIVE, **fixed)]
        if names and all(n in real_ids for n in names):  # also aim at things that exist
            real = {n: real_ids[n] for n in names}
            strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real, **fixed))
            if operation.body or operation.query:
                strategies.append(operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=real, **fixed))
        elif operation.body or operation.query:
            strategies.append(operation.as_strategy(GenerationMode.NEGATIVE, **fixed))

        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=st.one_of(strategies))
        def check(case: Case) -> None:
            send(case)

        try:
            check()
        except (AssertionError, FailureGroup) as exc:  # every operation's first failure, reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    http.close()
    store.close()
    return statuses, failures


async def test_generated_requests_get_no_5xx_conform_and_refusals_change_nothing(
    api: Api, redis_server: RedisServer
) -> None:
    world = await api.world(patients=2)
    session_id = await api.open(world)
    document = openapi_document(api.client.app)
    real_ids = {"group_id": world.group["id"], "session_id": session_id, "patient_id": world.patients[0]["id"],
                "enrollment_id": world.patients[1]["enrollment_id"], "token": world.tokens[0]}
    base_url = str(api.client.make_url("")).rstrip("/")
    started = time.monotonic()
    statuses, failures = await asyncio.to_thread(
        _fuzz, document, base_url, redis_server.url, {"X-CSRF-Token": world.admin.csrf},
        {COOKIE_NAME: world.admin.cookie}, real_ids)
    elapsed = time.monotonic() - started
    sent = sum(statuses.values())
    assert not failures, f"{len(failures)} operations failed ({sent} requests):\n" + "\n\n".join(failures)
    print(f"schemathesis: {sent} requests in {elapsed:.1f} s: {sorted(statuses.items())}")
    # Signed in and past CSRF throughout (an admin may do everything), and some requests succeeded.
    assert not statuses[401] and not statuses[403], statuses
    assert sum(n for status, n in statuses.items() if status < 300) >= 50, statuses
