"""Every Redis key Porchlight uses is built here, and nowhere else.

Attendance events, sessions, groups, enrolments and the audit log carry no TTL: they are
records. Only staff sessions and login-failure counters expire.
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


def login_failures_ip(ip: str) -> str:
    return f"{PREFIX}:loginfail:ip:{ip}"


def login_failures_user(name: str) -> str:
    return f"{PREFIX}:loginfail:user:{name.lower()}"


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
