"""The ICE servers a participant is handed: PORCHLIGHT_ICE_SERVERS as configured, plus a TURN
server with a credential minted for that participant alone, which expires.

The credential follows the TURN REST API convention that coturn checks with `use-auth-secret`
(draft-uberti-behave-turn-rest-00): the username is `<expiry, unix seconds>:<participant id>` and
the password is base64(HMAC-SHA1(secret, username)). coturn recomputes the password from the
username with the same `static-auth-secret` and refuses a username whose expiry has passed, so
nothing is stored: a credential copied out of one page works for nobody else's id and stops by
itself. Ids are opaque (`pat_...`, `usr_...`), so coturn's logs hold no names.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from server.clock import Clock


@dataclass(frozen=True)
class TurnCredential:
    username: str
    password: str = field(repr=False)
    expires_at: int  # unix seconds


def mint(secret: str, participant_id: str, now: float, ttl_seconds: int) -> TurnCredential:
    """A credential for `participant_id`, valid until `now + ttl_seconds`."""
    expires_at = int(now) + ttl_seconds
    username = f"{expires_at}:{participant_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return TurnCredential(username, base64.b64encode(digest).decode("ascii"), expires_at)


@dataclass(frozen=True)
class Turn:
    """PORCHLIGHT_TURN_URLS, _SECRET and _TTL_SECONDS."""

    urls: tuple[str, ...]
    secret: str = field(repr=False)
    ttl_seconds: int = 8 * 3600


class IceServers:
    """What `admitted` (and a staff member's first `roster`) carries as `ice_servers`."""

    def __init__(self, configured: tuple[dict[str, Any], ...], turn: Turn | None, clock: Clock) -> None:
        self.configured = configured
        self.turn = turn
        self.clock = clock

    def for_participant(self, participant_id: str) -> list[dict[str, Any]]:
        servers = [dict(server) for server in self.configured]
        if self.turn is not None:
            credential = mint(self.turn.secret, participant_id, self.clock.now(), self.turn.ttl_seconds)
            servers.append({"urls": list(self.turn.urls), "username": credential.username,
                            "credential": credential.password})
        return servers
