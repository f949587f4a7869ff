"""The reminder email: plain text and HTML, nothing about the patient but the group's name.

No display name, no diagnosis, no program: the subject line says only that a group session is
coming (it shows on lock screens), the body names the group, the time in the group's timezone,
the patient's own join link and calendar link, and how to stop reminders. `List-Unsubscribe`
with `List-Unsubscribe-Post` (RFC 8058) lets a mail client offer one-click unsubscribe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from html import escape


@dataclass(frozen=True)
class Reminder:
    to: str
    sender: str
    group_name: str
    when: str  # "Monday, March 2 at 6:00 PM (America/Chicago)"
    clock: str  # "6:00 PM", for the subject
    join_url: str
    calendar_url: str
    unsubscribe_url: str
    sent_at: float  # seconds since the epoch, the Date header


def plain_text(r: Reminder) -> str:
    return (
        f"Your group, {r.group_name}, meets {r.when}.\n\n"
        f"Join from your personal link when it is time:\n{r.join_url}\n\n"
        f"Add the group's meetings to your calendar:\n{r.calendar_url}\n\n"
        "This link is yours alone: please do not share it.\n\n"
        f"You get these reminders because your clinic set them up for you. To stop them:\n{r.unsubscribe_url}\n"
    )


def html(r: Reminder) -> str:
    def link(url: str, text: str) -> str:
        return f'<a href="{escape(url)}">{escape(text)}</a>'

    return (
        '<!doctype html><html lang="en"><body style="font-family:sans-serif;line-height:1.5">'
        f"<p>Your group, <strong>{escape(r.group_name)}</strong>, meets {escape(r.when)}.</p>"
        f"<p>{link(r.join_url, 'Join the group from your personal link')} when it is time.</p>"
        f"<p>{link(r.calendar_url, 'Add the group’s meetings to your calendar')}</p>"
        "<p>This link is yours alone: please do not share it.</p>"
        '<p style="font-size:small;color:#555">You get these reminders because your clinic set them up for you. '
        f"{link(r.unsubscribe_url, 'Stop these reminders')}</p>"
        "</body></html>"
    )


def email(r: Reminder) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"Reminder: your group session at {r.clock}"
    message["From"] = r.sender
    message["To"] = r.to
    message["Date"] = format_datetime(datetime.fromtimestamp(r.sent_at, tz=UTC))
    message["Message-ID"] = make_msgid(domain=r.sender.rpartition("@")[2].rstrip(">") or None)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies
    message["List-Unsubscribe"] = f"<{r.unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(plain_text(r))
    message.add_alternative(html(r), subtype="html")
    return message

