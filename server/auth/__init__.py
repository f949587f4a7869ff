"""Staff accounts, password hashing, staff sessions, join-link tokens and roles."""
