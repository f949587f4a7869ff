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


def attendance_by_start() -> str:
    """"{session}:{patient}" scored by the session's start (ms): the report index."""
    return f"{PREFIX}:attendance:by_start"


def attendance_history(session_id: str, patient_id: str) -> str:
    """Every version of one attendance record, oldest first (corrections never edit history)."""
    return f"{PREFIX}:attendance:history:{session_id}:{patient_id}"


def billing_record(record_id: str) -> str:
    """The exact webhook body of a billing record; retries send these same bytes."""
    return f"{PREFIX}:billing:record:{record_id}"


def billing_delivery(record_id: str) -> str:
    return f"{PREFIX}:billing:delivery:{record_id}"


def billing_due() -> str:
    """Pending deliveries scored by when to try next (ms); claiming pushes the score out (a lease)."""
    return f"{PREFIX}:billing:due"


def billing_by_status(status: str) -> str:
    return f"{PREFIX}:billing:status:{status}"


def billing_session_records(session_id: str) -> str:
    """Current billing record id of each patient of a session."""
    return f"{PREFIX}:session:{session_id}:billing"


def billing_endpoint_disabled() -> str:
    return f"{PREFIX}:billing:endpoint_disabled"


def group_active_enrollments(group_id: str) -> str:
    """Patient id -> id of their active enrolment in the group (one at a time)."""
    return f"{PREFIX}:group:{group_id}:active_enrollments"


def node(node_id: str) -> str:
    """One server process of the deployment: address, start, last heartbeat, load (a hash)."""
    return f"{PREFIX}:node:{node_id}"


def nodes() -> str:
    """Every process's id, scored by its last heartbeat (ms)."""
    return f"{PREFIX}:nodes"
