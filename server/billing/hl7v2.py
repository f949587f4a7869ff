"""A billing record as an HL7 v2.5.1 `DFT^P03` charge message (ER7, segments ended by CR). Pure.

For sites whose billing system takes charges over an HL7 v2 interface (Epic-class EHRs), the
webhook body can be this message instead of the JSON record (`PORCHLIGHT_BILLING_FORMAT=hl7v2`);
it is signed and retried exactly like the JSON. One message per billing record:

- MSH-10 (message control id) is the record id (20 characters, HL7's limit), MSH-7 the record's
  creation time, so every retry carries the same bytes.
- PID-3 holds the patient's ids: Porchlight's (`PI`, assigning authority `PORCHLIGHT`) and the
  clinic's MRN (`MR`) when the patient has one. PID-5 (name) is left empty: Porchlight keeps only
  a display name, not a legal name; the receiver matches on the MRN.
- PV1-2 is `O` (outpatient), PV1-7 the facilitator (NPI), PV1-19 the session id as the visit
  number, PV1-44/45 the first join and last leave.
- FT1: FT1-2 the record id, FT1-4 the date of service, FT1-6 `CG` (charge), FT1-7 and FT1-25 the
  suggested code (`C4` for a CPT code, `HCPCS` for a HCPCS Level II code such as H0015), FT1-10
  the suggested units, FT1-16 the CMS place of service (`10` home, `02` elsewhere), FT1-20 the
  facilitator (NPI), FT1-26 the modifiers (repeated), and FT1-31 the record it supersedes, if
  any: the receiver reverses that charge and books this one.

A record below the program's minimum is sent too (units 0, as in the JSON), so the biller sees it.
"""

from __future__ import annotations

import json
import re
from typing import Any

CONTENT_TYPE = "x-application/hl7-v2+er7; charset=utf-8"  # as HAPI's HL7-over-HTTP names it
VERSION = "2.5.1"
SENDER = "PORCHLIGHT"
_ESCAPES = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "~": "\\R\\", "&": "\\T\\"}
_SPECIAL = re.compile(r"[\\|^~&]")


def escape(value: object) -> str:
    """A value as HL7 text: the delimiters escaped, line breaks (which would end a segment) as spaces."""
    text = "" if value is None else str(value)
    text = _SPECIAL.sub(lambda m: _ESCAPES[m.group()], text)
    return text.replace("\r", " ").replace("\n", " ")


def timestamp(iso: str | None) -> str:
    """ISO 8601 UTC ("2026-03-02T18:04:05Z") as an HL7 DTM in UTC: 20260302180405+0000."""
    if not iso:
        return ""
    return iso.replace("-", "").replace(":", "").replace("T", "").removesuffix("Z") + "+0000"


def coding_system(code: str) -> str:
    """HL7 table 0396: five digits (or four and a letter) are CPT-4, a letter and four digits HCPCS."""
    return "HCPCS" if code[:1].isalpha() else "C4"


def _segment(name: str, *fields: str) -> str:
    return "|".join((name, *fields)).rstrip("|")


def dft_p03(record: dict[str, Any]) -> bytes:
    """The DFT^P03 message for a `session_duration.recorded` record (as records.build makes it)."""
    data = record["data"]
    created = timestamp(record["timestamp"])
    suggested = data["suggested"]
    code = escape(suggested["code"])
    code_ce = f"{code}^^{coding_system(suggested['code'])}"
    npi = data["facilitator"].get("npi")
    doctor = f"{escape(npi)}^^^^^^^^NPI" if npi else ""
    ids = [f"{escape(data['patient_id'])}^^^{SENDER}^PI"]
    if data.get("external_patient_id"):
        ids.append(f"{escape(data['external_patient_id'])}^^^^MR")
    ft1 = [""] * 31
    ft1[0] = "1"
    ft1[1] = escape(data["record_id"])
    ft1[3] = data["service_date"].replace("-", "")
    ft1[4] = created
    ft1[5] = "CG"
    ft1[6] = code_ce
    ft1[9] = str(int(suggested["units"]))
    ft1[15] = escape(data["place_of_service"])
    ft1[19] = doctor
    ft1[24] = code_ce
    ft1[25] = "~".join(escape(m) for m in suggested["modifiers"])
    ft1[30] = escape(data.get("supersedes") or "")
    pv1 = [""] * 45
    pv1[0] = "1"
    pv1[1] = "O"
    pv1[6] = doctor
    pv1[18] = escape(data["session_id"])
    pv1[43] = timestamp(data["first_join"])
    pv1[44] = timestamp(data["last_leave"])
    segments = [
        _segment("MSH", "^~\\&", SENDER, SENDER, "", "", created, "", "DFT^P03^DFT_P03",
                 escape(data["record_id"]), "P", VERSION),
        _segment("EVN", "P03", created),
        _segment("PID", "1", "", "~".join(ids)),
        _segment("PV1", *pv1),
        _segment("FT1", *ft1),
    ]
    return ("\r".join(segments) + "\r").encode()


def webhook_body(stored: bytes, billing_format: str) -> tuple[bytes, str]:
    """The bytes to sign and send for a stored (JSON) record, and their content type."""
    if billing_format == "hl7v2":
        return dft_p03(json.loads(stored)), CONTENT_TYPE
    return stored, "application/json"
