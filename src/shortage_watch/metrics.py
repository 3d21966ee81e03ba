"""Prometheus metrics: a registry whose collector reads the ledger at scrape time.

The ledger is the truth shared by every replica, so most figures are read from the
database when scraped (any replica reports the same totals); only the sweep duration
is this process's own, observed by the daemon into a Histogram.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from shortage_watch.clock import utc_now
from shortage_watch.domain.quiet import KINDS, QuietReporter
from shortage_watch.domain.states import OBLIGATION_FINISHED
from shortage_watch.store import figures
from shortage_watch.store.db import make_read_sessionmaker

log = logging.getLogger(__name__)

class LedgerCollector(Collector):
    """Reads counts from the database on every scrape; `shortage_watch_db_up 0` if it cannot."""

    def __init__(self, engine: Engine, quiet: Callable[[Session], list[QuietReporter]] | None = None) -> None:
        # Read-only sessions: a scrape never takes (or waits for) the write lock a long ingest holds.
        self.read_sessions = make_read_sessionmaker(engine)
        self.quiet = quiet  # reads the quiet reporters (needs settings and calendar): the daemon passes it

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("shortage_watch_db_up", "1 when the database answered this scrape")
        try:
            with self.read_sessions() as session:
                families = list(self._families(session))
        except SQLAlchemyError as exc:
            log.warning("metrics: database unreachable: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, session: Session) -> Iterator[Metric]:
        ingested = CounterMetricFamily(
            "shortage_watch_records_ingested", "Record versions stored (new or revised)", labels=["source", "kind"]
        )
        for count in figures.ingested_counts(session):
            ingested.add_metric([count.source, count.kind], count.versions)
        yield ingested

        receipts = CounterMetricFamily(
            "shortage_watch_receipts", "Files and pages received, by outcome", labels=["source", "status"]
        )
        rows: dict[tuple[str, str], int] = {}
        for r in figures.receipt_counts(session):
            receipts.add_metric([r.source, r.status], r.files)
            for outcome, count in (("accepted", r.accepted), ("duplicate", r.duplicates), ("rejected", r.rejected)):
                rows[(r.source, outcome)] = rows.get((r.source, outcome), 0) + count
        yield receipts
        rows_family = CounterMetricFamily(
            "shortage_watch_rows", "Rows read from received files, by outcome", labels=["source", "outcome"]
        )
        for (source, outcome), count in sorted(rows.items()):
            rows_family.add_metric([source, outcome], count)
        yield rows_family

        last_ok = GaugeMetricFamily(
            "shortage_watch_source_last_success_timestamp_seconds", "Last successful poll", labels=["source"]
        )
        failures = GaugeMetricFamily(
            "shortage_watch_source_consecutive_failures", "Failed polls in a row", labels=["source"]
        )
        for source in figures.source_figures(session):
            if source.last_success_at is not None:
                last_ok.add_metric([source.name], source.last_success_at.timestamp())
            failures.add_metric([source.name], source.consecutive_failures)
        yield last_ok
        yield failures

        obligations = GaugeMetricFamily(
            "shortage_watch_obligations", "Unsettled obligations by state and ladder level", labels=["state", "level"]
        )
        for ob in figures.obligation_counts(session, excluding_states=OBLIGATION_FINISHED):
            obligations.add_metric([ob.state, str(ob.level)], ob.obligations)
        yield obligations

        outbox = GaugeMetricFamily("shortage_watch_outbox", "Alerts in the outbox by status", labels=["status"])
        failed = GaugeMetricFamily(
            "shortage_watch_outbox_send_failures",
            "Alerts whose last send attempt failed, by status",
            labels=["status"],
        )
        for box in figures.outbox_counts(session):
            outbox.add_metric([box.status], box.alerts)
            failed.add_metric([box.status], box.with_error)
        for status in ("pending", "dead"):  # always present, so alerts can test them
            if not any(s.labels["status"] == status for s in outbox.samples):
                outbox.add_metric([status], 0)
        yield outbox
        yield failed

        beats = GaugeMetricFamily(
            "shortage_watch_heartbeat_age_seconds", "Seconds since each replica's last heartbeat", labels=["replica"]
        )
        now = utc_now()
        for beat in figures.heartbeats(session):
            beats.add_metric([beat.replica_id], max(0.0, (now - beat.beat_at).total_seconds()))
        yield beats

        if self.quiet is not None:
            quiet = GaugeMetricFamily("shortage_watch_quiet_reporters", "Reporters that went quiet, by kind", labels=["kind"])
            days = GaugeMetricFamily(
                "shortage_watch_quiet_reporter_working_days",
                "Working days each quiet reporter has been quiet (-1: never delivered)", labels=["kind", "code"],
            )
            found = self.quiet(session)
            for kind in KINDS:
                quiet.add_metric([kind], sum(1 for q in found if q.kind == kind))
            for q in found:
                days.add_metric([q.kind, q.code], -1 if q.working_days is None else q.working_days)
            yield quiet
            yield days


class DaemonMetrics:
    """One process's registry: the ledger collector and the sweep-duration histogram."""

    def __init__(self, engine: Engine, quiet: Callable[[Session], list[QuietReporter]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(LedgerCollector(engine, quiet))
        self.sweep_seconds = Histogram(
            "shortage_watch_sweep_duration_seconds",
            "Time one escalation sweep took in this replica",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
