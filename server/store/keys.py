"""Every Redis key Porchlight uses is built here, and nowhere else.

Attendance events, sessions, groups, enrolments and the audit log carry no TTL: they are
records. Only staff sessions and sign-in attempt counters expire.
"""

PREFIX = "pl"


def user(user_id: str) -> str:
    return f"{PREFIX}:user:{user_id}"


def username(name: str) -> str:
    return f"{PREFIX}:username:{name.lower()}"


def users() -> str:
    return f"{PREFIX}:users"


def staff_session(session_token: str) -> str:
    return f"{PREFIX}:staffsession:{session_token}"


def user_staff_sessions(user_id: str) -> str:
    return f"{PREFIX}:user:{user_id}:staffsessions"


def login_attempts_address(ip: str) -> str:
    """Sign-in attempts from one client address (a hash: n, since; clock times in ms)."""
    return f"{PREFIX}:login:address:{ip}"


def login_attempts_user(name: str) -> str:
    """Sign-in attempts at one username from every address (a hash: n, since, last)."""
    return f"{PREFIX}:login:user:{name.lower()}"


def login_attempts_user_at(name: str, ip: str) -> str:
    """Sign-in attempts at one username from one address (a hash: n, last). The address comes
    last and never holds an "@", so no two (name, address) pairs share a key."""
    return f"{PREFIX}:login:user_at:{name.lower()}@{ip}"


def login_known_addresses(name: str) -> str:
    """Addresses one username signed in from lately (a sorted set: address -> ms of the last)."""
    return f"{PREFIX}:login:known:{name.lower()}"


def group(group_id: str) -> str:
    return f"{PREFIX}:group:{group_id}"


def clinic_brand() -> str:
    """The clinic-wide brand (JSON): what every group shows unless it sets its own fields."""
    return f"{PREFIX}:clinic:brand"


def groups() -> str:
    return f"{PREFIX}:groups"


def group_open_session(group_id: str) -> str:
    return f"{PREFIX}:group:{group_id}:open_session"


def group_sessions(group_id: str) -> str:
    return f"{PREFIX}:group:{group_id}:sessions"


def group_enrollments(group_id: str) -> str:
    return f"{PREFIX}:group:{group_id}:enrollments"


def group_early(group_id: str) -> str:
    """Patients who checked in before the session opened: patient id -> JSON."""
    return f"{PREFIX}:group:{group_id}:early"


def patient(patient_id: str) -> str:
    return f"{PREFIX}:patient:{patient_id}"


def patients() -> str:
    return f"{PREFIX}:patients"


def enrollment(enrollment_id: str) -> str:
    return f"{PREFIX}:enrollment:{enrollment_id}"


def session(session_id: str) -> str:
    return f"{PREFIX}:session:{session_id}"


def sessions_by_start() -> str:
    return f"{PREFIX}:sessions:by_start"


def session_patients(session_id: str) -> str:
    """Admission state of each patient in a session: patient id -> JSON."""
    return f"{PREFIX}:session:{session_id}:patients"


def session_events(session_id: str) -> str:
    """Attendance events of a session, in order: a list of JSON objects."""
    return f"{PREFIX}:session:{session_id}:events"


def audit_log() -> str:
    return f"{PREFIX}:audit"


def audit_head() -> str:
    return f"{PREFIX}:audit:head"


def demo() -> str:
    """Ids of the demo clinic, so `porchlight demo` run twice reuses it."""
    return f"{PREFIX}:demo"


def finalise_pending() -> str:
    """Ended sessions whose attendance is not final yet (crash-safe hand-over)."""
    return f"{PREFIX}:finalise:pending"


def session_finalised(session_id: str) -> str:
    return f"{PREFIX}:session:{session_id}:finalised"


def attendance_records() -> str:
    """Current attendance record of each (session, patient): "{session}:{patient}" -> JSON."""
    return f"{PREFIX}:attendance:records"


def attendance_csv() -> str:
    """What the CSV needs of each current record, beside it: "{session}:{patient}" -> JSON
    (`attendance.spreadsheet.Kept`; written and removed with the record, absent for older ones)."""
    return f"{PREFIX}:attendance:csv"


def attendance_csv_filled() -> str:
    """Set once a pass has written the kept row of every record that had none (attendance/backfill.py)."""
    return f"{PREFIX}:attendance:csv:filled"


def attendance_by_start() -> str:
    """"{session}:{patient}" scored by the session's start (ms): the report index."""
    return f"{PREFIX}:attendance:by_start"


def attendance_history(session_id: str, patient_id: str) -> str:
    """Every version of one attendance record, oldest first (corrections never edit history)."""
    return f"{PREFIX}:attendance:history:{session_id}:{patient_id}"


