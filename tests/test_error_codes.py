"""One error model: every code the server sends is in server/errors.py's list, documented (in
CONTRACT.md, or in the README for extensions), and enumerated in the OpenAPI document; every
code CONTRACT.md names is in the list."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.errors import CODES, Channel, ErrorCode
from tests.helpers import Api

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT.parent / "shared" / "CONTRACT.md"  # shared/ sits beside the checkout, in CI too

# Codes the server sends that neither CONTRACT.md nor the README names yet. The README's owners
# add them (a table of ErrorCode and CODES' meanings); this set must then shrink, and the test
# below fails when a code is documented but still listed here, or when a new code is undocumented.
NOT_YET_IN_README: frozenset[str] = frozenset()

# How code literals are written in server/: ApiError(409, "x", ...), conflict("x", ...),
# bad_request(..., code="x"), FrameError("x", ...), MediaError, StaffError, RuleViolation,
# client.error("x", ...), {"type": "error", "code": "x"}, and the machine's _require(.., "x", ..).
_LITERALS = [
    re.compile(r'ApiError\(\s*\d{3},\s*"([a-z_]+)"'),
    re.compile(r'\b(?:conflict|[A-Z][A-Za-z]*Error|RuleViolation)\(\s*"([a-z_]+)"'),
    re.compile(r'\.error\(\s*"([a-z_]+)"'),
    re.compile(r'\bcode="([a-z_]+)"'),
    re.compile(r'"code":\s*"([a-z_]+)"'),
    re.compile(r'Status\.[A-Z_]+,\s*"([a-z_]+)"'),
]

# How CONTRACT.md names a code: with code `x`, `error` `x`, 403 `x`, {"code":"x"}.
_CONTRACT_CODES = [
    re.compile(r'\bcode\s+`([a-z_]+)`'),
    re.compile(r'`error`\s+`([a-z_]+)`'),
    re.compile(r'\b[45]\d\d\s+`([a-z_]+)`'),
    re.compile(r'"code"\s*:\s*"([a-z_]+)"'),
]
PLACEHOLDERS = {"snake_case"}  # the contract's picture of the shape, not a code


def _names(text: str, patterns: list[re.Pattern[str]]) -> set[str]:
    return {m for pattern in patterns for m in pattern.findall(text)}


def _documented(code: str, *texts: str) -> bool:
    return any(f"`{code}`" in text or f'"{code}"' in text for text in texts)


def test_every_code_has_its_status_channel_and_meaning() -> None:
    assert set(CODES) == set(ErrorCode)
    for code, meaning in CODES.items():
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", code), code
        assert meaning.meaning and meaning.sent_by
        assert (meaning.status is not None) == (Channel.HTTP in meaning.channel), code
        assert meaning.status is None or 400 <= meaning.status <= 599


def test_every_code_literal_in_the_server_is_in_the_list() -> None:
    unlisted = {}
    for path in sorted((ROOT / "server").rglob("*.py")):
        for code in _names(path.read_text(), _LITERALS):
            if code not in {c.value for c in ErrorCode} | PLACEHOLDERS:
                unlisted[code] = path.relative_to(ROOT).as_posix()
    assert not unlisted, f"add these to server/errors.py's ErrorCode and CODES: {unlisted}"


def test_every_code_the_server_sends_is_documented() -> None:
    if not CONTRACT.exists():
        pytest.skip(f"{CONTRACT} is not here (shared/ beside the checkout)")
    texts = (CONTRACT.read_text(), (ROOT / "README.md").read_text())
    sent = [code for code, meaning in CODES.items() if meaning.sent]
    undocumented = {str(code) for code in sent if not _documented(code, *texts)}
    rows = "\n".join(f"| `{c}` | {CODES[ErrorCode(c)].status or 'frame'} | {CODES[ErrorCode(c)].meaning} |"
                     for c in sorted(undocumented - NOT_YET_IN_README))
    assert undocumented <= NOT_YET_IN_README, f"document these codes in the README:\n{rows}"
    stale = NOT_YET_IN_README - undocumented
    assert not stale, f"now documented: remove {sorted(stale)} from NOT_YET_IN_README"


def test_every_code_the_contract_names_is_in_the_list() -> None:
    if not CONTRACT.exists():
        pytest.skip(f"{CONTRACT} is not here (shared/ beside the checkout)")
    named = _names(CONTRACT.read_text(), _CONTRACT_CODES) - PLACEHOLDERS
    assert {"csrf_failed", "forbidden", "session_open", "invalid_token", "replaced", "bad_request"} <= named
    assert named <= {c.value for c in ErrorCode}, named - {c.value for c in ErrorCode}


async def test_the_openapi_document_enumerates_every_code(api: Api) -> None:
    document = await (await api.client.get("/api/v1/openapi.json")).json()
    schemas = document["components"]["schemas"]
    http = set(schemas["Error"]["properties"]["error"]["properties"]["code"]["enum"])
    frames = set(schemas["WebSocketError"]["properties"]["code"]["enum"])
    assert http == {c.value for c, m in CODES.items() if Channel.HTTP in m.channel}
    assert frames == {c.value for c, m in CODES.items() if Channel.WEBSOCKET in m.channel}
    cli_only = {c.value for c, m in CODES.items() if m.channel == Channel.CLI}
    assert http | frames | cli_only == {c.value for c in ErrorCode}
