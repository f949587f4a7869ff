"""Counters for /metrics, rendered as Prometheus text. Gauges are read when scraped."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable


class Metrics:
    def __init__(self) -> None:
        self.ws_messages: Counter[str] = Counter()  # by direction: in / out
        self.errors: Counter[str] = Counter()  # by stable error code
        self.http_requests: Counter[str] = Counter()  # by status class
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self.gauges[name] = (help_text, read)

    def error(self, code: str) -> None:
        self.errors[code] += 1

    def render(self) -> str:
        lines: list[str] = []
        for name, (help_text, read) in sorted(self.gauges.items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {read():g}"]
        lines += ["# HELP porchlight_ws_messages_total WebSocket frames by direction.",
                  "# TYPE porchlight_ws_messages_total counter"]
        for direction in ("in", "out"):
            lines.append(f'porchlight_ws_messages_total{{direction="{direction}"}} {self.ws_messages[direction]}')
        lines += ["# HELP porchlight_errors_total Errors returned to clients, by code.",
                  "# TYPE porchlight_errors_total counter"]
        for code, count in sorted(self.errors.items()):
            lines.append(f'porchlight_errors_total{{code="{code}"}} {count}')
        lines += ["# HELP porchlight_http_responses_total HTTP responses by status class.",
                  "# TYPE porchlight_http_responses_total counter"]
        for status, count in sorted(self.http_requests.items()):
            lines.append(f'porchlight_http_responses_total{{status="{status}"}} {count}')
        return "\n".join(lines) + "\n"
