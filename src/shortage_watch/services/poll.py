"""Polling sources: one replica at a time per source (its lease), a transaction per page or
file, the cursor moved with what it stored, and one outcome per poll.

The sources only fetch: `intake.sources_http.HttpFeed` gives pages, `intake.sources_inbox`
lists the files that are ready and settled, reads them and moves them. This module decides
what to fetch, stores it through `services.ingest`, and records on the source how it went.
A poll never raises: a failure is recorded on the source (which then backs off) and
reported in its outcome.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Sequence

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from shortage_watch.clock import utc_now
from shortage_watch.intake.encodings import UnusableFile
from shortage_watch.intake.sources_http import FeedError, HttpFeed
from shortage_watch.intake.sources_inbox import FileVersion, InboxFile, InboxFolder, list_ready_files, read_regular_file, refusal_reason
from shortage_watch.redact import mask_url
from shortage_watch.services.ingest import IngestDeps, IngestResult, ingest_payload, refuse_payload, store_payload
from shortage_watch.store.payloads import archive_payload, payload_digest
from shortage_watch.settings import SourceSettings
from shortage_watch.store import claims, inbox_receipts, source_state
from shortage_watch.store.claims import LeaseLost
from shortage_watch.store.source_state import MAX_ERROR
from shortage_watch.store.tables import SourceState

log = logging.getLogger(__name__)

MAX_PAGES_PER_POLL = 100
MAX_CURSOR = 2000  # longer is no cursor but a fault of the feed
WATCHED_MOVES = 50  # the most recent moved files checked each poll for a tail written after the read

__all__ = ["LeaseLost", "PollOutcome", "poll_source", "poll_sources", "source_is_due"]


@dataclass
class PollOutcome:
    """What one poll of one source did. `status`: ok | not_modified | failed | busy | not_due."""

    source: str
    status: str
    items: int = 0  # files or pages stored
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    error: str | None = None
    results: list[IngestResult] = field(default_factory=list)

    def add(self, result: IngestResult) -> None:
        self.items += 1
        self.accepted += result.accepted
        self.duplicates += result.duplicates
        self.rejected += result.rejected
        self.results.append(result)

    def line(self) -> str:
        """One line for `shortage-watch poll`."""
        if self.status == "failed":
            return f"{self.source}: failed: {self.error}"
        if self.status == "busy":
            return f"{self.source}: skipped (another replica is polling it)"
        if self.status == "not_due":
            return f"{self.source}: not due yet"
        if self.status == "not_modified":
            return f"{self.source}: not modified"
        unusable = sum(1 for r in self.results if r.unusable)
        note = (f", {unusable} unusable" if unusable else "") + (f"; {self.error}" if self.error else "")
        return (f"{self.source}: ok, {self.items} item(s), accepted {self.accepted}, duplicates {self.duplicates}, "
                f"rejected {self.rejected}{note}")


@dataclass(frozen=True)
class PollDeps:
    """What polling uses, built by `App.poll_deps()`: the write and read sessions, this replica's
    name and how long its source leases last, the configured sources, and what storing a file
    or page uses."""

    sessions: sessionmaker[Session]
    read_sessions: sessionmaker[Session]
    replica_id: str
    lease: timedelta
    sources: Sequence[SourceSettings]
    ingest: IngestDeps


# ---- the lease ----------------------------------------------------------------------------------


def acquire_source_lease(deps: PollDeps, name: str) -> bool:
    """Take the source's lease for this replica (or renew ours); False when another replica holds it."""
    real_now = utc_now()
    with deps.sessions.begin() as session:
        source_state.ensure_source_row(session, name)
        return claims.take(session, claims.SOURCES, name, deps.replica_id, real_now + deps.lease, real_now, renew_own=True)


def renew_source_lease(session: Session, deps: PollDeps, name: str) -> None:
    """Extend our lease inside a page/chunk transaction, and beat our heartbeat (a replica
    storing a long file is alive); LeaseLost when the lease is no longer ours."""
    real_now = utc_now()
    claims.refresh_beat(session, deps.replica_id, real_now)
    # No row renewed means the lease expired and another replica took the source over, so
    # this transaction must not move its cursor.
    if not claims.renew(session, claims.SOURCES, [name], deps.replica_id, real_now + deps.lease):
        raise LeaseLost(name)


def release_source_lease(deps: PollDeps, name: str) -> None:
    """Hand the source back (if still ours) so any replica may poll it next."""
    with deps.sessions.begin() as session:
        claims.release(session, claims.SOURCES, [name], deps.replica_id)


