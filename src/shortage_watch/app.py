"""Wiring: settings → engine, sessions, calendar, clock (and later directory, sources, mailer)."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from shortage_watch.calendar import WorkingCalendar
from shortage_watch.clock import Clock, SystemClock
from shortage_watch.domain.policy import Policy
from shortage_watch.settings import Settings, load_policy
from shortage_watch.store.db import make_engine, make_read_sessionmaker, make_sessionmaker

if TYPE_CHECKING:
    from shortage_watch.domain.directory import Directory
    from shortage_watch.intake.directory_files import DirectoryFiles
    from shortage_watch.mail.render import Renderer
    from shortage_watch.mail.transports import Transport
    from shortage_watch.services.cycle import CycleDeps
    from shortage_watch.services.deliver import DeliverDeps, SendPace
    from shortage_watch.services.digests import DigestDeps
    from shortage_watch.services.escalate import SweepDeps
    from shortage_watch.services.ingest import IngestDeps
    from shortage_watch.services.ledger_deps import LedgerDeps
    from shortage_watch.services.poll import PollDeps
    from shortage_watch.services.record_writer import RecordListener
    from shortage_watch.services.replica import Replica

log = logging.getLogger(__name__)


@dataclass
class App:
    """Everything a command or the daemon needs, built once from Settings."""

    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    # Names this process in leases, claims and heartbeats; unique per run.
    replica_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database.url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """Sessions that write: one transaction per unit of work (`with app.sessions.begin()`)."""
        return make_sessionmaker(self.engine)

    @cached_property
    def read_sessions(self) -> sessionmaker[Session]:
        """Sessions that only read (listings, metrics, pages): never hold or wait for the write lock."""
        return make_read_sessionmaker(self.engine)

    @cached_property
    def replica(self) -> "Replica":
        """This process as the other replicas see it (leases, claims, heartbeat)."""
        from shortage_watch.services.replica import Replica

        return Replica(self.replica_id, self.sessions)

    @cached_property
    def installation_id(self) -> str:
        """This ledger's random id (in every Message-ID); read once per process."""
        from shortage_watch.store.installation import installation_id

        with self.sessions.begin() as session:
            return installation_id(session, self.clock.now())

    @cached_property
    def calendar(self) -> WorkingCalendar:
        return WorkingCalendar.from_overrides_dir(self.settings.calendar.overrides_dir, self.settings.timezone)

    def use_calendar(self, calendar: WorkingCalendar) -> None:
        """Put `calendar` in force for every later job and mail (a reloaded override): the renderer,
        which marks make-up working days in mail, is built again on it."""
        self.calendar = calendar
        self.__dict__.pop("renderer", None)

    @cached_property
    def policy(self) -> Policy:
        """The escalation policy (`escalation.policy`); raises PolicyError naming the file and key."""
        return load_policy(self.settings.escalation.policy)

    @cached_property
    def directory_files(self) -> "DirectoryFiles":
        from shortage_watch.intake.directory_files import DirectoryFiles

        return DirectoryFiles(self.settings.directory)

    @property
    def directory(self) -> "Directory":
        """The current directory, reloaded when a file's mtime changes; empty when none is configured."""
        return self.directory_files.current()

    def usable_directory(self) -> "Directory":
        """The current directory; an empty one (everything routes to operations) when none is usable."""
        from shortage_watch.domain.directory import Directory

        try:
            directory = self.directory
        except Exception:  # a broken directory file must not stop the ledger; alerts fall back to operations
            log.exception("ledger: directory unavailable; routing to the operations address")
            return Directory()
        return directory if directory is not None else Directory()

    def ledger_deps(self) -> "LedgerDeps":
        """What the ledger's services use, with the directory as it is now (it reloads when its files change)."""
        from shortage_watch.services.ledger_deps import LedgerDeps

        settings = self.settings
        return LedgerDeps(calendar=self.calendar, deadlines=settings.calendar, policy=self.policy, escalation=settings.escalation,
                          directory=self.usable_directory(), operations_email=settings.directory.operations_email,
                          mail_language=settings.mail.language)

    def ingest_deps(self) -> "IngestDeps":
        """What storing files and pages uses, with the directory and the ledger as they are now."""
        from zoneinfo import ZoneInfo

        from shortage_watch.domain.directory import Directory
        from shortage_watch.intake.parsers import ParseLimits
        from shortage_watch.services.ingest import IngestDeps

        try:
            directory = self.directory
        except Exception:  # a broken directory must not stop intake; regions then stay as received
            log.exception("directory unavailable during ingest; region defaults skipped")
            directory = Directory()
        intake = self.settings.intake
        return IngestDeps(sessions=self.sessions, listener=self.record_listener, directory=directory,
                          limits=ParseLimits(max_unpacked_bytes=intake.max_unpacked_bytes, max_cell_chars=intake.max_cell_chars),
                          timezone=ZoneInfo(self.settings.timezone))

    def sweep_deps(self) -> "SweepDeps":
        """What the sweep uses, with the directory as it is now."""
        from shortage_watch.services.escalate import SweepDeps

        escalation = self.settings.escalation
        return SweepDeps(sessions=self.sessions, ledger=self.ledger_deps(), owner=self.replica_id,
                         lease=timedelta(seconds=self.settings.daemon.lease_seconds), batch=escalation.sweep_batch,
                         retry=timedelta(minutes=escalation.retry_minutes))

    @property
    def record_listener(self) -> "RecordListener":
        """Told of each new or revised record inside the storing transaction: the ledger."""
        from shortage_watch.services.ledger import LedgerListener

        return LedgerListener(self.ledger_deps())

    @cached_property
    def renderer(self) -> "Renderer":
        """Mail templates: `mail.templates_dir` first, then the packaged ones."""
        from shortage_watch.mail.render import Renderer, report_channels_for

        mail = self.settings.mail
        web = self.settings.web
        portal_url = web.public_url if web.enabled else None
        channels = report_channels_for(reply_to=mail.reply_to, inbox=mail.report_inbox, portal_url=portal_url)
        return Renderer(mail.templates_dir, self.settings.timezone, mail.reply_to, calendar=self.calendar,
                        report_channels=channels, portal_url=portal_url)

    @cached_property
    def transport(self) -> "Transport":
        """Where mail goes (`mail.transport`): SMTP, or `.eml` files in `mail.file_dir`."""
        from shortage_watch.mail.transports import make_transport

        return make_transport(self.settings.mail, self.settings.smtp)

    @cached_property
    def send_pace(self) -> "SendPace":
        """This process's measured seconds per mail message; sizes the outbox claims to the lease."""
        from shortage_watch.services.deliver import SendPace

        return SendPace()

    def poll_deps(self) -> "PollDeps":
        """What polling the sources uses, with the directory and the ledger as they are now."""
        from shortage_watch.services.poll import PollDeps

        return PollDeps(sessions=self.sessions, read_sessions=self.read_sessions, replica_id=self.replica_id,
                        lease=timedelta(seconds=self.settings.daemon.lease_seconds), sources=self.settings.sources,
                        ingest=self.ingest_deps())

    def deliver_deps(self) -> "DeliverDeps":
        """What the sender uses; built per call from the parts above, so a calendar the daemon
        reloaded (it replaces `calendar`) is the one used."""
        from shortage_watch.services.deliver import DeliverDeps

        return DeliverDeps(sessions=self.sessions, engine=self.engine, mail=self.settings.mail, timezone=self.settings.timezone,
                           calendar=self.calendar, renderer=self.renderer, transport=self.transport, owner=self.replica_id,
                           lease=timedelta(seconds=self.settings.daemon.lease_seconds),
                           installation_id=self.installation_id, pace=self.send_pace)

    def cycle_deps(self) -> "CycleDeps":
        """What one cycle (poll, sweep, deliver) uses, with the directory and the calendar as they are now."""
        from shortage_watch.services.cycle import CycleDeps

        return CycleDeps(poll=self.poll_deps(), sweep=self.sweep_deps(), deliver=self.deliver_deps())

    def digest_deps(self) -> "DigestDeps":
        """What the digests and monthly summaries use, with the directory as it is now."""
        from shortage_watch.services.digests import DigestDeps

        settings = self.settings
        return DigestDeps(sessions=self.sessions, calendar=self.calendar, directory=self.directory, mail=settings.mail,
                          operations_email=settings.directory.operations_email, sources=settings.sources, quiet=settings.quiet)

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
