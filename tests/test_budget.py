"""Per-viewer bandwidth without peers (server/media/budget.py): measured rates, REMB reports
summed into an estimate, and the layers that fit it, audio paid for first."""

from __future__ import annotations

import pytest

from server.media.budget import (
    HEADROOM,
    REPORT_TIMEOUT,
    UPGRADE,
    Bandwidth,
    Rate,
    Track,
    allocate,
    video_budget,
)

# Three simulcast layers (SSRC, measured bps), smallest first.
SPEAKER = Track("speaker", ((11, 100_000), (12, 300_000), (13, 900_000)), want=2, speaker=True, area=640 * 360)
ANN = Track("ann", ((21, 100_000), (22, 300_000), (23, 900_000)), want=1, area=320 * 180)
BOB = Track("bob", ((31, 100_000), (32, 300_000), (33, 900_000)), want=1, area=160 * 90)
EVERYONE = [BOB, SPEAKER, ANN]  # in any order


def test_without_a_cap_every_tile_gets_the_layer_it_wants() -> None:
    assert allocate(EVERYONE, None) == {"speaker": 13, "ann": 22, "bob": 32}
    assert allocate(EVERYONE, 10_000_000) == {"speaker": 13, "ann": 22, "bob": 32}


def test_as_the_budget_falls_the_others_lose_layers_then_their_video_then_the_speaker_loses_layers() -> None:
    # The speaker's top layer is being sent; one not sent yet must fit with a margin (UPGRADE).
    steps = [
        (1_600_000, {"speaker": 13, "ann": 22, "bob": 32}),  # 900 + 300 + 300 kbps
        (1_400_000, {"speaker": 13, "ann": 22, "bob": 31}),  # the smaller tile drops a layer first
        (1_200_000, {"speaker": 13, "ann": 21, "bob": 31}),  # then the others are at their lowest
        (1_100_000, {"speaker": 13, "ann": 21, "bob": None}),  # then the smallest tile pauses
        (1_000_000, {"speaker": 13, "ann": None, "bob": None}),  # then every other tile
        (400_000, {"speaker": 12, "ann": None, "bob": None}),  # only then the speaker's layers
        (200_000, {"speaker": 11, "ann": None, "bob": None}),
        (50_000, {"speaker": 11, "ann": None, "bob": None}),  # the speaker's smallest layer goes out regardless
        (0, {"speaker": 11, "ann": None, "bob": None}),
    ]
    speaking = Track("speaker", SPEAKER.layers, 2, speaker=True, area=SPEAKER.area, current=13)
    for budget, expected in steps:
        assert allocate([BOB, speaking, ANN], budget) == expected, budget


def test_a_layer_being_sent_keeps_its_place_at_the_edge_a_new_one_needs_a_margin() -> None:
    speaker_sending_high = Track("speaker", SPEAKER.layers, 2, speaker=True, current=13)
    speaker_sending_mid = Track("speaker", SPEAKER.layers, 2, speaker=True, current=12)
    assert allocate([speaker_sending_high], 900_000)["speaker"] == 13  # fits exactly: stays
    assert allocate([speaker_sending_mid], 900_000)["speaker"] == 12  # would fit exactly: no upgrade yet
    assert allocate([speaker_sending_mid], 900_000 * UPGRADE)["speaker"] == 13


def test_data_saver_sends_only_the_speakers_smallest_layer() -> None:
    assert allocate(EVERYONE, None, data_saver=True) == {"speaker": 11, "ann": None, "bob": None}
    assert allocate(EVERYONE, 50_000, data_saver=True) == {"speaker": 11, "ann": None, "bob": None}
    nobody_speaks = [ANN, BOB]
    assert allocate(nobody_speaks, None, data_saver=True) == {"ann": None, "bob": None}


def test_a_track_with_one_layer_is_sent_or_paused() -> None:
    single = Track("carol", ((41, 400_000),), want=0, area=100)
    assert allocate([single], 500_000) == {"carol": 41}
    assert allocate([single], 300_000) == {"carol": None}
    assert allocate([Track("carol", single.layers, 0, speaker=True)], 300_000) == {"carol": 41}
    assert allocate([Track("dan", (), want=0)], None) == {"dan": None}  # nothing arrived yet


def test_a_layer_not_measured_yet_is_not_free() -> None:
    fresh = Track("eve", ((51, 0.0),), want=0)
    assert allocate([fresh], 10_000) == {"eve": None}
    assert allocate([fresh], 40_000) == {"eve": 51}


def test_audio_is_paid_for_before_video() -> None:
    assert video_budget(None, 100_000) is None
    assert video_budget(1_000_000, 200_000) == pytest.approx(1_000_000 * HEADROOM - 200_000)
    assert video_budget(100_000, 200_000) == 0.0  # audio alone fills the link: no video at all


def test_remb_reports_replace_those_they_overlap_and_expire() -> None:
    link = Bandwidth()
    assert link.estimate(0.0) is None  # no report: no cap
    link.report(300_000, [1], 0.0)  # aiortc: one report per stream
    link.report(200_000, [2], 0.1)
    assert link.estimate(0.2) == 500_000
    link.report(250_000, [1], 0.3)
    assert link.estimate(0.4) == 450_000
    link.report(800_000, [1, 2, 3], 0.5)  # a browser: one report for all its streams
    assert link.estimate(0.6) == 800_000
    assert link.estimate(0.5 + REPORT_TIMEOUT) is None  # a viewer that stopped reporting is not capped
    assert link.reports == []


def test_a_rate_is_measured_from_the_bytes_between_ticks_and_smoothed() -> None:
    rate = Rate()
    assert rate.sample(0.0) == 0.0
    rate.octets += 12_500  # 100 kbit in 0.25 s
    assert rate.sample(0.25) == pytest.approx(400_000)
    rate.octets += 0
    assert 0 < rate.sample(0.5) < 400_000  # a silent tick lowers it, smoothly
