"""The WebSocket protocol: parse, validate, dispatch; bounded send queues; heartbeats."""
