"""Rules for web accounts: passwords, login pauses, API rate windows, what a distributor may hand in.

Pure: no I/O. Times are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from shortage_watch.domain.records import Record, RowError

ROLES = ("distributor", "officer")
PASSWORD_MIN_LENGTH = 10
# The record kinds a distributor account hands in; hospital reports come from the health commission.
DISTRIBUTOR_KINDS = ("stoppage_notice", "distributor_report")


def password_problem(password: str, name: str) -> str | None:
    """Why `password` may not be chosen by account `name` (Chinese / English), or None."""
    if len(password) < PASSWORD_MIN_LENGTH:
        return f"密码至少 {PASSWORD_MIN_LENGTH} 个字符 / the password needs at least {PASSWORD_MIN_LENGTH} characters"
    if password.strip().casefold() == name.strip().casefold():
        return "密码不能与账户名相同 / the password must differ from the account name"
    if len(set(password)) < 4:
        return "密码过于简单 / the password is too simple"
    return None


def login_paused_until(failures: Iterable[datetime], allowed: int, pause: timedelta, now: datetime) -> datetime | None:
    """When logins may be tried again, given the failed attempts within the last `pause`; None when not paused.

    `allowed` failures within `pause` pause further attempts until `pause` after the latest one.
    """
    recent = sorted(at for at in failures if now - at < pause)
    if len(recent) < allowed:
        return None
    return recent[-1] + pause


@dataclass(frozen=True)
class RateWindow:
    start: datetime
    retry_after_seconds: int  # until the next window opens (at least 1)


def rate_window(now: datetime) -> RateWindow:
    """The one-minute window `now` falls in, for per-token request counting."""
    start = now.replace(second=0, microsecond=0)
    left = (start + timedelta(minutes=1) - now).total_seconds()
    return RateWindow(start, max(1, int(left + 0.999)))


def record_outside_party(record: Record, party_code: str, row: int | None) -> RowError | None:
    """Why a distributor account may not hand in `record` (another distributor's, or a hospital's), or None."""
    if record.record_kind not in DISTRIBUTOR_KINDS:
        return RowError(row, "record_kind", "配送企业账户只能提交停产断供通知和书面反馈 / "
                                            "a distributor account hands in stoppage notices and reports only")
    code = getattr(record, "distributor_code", None)
    if code != party_code:
        return RowError(row, "distributor_code", f"只能提交本企业（{party_code}）的记录 / "
                                                 f"records of your own distributor code ({party_code}) only")
    return None
