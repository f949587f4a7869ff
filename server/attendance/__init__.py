"""Events -> intervals -> minutes; reports and CSV."""
