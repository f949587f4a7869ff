"""`clock.iso` writes every time as datetime's strftime does, including at the ends of its range."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from server.clock import iso

FIRST_MS, LAST_MS = -62_135_596_800_000, 253_402_300_799_999  # 0001-01-01 .. 9999-12-31, whole


def by_datetime(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@given(st.integers(FIRST_MS, LAST_MS) | st.sampled_from([FIRST_MS, LAST_MS, 0, -1, 999, 1000]))
def test_iso_is_the_datetime_text(ms: int) -> None:
    assert iso(ms) == by_datetime(ms)


@given(st.integers(LAST_MS + 1, 10**17) | st.integers(-(10**17), FIRST_MS - 1))
def test_out_of_range_fails_as_before(ms: int) -> None:
    try:
        by_datetime(ms)
    except (ValueError, OverflowError, OSError) as expected:
        try:
            iso(ms)
        except type(expected):
            return
        raise AssertionError("iso did not fail") from None
    assert iso(ms) == by_datetime(ms)