def record_source_failure(deps: PollDeps, name: str, error: str) -> None:
    with deps.sessions.begin() as session:
        source_state.record_source_failure(session, name, error, utc_now())


def source_is_due(state: SourceState | None, source: SourceSettings, real_now: datetime) -> bool:
    """Due when never polled, or `interval` seconds (doubled per consecutive failure, up to 32x) have passed."""
    if state is None:
        return True
    last = max((t for t in (state.last_success_at, state.last_error_at) if t is not None), default=None)
    if last is None:
        return True
    backoff = min(2 ** (state.consecutive_failures or 0), 32)
    return real_now >= last + timedelta(seconds=source.interval * backoff)


def source_due_now(read_sessions: sessionmaker[Session], sources: Sequence[SourceSettings], name: str) -> bool:
    """False while the source named waits out its back-off after failures (its timer fired anyway)."""
    source = next((s for s in sources if s.name == name), None)
    if source is None:
        return True
    with read_sessions() as session:
        state = source_state.source_state_of(session, name)
    if state is None or not state.consecutive_failures:
        return True
    return source_is_due(state, source, utc_now())


# ---- polling ------------------------------------------------------------------------------------


def poll_source(deps: PollDeps, source: SourceSettings, now: datetime) -> PollOutcome:
    """Poll one source under its lease; never raises (a failure is recorded on the source)."""
    try:
        if not acquire_source_lease(deps, source.name):
            return PollOutcome(source.name, "busy")
    except Exception as exc:
        log.exception("source %s: cannot take its lease", source.name)
        return PollOutcome(source.name, "failed", error=f"database: {type(exc).__name__}")
    try:
        if source.type == "http":
            outcome = poll_http_source(deps, source, now)
        else:
            outcome = poll_inbox_source(deps, source, now)
    except Exception as exc:  # one bad source never stops the others or the daemon
        if isinstance(exc, OSError):
            # A missing or unreadable inbox folder is the operator's news, not a bug:
            # one line each poll, no traceback.
            log.error("source %s: poll failed: %s", source.name, exc, extra={"source": source.name})
        else:
            log.exception("source %s: poll failed", source.name, extra={"source": source.name})
        outcome = PollOutcome(source.name, "failed", error=f"{type(exc).__name__}: {exc}"[:500])
        try:
            record_source_failure(deps, source.name, outcome.error or "")
        except Exception:
            log.exception("source %s: cannot record the failure", source.name)
    finally:
        try:
            release_source_lease(deps, source.name)
        except Exception:
            log.exception("source %s: cannot release its lease (it expires by itself)", source.name)
    return outcome


def poll_sources(deps: PollDeps, now: datetime, only: str | None = None, *, force: bool = False) -> list[PollOutcome]:
    """Poll every configured source that is due (all of them with `force`, or just `only`)."""
    outcomes: list[PollOutcome] = []
    sources = [s for s in deps.sources if only is None or s.name == only]
    if not sources:
        return outcomes
    try:
        with deps.read_sessions() as session:
            states = source_state.source_states(session)
    except Exception:
        log.exception("cannot read source state")
        states = {}
    real_now = utc_now()
    for source in sources:
        if not (force or only) and not source_is_due(states.get(source.name), source, real_now):
            outcomes.append(PollOutcome(source.name, "not_due"))
            continue
        outcomes.append(poll_source(deps, source, now))
    return outcomes


# ---- an http feed -------------------------------------------------------------------------------


def _usable_cursor(cursor: str) -> bool:
    return len(cursor) <= MAX_CURSOR and cursor.isprintable()


