"""The adaptation decisions (server/media/adapt.py) without peers: a view frame's tiles, the
simulcast layer that fits a tile, and the active speaker with hysteresis."""

from __future__ import annotations

import pytest

from server.media.adapt import LAYER_TIMEOUT, TAKE_OVER, Layer, SpeakerPicker, choose_layer, loudness, parse_view
from server.media.packets import vp8_keyframe_size


def test_a_view_names_streams_with_their_size_in_device_pixels() -> None:
    assert parse_view([]) == {}
    assert parse_view([{"id": "pat_1", "width": 640, "height": 360},
                       {"id": "usr_2:screen", "width": 1280, "height": 720}]) == {
        "pat_1": (640, 360), "usr_2:screen": (1280, 720)}


@pytest.mark.parametrize("tiles", [
    None, "pat_1", {"pat_1": [1, 2]}, [1], [{"id": "pat_1", "width": 1}], [{"id": 5, "width": 1, "height": 1}],
    [{"id": "p", "width": 1.5, "height": 1}], [{"id": "p", "width": False, "height": 1}],
    [{"id": "p", "width": 1, "height": 20_000}], [{"id": "p", "width": 1, "height": 1, "extra": 1}],
    [{"id": "p" * 81, "width": 1, "height": 1}], [{"id": "p", "width": 1, "height": 1}] * 65,
])
def test_a_bad_view_says_what_is_wrong(tiles: object) -> None:
    with pytest.raises(ValueError):
        parse_view(tiles)


LOW, MID, HIGH = Layer(1, "q", 0, 320, 180, 10.0), Layer(2, "h", 1, 640, 360, 10.0), Layer(3, "f", 2, 1280, 720, 10.0)


def test_the_smallest_layer_that_fits_the_tile_is_chosen() -> None:
    layers = [HIGH, LOW, MID]  # in any order
    assert choose_layer(layers, (160, 90), 10.0) is LOW
    assert choose_layer(layers, (360, 200), 10.0) is LOW  # 320 is within 85% of 360: sharp enough
    assert choose_layer(layers, (400, 225), 10.0) is MID
    assert choose_layer(layers, (1000, 560), 10.0) is HIGH
    assert choose_layer(layers, (3000, 2000), 10.0) is HIGH  # nothing bigger: the best there is
    assert choose_layer(layers, None, 10.0) is HIGH  # no size said: the best


def test_a_layer_the_browser_stopped_sending_is_not_chosen() -> None:
    stopped = Layer(3, "f", 2, 1280, 720, 10.0 - LAYER_TIMEOUT - 0.1)
    assert choose_layer([LOW, MID, stopped], (1000, 560), 10.0) is MID
    assert choose_layer([], (100, 100), 10.0) is None


def test_layers_without_a_known_size_go_by_their_place_in_the_list() -> None:
    q, h, f = Layer(7, "q", 0, last_packet=10.0), Layer(8, "h", 1, last_packet=10.0), Layer(9, "f", 2, last_packet=10.0)
    assert choose_layer([f, q, h], (200, 150), 10.0) is q
    assert choose_layer([f, q, h], (600, 400), 10.0) is h
    assert choose_layer([f, q, h], (1200, 700), 10.0) is f


def test_a_vp8_keyframe_says_its_size() -> None:
    descriptor = bytes([0x90, 0x80, 0x05])  # X, S; picture id 5
    keyframe = bytes([0x50, 0x2A, 0x00, 0x9D, 0x01, 0x2A]) + (640).to_bytes(2, "little") + (360).to_bytes(2, "little")
    assert vp8_keyframe_size(descriptor + keyframe) == (640, 360)
    assert vp8_keyframe_size(descriptor + bytes([0x51]) + keyframe[1:]) is None  # an interframe
    assert vp8_keyframe_size(bytes([0x80, 0x80, 0x05]) + keyframe) is None  # not a frame's first packet


def test_the_loudest_speaker_takes_over_only_after_a_while() -> None:
    picker = SpeakerPicker()
    assert picker.update({"a": 0.0, "b": 0.0}) is None  # silence: nobody
    results = [picker.update({"a": 90.0, "b": 10.0}) for _ in range(TAKE_OVER)]
    assert results == [None] * (TAKE_OVER - 1) + ["a"]
    assert picker.update({"a": 20.0, "b": 20.0}) is None  # a pause for breath: still a
    assert picker.current == "a"
    assert picker.update({"a": 70.0, "b": 95.0}) is None  # b louder once: not yet
    assert picker.update({"a": 95.0, "b": 70.0}) is None  # a again: b's streak ends
    assert [picker.update({"a": 70.0, "b": 95.0}) for _ in range(TAKE_OVER)][-1] == "b"


def test_loudness_follows_the_audio_level_smoothly() -> None:
    level = 0.0
    for _ in range(50):  # a second of speech at -30 dBov
        level = loudness(level, 30)
    assert 96 < level <= 97
    level = loudness(level, 127)  # one silent packet does not end it
    assert level > 80
