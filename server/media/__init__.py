"""aiortc peers and packet forwarding for a session's group room; knows nothing about billing.

By time scale: room.py (membership, media state: minutes), negotiation.py (offers and answers:
seconds), tracks.py (the per-packet path: microseconds) and forwarding.py (its decisions, pure);
packets.py reads RTP bytes; inbound.py and outbound.py are the receive and send paths at the
sockets, and with glue.py they hold every reach into aiortc's internals.
"""
