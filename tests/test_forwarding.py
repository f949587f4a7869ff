"""The forwarding decisions (server/media/forwarding.py), packet by packet, without peers.

Each test feeds one viewer track's Rewriter the header facts of a publisher's packets and checks
where they land on the viewer track: (sequence number, timestamp), or None for dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from server.media.forwarding import KEYFRAME_RETRY, Rewriter

A, B = 0x11111111, 0x22222222  # two SSRCs of one publisher's track (before and after a change)
VIDEO_RATE, AUDIO_RATE = 90000, 48000
FRAME = 3000  # 90 kHz ticks per frame at 30 fps


def video(last_seq: int = 1000, last_ts: int = 50_000) -> Rewriter:
    return Rewriter(VIDEO_RATE, True, last_seq, last_ts)


def audio(last_seq: int = 1000, last_ts: int = 50_000) -> Rewriter:
    return Rewriter(AUDIO_RATE, False, last_seq, last_ts)


def send(rw: Rewriter, seq: int, ts: int, ssrc: int = A, key: bool = False, at: float = 0.0) -> tuple[int, int] | None:
    """Place a packet and, if placed, send it successfully (as Forward.send does)."""
    placed = rw.place(seq, ts, ssrc, key, at)
    if placed is not None:
        rw.sent(*placed, at)
    return placed


def test_a_new_video_viewer_gets_nothing_until_a_packet_that_starts_a_keyframe() -> None:
    rw = video()
    assert rw.waiting
    assert [send(rw, seq, 7000 + (seq - 10) // 3 * FRAME) for seq in range(10, 16)] == [None] * 6
    assert send(rw, 16, 13_000, key=True) == (1001, 50_000)  # the first packet is the one after the last
    assert send(rw, 17, 13_000) == (1002, 50_000)
    assert send(rw, 18, 13_000 + FRAME) == (1003, 50_000 + FRAME)
    assert not rw.waiting


def test_audio_starts_at_any_packet() -> None:
    rw = audio()
    assert not rw.waiting  # audio never waits for a keyframe, nor asks for one
    assert not rw.keyframe_due(0.0)
    assert send(rw, 500, 960_000, key=True) == (1001, 50_000)  # every audio packet is a place to start
    assert send(rw, 501, 960_960) == (1002, 50_960)


def test_sequence_numbers_wrap_around_16_bits_in_and_out() -> None:
    rw = audio(last_seq=65533)  # the viewer's numbers wrap two packets after the input's
    out = [send(rw, seq & 0xFFFF, 960 * i, key=True) for i, seq in enumerate(range(65531, 65539))]
    assert [placed[0] for placed in out if placed] == [65534, 65535, 0, 1, 2, 3, 4, 5]


def test_timestamps_wrap_around_32_bits_in_and_out() -> None:
    rw = video(last_ts=0xFFFFFFFF - FRAME)  # out wraps at the third frame; in wraps at the second
    first = 0xFFFFFFFF - FRAME // 2
    out = [send(rw, 100 + i, (first + i * FRAME) & 0xFFFFFFFF, key=(i == 0)) for i in range(4)]
    assert [placed[1] for placed in out if placed] == [0xFFFFFFFF - FRAME, 0xFFFFFFFF, FRAME - 1, 2 * FRAME - 1]


def test_gaps_stay_gaps_and_reordering_stays_reordering() -> None:
    rw = audio()
    assert send(rw, 10, 0, key=True) == (1001, 50_000)
    assert send(rw, 11, 960) == (1002, 50_960)
    assert send(rw, 14, 3840) == (1005, 53_840)  # 12 and 13 lost upstream: the viewer sees them missing
    assert send(rw, 13, 2880) == (1004, 52_880)  # 13 after all, late: it goes where it belongs
    assert send(rw, 15, 4800) == (1006, 54_800)


def test_a_retransmission_goes_out_under_its_first_number_and_does_not_pull_the_stream_back() -> None:
    rw = video()
    for i in range(6):
        send(rw, 200 + i, 9000 + i * FRAME, key=(i == 0), at=1.0)  # 1001..1006
    assert send(rw, 202, 9000 + 2 * FRAME, at=1.25) == (1003, 50_000 + 2 * FRAME)  # NACKed, sent again
    rw.pause()  # the next run starts after the highest number sent, not after the retransmission
    assert send(rw, 900, 123, key=True, at=1.5) == (1007, 50_000 + 5 * FRAME + VIDEO_RATE // 2)


def test_a_late_retransmission_after_a_rebase_is_dropped_and_the_output_never_goes_back() -> None:
    rw = video()
    for i in range(5):
        send(rw, 300 + i, 15_000 + i * FRAME, key=(i == 0), at=1.0)  # 1001..1005
    assert rw.place(305, 15_000 + 5 * FRAME, A, False, 1.0) == (1006, 50_000 + 5 * FRAME)
    rw.lost(1006, 50_000 + 5 * FRAME, 1.0)  # the viewer's socket backed up at 305: resume at a keyframe
    assert rw.waiting
    assert send(rw, 306, 15_000 + 6 * FRAME, at=1.1) is None
    resumed = 50_000 + 5 * FRAME + VIDEO_RATE // 4  # the last one placed, moved on by the time since
    assert send(rw, 310, 15_000 + 8 * FRAME, key=True, at=1.25) == (1007, resumed)
    assert send(rw, 311, 15_000 + 8 * FRAME, at=1.25) == (1008, resumed)
    # Retransmissions of packets from before this run (some sent in the last run, some never):
    for late in (309, 306, 305, 304, 300):
        assert rw.place(late, 15_000, A, False, 1.3) is None
    assert rw.place(307, 15_000, A, True, 1.3) is None  # even one that starts a keyframe
    assert send(rw, 312, 15_000 + 9 * FRAME, at=1.3) == (1009, resumed + FRAME)
    assert rw.last_seq == 1009


def test_a_late_retransmission_across_the_wrap_is_told_from_one_in_this_run() -> None:
    rw = audio()
    for i, seq in enumerate([65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 2]):
        send(rw, seq, 960 * i, key=True)  # the run starts at 65530: 1001..1009
    assert rw.place(65529, 0, A, True, 0.0) is None  # from before the run
    assert rw.place(65532, 960 * 2, A, True, 0.0) == (1003, 50_000 + 960 * 2)  # in the run, before the wrap
    assert send(rw, 3, 960 * 9) == (1010, 50_000 + 960 * 9)


def test_a_new_ssrc_starts_a_new_run_that_carries_on_the_stream() -> None:
    rw = video()
    for i in range(3):
        send(rw, 40_000 + i, 777_000 + i * FRAME, key=(i == 0), at=1.0)  # 1001..1003
    # The publisher's track restarts (new SSRC, new numbering): nothing until its keyframe.
    assert send(rw, 17, 5, ssrc=B, at=1.25) is None
    assert rw.waiting
    assert send(rw, 18, 5, ssrc=B, key=True, at=1.5) == (1004, 50_000 + 2 * FRAME + VIDEO_RATE // 2)
    assert send(rw, 19, 5 + FRAME, ssrc=B, at=1.5) == (1005, 50_000 + 3 * FRAME + VIDEO_RATE // 2)
    assert rw.place(40_003, 777_000 + 3 * FRAME, A, False, 1.5) is None  # the old SSRC, late: no place


def test_audio_follows_a_new_ssrc_at_once_without_a_jump() -> None:
    rw = audio()
    send(rw, 10, 0, key=True, at=0.5)
    send(rw, 11, 960, key=True, at=1.0)
    assert send(rw, 60_000, 4_000_000_000, ssrc=B, key=True, at=1.5) == (1003, 50_960 + AUDIO_RATE // 2)
    assert send(rw, 60_001, 4_000_000_960, ssrc=B, key=True, at=1.5) == (1004, 50_960 + AUDIO_RATE // 2 + 960)


def test_a_long_run_keeps_forwarding_past_half_the_sequence_space() -> None:
    """70,000 packets of one run (23 minutes of audio): every one forwarded, numbers consecutive."""
    rw = audio(last_seq=0)
    previous = 0
    for i in range(70_000):
        placed = send(rw, (40_000 + i) & 0xFFFF, (960 * i) & 0xFFFFFFFF, key=True)
        assert placed is not None and placed[0] == (previous + 1) & 0xFFFF, i
        previous = placed[0]


def test_a_lost_video_packet_stops_the_stream_until_a_keyframe_and_lost_audio_leaves_a_gap() -> None:
    rw = video()
    send(rw, 1, 0, key=True)
    assert rw.place(2, 0, A, False, 0.0) == (1002, 50_000)
    rw.lost(1002, 50_000, 0.0)
    assert send(rw, 3, FRAME) is None
    # 1002 never reached the viewer, but SRTP used its index: the next run goes on after it.
    assert send(rw, 4, 2 * FRAME, key=True) == (1003, 50_000)

    rw = audio()
    send(rw, 1, 0, key=True)
    assert rw.place(2, 960, A, True, 0.0) == (1002, 50_960)
    rw.lost(1002, 50_960, 0.0)
    assert send(rw, 3, 1920, key=True) == (1003, 51_920)  # the viewer sees 1002 missing


def test_a_waiting_video_viewer_asks_for_a_keyframe_at_once_then_every_retry_interval() -> None:
    rw = video()
    assert rw.keyframe_due(10.0)
    rw.asked(10.0)
    assert not rw.keyframe_due(10.0 + KEYFRAME_RETRY / 2)
    assert rw.keyframe_due(10.0 + KEYFRAME_RETRY)
    rw.asked(10.0 + KEYFRAME_RETRY)
    assert rw.unanswered == 2  # requests without a picture: what the room logs when it reaches STUCK_ASKS
    send(rw, 1, 0, key=True, at=10.5)
    assert not rw.keyframe_due(20.0)  # running: no more asking
    assert rw.unanswered == 0


def test_a_reused_viewer_track_carries_on_where_the_old_source_stopped() -> None:
    old = video()
    for i in range(3):
        send(old, 10 + i, i * FRAME, key=(i == 0), at=1.0)
    new = old.continued(VIDEO_RATE)
    assert new.waiting
    assert send(new, 5000, 1, ssrc=B, key=True, at=5.0) == (1004, 50_000 + 2 * FRAME + 4 * VIDEO_RATE)


@dataclass
class Arrival:
    ssrc: int
    seq: int
    key: bool
    late: int  # 0: the next packet; k: the one k before the newest (a retransmission, a reordering)
    fate: str  # "sent", "lost" (socket backed up), "pause" (the viewer track not ready)


arrivals = st.builds(
    Arrival,
    ssrc=st.sampled_from([A, A, A, B]),
    seq=st.integers(1, 3),  # how far the publisher's numbering moves on (2, 3: loss upstream)
    key=st.booleans(),
    late=st.sampled_from([0, 0, 0, 0, 1, 2, 5, 40]),
    fate=st.sampled_from(["sent"] * 8 + ["lost", "pause"]),
)


@settings(max_examples=300, deadline=None)
@given(video_track=st.booleans(), start=st.integers(0, 0xFFFF), steps=st.lists(arrivals, max_size=200))
def test_a_number_on_the_viewer_track_is_never_given_to_two_packets(video_track: bool, start: int,
                                                                     steps: list[Arrival]) -> None:
    """Whatever arrives (losses, retransmissions, reordering, SSRC changes, drops at the viewer),
    each sequence number the viewer receives belongs to one publisher packet."""
    rw = Rewriter(VIDEO_RATE, video_track, 65_500, 0)
    newest = {A: start, B: (start + 30_000) & 0xFFFF}
    owner: dict[int, tuple[int, int]] = {}  # viewer sequence number -> (SSRC, publisher sequence number)
    for i, step in enumerate(steps):
        if step.late:
            seq = (newest[step.ssrc] - step.late) & 0xFFFF
        else:
            seq = newest[step.ssrc] = (newest[step.ssrc] + step.seq) & 0xFFFF
        ts = (seq * 3000) & 0xFFFFFFFF  # one frame per packet: a packet's timestamp follows its number
        placed = rw.place(seq, ts, step.ssrc, step.key or not video_track, i / 30)
        if placed is None:
            continue
        out_seq, out_ts = placed
        if step.fate == "sent":
            assert owner.setdefault(out_seq, (step.ssrc, seq)) == (step.ssrc, seq), i
            rw.sent(out_seq, out_ts, i / 30)
        elif step.fate == "lost":  # never reached the viewer, but SRTP used the number: no other packet gets it
            assert owner.setdefault(out_seq, (step.ssrc, seq)) == (step.ssrc, seq), i
            rw.lost(out_seq, out_ts, i / 30)
        else:
            rw.pause()


# -- hidden tiles and simulcast layers --------------------------------------------------------------

H = 0x33333333  # a third SSRC: the high layer of a simulcast track (A the low one)


def test_a_held_track_forwards_nothing_and_resumes_at_a_keyframe_with_no_gap_in_numbers() -> None:
    rw = video()
    assert send(rw, 10, 3000, key=True) == (1001, 50_000)
    assert send(rw, 11, 3000 + FRAME, at=0.033) == (1002, 50_000 + FRAME)
    rw.hold()
    assert not rw.keyframe_due(5.0)  # a hidden tile asks for nothing
    assert [send(rw, seq, 3000 + seq * FRAME, key=True, at=seq / 30) for seq in range(12, 40)] == [None] * 28
    rw.release()
    assert rw.keyframe_due(2.0)  # shown again: ask at once, never show a frozen picture
    rw.asked(2.0)
    assert send(rw, 60, 999_000, at=2.0) is None  # not a keyframe: nothing decodes from here
    # The keyframe carries on right after the last packet sent, its timestamp moved on by the
    # wall-clock time since (2.0 - 0.033 s at 90 kHz).
    assert send(rw, 61, 999_000, key=True, at=2.0) == (1003, 50_000 + FRAME + int((2.0 - 0.033) * VIDEO_RATE))
    assert send(rw, 62, 999_000 + FRAME, at=2.033) == (1004, 50_000 + FRAME + int((2.0 - 0.033) * VIDEO_RATE) + FRAME)


def test_release_without_hold_changes_nothing() -> None:
    rw = video()
    send(rw, 10, 3000, key=True)
    rw.asked(1.0)
    rw.release()
    assert not rw.keyframe_due(1.5) and send(rw, 11, 3000 + FRAME) == (1002, 50_000 + FRAME)


def test_simulcast_forwards_one_layer_and_switches_only_at_the_targets_keyframe() -> None:
    rw = video()
    assert rw.aim(A)  # the low layer: a keyframe is wanted on it
    assert send(rw, 100, 10_000, ssrc=H, key=True) is None  # another layer's keyframe is not for us
    assert send(rw, 5, 20_000, ssrc=A, key=True, at=0.0) == (1001, 50_000)
    assert send(rw, 101, 10_000 + FRAME, ssrc=H) is None
    assert send(rw, 6, 20_000 + FRAME, ssrc=A, at=0.033) == (1002, 50_000 + FRAME)
    assert not rw.keyframe_due(0.1)

    assert rw.aim(H)  # the tile grew: the high layer, from its next keyframe
    assert rw.keyframe_due(0.1)
    rw.asked(0.1)
    assert send(rw, 102, 10_000 + 2 * FRAME, ssrc=H, at=0.066) is None  # not a keyframe yet
    assert send(rw, 7, 20_000 + 2 * FRAME, ssrc=A, at=0.066) == (1003, 50_000 + 2 * FRAME)  # low goes on
    switched = send(rw, 103, 10_000 + 3 * FRAME, ssrc=H, key=True, at=0.1)
    assert switched == (1004, 50_000 + 2 * FRAME + int((0.1 - 0.066) * VIDEO_RATE))  # continuous
    assert send(rw, 8, 20_000 + 3 * FRAME, ssrc=A, at=0.1) is None  # the old layer is dropped now
    assert send(rw, 104, 10_000 + 4 * FRAME, ssrc=H, at=0.133) == (1005, switched[1] + FRAME)
    assert not rw.keyframe_due(5.0)
    assert not rw.aim(H)  # the same target again asks for nothing


def test_a_held_simulcast_track_keeps_its_target_and_asks_for_it_when_shown() -> None:
    rw = video()
    rw.aim(A)
    send(rw, 5, 20_000, ssrc=A, key=True)
    rw.hold()
    rw.aim(H)  # resized while hidden
    assert not rw.keyframe_due(3.0)
    rw.release()
    assert rw.keyframe_due(3.0)
    assert send(rw, 9, 20_000 + 9 * FRAME, ssrc=A, key=True, at=3.0) is None  # only the target starts it
    assert send(rw, 200, 77_000, ssrc=H, key=True, at=3.0) is not None
