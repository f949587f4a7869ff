"""The serving process's collector policy: full passes skip long-lived objects, and a cycle
that becomes garbage among them is still freed once the frozen objects are given back."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from server.collector import CollectorPolicy, paused


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


class Later:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def policy() -> Iterator[tuple[CollectorPolicy, Later]]:
    clock = Later()
    policy = CollectorPolicy(refresh_seconds=600, young_threshold=5000, monotonic=clock)
    before = gc.get_threshold()
    policy.install()
    try:
        yield policy, clock
    finally:
        policy.uninstall()
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0


def cycle() -> tuple[Node, weakref.ref[Node]]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(b)


def test_start_up_objects_are_frozen_and_the_young_generation_is_larger(
    policy: tuple[CollectorPolicy, Later]
) -> None:
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == 5000


def test_survivors_of_a_full_pass_are_frozen_and_skipped_by_the_next(policy: tuple[CollectorPolicy, Later]) -> None:
    kept, _ = cycle()
    frozen = gc.get_freeze_count()
    gc.collect()
    assert gc.get_freeze_count() > frozen
    assert not any(o is kept for o in gc.get_objects(generation=2))  # not scanned again
    assert policy[0].full_passes == 1


def test_a_cycle_that_dies_among_frozen_objects_is_freed_after_the_refresh(
    policy: tuple[CollectorPolicy, Later]
) -> None:
    collector, clock = policy
    head, alive = cycle()
    gc.collect()  # long-lived now: frozen
    del head
    gc.collect()
    assert alive() is not None  # frozen garbage waits for the refresh
    clock.now += 600
    gc.collect()  # this pass gives the frozen objects back...
    gc.collect()  # ...and the next one scans them
    assert alive() is None
    assert collector.full_passes == 4
    gc.collect()
    assert gc.get_freeze_count() > 0  # and survivors are frozen again


def test_a_paused_step_triggers_no_collection_and_leaves_the_collector_as_it_found_it() -> None:
    passes: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    gc.callbacks.append(count)
    try:
        with paused():
            kept = [[i] for i in range(50_000)]  # far past the young generation's threshold
            during = len(passes)
            assert not gc.isenabled()
        assert during == 0 and gc.isenabled() and len(kept) == 50_000
        gc.disable()
        with paused():
            pass
        assert not gc.isenabled()  # one that was off stays off
    finally:
        gc.enable()
        gc.callbacks.remove(count)
