"""Meeting reminders: who is due a reminder and when (pure), the email, the SMTP client, the
unsubscribe link, and the background worker that sends each reminder once."""
