"""`shortage-watch demo`: a scripted National Day 2024 scenario on a throwaway database.

A manufacturer's stoppage notice reaches three distributors on Friday 2024-09-27, the
last working day before the National Day holiday. One reports on time, one late, one
stays silent until the matter reaches the city bureau; meanwhile three hospitals of
宁德市 run short of the product, which becomes a regional shortage and, unresolved,
goes to the province. The clock is simulated: each step runs one real cycle (ingest,
sweep, deliver) at its instant. The timeline goes to stdout, a progress line to stderr,
and the mails stay in a folder (the file transport).
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from shortage_watch.app import App
from shortage_watch.clock import FixedClock
from shortage_watch.domain.labels import label, weekday_zh, zh_en
from shortage_watch.settings import Settings
from shortage_watch.store.db import upgrade_schema
from shortage_watch.store.demo_queries import demo_outcome, mailed_alerts

SHANGHAI = ZoneInfo("Asia/Shanghai")


class DemoError(Exception):
    """The demo cannot run; the message says why (e.g. no escalation policy file)."""


REGIONS = """code,name,parent_code,level
350000,福建省,,province
350900,宁德市,350000,city
350902,蕉城区,350900,county
350981,福安市,350900,county
350921,霞浦县,350900,county
"""
CONTACTS = """region_code,role,email,name,delivery,language
350902,insurance,ybj@jiaocheng.example.org,蕉城区医疗保障局,single,zh-CN
350902,health,wjj@jiaocheng.example.org,蕉城区卫生健康局,single,zh-CN
350981,insurance,ybj@fuan.example.org,福安市医疗保障局,single,zh-CN
350921,insurance,ybj@xiapu.example.org,霞浦县医疗保障局,single,zh-CN
350900,insurance,ybj@ningde.example.org,宁德市医疗保障局,single,zh-CN
350900,health,wjw@ningde.example.org,宁德市卫生健康委员会,single,zh-CN
350000,insurance,ybj@fujian.example.org,福建省医疗保障局,single,zh-CN
350000,health,wjw@fujian.example.org,福建省卫生健康委员会,single,zh-CN
"""
DISTRIBUTORS = """code,name,region_code,email,language
D1,宁德国药医药配送有限公司,350902,report@d1.example.com,zh-CN
D2,福安市医药物流有限公司,350981,supply@d2.example.com,zh-CN
D3,霞浦县医药有限公司,350921,office@d3.example.com,zh-CN
"""
HOSPITALS = """code,name,region_code,email
H1,宁德市医院,350902,yjk@h1.example.org
H2,福安市医院,350981,yjk@h2.example.org
H3,霞浦县医院,350921,yjk@h3.example.org
"""

PRODUCT = {"product_code": "XJ01DDC0001", "product_name": "注射用头孢曲松钠", "specification": "1.0g"}


def _notice(distributor: str) -> dict[str, Any]:
    return {
        "record_kind": "stoppage_notice", "notice_id": "TZ-2024-0927", "manufacturer": "某某制药股份有限公司",
        **PRODUCT, "kind": "stoppage", "distributor_code": distributor, "notified_on": "2024-09-27",
        "reason": "生产线改造",
    }


def _report(report_id: str, distributor: str, submitted_at: str) -> dict[str, Any]:
    return {
        "record_kind": "distributor_report", "report_id": report_id, "distributor_code": distributor,
        "notice_id": "TZ-2024-0927", "submitted_at": submitted_at, "hospitals_notified": 4,
        "substitutes": "头孢噻肟钠",
    }


def _shortage(report_id: str, hospital: str, day: str) -> dict[str, Any]:
    return {
        "record_kind": "shortage_report", "report_id": report_id, "hospital_code": hospital, **PRODUCT,
        "reported_on": day, "supply_status": "short", "stock_days": 3, "monthly_demand": 400, "demand_unit": "支",
        "distributor_code": "D1", "cause": "supply",
    }


@dataclass
class Step:
    at: str  # local Asia/Shanghai instant
    happened: str
    records: list[dict[str, Any]] = field(default_factory=list)


STEPS = [
    Step("2024-09-27T10:00", "生产企业停产通知送达三家配送企业 / stoppage notice TZ-2024-0927 reaches D1, D2, D3 "
         "(last working day before National Day)", [_notice("D1"), _notice("D2"), _notice("D3")]),
    Step("2024-09-29T09:00", "调休上班日（周日）/ make-up working Sunday: the 1st of the 5 working days"),
    Step("2024-10-03T09:00", "国庆假期 / National Day holiday: nothing is due, nobody is chased"),
    Step("2024-10-08T10:00", "假期后第一个工作日：D1 按时书面报告；宁德市医院报告短缺 / first working day after the "
         "holiday: D1 reports on time; hospital H1 reports a shortage",
         [_report("BG-D1-01", "D1", "2024-10-08T10:00:00"), _shortage("ZB-H1-01", "H1", "2024-10-08")]),
    Step("2024-10-09T09:00", "福安市医院报告短缺 / hospital H2 reports the same shortage",
         [_shortage("ZB-H2-01", "H2", "2024-10-09")]),
    Step("2024-10-10T10:00", "霞浦县医院报告短缺：区域性短缺 / H3 reports: three hospitals, a regional shortage",
         [_shortage("ZB-H3-01", "H3", "2024-10-10")]),
    Step("2024-10-11T09:00", "D2、D3 逾期未报告 / D2 and D3 missed the deadline (2024-10-10)"),
    Step("2024-10-12T10:00", "调休上班日（周六）：D2 迟报 / make-up working Saturday: D2 reports late",
         [_report("BG-D2-01", "D2", "2024-10-12T10:00:00")]),
    Step("2024-10-14T09:00", "D3 仍未报告，升级至市医保局 / D3 still silent: escalated to the city bureau (约谈)"),
    Step("2024-10-23T09:00", "D3 仍未报告，升级至省医保局 / D3 still silent: escalated to the province"),
    Step("2024-10-24T09:00", "区域性短缺未解决，报省级 / the regional shortage is unresolved: to the province"),
]


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def _settings(work: Path, mail_dir: Path, base: Settings | None) -> Settings:
    files = {}
    for name, text in (("regions", REGIONS), ("contacts", CONTACTS), ("distributors", DISTRIBUTORS),
                       ("hospitals", HOSPITALS)):
        path = work / f"{name}.csv"
        path.write_text(text, encoding="utf-8")
        files[name] = str(path)
    base = base or Settings()
    return Settings(
        timezone="Asia/Shanghai",
        database={"url": f"sqlite:///{work / 'demo.db'}"},
        calendar=base.calendar.model_dump(),
        directory=files,
        escalation=base.escalation.model_dump(),
        mail={"transport": "file", "file_dir": str(mail_dir), "language": "zh-CN"},
        logging={"level": "WARNING"},
    )


class Progress:
    """One line on stderr, rewritten in place on a terminal, else one line per step."""

    def __init__(self, stream: IO[str], total: int) -> None:
        self.stream, self.total = stream, total
        self.tty = stream.isatty()

    def show(self, index: int, label: str) -> None:
        width = 20
        done = int(width * index / self.total)
        line = f"demo [{'#' * done}{'.' * (width - done)}] {index}/{self.total} {label}"
        if self.tty:
            self.stream.write("\r" + line[:100].ljust(100))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def run_demo(mail_dir: Path, base: Settings | None = None, out: IO[str] | None = None,
             progress: IO[str] | None = None) -> int:
    """Play the scenario; mails go to `mail_dir` (its old *.eml files are removed first). Returns 0."""
    from shortage_watch.services.cycle import run_cycle
    from shortage_watch.services.ingest import ingest_payload

    out = out or sys.stdout
    bar = Progress(progress or sys.stderr, len(STEPS))
    policy = (base or Settings()).escalation.policy
    if not Path(policy).is_file():
        raise DemoError(f"escalation policy {policy} not found: run the demo from the project folder "
                        "(it uses config/escalation.toml) or set escalation.policy")
    mail_dir = mail_dir.resolve()
    mail_dir.mkdir(parents=True, exist_ok=True)
    for old in mail_dir.glob("*.eml"):
        old.unlink()

    with tempfile.TemporaryDirectory(prefix="shortage-watch-demo-") as temp:
        work = Path(temp)
        settings = _settings(work, mail_dir, base)
        clock = FixedClock(_instant(STEPS[0].at))
        app = App(settings, clock=clock, replica_id="demo")
        try:
            upgrade_schema(app.engine)
            print("shortage-watch demo: 国庆节前的停产通知 / a stoppage notice before National Day 2024", file=out)
            print(zh_en(f"（模拟时钟，临时数据库在 {work}）", f"(simulated clock, throwaway database in {work})") + "\n", file=out)
            seen: set[int] = set()
            for index, step in enumerate(STEPS, start=1):
                now = _instant(step.at)
                clock.advance_to(now)
                bar.show(index, step.at.replace("T", " "))
                if step.records:
                    result = ingest_payload(
                        app.ingest_deps(), source="demo", name=f"demo-{index}.json", kind="auto", now=now,
                        content=json.dumps({"records": step.records}, ensure_ascii=False).encode(),
                    )
                    if result.status != "accepted":
                        raise DemoError(f"step {step.at}: the scripted records were not accepted "
                                        f"({result.status}): {result.errors[:3]}")
                run_cycle(app.cycle_deps(), now)
                mailed = _new_mail(app, seen)
                _print_step(out, app, now, step, mailed)
            bar.close()
            _print_summary(out, app, mail_dir)
        finally:
            app.close()
    return 0


def _new_mail(app: App, seen: set[int]) -> list[tuple[str, str, str, int]]:
    """(template, recipient, status, items) of the messages sent, or alerts kept undeliverable,
    since the last step; a grouped message is one entry with its number of items."""
    with app.read_sessions() as session:
        rows = mailed_alerts(session)
    fresh: dict[object, list] = {}
    for alert in rows:
        if alert.id in seen:
            continue
        seen.add(alert.id)
        entry = fresh.setdefault(alert.message_id or alert.id,
                                 [alert.template, alert.recipient_email or f"({alert.recipient_role}: 无地址 no address)",
                                  alert.status, 0])
        entry[3] += 1
    return [tuple(entry) for entry in fresh.values()]  # type: ignore[misc]


def _print_step(out: IO[str], app: App, now: datetime, step: Step, mailed: list[tuple[str, str, str, int]]) -> None:
    local = now.astimezone(SHANGHAI)
    day = local.date()
    kind = "工作日 working day" if app.calendar.is_working_day(day) else "休息日 rest day"
    print(f"{local:%Y-%m-%d} {weekday_zh(day)} {local:%a %H:%M} ({kind})  {step.happened}", file=out)
    if not mailed:
        print("    没有邮件 no mail", file=out)
    for template, recipient, status, items in mailed:
        note = "" if status == "sent" else f"  [{status}]"
        grouped = f"  （{items} 条合并为一封 / {items} items in one message）" if items > 1 else ""
        print(f"    发出 mailed {template:<26} → {recipient}{note}{grouped}", file=out)


def _print_summary(out: IO[str], app: App, mail_dir: Path) -> None:
    with app.read_sessions() as session:
        outcome = demo_outcome(session)
    print("\n结果 / Outcome:", file=out)
    for party, state, late in outcome.obligations:
        extra = f", 迟 {late} 个工作日 {late} working day(s) late" if late else ""
        print(f"    配送企业 distributor {party}: {label('obligation_state', state)} {state}{extra}", file=out)
    for city, state in outcome.cases:
        print(f"    {city} 短缺案件 shortage case in {city}: {label('case_state', state)} {state}", file=out)
    count = len(list(mail_dir.glob("*.eml")))
    print("\n" + zh_en(f"{count} 封邮件已写入 {mail_dir}", f"{count} mail(s) written to {mail_dir}"), file=out)
