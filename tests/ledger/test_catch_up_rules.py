"""The pure catch-up rule: several levels due at once give each recipient one message; the rest is skipped."""

from __future__ import annotations

from datetime import date, timedelta

from shortage_watch.calendar import WorkingCalendar
from shortage_watch.domain.catch_up import first_uncounted_day, plan_deliveries, steps_sent_before
from shortage_watch.domain.policy import Firing, Level
from tests.ledger.conftest import at

CAL = WorkingCalendar()


def firing(step: int, name: str, when: str, *recipients: str, offset: int | None = 0) -> tuple[Firing, tuple[str, ...]]:
    return Firing(step, Level(name, offset, ("distributor",), name), 0, at(when)), recipients


RECEIPT = firing(0, "receipt", "2026-03-10T10:00", "d1@x", offset=None)
OPENED = firing(1, "notice_opened", "2026-03-10T10:00", "county@x", "health@x", offset=None)
REMINDER = firing(2, "reminder", "2024-10-09T00:00", "d1@x", offset=-1)
WRITTEN = firing(3, "written_reminder", "2024-10-11T00:00", "d1@x")
OVERDUE = firing(4, "overdue", "2024-10-11T00:00", "county@x")
INTERVIEW = firing(5, "interview", "2024-10-14T00:00", "city@x", offset=3)
TODAY = at("2026-03-10T00:00")


def test_each_recipient_gets_only_the_latest_level_of_the_batch():
    plan = plan_deliveries([RECEIPT, OPENED, REMINDER, WRITTEN, OVERDUE, INTERVIEW], stale=[2], today_starts=TODAY)
    mailed = {(d.recipient, d.firing.name) for d in plan.deliveries}
    assert mailed == {("d1@x", "written_reminder"), ("county@x", "overdue"), ("health@x", "notice_opened"), ("city@x", "interview")}
    skips = {(s.firing.name, s.recipients, s.reason) for s in plan.skips}
    assert skips == {
        ("receipt", ("d1@x",), "superseded"),
        ("notice_opened", ("county@x",), "superseded"),
        ("reminder", ("d1@x",), "after_deadline"),
    }


def test_the_message_names_the_levels_it_stands_for_and_says_it_is_late():
    plan = plan_deliveries([RECEIPT, OPENED, REMINDER, WRITTEN, OVERDUE], stale=[2], today_starts=TODAY)
    written = next(d for d in plan.deliveries if d.recipient == "d1@x")
    assert [f.name for f in written.skipped] == ["receipt", "reminder"]
    assert written.late  # due on 2024-10-11, mailed in 2026
    health = next(d for d in plan.deliveries if d.recipient == "health@x")
    assert health.skipped == () and not health.late  # the opening notice is on time


def test_levels_to_different_recipients_at_one_moment_are_all_mailed_on_time():
    plan = plan_deliveries([WRITTEN, OVERDUE], today_starts=at("2024-10-11T00:00"))
    assert [(d.firing.name, d.late, d.skipped) for d in plan.deliveries] == [("written_reminder", False, ()), ("overdue", False, ())]
    assert plan.skips == ()


def test_a_county_without_a_bureau_gets_one_message_when_its_levels_fall_back_to_the_city():
    overdue = firing(4, "overdue", "2024-10-11T00:00", "city@x")
    plan = plan_deliveries([overdue, INTERVIEW], today_starts=at("2024-10-21T00:00"))
    assert [(d.recipient, d.firing.name) for d in plan.deliveries] == [("city@x", "interview")]
    assert [(s.firing.name, s.recipients) for s in plan.skips] == [("overdue", ("city@x",))]


def test_only_steps_mailed_at_least_one_working_day_before_may_be_stated():
    today = date(2024, 10, 14)  # Monday; 10-12 was a make-up working Saturday
    sent = [
        ("written_reminder", at("2024-10-11T00:05")),
        ("written_reminder", at("2024-10-12T09:00")),  # a later copy: the first date counts
        ("overdue_alert", at("2024-10-14T00:05")),  # today: not "before"
    ]
    steps = steps_sent_before(sent, today, CAL.local_date, CAL.working_days_between)
    assert steps == {"written_reminder": "2024-10-11"}
    # Mailed on the rest day before: a working day (today) has begun since, so it may be stated.
    assert steps_sent_before([("x", at("2024-10-13T10:00"))], today, CAL.local_date, CAL.working_days_between) == {"x": "2024-10-13"}


def test_mail_from_before_the_first_uncounted_day_is_exactly_what_steps_sent_before_counts():
    """The sweep reads only mail sent before `first_uncounted_day`: across National Day 2024 (a make-up Sunday
    09-29, seven days off, a make-up Saturday 10-12), that drops nothing `steps_sent_before` would count."""
    days = [date(2024, 9, 25) + timedelta(days=n) for n in range(25)]
    for today in days:
        first = first_uncounted_day(today, CAL.is_working_day, lambda day: CAL.nth_working_day_before(day, 1))
        for sent_on in days:
            counted = steps_sent_before([("x", at(f"{sent_on.isoformat()}T10:00"))], today, CAL.local_date, CAL.working_days_between)
            assert bool(counted) == (sent_on < first), (today, sent_on)
    assert first_uncounted_day(date(2024, 10, 5), CAL.is_working_day, lambda day: CAL.nth_working_day_before(day, 1)) == date(2024, 9, 30)
    assert first_uncounted_day(date(2024, 10, 12), CAL.is_working_day, lambda day: CAL.nth_working_day_before(day, 1)) == date(2024, 10, 12)
