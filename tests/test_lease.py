"""A process that stalls past its lease on a group (a long pause, a starved CPU): it keeps the
group when no other process took it meanwhile, and lets its sockets go when one did."""

from __future__ import annotations

from server.services import SERVICES
from server.store import keys
from tests.helpers import Api


async def test_a_lease_that_lapsed_while_nobody_took_the_group_is_taken_back_and_nobody_notices(
    api: Api
) -> None:
    world = await api.world(patients=1)
    session_id = await api.open(world)
    patient = await api.patient(world.tokens[0])
    cluster = api.client.app[SERVICES].lobby.cluster
    assert cluster is not None
    group_id = world.group["id"]
    assert await api.redis.get(keys.group_owner(group_id)) == cluster.node_id

    await api.redis.delete(keys.group_owner(group_id))  # the lease lapsed while the process stalled
    await cluster.tick()

    assert await api.redis.get(keys.group_owner(group_id)) == cluster.node_id
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [world.patients[0]["id"]]})
    await patient.until("admitted")  # the same socket, the same session: nothing happened to them
    events = await api.events(world.facilitator, session_id)
    assert [e["type"] for e in events if e.get("patient_id") == world.patients[0]["id"]][:3] == [
        "waiting", "admitted", "joined"]


async def test_a_lease_another_process_took_in_the_gap_lets_the_sockets_go_to_it(api: Api) -> None:
    world = await api.world(patients=1)
    await api.open(world)
    patient = await api.patient(world.tokens[0])
    cluster = api.client.app[SERVICES].lobby.cluster
    assert cluster is not None
    group_id = world.group["id"]

    await api.redis.set(keys.group_owner(group_id), "node_another", px=60_000)  # taken in the gap
    await cluster.tick()

    assert await patient.closed() == 1012  # service restart: the client reconnects, to the new host
    assert group_id not in cluster.owned