def outbox_record(channel: str, record_id: str) -> str:
    """The exact webhook body of an outbox's record ("billing", "alerts"); retries send these bytes."""
    return f"{PREFIX}:{channel}:record:{record_id}"


def outbox_delivery(channel: str, record_id: str) -> str:
    return f"{PREFIX}:{channel}:delivery:{record_id}"


def outbox_due(channel: str) -> str:
    """Pending deliveries scored by when to try next (ms); claiming pushes the score out (a lease)."""
    return f"{PREFIX}:{channel}:due"


def outbox_by_status(channel: str, status: str) -> str:
    return f"{PREFIX}:{channel}:status:{status}"


def outbox_endpoint_disabled(channel: str) -> str:
    return f"{PREFIX}:{channel}:endpoint_disabled"


def outbox_wake(channel: str) -> str:
    """The pub/sub channel on which delivery processes hear that an outbox has records queued."""
    return f"{PREFIX}:{channel}:wake"


def delivery_processes() -> str:
    """Every delivery process's id (`porchlight deliver`), scored by its last heartbeat (ms)."""
    return f"{PREFIX}:delivery:processes"


def billing_record(record_id: str) -> str:
    return outbox_record("billing", record_id)


def billing_delivery(record_id: str) -> str:
    return outbox_delivery("billing", record_id)


def billing_due() -> str:
    return outbox_due("billing")


def billing_by_status(status: str) -> str:
    return outbox_by_status("billing", status)


def billing_session_records(session_id: str) -> str:
    """Current billing record id of each patient of a session."""
    return f"{PREFIX}:session:{session_id}:billing"


def billing_endpoint_disabled() -> str:
    return outbox_endpoint_disabled("billing")


def group_active_enrollments(group_id: str) -> str:
    """Patient id -> id of their active enrolment in the group (one at a time)."""
    return f"{PREFIX}:group:{group_id}:active_enrollments"


def node(node_id: str) -> str:
    """One server process of the deployment: address, start, last heartbeat, load (a hash)."""
    return f"{PREFIX}:node:{node_id}"


def nodes() -> str:
    """Every process's id, scored by its last heartbeat (ms)."""
    return f"{PREFIX}:nodes"


# -- measures, safety alerts and feedback: read and written only by server/measures ---------


def measure(measure_id: str) -> str:
    """One questionnaire offered to a patient, and once answered its answers and score (JSON)."""
    return f"{PREFIX}:measure:{measure_id}"


def patient_measures(patient_id: str) -> str:
    """A patient's questionnaires, scored by when each was offered (ms)."""
    return f"{PREFIX}:patient:{patient_id}:measures"


def measures_by_time() -> str:
    """Every questionnaire, scored by when it was offered (ms): export and retention."""
    return f"{PREFIX}:measures:by_time"


def open_questionnaire(patient_id: str, instrument: str) -> str:
    """The id of the patient's unanswered questionnaire of an instrument (expires)."""
    return f"{PREFIX}:patient:{patient_id}:open:{instrument}"


def alert(alert_id: str) -> str:
    return f"{PREFIX}:alert:{alert_id}"


def group_alerts(group_id: str) -> str:
    """A group's safety alerts, scored by when each was raised (ms)."""
    return f"{PREFIX}:group:{group_id}:alerts"


def alerts_by_time() -> str:
    return f"{PREFIX}:alerts:by_time"


def feedback(session_id: str) -> str:
    """The feedback on one session: patient id -> JSON (one answer each)."""
    return f"{PREFIX}:session:{session_id}:feedback"


def patient_feedback(patient_id: str) -> str:
    """The sessions a patient gave feedback on, scored by when (ms)."""
    return f"{PREFIX}:patient:{patient_id}:feedback"


def feedback_by_time() -> str:
    """"{session}:{patient}" scored by when the feedback was given (ms): reports, export, retention."""
    return f"{PREFIX}:feedback:by_time"


def reminder_claim(group_id: str, start_ms: int, patient_id: str, channel: str) -> str:
    """One reminder of one meeting for one patient on one channel (email, webhook): "sending"
    while a process holds it (a short lease), "sent" once it went (kept two days)."""
    return f"{PREFIX}:reminder:{group_id}:{start_ms}:{patient_id}:{channel}"


def group_owner(group_id: str) -> str:
    """The process that hosts the group's live state and media now (a node id, with a lease)."""
    return f"{PREFIX}:group:{group_id}:owner"


def bus(node_id: str) -> str:
    """The pub/sub channel on which one process hears the others (server.store.bus)."""
    return f"{PREFIX}:bus:{node_id}"
