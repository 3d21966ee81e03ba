"""Wiring: settings → engine, sessions, calendar, clock (and later directory, sources, mailer)."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from shortage_watch.calendar import WorkingCalendar
from shortage_watch.clock import Clock, SystemClock
from shortage_watch.settings import Settings
from shortage_watch.store.db import make_engine, make_sessionmaker


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
        return make_sessionmaker(self.engine)

    @cached_property
    def calendar(self) -> WorkingCalendar:
        return WorkingCalendar.from_overrides_dir(self.settings.calendar.overrides_dir, self.settings.timezone)

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
