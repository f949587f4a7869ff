"""What the lobby needs of a client's connection: a port, so the lobby never imports the
WebSocket layer (realtime/ implements it with its Connection)."""

from __future__ import annotations

from typing import Any, Protocol

# Close codes for the reasons the lobby ends a connection (CONTRACT.md).
CLOSE_INVALID_TOKEN = 4401  # the link (or sign-in) is no longer valid
CLOSE_FORBIDDEN = 4403  # no longer allowed in this group
CLOSE_REPLACED = 4409  # the same patient connected again elsewhere


class Peer(Protocol):
    patient_id: str | None
    user_id: str | None
    replaced: bool  # a newer connection of the same patient took over
    told_admitted: bool  # the `admitted` frame has been sent: rosters may follow
    closing: bool
    last_heard: float  # clock time of the last sign of life

    def send(self, message: dict[str, Any]) -> None: ...

    def send_text(self, text: str) -> None: ...

    def close(self, code: int = 1000, reason: str = "") -> None: ...
