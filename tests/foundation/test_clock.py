"""The one place that reads the system clock (clock.py), checked against a frozen wall clock (freezegun)."""

from datetime import datetime, timedelta, timezone

from freezegun import freeze_time

from shortage_watch.clock import FixedClock, SystemClock, utc_now

BEIJING_TEN = "2024-09-27 10:00:00+08:00"
UTC_TWO = datetime(2024, 9, 27, 2, 0, tzinfo=timezone.utc)


def test_system_clock_reads_the_wall_clock_as_an_aware_utc_instant() -> None:
    with freeze_time(BEIJING_TEN):
        now = SystemClock().now()
    assert now == UTC_TWO
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)


def test_system_clock_moves_with_the_wall_clock() -> None:
    with freeze_time(BEIJING_TEN) as wall:
        clock = SystemClock()
        first = clock.now()
        wall.tick(timedelta(minutes=90))
        assert clock.now() - first == timedelta(minutes=90)


def test_utc_now_follows_the_wall_clock_while_a_fixed_ledger_clock_stays_put() -> None:
    # `--now` replays the ledger at a past instant; leases and back-off still run on real time.
    replayed = datetime(2024, 10, 8, 1, 0, tzinfo=timezone.utc)
    with freeze_time(BEIJING_TEN) as wall:
        ledger = FixedClock(replayed)
        wall.tick(timedelta(hours=1))
        assert utc_now() == UTC_TWO + timedelta(hours=1)
        assert ledger.now() == replayed
