"""Shortage cases on SQLite and PostgreSQL: explanation obligations, false shortages, regional, resolution."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select, update

from shortage_watch.domain.records import record_key
from shortage_watch.services.escalate import sweep
from shortage_watch.store.tables import Alert, Obligation, RecordVersion, ShortageCase, ShortageReport
from tests.ledger.conftest import alert_keys, at, store_notice, store_report, store_shortage
from tests.ledger.test_ledger_in_sets import ingest


def test_reports_join_one_case_per_product_and_city(db_url, make_app):
    app = make_app(db_url)
    store_shortage(app, at("2024-10-08T10:00"), report_id="S1", hospital_code="H1", region_code="350902")
    store_shortage(app, at("2024-10-08T11:00"), report_id="S2", hospital_code="H2", region_code="350981")
    store_shortage(app, at("2024-10-08T12:00"), report_id="S3", hospital_code="H9", region_code="500101")
    with app.sessions() as session:
        cases = {c.city_code: c for c in session.scalars(select(ShortageCase)).all()}
        joined = {r.hospital_code: r.case_id for r in session.scalars(select(ShortageReport)).all()}
    assert set(cases) == {"350900", "500000"}  # 万州区's city is the municipality
    assert joined["H1"] == joined["H2"] == cases["350900"].id


def test_unexplained_shortage_opens_explanation_for_named_distributor(db_url, make_app):
    app = make_app(db_url)
    store_shortage(app, at("2024-10-08T10:00"), distributor_code="D1")
    with app.sessions() as session:
        ob = session.scalars(select(Obligation)).one()
    assert ob.kind == "explanation" and ob.party_code == "D1" and ob.due_on == date(2024, 10, 14)  # 10-12 make-up Saturday counts
    assert alert_keys(app) == {"O1:explanation_request:d1@dist.example"}
    with app.sessions() as session:
        request = session.scalars(select(Alert)).one()
    assert request.context["product"] == {"code": "XB02", "name": "硝酸甘油片", "specification": None}
    assert request.context["case"]["hospitals"][0]["code"] == "H1" and request.context["deadline"]["due_on"] == "2024-10-14"
    store_report(app, at("2024-10-10T10:00"), notice_id=None, report_id="R-E", product_code="XB02",
                 product_name="硝酸甘油片", manufacturer="某药厂", kind="interruption", notified_on=date(2024, 10, 1))
    with app.sessions() as session:
        explanation = session.get(Obligation, 1)
    assert explanation.state == "fulfilled" and explanation.next_action_at is None


def test_shortage_with_a_notice_on_record_owes_no_explanation_and_a_later_notice_cancels_it(db_url, make_app):
    app = make_app(db_url)
    store_notice(app, at("2024-09-27T10:00"), product_code="XB02")
    store_shortage(app, at("2024-10-08T10:00"), distributor_code="D1")
    with app.sessions() as session:
        assert session.scalars(select(Obligation.kind)).all() == ["report"]
    store_shortage(app, at("2024-10-08T10:00"), report_id="S9", product_code="XZ09", product_name="某药", distributor_code="D2")
    store_notice(app, at("2024-10-09T10:00"), notice_id="N-XZ", product_code="XZ09", distributor_code="D2")
    with app.sessions() as session:
        explanation = session.scalars(select(Obligation).where(Obligation.kind == "explanation")).one()
    assert explanation.state == "cancelled"


def test_procurement_cause_alerts_the_health_commission_not_the_distributor(db_url, make_app):
    app = make_app(db_url)
    pk = store_shortage(app, at("2024-10-08T10:00"), cause="procurement", distributor_code="D1")
    with app.sessions() as session:
        alert = session.scalars(select(Alert)).one()
        assert session.scalars(select(Obligation)).all() == []
    assert alert.template == "false_shortage" and alert.recipient_email == "wjw@ningde.example"
    assert alert.status == "digest"  # not urgent, and 宁德市卫健委 takes a daily digest
    assert alert.level == f"false_shortage-{pk}"
    assert alert.context["case"]["possible_false_shortages"] == 1


def test_regional_shortage_escalates_to_province_after_n_working_days(db_url, make_app):
    app = make_app(db_url)
    for n, day in ((1, 8), (2, 9), (3, 10)):
        store_shortage(app, at(f"2024-10-{day:02d}T10:00"), report_id=f"S{n}", hospital_code=f"H{n}",
                       region_code="350902" if n % 2 else "350981", reported_on=date(2024, 10, day))
    with app.sessions() as session:
        case = session.scalars(select(ShortageCase)).one()
    assert case.state == "regional" and case.next_action_at == at("2024-10-24T00:00")
    regional = [a for a in _alerts(app) if a.template == "regional_shortage"]
    assert {a.recipient_email for a in regional} == {"ybj@ningde.example", "wjw@ningde.example"}
    assert all(a.urgent and a.status == "pending" for a in regional)
    assert len(regional[0].context["case"]["hospitals"]) == 3
    assert sweep(app.sweep_deps(), at("2024-10-23T23:00")).alerts == 0
    assert sweep(app.sweep_deps(), at("2024-10-24T08:00")).alerts == 2
    with app.sessions() as session:
        assert session.get(ShortageCase, case.id).state == "escalated"


def test_resolved_reports_close_parts_and_then_the_case(db_url, make_app):
    app = make_app(db_url)
    for n in (1, 2, 3):
        store_shortage(app, at("2024-10-08T10:00"), report_id=f"S{n}", hospital_code=f"H{n}")
    for n in (1, 2):
        store_shortage(app, at("2024-10-09T10:00"), report_id=f"R{n}", hospital_code=f"H{n}", supply_status="resolved")
    with app.sessions() as session:
        assert session.scalars(select(ShortageCase.state)).one() == "regional"
    store_shortage(app, at("2024-10-09T11:00"), report_id="R3", hospital_code="H3", supply_status="resolved")
    with app.sessions() as session:
        case = session.scalars(select(ShortageCase)).one()
    assert case.state == "resolved" and case.next_action_at is None
    assert sweep(app.sweep_deps(), at("2024-12-01T00:00")).alerts == 0
    store_shortage(app, at("2024-11-01T10:00"), report_id="S4", hospital_code="H1")
    with app.sessions() as session:
        assert session.scalars(select(ShortageCase.state).order_by(ShortageCase.id)).all() == ["resolved", "open"]


def _alerts(app):
    with app.sessions() as session:
        return list(session.scalars(select(Alert).order_by(Alert.id)).all())


def test_concurrent_first_reports_of_one_product_and_city_share_one_case(db_url, make_app):
    # Two replicas ingesting two sources at once: each transaction saw no open case and opened
    # its own, splitting the hospitals so the regional threshold (K of one city) was never met.
    import threading

    from tests.ledger.conftest import SHANGHAI

    app = make_app(db_url)
    now = at("2024-10-08T10:00")
    first = app.sessions.begin()
    session = first.__enter__()
    row = ShortageReport(report_id="S1", hospital_code="H1", hospital_name="宁德市第1医院", region_code="350902", product_code="XB02",
                         product_name="硝酸甘油片", reported_on=now.astimezone(SHANGHAI).date(), supply_status="short", cause="supply",
                         version=1, source="a", received_at=now, updated_at=now)
    session.add(row)
    session.flush()
    app.record_listener.record_stored(session, "shortage_report", row, None, now)
    errors: list[BaseException] = []

    def second() -> None:
        try:
            store_shortage(app, now, report_id="S2", hospital_code="H2", region_code="350981")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    other = threading.Thread(target=second)
    other.start()
    other.join(timeout=1.5)  # SQLite: BEGIN IMMEDIATE waits for the first; PostgreSQL: the fix makes it wait too
    first.__exit__(None, None, None)
    other.join(timeout=30)
    assert not other.is_alive() and not errors
    with app.sessions() as s:
        cases = s.scalars(select(ShortageCase)).all()
        joined = {r.hospital_code: r.case_id for r in s.scalars(select(ShortageReport)).all()}
    assert len(cases) == 1 and joined == {"H1": cases[0].id, "H2": cases[0].id}


def test_case_instants_in_alert_contexts_are_local_time_however_the_case_was_read(db_url, make_app):
    app = make_app(db_url)
    store_shortage(app, at("2024-10-08T10:00"), report_id="S1", hospital_code="H1", distributor_code="D1")
    # The second report reads the case back from the database (UTC on PostgreSQL) before its alerts.
    store_shortage(app, at("2024-10-09T10:00"), report_id="S2", hospital_code="H2", distributor_code="D1", supply_status="short")
    with app.sessions() as session:
        contexts = [alert.context for alert in session.scalars(select(Alert)) if alert.context.get("case")]
    assert contexts
    for context in contexts:
        assert context["case"]["opened_at"] == "2024-10-08T10:00:00+08:00", context["case"]


def test_a_revised_report_whose_previous_version_no_longer_validates_counts_as_revised(db_url, make_app):
    app = make_app(db_url, now="2024-10-21T10:00")
    reports = [{"record_kind": "shortage_report", "report_id": f"S{n}", "hospital_code": hospital, "product_code": "XB02",
                "product_name": "硝酸甘油片", "reported_on": "2024-10-18", "supply_status": "short"} for n, hospital in ((1, "H1"), (2, "H3"))]
    ingest(app, "before.json", reports)
    with app.sessions.begin() as session:  # stored under rules since tightened
        session.execute(update(RecordVersion).where(RecordVersion.record_key == record_key("H3", "S2"))
                        .values(data={**reports[1], "supply_status": "缺货"}))

    ingest(app, "revised.json", [{**report, "supply_status": "resolved"} for report in reports])

    with app.sessions() as session:
        case = session.scalars(select(ShortageCase)).one()
        assert case.state == "resolved"
        assert set(session.scalars(select(ShortageReport.case_id))) == {case.id}


def test_the_monthly_summary_counts_only_real_cases_among_its_hospital_reports(db_url, make_app):
    from shortage_watch.services.digests import send_monthly_summaries

    app = make_app(db_url, now="2024-10-08T09:05")
    store_shortage(app, at("2024-09-10T10:00"), report_id="S-1", reported_on=date(2024, 9, 10))
    store_shortage(app, at("2024-09-12T10:00"), report_id="S-2", reported_on=date(2024, 9, 12), supply_status="resolved")
    # Another hospital says it has the drug again after the case was resolved: nothing open to join.
    store_shortage(app, at("2024-09-20T10:00"), report_id="S-3", hospital_code="H3", hospital_name="蕉城区医院",
                   reported_on=date(2024, 9, 20), supply_status="resolved")
    with app.sessions() as session:
        assert [c.state for c in session.scalars(select(ShortageCase))] == ["resolved"]

    assert send_monthly_summaries(app.digest_deps(), at("2024-10-08T09:05")) >= 1
    with app.sessions() as session:
        summary = session.scalars(select(Alert).where(Alert.recipient_email == "ybj@jiaocheng.example", Alert.template == "monthly_summary")).one()
    context = summary.context
    assert len(context["shortages"]) == 3
    assert context["totals"]["shortage_cases"] == 1  # the one case; the report with none is no second case
    text = app.renderer.render("monthly_summary", context, "zh-CN").text
    assert "1起（医疗机构上报 3 条）" in text


def test_the_digest_that_covers_a_possible_false_shortage_tells_the_health_commission_of_it(db_url, make_app):
    from shortage_watch.services.digests import send_daily_digests

    app = make_app(db_url)
    store_shortage(app, at("2024-10-08T10:00"), cause="procurement")
    assert send_daily_digests(app.digest_deps(), at("2024-10-09T08:30")) >= 1
    with app.sessions() as session:
        alert = session.scalars(select(Alert).where(Alert.template == "false_shortage")).one()
        digest = session.scalars(select(Alert).where(Alert.template == "digest", Alert.recipient_email == "wjw@ningde.example")).one()
    assert alert.status == "digested"  # the digest stands for it: it is never mailed on its own
    for language, words in (("zh-CN", "疑似假短缺提示"), ("en", "possible false shortage")):
        text = app.renderer.render("digest", digest.context, language).text
        assert words in text and alert.context["case_number"] in text, text


def test_grouped_reminders_of_explanations_ask_the_distributor_to_explain_not_to_report(db_url, make_app, tmp_path):
    import email
    import email.policy

    from shortage_watch.services.deliver import deliver_due

    app = make_app(db_url)
    for n, (code, name) in enumerate((("XB02", "硝酸甘油片"), ("XB03", "地高辛片")), start=1):
        store_shortage(app, at("2024-10-14T10:00"), report_id=f"S{n}", product_code=code, product_name=name, distributor_code="D1",
                       reported_on=date(2024, 10, 14))
    deliver_due(app.deliver_deps(), at("2024-10-14T10:00"))  # the two explanation requests, in one message
    sweep(app.sweep_deps(), at("2024-10-18T09:00"))  # one working day before both are due
    assert sorted(a.template for a in _alerts(app) if a.status == "pending") == ["reminder", "reminder"]
    deliver_due(app.deliver_deps(), at("2024-10-18T09:00"))

    messages = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in (tmp_path / "mail").glob("*.eml")]
    [grouped] = [m for m in messages if m["Subject"].startswith("到期提醒")]
    body = grouped.get_body(("plain",)).get_content()
    assert "书面说明" in body and "报告即将到期" not in body, body


def test_a_hospital_report_reaching_the_ledger_late_gives_the_distributor_five_working_days_from_the_request(db_url, make_app):
    # The health commission hands its shortage list on weeks later: the distributor learns of the shortage
    # only from the request, so its five working days run from then, not from the hospital's report date.
    app = make_app(db_url, now="2024-10-28T10:00")
    store_shortage(app, at("2024-10-28T10:00"), distributor_code="D1", reported_on=date(2024, 10, 8))
    with app.sessions() as session:
        explanation = session.scalars(select(Obligation)).one()
    assert (explanation.received_on, explanation.due_on, explanation.state) == (date(2024, 10, 28), date(2024, 11, 4), "open")
    assert alert_keys(app) == {"O1:explanation_request:d1@dist.example"}  # asked, not reminded, nobody told it is overdue


def test_the_daily_digest_counts_the_hospitals_still_short_as_the_case_does(db_url, make_app):
    from shortage_watch.services.bureau_actions import close_case_parts
    from shortage_watch.services.digests import send_daily_digests

    app = make_app(db_url)
    for n in (1, 2, 3):
        store_shortage(app, at("2024-10-08T10:00"), report_id=f"S{n}", hospital_code=f"H{n}")
    store_shortage(app, at("2024-10-08T11:00"), report_id="S4", hospital_code="H1", supply_status="resolved")  # H1's next report
    with app.sessions.begin() as session:
        case = session.scalars(select(ShortageCase)).one()
        close_case_parts(session, case, hospitals_in_scope={"H2"}, hospital="H2", note="已调拨", actor="officer", now=at("2024-10-08T12:00"))
    assert send_daily_digests(app.digest_deps(), at("2024-10-09T08:30")) >= 1
    with app.sessions() as session:
        digest = session.scalars(select(Alert).where(Alert.template == "digest", Alert.recipient_email == "wjw@ningde.example")).one()
    [shortage] = digest.context["open_shortages"]
    assert shortage["hospitals"] == 1  # H3: H1 reported its supply back, an officer closed H2's part


def test_a_report_corrected_to_another_product_leaves_the_explanation_it_gave_owed_again(db_url, make_app):
    from shortage_watch.store.tables import DistributorReport

    app = make_app(db_url)
    store_shortage(app, at("2024-10-08T10:00"), distributor_code="D1")
    pk = store_report(app, at("2024-10-09T10:00"), notice_id=None, report_id="R-E", product_code="XB02", product_name="硝酸甘油片",
                      manufacturer="某药厂", kind="interruption", notified_on=date(2024, 10, 1))
    now = at("2024-10-10T10:00")
    with app.sessions.begin() as session:  # it was about another drug
        row = session.get(DistributorReport, pk)
        row.product_code, row.product_name, row.version, row.updated_at = "XB09", "地高辛片", 2, now
        session.flush()
        app.record_listener.record_stored(session, "distributor_report", row, {"product_code": "XB02"}, now)
    with app.sessions() as session:
        explanation = session.scalars(select(Obligation).where(Obligation.kind == "explanation")).one()
    assert (explanation.state, explanation.report_pk, explanation.next_action_at) == ("open", None, at("2024-10-12T00:00"))  # the reminder, on the make-up Saturday


def test_a_distributor_that_reported_the_stoppage_before_its_notice_arrived_is_not_asked_to_explain_the_shortage(db_url, make_app):
    app = make_app(db_url)
    store_report(app, at("2024-10-08T10:00"), notice_id=None, report_id="R-D", product_code="XB02", product_name="硝酸甘油片",
                 manufacturer="某药厂", kind="interruption", notified_on=date(2024, 10, 8))
    store_shortage(app, at("2024-10-09T10:00"), distributor_code="D1")
    with app.sessions() as session:
        assert session.scalars(select(Obligation.kind)).all() == ["report"]  # fulfilled by its report; no explanation owed
    assert not [key for key in alert_keys(app) if "explanation_request" in key]


def test_a_hospitals_follow_up_report_does_not_hide_that_it_was_short_with_the_others(db_url, make_app):
    # The health commission's monthly list, hospital by hospital: H1 short on the 1st and still short on the
    # 20th, H2 and H3 short on the 2nd and 3rd. Three hospitals within seven days: a regional shortage.
    app = make_app(db_url, now="2024-10-21T10:00")
    for n, (hospital, day) in enumerate((("H1", 1), ("H1", 20), ("H2", 2), ("H3", 3))):
        store_shortage(app, at("2024-10-21T10:00"), report_id=f"S{n}", hospital_code=hospital, reported_on=date(2024, 10, day),
                       supply_status="severe" if day == 20 else "short")
    with app.sessions() as session:
        assert session.scalars(select(ShortageCase.state)).one() == "regional"
    assert {a.recipient_email for a in _alerts(app) if a.template == "regional_shortage"} == {"ybj@ningde.example", "wjw@ningde.example"}


def test_a_hospital_revising_its_report_after_an_officer_closed_its_part_reopens_the_part(db_url, make_app):
    from shortage_watch.services.bureau_actions import close_case_parts

    app = make_app(db_url)
    first = store_shortage(app, at("2024-10-08T10:00"), report_id="S1", hospital_code="H1")
    store_shortage(app, at("2024-10-08T10:00"), report_id="S2", hospital_code="H2", region_code="350981")
    with app.sessions.begin() as session:  # H1 phoned: supplied
        case = session.scalars(select(ShortageCase)).one()
        close_case_parts(session, case, hospitals_in_scope={"H1"}, hospital="H1", note="电话确认已到货", actor="officer", now=at("2024-10-09T10:00"))
    now = at("2024-10-10T10:00")
    with app.sessions.begin() as session:  # two days on, the direct-reporting system revises H1's report: severe
        row = session.get(ShortageReport, first)
        row.supply_status, row.version, row.updated_at = "severe", 2, now
        session.flush()
        app.record_listener.record_stored(session, "shortage_report", row, {"supply_status": "short"}, now)
    store_shortage(app, at("2024-10-10T11:00"), report_id="S3", hospital_code="H2", region_code="350981", supply_status="resolved")
    with app.sessions() as session:
        assert session.scalars(select(ShortageCase.state)).all() == ["open"]  # H1 is short again: the case is not over


def test_hospitals_of_no_known_region_make_no_regional_shortage_together(db_url, make_app):
    # Hospitals missing from the directory whose reports give no region may be in any city of the country.
    app = make_app(db_url)
    for n in (1, 2, 3):
        store_shortage(app, at("2024-10-08T10:00"), report_id=f"S{n}", hospital_code=f"X{n}", hospital_name=f"未登记医院{n}", region_code=None)
    with app.sessions() as session:
        case = session.scalars(select(ShortageCase)).one()
    assert (case.city_code, case.state) == ("unknown", "open")
    assert not [a for a in _alerts(app) if a.template == "regional_shortage"]
