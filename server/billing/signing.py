"""Standard Webhooks v1 signatures: HMAC-SHA256 over "{id}.{timestamp}.{body}".

The secret is `whsec_<base64>`; the key is the base64-decoded part. During a secret rotation
several secrets are configured and the header carries one `v1,<sig>` per secret, separated by
spaces; a receiver accepts the delivery if any one matches.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    if not secret.startswith(PREFIX):
        raise ValueError("webhook secrets start with whsec_")
    return base64.b64decode(secret[len(PREFIX):], validate=True)


def sign(secrets: list[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header value for `body`."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    parts = []
    for secret in secrets:
        digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
        parts.append("v1," + base64.b64encode(digest).decode())
    return " ".join(parts)


def headers(secrets: list[str], message_id: str, timestamp: int, body: bytes,
            content_type: str = "application/json") -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secrets, message_id, timestamp, body),
        "content-type": content_type,
    }
