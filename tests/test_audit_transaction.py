"""Each admission decision and its audit entry are one Redis transaction.

Watched from Redis itself (MONITOR): the commands of one MULTI/EXEC block hold the patient's
new state, the attendance events and the audit entry together, so no crash can leave an
admission without its audit entry, or the other way round.
"""

from __future__ import annotations

import asyncio

from server.store import keys
from tests.helpers import Api


async def _transactions(api: Api, action: object) -> list[list[str]]:
    """The MULTI/EXEC blocks Redis executed while `action` ran, each as its commands."""
    seen: list[str] = []
    ready = asyncio.Event()

    async def watch() -> None:
        async with api.redis.monitor() as monitor:
            ready.set()
            async for command in monitor.listen():
                seen.append(command["command"])

    watcher = asyncio.create_task(watch())
    await ready.wait()
    await api.redis.ping()
    await action  # type: ignore[misc]
    marker = "audit-transaction-test-done"
    await api.redis.echo(marker)
    async with asyncio.timeout(5):
        while not any(marker in c for c in seen):
            await asyncio.sleep(0.01)
    watcher.cancel()
    blocks, current = [], None
    for command in seen:
        verb = command.split(" ", 1)[0].upper()
        if verb == "MULTI":
            current = []
        elif verb == "EXEC" and current is not None:
            blocks.append(current)
            current = None
        elif current is not None:
            current.append(command)
    return blocks


async def test_an_admission_and_its_audit_entry_are_one_transaction(api: Api) -> None:
    world = await api.world(patients=2)
    session_id = await api.open(world)
    for token in world.tokens:
        await api.patient(token)
    admit = api.post(world.facilitator, f"/sessions/{session_id}/admit", {"all": True})
    blocks = await _transactions(api, admit)
    events_key, audit_key = keys.session_events(session_id), keys.audit_log()
    admitting = [b for b in blocks if any(events_key in c and "admitted" in c for c in b)]
    assert len(admitting) == 1, blocks
    block = admitting[0]
    assert any(keys.session_patients(session_id) in c for c in block)
    audit = [c for c in block if c.upper().startswith("RPUSH") and audit_key in c]
    assert len(audit) == 1 and audit[0].count("patient.admit") == 2
    # And no admission entry was written anywhere else.
    assert sum(c.count("patient.admit") for b in blocks for c in b) == 2


async def test_declines_removals_and_the_end_are_audited_in_their_own_transaction(api: Api) -> None:
    world = await api.world(patients=2)
    session_id = await api.open(world)
    for token in world.tokens:
        await api.patient(token)
    first, second = (p["id"] for p in world.patients)
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [first]})
    for path, body, action in [
        ("decline", {"patient_id": second}, "patient.decline"),
        ("remove", {"patient_id": first}, "patient.remove"),
        ("end", {}, "session.end"),
    ]:
        blocks = await _transactions(api, api.post(world.facilitator, f"/sessions/{session_id}/{path}", body))
        with_action = [b for b in blocks if any(action in c for c in b)]
        assert len(with_action) == 1, (action, blocks)
        assert any(keys.session_events(session_id) in c or keys.session(session_id) in c for c in with_action[0])
