"""Late items and a stopped daemon never replay the ladder (SQLite and PostgreSQL).

Each recipient gets one honest message at the level that applies now; the earlier levels are
audited as skipped, not mailed; a message states an earlier step only when it was mailed at
least one working day before.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

from sqlalchemy import select

from shortage_watch.mail.render import Renderer
from shortage_watch.services.deliver import deliver_due
from shortage_watch.services.escalate import sweep
from shortage_watch.store.tables import Alert, AuditEvent, Obligation
from tests.ledger.conftest import alerts, at, store_notice

RENDERER = Renderer()


def rendered(alert: Alert) -> str:
    mail = RENDERER.render(alert.template, alert.context, alert.language)
    return mail.subject + "\n" + mail.text


def by_recipient(app) -> dict[str, Alert]:
    rows = alerts(app)
    counts = Counter(a.recipient_email for a in rows)
    assert all(n == 1 for n in counts.values()), counts
    return {a.recipient_email: a for a in rows}


def skipped_levels(app) -> dict[str, dict]:
    with app.sessions() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "level_skipped").order_by(AuditEvent.id)).all()
        return {e.detail["level"]: e.detail for e in events}


def test_a_2024_notice_ingested_in_2026_gives_each_recipient_one_honest_overdue_message(db_url, make_app):
    app = make_app(db_url)
    now = at("2026-03-10T10:00")
    store_notice(app, now)  # received 2024-09-27, due 2024-10-10

    mail = by_recipient(app)
    assert {email: a.template for email, a in mail.items()} == {
        "d1@dist.example": "written_reminder",
        "ybj@jiaocheng.example": "overdue_alert",
        "wjj@jiaocheng.example": "notice_opened",
        "ybj@ningde.example": "interview_recommendation",
        "ybj@fujian.example": "province_escalation",
    }
    skipped = skipped_levels(app)
    assert skipped["receipt"]["recipients"] == ["d1@dist.example"] and skipped["receipt"]["reason"] == "superseded"
    assert skipped["notice_opened"]["recipients"] == ["ybj@jiaocheng.example"]
    assert skipped["reminder"]["reason"] == "after_deadline"
    assert set(skipped) == {"receipt", "notice_opened", "reminder"}

    texts = {email: rendered(a) for email, a in mail.items()}
    for email, text in texts.items():
        assert "书面提醒后仍未报告" not in text and "已收到预警及约谈建议" not in text, email
    for email in ("d1@dist.example", "ybj@jiaocheng.example", "ybj@ningde.example", "ybj@fujian.example"):
        text = texts[email]
        # What happened, plainly: received, due, entered the ledger, working days overdue.
        assert "2024年9月27日" in text and "2024年10月10日" in text, email
        assert "2026年3月10日（星期二）才登记入本系统" in text, email
        assert "逾期351个工作日" in text, email
    assert "登记回执、到期提醒未曾发出，不再补发" in texts["d1@dist.example"]
    assert "系统今日同时向该企业发出书面提醒" in texts["ybj@jiaocheng.example"]
    assert "报告期限为2024年10月10日（星期四）24:00前，已经过去" in texts["wjj@jiaocheng.example"]

    with app.sessions() as session:
        ob = session.scalars(select(Obligation)).one()
    assert (ob.state, ob.next_action_at) == ("overdue", None)
    assert sweep(app.sweep_deps(), at("2026-03-10T10:05")).alerts == 0  # nothing left to replay


def test_a_daemon_down_for_eight_working_days_sends_one_message_per_recipient(db_url, make_app):
    app = make_app(db_url)
    store_notice(app, at("2024-09-27T10:00"))
    assert deliver_due(app.deliver_deps(), at("2024-09-27T10:01")).sent == 3  # receipt and the county bureaus' notice
    before = {a.id for a in alerts(app)}

    # Down from 10-08 until 10-21, the 8th working day after the 10-10 deadline (10-12 was a make-up Saturday).
    result = sweep(app.sweep_deps(), at("2024-10-21T09:00"))

    fresh = [a for a in alerts(app) if a.id not in before]
    assert sorted((a.recipient_email, a.template) for a in fresh) == [
        ("d1@dist.example", "written_reminder"),
        ("ybj@jiaocheng.example", "overdue_alert"),
        ("ybj@ningde.example", "interview_recommendation"),
    ]
    assert result.alerts == 3
    assert skipped_levels(app)["reminder"]["reason"] == "after_deadline"
    texts = {a.recipient_email: rendered(a) for a in fresh}
    for email, text in texts.items():
        assert "已逾期8个工作日" in text, email
        assert "因系统未能按时运行，于今日发出" in text, email
        assert "书面提醒后仍未" not in text, email
    assert "本环节原应于2024年10月11日（星期五）发出" in texts["d1@dist.example"]
    assert "本环节原应于2024年10月14日（星期一）发出" in texts["ybj@ningde.example"]
    assert all(a.context["catch_up"]["entered_after_due"] is False for a in fresh)

    # Mailed that day; two working days later the province hears, told truly what went before.
    assert deliver_due(app.deliver_deps(), at("2024-10-21T09:01")).sent == 3
    assert sweep(app.sweep_deps(), at("2024-10-23T00:00")).alerts == 1
    [province] = [a for a in alerts(app) if a.template == "province_escalation"]
    text = rendered(province)
    assert "医疗保障局已于2024年10月21日（星期一）收到逾期预警，2024年10月21日（星期一）已建议约谈，问题尚未解决" in text
    assert province.context["catch_up"] is None  # on time: nothing to explain


def test_on_time_sweeps_state_only_steps_mailed_a_working_day_before(db_url, make_app):
    app = make_app(db_url)
    store_notice(app, at("2024-09-27T10:00"))
    sweep(app.sweep_deps(), at("2024-10-09T00:00"))
    sweep(app.sweep_deps(), at("2024-10-11T00:00"))  # written reminder and overdue alert at one moment
    overdue = next(a for a in alerts(app) if a.template == "overdue_alert")
    assert "系统今日同时向该企业发出书面提醒" in rendered(overdue)
    deliver_due(app.deliver_deps(), at("2024-10-11T09:00"))
    sweep(app.sweep_deps(), at("2024-10-14T00:00"))
    interview = next(a for a in alerts(app) if a.template == "interview_recommendation")
    assert "2024年10月11日（星期五）书面提醒后仍未报告" in rendered(interview)
    assert interview.context["catch_up"] is None


def test_a_receipt_after_the_deadline_says_so_and_asks_for_the_report_at_once(db_url, make_app, tmp_path):
    # A ladder where the distributor hears only the receipt (no written reminder): registered late, it must not say "请于…前".
    policy = tmp_path / "policy.toml"
    policy.write_text(
        (open(app_policy_path(), encoding="utf-8").read())
        .replace('name = "written_reminder"\noffset = 0\nrecipients = ["distributor"]', 'name = "written_reminder"\noffset = 0\nrecipients = ["operations"]'),
        encoding="utf-8",
    )
    app = make_app(db_url, policy=str(policy))
    store_notice(app, at("2024-10-14T10:00"))  # received 09-27, due 10-10: three working days late when registered (10-12 was a make-up Saturday)
    receipt = next(a for a in alerts(app) if a.template == "receipt")
    text = rendered(receipt)
    assert "报告期限已过，请立即书面报告" in text.splitlines()[0]
    assert "本系统于2024年10月14日（星期一）登记该通知时已逾期，截至今日已逾期3个工作日。请立即" in text
    assert "请于2024年10月10日" not in text and "请在2024年10月10日" not in text


def app_policy_path() -> str:
    from tests.ledger.conftest import POLICY

    return str(POLICY)


def test_late_notice_audit_trail_shows_skipped_levels_with_their_moment(db_url, make_app):
    app = make_app(db_url)
    store_notice(app, at("2024-10-21T09:00"))
    skipped = skipped_levels(app)
    assert skipped["reminder"]["was_due_at"] == "2024-10-09T00:00:00+08:00"
    assert date.fromisoformat(skipped["receipt"]["was_due_at"][:10]) == date(2024, 10, 21)


def test_chongqing_is_not_escalated_to_itself(db_url, make_app):
    # 万州区 sits directly under 重庆市: its "city" and "province" are one bureau, told at the interview level.
    app = make_app(db_url)
    store_notice(app, at("2024-09-27T10:00"), notice_id="N-CQ", distributor_code="D2", region_code="500101")
    for moment in ("2024-10-11T00:00", "2024-10-14T00:00", "2024-10-23T00:00", "2024-11-20T00:00"):
        sweep(app.sweep_deps(), at(moment))
    to_chongqing = [a.template for a in alerts(app) if a.recipient_email == "ybj@cq.example"]
    assert to_chongqing == ["notice_opened", "overdue_alert", "interview_recommendation"]
    skipped = skipped_levels(app)["province"]
    assert (skipped["reason"], skipped["recipients"]) == ("same_bureau", ["insurance@province"])
