"""Billing record rules and delivery safeguards, without a server."""

from __future__ import annotations

import ipaddress
import random

import pytest

from server.billing import records
from server.billing.delivery import backoff, literal_refusal, refusal, retry_after


def attendance(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "session_id": "ses_1", "group_id": "grp_1", "patient_id": "pat_1", "service_date": "2027-01-15",
        "first_join": "2027-01-15T18:00:00Z", "last_leave": "2027-01-15T18:30:00Z",
        "intervals": [["2027-01-15T18:00:00Z", "2027-01-15T18:30:00Z"]], "attended_seconds": 1800,
        "attended_minutes": 30, "waited_seconds": 0, "video_seconds": 1800, "audio_only_seconds": 0,
        "location": "home",
    }
    base.update(changes)
    return base


def build(**changes: object) -> dict[str, object]:
    record = records.build(
        record_id="rec_1", supersedes=None, attendance=attendance(**changes),
        session={"started_at": "2027-01-15T18:00:00Z", "ended_at": "2027-01-15T21:00:00Z", "session_seconds": 10800},
        group={"program": "IOP", "billing": {"code": "90853", "min_billable_minutes": 45}},
        patient={"external_id": "MRN-7"}, facilitator={"id": "usr_1", "npi": "1234567893"},
        participants_present=6, created_at="2027-01-15T21:00:01Z",
    )
    data = record["data"]
    assert isinstance(data, dict)
    return data


def test_below_the_minimum_is_still_sent_flagged_with_no_units() -> None:
    data = build()
    assert data["below_minimum"] is True
    assert data["suggested"] == {"code": "90853", "units": 0, "modifiers": [], "rule": data["suggested"]["rule"]}
    assert data["external_patient_id"] == "MRN-7" and data["participants_present"] == 6


def test_place_of_service_and_modality_follow_the_check_in_and_media() -> None:
    assert build(location="other")["place_of_service"] == "02"
    assert build(location=None)["place_of_service"] == "02"
    assert build(location="home")["place_of_service"] == "10"
    mixed = build(attended_seconds=3000, attended_minutes=50, video_seconds=2000, audio_only_seconds=1000)
    assert mixed["modality"] == "mixed" and mixed["suggested"]["modifiers"] == ["95"]
    audio = build(attended_seconds=3000, attended_minutes=50, video_seconds=0, audio_only_seconds=3000)
    assert audio["modality"] == "audio_only" and audio["suggested"]["modifiers"] == ["93"]
    assert audio["suggested"]["units"] == 1 and audio["below_minimum"] is False


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    delays = [backoff(n, 5.0, rng) for n in range(1, 30)]
    assert 2.5 <= delays[0] <= 5.0 and 5.0 <= delays[1] <= 10.0
    assert max(delays) <= 6 * 3600
    assert retry_after("120", 0) == 120 and retry_after("soon", 0) is None and retry_after(None, 0) is None


def test_webhook_hosts_on_metadata_or_link_local_addresses_are_refused() -> None:
    assert literal_refusal("http://169.254.169.254/latest", allow_link_local=False)
    assert literal_refusal("http://169.254.169.254/latest", allow_link_local=True)  # metadata: never
    assert literal_refusal("http://169.254.10.1/hook", allow_link_local=False)
    assert literal_refusal("http://169.254.10.1/hook", allow_link_local=True) is None
    assert literal_refusal("http://127.0.0.1:9/hook", allow_link_local=False) is None
    assert literal_refusal("http://[::ffff:169.254.169.254]/latest", allow_link_local=True)
    assert literal_refusal("http://billing.example/hook", allow_link_local=False) is None  # the resolver's job


@pytest.mark.parametrize("address", [
    "::ffff:169.254.169.254", "::ffff:a9fe:a9fe", "::169.254.169.254", "64:ff9b::169.254.169.254", "fd00:ec2::254",
])
def test_ipv6_spellings_of_the_metadata_address_are_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), allow_link_local=True)


@pytest.mark.parametrize(("address", "allowed"), [
    ("::ffff:169.254.10.1", False), ("fe80::1", False), ("::ffff:127.0.0.1", True), ("127.0.0.1", True),
    ("::1", True), ("2001:db8::1", True),
])
def test_a_mapped_address_is_judged_as_the_ipv4_address_it_reaches(address: str, allowed: bool) -> None:
    assert (refusal(ipaddress.ip_address(address), allow_link_local=False) is None) is allowed
