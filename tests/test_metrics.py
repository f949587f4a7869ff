"""/metrics as an operator alerts on it: exact values, counters that never fall, billing failures."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web

from server.app import create_app
from server.billing import outbox
from server.clock import ManualClock, to_ms
from server.metrics import Metrics, RunningTotal
from server.services import SERVICES
from server.settings import Settings
from server.store.connection import Redis
from tests.helpers import Api, metric_samples, scrape
from tests.test_media import join_all


def test_an_integer_gauge_prints_exactly() -> None:
    metrics = Metrics()
    metrics.gauge("porchlight_test_big", "A large integer.", lambda: 1234567)
    samples = metric_samples(metrics.render().decode())
    assert samples["porchlight_test_big"] == 1234567  # not 1.23457e+06


class Track:
    def __init__(self) -> None:
        self.packets = 0


def test_a_running_total_keeps_the_counts_of_objects_that_are_gone() -> None:
    live = [Track(), Track()]
    total = RunningTotal(lambda: list(live), lambda track: track.packets)
    live[0].packets, live[1].packets = 10, 5
    assert total.read() == 15
    gone = live.pop(0)
    gone.packets = 12  # its last packets, after the read before it went
    live[0].packets = 7
    assert total.read() == 19
    live.append(Track())
    live[1].packets = 1
    assert total.read() == 20


@pytest.mark.timeout(120)
async def test_a_scrape_names_the_process_that_answered_it(api: Api) -> None:
    node = (await api.client.get("/livez")).headers["X-Porchlight-Node"]
    text = await (await api.client.get("/metrics")).text()
    assert f'porchlight_node_info{{node="{node}"}} 1.0' in text.splitlines()


async def test_packet_counters_do_not_fall_after_a_room_closes(api: Api) -> None:
    world = await api.world(patients=1)
    room = await join_all(api, world, patients=1, video=False)
    async with room:
        media = room.media()
        async with asyncio.timeout(20):
            while media.stats()["packets_out"] < 50:
                await asyncio.sleep(0.05)
        during = await scrape(api.client)
        assert during["porchlight_media_packets_in_total"] >= 50
        assert during["porchlight_media_packets_out_total"] >= 50
        await api.post(world.facilitator, f"/sessions/{room.session_id}/end")
        rooms = api.client.app[SERVICES].lobby.media
        assert rooms is not None
        async with asyncio.timeout(5):
            while rooms.rooms:
                await asyncio.sleep(0.02)
    after = await scrape(api.client)
    assert after["porchlight_media_packets_in_total"] >= during["porchlight_media_packets_in_total"]
    assert after["porchlight_media_packets_out_total"] >= during["porchlight_media_packets_out_total"]


async def test_a_failed_delivery_shows_in_the_billing_metrics(
        aiohttp_client: Any, aiohttp_server: Any, settings: Settings, redis: Redis, clock: ManualClock) -> None:
    answers = [500, 410]  # one record is retried; then the endpoint goes away and the other fails

    async def billing_endpoint(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=answers.pop(0) if answers else 200)

    endpoint = web.Application()
    endpoint.router.add_post("/billing", billing_endpoint)
    server = await aiohttp_server(endpoint)
    async with redis.pipeline(transaction=True) as pipe:
        for record_id in ("rec_a", "rec_b"):
            outbox.queue(pipe, record_id, json.dumps({"id": record_id}).encode(), {}, to_ms(clock.now()))
        await pipe.execute()
    queued_at = clock.now()
    configured = settings.replace(billing_webhook_url=str(server.make_url("/billing")),
                                  billing_webhook_secrets=("whsec_test",), billing_retry_base_seconds=3600.0)
    client = await aiohttp_client(create_app(configured, redis=redis, clock=clock))
    async with asyncio.timeout(10):
        while (metrics := await scrape(client))["porchlight_billing_records_failed"] < 1:
            await asyncio.sleep(0.05)
    assert metrics['porchlight_billing_delivery_attempts_total{result="failed"}'] == 1
    assert metrics['porchlight_billing_delivery_attempts_total{result="retry"}'] == 1
    assert metrics["porchlight_billing_records_pending"] == 1
    assert metrics["porchlight_billing_delivered_total"] == 0
    clock.advance(600)  # the retried record stays pending, and its age counts from when it was queued
    metrics = await scrape(client)
    assert metrics["porchlight_billing_oldest_pending_age_seconds"] == pytest.approx(clock.now() - queued_at, abs=1)
