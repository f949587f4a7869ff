"""Sending email through PORCHLIGHT_SMTP_URL with aiosmtplib (asyncio-native, so a slow mail
server never blocks the event loop; STARTTLS when the server offers it; AUTH from the URL).

`smtp://user:password@host[:port]` connects in plain text (port 587 by default) and upgrades with
STARTTLS whenever the server offers it; `smtps://` is TLS from the first byte (port 465). A few
connections share a batch, so 500 reminders due at once go out in seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote, urlparse

import aiosmtplib

from server.reminders.message import Outgoing

log = logging.getLogger(__name__)

CONNECTIONS = 4
TIMEOUT = 30.0


class Sent(StrEnum):
    SENT = "sent"
    REFUSED = "refused"  # a permanent (5xx) refusal of this message: trying again cannot help
    FAILED = "failed"  # the server was unreachable or said "later" (4xx): try again next round


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    tls: bool  # smtps: TLS from the start; otherwise STARTTLS when offered
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parsed = urlparse(url)
        tls = parsed.scheme == "smtps"
        return cls(host=parsed.hostname or "localhost", port=parsed.port or (465 if tls else 587), tls=tls,
                   username=unquote(parsed.username) if parsed.username else None,
                   password=unquote(parsed.password) if parsed.password else None)


class Mailer:
    def __init__(self, server: SmtpServer, connections: int = CONNECTIONS) -> None:
        self.server = server
        self.connections = connections

    def _client(self) -> aiosmtplib.SMTP:
        s = self.server
        return aiosmtplib.SMTP(hostname=s.host, port=s.port, use_tls=s.tls, start_tls=None if not s.tls else False,
                               username=s.username, password=s.password, timeout=TIMEOUT)

    async def send(self, messages: list[Outgoing]) -> list[Sent]:
        """Send each message; what became of each, in order."""
        results = [Sent.FAILED] * len(messages)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(len(messages)):
            queue.put_nowait(index)

        async def connection() -> None:
            client: aiosmtplib.SMTP | None = None
            try:
                while not queue.empty():
                    index = queue.get_nowait()
                    if client is None or not client.is_connected:
                        client = self._client()
                        try:
                            await client.connect()
                        except (aiosmtplib.SMTPException, OSError) as exc:
                            log.warning("reminder email: cannot reach the SMTP server (%s)", type(exc).__name__)
                            return  # this message and those left in the queue stay FAILED
                    results[index] = await _one(client, messages[index])
            finally:
                if client is not None and client.is_connected:
                    with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                        await client.quit()

        await asyncio.gather(*(connection() for _ in range(min(self.connections, len(messages)))))
        return results


async def _one(client: aiosmtplib.SMTP, message: Outgoing) -> Sent:
    try:
        await client.sendmail(message.sender, [message.to], message.data)
        return Sent.SENT
    except aiosmtplib.SMTPResponseException as exc:
        # Addresses are health information here: the log says what happened, never to whom.
        log.warning("reminder email refused by the SMTP server: %s", exc.code)
        return Sent.REFUSED if 500 <= exc.code < 600 else Sent.FAILED
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = sorted({str(e.code) for e in exc.recipients})
        log.warning("reminder email: recipient refused (%s)", ", ".join(codes))
        permanent = all(500 <= e.code < 600 for e in exc.recipients)
        return Sent.REFUSED if permanent else Sent.FAILED
    except (aiosmtplib.SMTPException, OSError) as exc:
        log.warning("reminder email not sent (%s)", type(exc).__name__)
        return Sent.FAILED
