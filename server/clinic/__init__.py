"""The clinic's records: groups (with brand, schedule, billing defaults), patients, enrolments."""