def poll_http_source(deps: PollDeps, source: SourceSettings, now: datetime,
                     sleep: Callable[[float], None] = time.sleep) -> PollOutcome:
    """Fetch pages from the stored cursor on; each page is stored with its cursor move in one transaction."""
    outcome = PollOutcome(source.name, "ok")
    with deps.read_sessions() as session:
        position = source_state.feed_position(session, source.name)
    cursor = position.cursor
    feed = HttpFeed(source, sleep=sleep)
    try:
        for page_number in range(MAX_PAGES_PER_POLL):
            first = page_number == 0
            try:
                page = feed.fetch(cursor, position.etag if first else None, position.last_modified if first else None)
            except FeedError as exc:
                record_source_failure(deps, source.name, str(exc))
                outcome.status, outcome.error = "failed", str(exc)
                return outcome
            if page.not_modified:
                with deps.sessions.begin() as session:
                    renew_source_lease(session, deps, source.name)
                    source_state.record_source_success(session, source.name, utc_now())
                if outcome.items == 0:
                    outcome.status = "not_modified"
                return outcome
            # The raw page is kept first, in its own transaction: whatever fails while it is
            # parsed and stored, the bytes received are never lost.
            with deps.sessions.begin() as session:
                archive_payload(session, page.content, now)
            with deps.sessions.begin() as session:
                renew_source_lease(session, deps, source.name)
                result = store_payload(session, deps.ingest, source=source.name, name=mask_url(page.url), content=page.content,
                                       kind=source.record_kind, now=now, field_map=source.field_map, format="json")
                problem = None
                if result.unusable:
                    # The page is kept (receipt rejected); the cursor stays so the page is fetched again.
                    problem = "unusable page: " + (result.errors[0]["reason"] if result.errors else "unusable page")
                elif result.next_cursor is not None and not _usable_cursor(result.next_cursor):
                    # Its records are stored; a cursor no URL and no database column can carry
                    # stays unmoved, and the feed's owner reads why in the source's error.
                    problem = f"next_cursor 无法使用，游标未移动 / unusable next_cursor (control characters or over {MAX_CURSOR} characters); cursor kept"
                if problem is not None:
                    source_state.record_source_failure(session, source.name, f"page {mask_url(page.url)}: {problem}", utc_now())
                    outcome.add(result)
                    outcome.status, outcome.error = "failed", problem
                    return outcome
                moved = result.next_cursor is not None and result.next_cursor != cursor
                new_cursor = result.next_cursor if moved else cursor
                # A validator belongs to the URL it came with: keep it only while the cursor stays.
                source_state.record_source_success(
                    session, source.name, utc_now(), cursor=new_cursor,
                    etag=None if moved else page.etag, last_modified=None if moved else page.last_modified,
                )
            outcome.add(result)
            if not (result.has_more and moved):
                return outcome
            cursor = new_cursor
        outcome.error = f"stopped after {MAX_PAGES_PER_POLL} pages; continuing next poll"
        return outcome
    finally:
        feed.close()


# ---- an inbox folder ----------------------------------------------------------------------------


def _note_move(deps: PollDeps, receipt_id: int, moved_to: str | None, move_error: str | None) -> None:
    with deps.sessions.begin() as session:
        inbox_receipts.note_move(session, receipt_id, moved_to, move_error)


def _bring_back_grown_files(deps: PollDeps, source: str, inbox: InboxFolder) -> None:
    """A file written to after it was read and moved (an upload that paused longer than
    `settle_seconds`) goes back to the inbox, to be read again whole once it settles."""
    with deps.read_sessions() as session:
        moved = inbox_receipts.recently_moved(session, source, WATCHED_MOVES)
    for file in moved:
        where, name = file.moved_to.split("/", 1)
        try:
            folder_fd = inbox.subfolder(where)
            try:
                now_there = inbox.version(name, folder_fd)
            finally:
                os.close(folder_fd)
            if now_there is None:
                _note_move(deps, file.receipt_id, None, None)  # removed by the operator: nothing to watch
                continue
            if now_there.size == file.size:
                continue
            back = inbox.bring_back(file.moved_to)
        except OSError as exc:
            log.warning("inbox %s: cannot check %s for a late tail: %s", source, file.moved_to, exc)
            continue
        _note_move(deps, file.receipt_id, None, None)
        log.warning("inbox %s: %s changed after it was read (%s -> %s bytes); moved back as %s to be read again",
                    source, file.moved_to, file.size, now_there.size, back)


def poll_inbox_source(deps: PollDeps, source: SourceSettings, now: datetime) -> PollOutcome:
    """Ingest every ready file of the folder, then move it; one stuck file never holds up the others."""
    assert source.path is not None
    folder = Path(source.path)
    if not folder.is_dir():
        raise OSError(f"inbox folder {folder} does not exist")
    outcome = PollOutcome(source.name, "ok")
    inbox = InboxFolder(folder)
    try:
        _bring_back_grown_files(deps, source.name, inbox)
        with deps.read_sessions() as session:
            stuck = inbox_receipts.stuck_files(session, source.name)
        files = list_ready_files(folder, source.settle_seconds, utc_now())
        for item in files:
            _take_file(deps, source, inbox, item, stuck, outcome, now)
        for name, file in stuck.items():
            if inbox.version(name) is None:  # the operator moved it away: nothing is stuck any more
                _note_move(deps, file.receipt_id, None, None)
        with deps.read_sessions() as session:
            still_stuck = [f"{name}: {error}" for name, error in inbox_receipts.move_errors(session, source.name)]
    finally:
        inbox.close()
    if outcome.status == "failed":
        record_source_failure(deps, source.name, outcome.error or "")
        return outcome
    note = None
    if still_stuck:
        note = f"{len(still_stuck)} 个文件无法移出收件箱 / file(s) cannot be moved out of the inbox: " + "; ".join(
            still_stuck)
        outcome.error = note
    with deps.sessions.begin() as session:
        renew_source_lease(session, deps, source.name)
        source_state.record_source_success(session, source.name, utc_now(), last_error=note[:MAX_ERROR] if note else None)
    return outcome


