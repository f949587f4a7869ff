"""Waiting room and admission: the session state machine, enforced by the server."""
