"""Patient join links: signed tokens naming an enrolment and its link version.

The signature (itsdangerous, own salt) stops forgery; the enrolment in Redis decides the
rest: a rotated link carries an old version, an ended or expired enrolment admits nobody.
"""

from __future__ import annotations

from collections.abc import Sequence

from itsdangerous import BadSignature, URLSafeSerializer

from server.auth.sessions import verifying_keys

SALT = "porchlight.join-link"


class LinkSigner:
    def __init__(self, secret_keys: str | Sequence[str], public_url: str) -> None:
        self._serializer = URLSafeSerializer(verifying_keys(secret_keys), salt=SALT)
        self.public_url = public_url.rstrip("/")

    def token(self, enrollment_id: str, version: int) -> str:
        return self._serializer.dumps([enrollment_id, version])

    def url(self, enrollment_id: str, version: int) -> str:
        return f"{self.public_url}/j/{self.token(enrollment_id, version)}"

    def read(self, token: str) -> tuple[str, int] | None:
        """(enrollment id, version) of a genuine token, else None."""
        if not isinstance(token, str) or len(token) > 512:
            return None
        try:
            value = self._serializer.loads(token)
        except BadSignature:
            return None
        if (
            isinstance(value, list) and len(value) == 2
            and isinstance(value[0], str) and isinstance(value[1], int)
        ):
            return value[0], value[1]
        return None
