"""Dashboard read queries: every figure, chart point, list and detail is scoped to the officer's regions (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date

from shortage_watch.calendar import WorkingCalendar
from shortage_watch.services.dashboard import due_soon_until, officer_regions, read_distributor_summary, read_overview_page
from shortage_watch.store import compliance as c
from shortage_watch.store import dashboard_queries as q
from tests.dashboard.conftest import NOW, at, seed_ledger

CALENDAR = WorkingCalendar()
NINGDE, JIAOCHENG, FUAN, CHONGQING = "350900", "350902", "350981", "500000"


def test_region_and_below_follows_the_directorys_explicit_parents(sample_directory) -> None:
    assert sample_directory.region_and_below(NINGDE) == {"350900", "350902", "350921", "350922", "350981", "350982"}
    assert sample_directory.region_and_below(JIAOCHENG) == {"350902"}
    # Chongqing's special zones have no GB/T 2260 digits in common with the municipality: only the parent column says so.
    assert {"5001LJ", "5001WS"} <= sample_directory.region_and_below(CHONGQING)
    assert "350902" in sample_directory.region_and_below("350000")
    assert sample_directory.region_and_below("999999") == frozenset()


def test_due_soon_window_ends_on_the_second_working_day() -> None:
    # Thursday 2024-09-26: Friday 27th and Sunday 29th (a 调休 working day) are the next two working days.
    assert due_soon_until(CALENDAR, at("2024-09-26T10:00")) == at("2024-09-29T23:59:59")


def test_overview_cards_count_only_the_officers_regions(sessions, sample_directory) -> None:
    seed_ledger(sessions)
    with sessions() as session:
        ningde = read_overview_page(session, CALENDAR, officer_regions(sample_directory, NINGDE), NOW).cards
        fuan = read_overview_page(session, CALENDAR, officer_regions(sample_directory, FUAN), NOW).cards
        chongqing = read_overview_page(session, CALENDAR, officer_regions(sample_directory, CHONGQING), NOW).cards
    assert ningde == q.Overview(open_obligations=2, overdue_now=1, due_soon=1, open_cases=2, regional_cases=1, distributors_late=1)
    assert fuan == q.Overview(open_obligations=1, overdue_now=0, due_soon=1, open_cases=2, regional_cases=1, distributors_late=0)
    assert chongqing == q.Overview(open_obligations=2, overdue_now=1, due_soon=1, open_cases=1, regional_cases=1, distributors_late=1)


def test_weekly_chart_counts_what_stood_overdue_and_open_at_each_point(sessions, sample_directory) -> None:
    seed_ledger(sessions)
    points = [at("2024-10-08T12:00"), at("2024-10-10T12:00"), NOW]
    with sessions() as session:
        ningde = q.weekly_series(session, officer_regions(sample_directory, NINGDE), points)
        jiaocheng = q.weekly_series(session, officer_regions(sample_directory, JIAOCHENG), points)
    # 10-10: the late report (due 10-08, reported 10-11) was overdue; now: the one still open since 10-10.
    assert [(p.overdue_obligations, p.open_shortages) for p in ningde] == [(0, 1), (1, 2), (1, 2)]
    assert [(p.overdue_obligations, p.open_shortages) for p in jiaocheng] == [(0, 1), (1, 1), (1, 1)]


def test_monthly_on_time_rate_uses_the_compliance_definition(sessions, sample_directory) -> None:
    seed_ledger(sessions)
    october = (date(2024, 10, 1), date(2024, 10, 31))
    with sessions() as session:
        rates = c.on_time_by_month(session, officer_regions(sample_directory, NINGDE), [(date(2024, 9, 1), date(2024, 9, 30)), october], NOW)
        compliance = c.compliance_by_distributor(session, officer_regions(sample_directory, NINGDE), due_from=october[0], due_to=october[1], now=NOW)
    assert [(r.on_time, r.late, r.overdue) for r in rates] == [(0, 0, 0), (1, 1, 1)]
    assert rates[0].on_time_rate is None and abs(rates[1].on_time_rate - 1 / 3) < 1e-9
    assert [(c.distributor_code, c.on_time, c.late, c.overdue, c.open) for c in compliance] == [("D350901", 0, 1, 1, 0), ("D350902", 1, 0, 0, 1)]
    assert sum(c.on_time for c in compliance) == rates[1].on_time


def test_lists_and_exports_never_hold_another_regions_rows(sessions, sample_directory) -> None:
    seeded = seed_ledger(sessions)
    for region, expected_regions in ((NINGDE, {JIAOCHENG, FUAN}), (JIAOCHENG, {JIAOCHENG})):
        regions = officer_regions(sample_directory, region)
        with sessions() as session:
            page = q.list_obligations(session, regions, q.ObligationFilter(), now=NOW)
            exported = list(q.iter_obligations(session, regions, q.ObligationFilter(), now=NOW))
            notices = list(q.iter_notices(session, regions, q.NoticeFilter()))
            cases = list(q.iter_cases(session, regions, q.CaseFilter()))
            compliance = c.compliance_by_distributor(session, regions, due_from=None, due_to=None, now=NOW)
        assert {r.region_code for r in page.items} == expected_regions
        assert [r.id for r in exported] == [r.id for r in page.items]
        assert {n.region_code for n in notices} == expected_regions
        assert seeded.case["chongqing"] not in {c.id for c in cases}
        assert not {c.distributor_code for c in compliance} & {"D500003"}
    with sessions() as session:
        assert {c.id for c in q.list_cases(session, officer_regions(sample_directory, JIAOCHENG), q.CaseFilter()).items} == {seeded.case["ningde"]}


def test_details_outside_the_region_read_as_missing(sessions, sample_directory) -> None:
    seeded = seed_ledger(sessions)
    ningde, jiaocheng = officer_regions(sample_directory, NINGDE), officer_regions(sample_directory, JIAOCHENG)
    with sessions() as session:
        assert q.read_obligation(session, ningde, seeded.ob["chongqing_overdue"], now=NOW) is None
        assert q.read_obligation(session, jiaocheng, seeded.ob["fuan_due_soon"], now=NOW) is None
        assert q.read_case(session, ningde, seeded.case["chongqing"], now=NOW) is None
        assert q.read_case(session, jiaocheng, seeded.case["fuan_only"], now=NOW) is None
        assert q.read_distributor(session, ningde, "D500003", now=NOW) is None
        assert q.read_overview(session, frozenset(), now=NOW, due_soon_until=NOW, month=(date(2024, 10, 1), date(2024, 10, 31))) == q.Overview(0, 0, 0, 0, 0, 0)


def test_a_county_officer_sees_only_its_hospitals_part_of_a_city_case(sessions, sample_directory) -> None:
    seeded = seed_ledger(sessions)
    with sessions() as session:
        city = q.read_case(session, officer_regions(sample_directory, NINGDE), seeded.case["ningde"], now=NOW)
        county = q.read_case(session, officer_regions(sample_directory, JIAOCHENG), seeded.case["ningde"], now=NOW)
    assert [r.hospital_code for r in city.reports] == ["H350902001", "H350981001"]
    assert (city.case.hospitals, city.case.false_shortage_reports) == (2, 1)
    assert [r.hospital_code for r in county.reports] == ["H350902001"]
    assert (county.case.hospitals, county.case.false_shortage_reports) == (1, 0)
    assert {n.region_code for n in city.notices} == {FUAN}  # the XB02 notice of 福安市; 重庆's XB02 notice stays out


def test_obligation_detail_has_its_notice_report_alerts_and_audit(sessions, sample_directory) -> None:
    seeded = seed_ledger(sessions)
    ningde = officer_regions(sample_directory, NINGDE)
    with sessions() as session:
        overdue = q.read_obligation(session, ningde, seeded.ob["jiaocheng_overdue"], now=NOW)
        late = q.read_obligation(session, ningde, seeded.ob["jiaocheng_late"], now=NOW)
    assert overdue.obligation.overdue_now and overdue.notice.notice_id == "N-JC-OVERDUE" and overdue.report is None
    assert [a.template for a in overdue.alerts] == ["written_reminder"] and [e.action for e in overdue.events] == ["overdue"]
    assert late.report.report_id == "R-JC-LATE" and late.obligation.late_working_days == 3


def test_obligation_filters_sorting_and_paging(sessions, sample_directory) -> None:
    seeded = seed_ledger(sessions)
    ningde = officer_regions(sample_directory, NINGDE)

    def ids(flt: q.ObligationFilter, **kw) -> list[int]:
        with sessions() as session:
            return [r.id for r in q.list_obligations(session, ningde, flt, now=NOW, **kw).items]

    ob = seeded.ob
    assert ids(q.ObligationFilter(state="overdue")) == [ob["jiaocheng_overdue"]]
    assert ids(q.ObligationFilter(state="due_soon", due_soon_until=due_soon_until(CALENDAR, NOW))) == [ob["fuan_due_soon"]]
    assert ids(q.ObligationFilter(state="open")) == [ob["jiaocheng_overdue"], ob["fuan_due_soon"]]
    assert ids(q.ObligationFilter(drug="硝酸")) == [ob["fuan_due_soon"]]
    assert ids(q.ObligationFilter(drug="XA01", distributor="D350902")) == [ob["fuan_on_time"]]
    assert ids(q.ObligationFilter(priority_class="winning_bid")) == ids(q.ObligationFilter(priority_class="priority")) == [ob["jiaocheng_overdue"]]
    assert ids(q.ObligationFilter(due_from=date(2024, 10, 9), due_to=date(2024, 10, 10))) == [ob["fuan_on_time"], ob["jiaocheng_overdue"]]
    assert ids(q.ObligationFilter(overdue_at=at("2024-10-10T12:00"))) == [ob["jiaocheng_late"]]
    assert ids(q.ObligationFilter(), sort="due", descending=True) == [ob["fuan_due_soon"], ob["jiaocheng_overdue"], ob["fuan_on_time"], ob["jiaocheng_late"]]
    with sessions() as session:
        second = q.list_obligations(session, ningde, q.ObligationFilter(), now=NOW, page=2, page_size=3)
    assert (second.total, second.pages, [r.id for r in second.items]) == (4, 2, [ob["fuan_due_soon"]])


def test_case_filters(sessions, sample_directory) -> None:
    seeded = seed_ledger(sessions)

    def ids(region: str, flt: q.CaseFilter) -> set[int]:
        with sessions() as session:
            return {c.id for c in q.list_cases(session, officer_regions(sample_directory, region), flt).items}

    assert ids(NINGDE, q.CaseFilter(false_shortage=True)) == {seeded.case["ningde"]}
    assert ids(JIAOCHENG, q.CaseFilter(false_shortage=True)) == set()  # 福安's procurement report is not the county's to see
    assert ids(NINGDE, q.CaseFilter(regional=True)) == ids(NINGDE, q.CaseFilter(status="regional")) == {seeded.case["ningde"]}
    assert ids(NINGDE, q.CaseFilter(regional=False, drug="阿莫西林")) == {seeded.case["fuan_only"]}
    assert ids(NINGDE, q.CaseFilter(open_at=at("2024-10-08T12:00"))) == {seeded.case["ningde"]}


def test_distributor_history_with_on_time_rate_and_median_working_days(sessions, sample_directory) -> None:
    seed_ledger(sessions)
    with sessions() as session:
        summary = read_distributor_summary(session, CALENDAR, officer_regions(sample_directory, NINGDE), "D350901", NOW)
        other = read_distributor_summary(session, CALENDAR, officer_regions(sample_directory, FUAN), "D350901", NOW)
    assert [r.notice_id for r in summary.history.obligations] == ["N-JC-OVERDUE", "N-JC-LATE"]
    # Received 09-20, reported 10-11: 9-23..9-27, Sunday 9-29 (调休) and 9-30 are 7 working days, 10-1..10-7 National Day, 10-8..10-11 four more.
    assert summary.median_working_days == 11 and summary.on_time_rate == 0
    assert [a.template for a in summary.reminders] == ["written_reminder"]
    assert other is None


def test_monthly_summary_and_dashboard_share_one_compliance_definition(sessions, sample_directory) -> None:
    from shortage_watch.services.digests import read_monthly_context
    from shortage_watch.store.tables import Obligation

    seeded = seed_ledger(sessions)
    with sessions.begin() as session:
        # A cancelled obligation (its notice withdrawn) owes nothing: neither table counts it.
        session.get(Obligation, seeded.ob["fuan_on_time"]).state = "cancelled"
    october = (date(2024, 10, 1), date(2024, 10, 31))
    contact = sample_directory.contact(NINGDE, "insurance")
    with sessions() as session:
        context = read_monthly_context(session, sample_directory, contact, contact.emails[0], *october, NOW)
        dashboard = c.compliance_by_distributor(session, officer_regions(sample_directory, NINGDE), due_from=october[0], due_to=october[1], now=NOW)
    assert [(r["distributor_code"], r["obligations"], r["on_time"], r["late"], r["overdue"], r["open"]) for r in context["compliance"]] == [
        (r.distributor_code, r.obligations, r.on_time, r.late, r.overdue, r.open) for r in dashboard
    ] == [("D350901", 2, 0, 1, 1, 0), ("D350902", 1, 0, 0, 0, 1)]
