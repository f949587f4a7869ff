"""Redis: the connection, the embedded redis-server, and the one key layout."""
