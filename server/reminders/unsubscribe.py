"""Unsubscribe links: a signed token naming the patient (itsdangerous, like join links, with its
own salt), so the link works without signing in and cannot be forged for another patient."""

from __future__ import annotations

from collections.abc import Sequence

from itsdangerous import BadSignature, URLSafeSerializer

from server.auth.sessions import verifying_keys

SALT = "porchlight.reminders.unsubscribe"


class UnsubscribeLinks:
    def __init__(self, secret_keys: str | Sequence[str], public_url: str) -> None:
        self._serializer = URLSafeSerializer(verifying_keys(secret_keys), salt=SALT)
        self.public_url = public_url.rstrip("/")

    def url(self, patient_id: str) -> str:
        return f"{self.public_url}/unsubscribe/{self._serializer.dumps([patient_id])}"

    def read(self, token: str) -> str | None:
        """The patient id of a genuine token, else None."""
        if not isinstance(token, str) or len(token) > 512:
            return None
        try:
            value = self._serializer.loads(token)
        except BadSignature:
            return None
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
            return value[0]
        return None