def _take_file(deps: PollDeps, source: SourceSettings, inbox: InboxFolder, item: InboxFile,
               stuck: dict[str, inbox_receipts.StuckFile], outcome: PollOutcome, now: datetime) -> None:
    """Read, store and move one file; problems are logged and noted on `outcome`, never raised."""
    name = item.path.name
    try:
        content, read = read_regular_file(item.path, source.max_bytes)
    except FileNotFoundError:
        return  # taken by another process meanwhile
    except UnusableFile as exc:
        # Too large to archive in the database: it stays on disk in rejected/.
        errors = [{"row": None, "field": None, "reason": exc.reason}]
        try:
            inbox.move_processed(name, True, errors)
        except OSError as move_exc:
            log.error("inbox %s: %s: %s, and it cannot be moved to rejected/: %s",
                      source.name, name, exc.reason, move_exc)
        outcome.add(IngestResult(name=name, status="unusable", errors=errors))
        return
    except OSError as exc:
        log.warning("inbox %s: cannot read %s: %s", source.name, name, exc)
        return
    known = stuck.get(name)
    if known is not None and known.sha256 == payload_digest(content):
        # Stored already; only its move failed. Retry the move, never the ingest.
        _move(deps, source, inbox, name, known.receipt_id, read, rejected=None, errors=[], first_try=False)
        return
    reason = refusal_reason(name)
    try:
        if reason is not None:
            with deps.sessions.begin() as session:
                renew_source_lease(session, deps, source.name)
                result = refuse_payload(session, source=source.name, name=name, content=content, reason=reason,
                                        now=now)
        else:
            result = ingest_payload(
                deps.ingest, source=source.name, name=name, content=content, kind=source.record_kind, now=now,
                field_map=source.field_map,
                in_each_transaction=lambda session: renew_source_lease(session, deps, source.name))
    except DBAPIError as exc:
        # What committed stays (the file resumes after it); the file stays in the inbox for
        # the next poll, and one file the database refuses does not hold up the files behind it.
        log.warning("inbox %s: %s not stored (%s); it stays for the next poll",
                    source.name, name, type(exc).__name__)
        outcome.status = "failed"
        outcome.error = f"{name}: database error {type(exc).__name__}; left in the inbox"
        return
    outcome.add(result)
    rejected = result.rejected > 0 or result.unusable or result.status == "rejected"
    assert result.receipt_id is not None
    _move(deps, source, inbox, name, result.receipt_id, read, rejected=rejected, errors=result.errors, first_try=True,
          warnings=result.warnings)


def _move(deps: PollDeps, source: SourceSettings, inbox: InboxFolder, name: str, receipt_id: int, read: FileVersion,
          *, rejected: bool | None, errors: list[dict[str, Any]], first_try: bool,
          warnings: list[dict[str, Any]] | None = None) -> None:
    """Move a stored file out of the inbox, unless it changed since it was read; note where it went or why not.

    `rejected` None: a retry of a stuck file, whose outcome is read back from its receipt.
    """
    # Moved only after the commit: a crash before this line re-ingests the file (duplicates only).
    if inbox.version(name) != read:
        # Still being written (an upload that paused longer than settle_seconds): it stays,
        # and is read again whole once it settles; what was stored is then a duplicate.
        log.info("inbox %s: %s changed while it was read; it will be read again", source.name, name)
        if not first_try:
            _note_move(deps, receipt_id, None, None)
        return
    if rejected is None:
        with deps.read_sessions() as session:
            stored = inbox_receipts.receipt_outcome(session, receipt_id)
        rejected, errors, warnings = stored.rejected, stored.errors, stored.warnings
    try:
        moved_to = inbox.move_processed(name, rejected, errors, warnings)
    except OSError as exc:
        if first_try:
            # Logged once; the receipt keeps the reason, `health` shows it until the file is moved.
            log.error("inbox %s: %s was stored (receipt %s) but cannot be moved out of the inbox: %s; "
                      "it is not read again, and the move is retried each poll", source.name, name, receipt_id, exc)
        _note_move(deps, receipt_id, None, str(exc)[:1000] or type(exc).__name__)
        return
    _note_move(deps, receipt_id, moved_to, None)
