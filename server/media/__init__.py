"""aiortc peers and packet forwarding for a session's group room; knows nothing about billing.

By time scale: room.py (membership, media state: minutes), negotiation.py (offers and answers:
seconds), tracks.py (the per-packet path: microseconds) and forwarding.py (its decisions, pure);
packets.py reads RTP bytes, glue.py holds every reach into aiortc's internals.
"""
