"""/metrics: Prometheus metrics of one application, in its own registry.

prometheus_client writes the exposition format (exact values, escaping, histograms); each
application gets its own CollectorRegistry because tests create many apps in one process.
Gauges registered with `gauge()` are read when scraped; billing gauges are set from Redis by
the /metrics handler just before (see `BillingSnapshot`).
"""

from __future__ import annotations

import math
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# The text format generate_latest() writes (0.0.4). Newer prometheus_client versions name a
# later one in CONTENT_TYPE_LATEST; this one is understood by every Prometheus.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds. An HTTP request is mostly a few Redis round trips; admission also waits for the
# group's lock and writes the audit log.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ADMISSION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

T = TypeVar("T")


def build_version() -> str:
    try:
        return metadata.version("porchlight-telehealth")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


class RunningTotal(Generic[T]):
    """A counter fed by per-object counts that go away with their objects (a media track's
    packets): each object's growth since the last read is added, so the total never falls when
    one goes. Objects seen at the last read are kept until the next, which reads them once more;
    only an object that comes and goes entirely between two scrapes is missed."""

    def __init__(self, live: Callable[[], Iterable[T]], count: Callable[[T], int]) -> None:
        self.live = live
        self.count = count
        self.total = 0
        self.held: dict[int, T] = {}  # by id(); holding them keeps the ids unique
        self.last: dict[int, int] = {}

    def read(self) -> int:
        current = {id(obj): obj for obj in self.live()}
        for key, obj in {**self.held, **current}.items():
            now = self.count(obj)
            self.total += max(0, now - self.last.get(key, 0))
            self.last[key] = now
        self.held = current
        self.last = {key: self.last[key] for key in current}
        return self.total


class _ReadAtScrape(Collector):
    """Gauges and counters whose values are computed when /metrics is scraped."""

    def __init__(self, ws_messages: Tally[str]) -> None:
        self.ws_messages = ws_messages
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self.counters: dict[str, tuple[str, Callable[[], float]]] = {}

    def collect(self) -> Iterator[Metric]:
        frames = CounterMetricFamily("porchlight_ws_messages", "WebSocket frames by direction.", labels=["direction"])
        for direction in ("in", "out"):
            frames.add_metric([direction], self.ws_messages[direction])
        yield frames
        for name, (help_text, read) in sorted(self.gauges.items()):
            yield GaugeMetricFamily(name, help_text, value=read())
        for name, (help_text, read) in sorted(self.counters.items()):
            yield CounterMetricFamily(name, help_text, value=read())

    def describe(self) -> Iterator[Metric]:
        return iter(())  # registered at run time by other modules; not known in advance


@dataclass
class BillingSnapshot:
    """The outbox as Redis has it (all processes), read at scrape time."""

    pending: float  # NaN while Redis cannot be read
    failed: float
    oldest_pending_age_seconds: float
    delivered: float = math.nan  # records delivered and kept (retention purges them)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # Counted per frame as `ws_messages["out"] += 1` by the lobby and the WebSocket handler:
        # a plain dict increment on that path, written out when scraped.
        self.ws_messages: Tally[str] = Tally()
        self.errors = Counter("porchlight_errors", "Errors returned to clients, by code.", ["code"], registry=r)
        self.http_responses = Counter("porchlight_http_responses", "HTTP responses by status class.", ["status"],
                                      registry=r)
        self.http_duration = Histogram(
            "porchlight_http_request_duration_seconds", "HTTP request handling time, by route name "
            "(WebSocket connections excluded).", ["route"], buckets=HTTP_BUCKETS, registry=r)
        self.admission_duration = Histogram(
            "porchlight_admission_duration_seconds", "From an admit request to the patients' admitted frames "
            "being queued, for admissions that succeeded.", buckets=ADMISSION_BUCKETS, registry=r)
        self.billing_attempts = Counter(
            "porchlight_billing_delivery_attempts", "Billing webhook deliveries tried by this process, by result "
            "(delivered, retry: will be tried again, failed: given up).", ["result"], registry=r)
        self.billing_delivered = Counter("porchlight_billing_delivered", "Billing records delivered by this process.",
                                         registry=r)
        self.billing_pending = Gauge("porchlight_billing_records_pending",
                                     "Billing records not yet delivered (all processes).", registry=r)
        self.billing_failed = Gauge("porchlight_billing_records_failed",
                                    "Billing records given up on, waiting for an admin's replay (all processes).",
                                    registry=r)
        self.billing_oldest_pending = Gauge(
            "porchlight_billing_oldest_pending_age_seconds",
            "Age of the oldest pending billing record (since queued or replayed); 0 when none.", registry=r)
        self.billing_delivered_records = Gauge(
            "porchlight_billing_records_delivered", "Billing records delivered and kept (all processes).", registry=r)
        self.delivery_processes = Gauge(
            "porchlight_delivery_processes", "Delivery processes (porchlight deliver, or the one `serve` starts) "
            "that heartbeat within 10 s, all machines.", registry=r)
        Info("porchlight_build", "The running server's version.", registry=r).info({"version": build_version()})
        ProcessCollector(registry=r)
        self._read_at_scrape = _ReadAtScrape(self.ws_messages)
        r.register(self._read_at_scrape)

    def node(self, node_id: str) -> None:
        """Which process answers this scrape (the id `X-Porchlight-Node` and `GET /api/v1/nodes` give), so
        the scrapes of several workers behind one address can be told apart."""
        Info("porchlight_node", "This process's node id.", registry=self.registry).info({"node": node_id})

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self._read_at_scrape.gauges[name] = (help_text, read)

    def counter(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A counter read when scraped; `name` without `_total` (added when written)."""
        self._read_at_scrape.counters[name] = (help_text, read)

    def error(self, code: str) -> None:
        self.errors.labels(code=code).inc()

    def billing(self, snapshot: BillingSnapshot) -> None:
        self.billing_pending.set(snapshot.pending)
        self.billing_failed.set(snapshot.failed)
        self.billing_oldest_pending.set(snapshot.oldest_pending_age_seconds)
        self.billing_delivered_records.set(snapshot.delivered)

    def render(self) -> bytes:
        return generate_latest(self.registry)
