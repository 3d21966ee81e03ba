"""The sample inbox of a first `make run`, dated relative to today so the story it tells is true.

Three files as distributors drop them (a CSV with a title row and Chinese headers, UTF-8 with
BOM as Excel writes it; a JSON `{"records": [...]}`): notices received in the last working
days, whose deadlines lie ahead (receipts, and notices to the county bureaus); a Chongqing
distributor's report, on time, on a notice the ledger had not seen (an obligation fulfilled); and one
notice received seven working days ago, overdue by two, that reaches the ledger only now (one
honest overdue case: a written reminder and an overdue alert, nothing replayed).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Protocol

CSV_HEADER = ["通知编号", "生产企业", "药品编码", "药品名称", "规格", "类型", "配送企业编码", "配送企业名称", "通知日期", "预计恢复日期", "原因", "药品类别"]


class Calendar(Protocol):
    tz: object

    def nth_working_day_before(self, day: date, n: int) -> date: ...


def _csv(title: str, rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([title] + [""] * (len(CSV_HEADER) - 1))
    writer.writerow(CSV_HEADER)
    writer.writerows(rows)
    return "\ufeff".encode("utf-8") + out.getvalue().encode("utf-8")


def _zh(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def sample_inbox_files(calendar: Calendar, now: datetime) -> dict[str, bytes]:
    """File name -> content of the sample inbox, every date counted back from `now`'s local day."""
    today = now.astimezone(calendar.tz).date()  # type: ignore[arg-type]

    def ago(n: int) -> date:
        return calendar.nth_working_day_before(today, n)

    stamp = f"{today:%Y%m%d}"
    resume = today + timedelta(days=180)
    ningde = _csv("宁德国药医药配送有限公司 停产断供通知登记表", [
        [f"TZ-{stamp}-01", "某某制药股份有限公司", "XJ01CAA040A001010100001", "阿莫西林胶囊", "0.25g*24粒", "停产", "D350901",
         "宁德国药医药配送有限公司", f"{ago(1):%Y/%m/%d}", f"{resume:%Y/%m/%d}", "原料药供应不足", "集采中选"],
        [f"TZ-{stamp}-02", "某某生物药业有限公司", "XB05BAA019B001010100002", "人血白蛋白", "10g:50ml", "断供", "D350901",
         "宁德国药医药配送有限公司", _zh(ago(2)), "", "生产线检修", "国谈药品"],
    ])
    fuan = _csv("福安市医药物流有限公司 停产断供通知登记表（补录）", [
        [f"FA-{stamp}-01", "某某药业有限公司", "XC01DAN070A001010100004", "硝酸甘油片", "0.5mg*100片", "停产", "D350902",
         "福安市医药物流有限公司", f"{ago(7):%Y-%m-%d}", "", "生产许可证到期", "其他"],
    ])
    notice = {
        "record_kind": "stoppage_notice", "notice_id": f"CQ-{stamp}-01", "manufacturer": "某某药业（重庆）有限公司",
        "product_code": "XN02BEA015A001010100003", "product_name": "布洛芬缓释胶囊", "specification": "0.3g*20粒",
        "kind": "reduction", "distributor_code": "D500002", "distributor_name": "两江新区药业物流有限公司",
        "notified_on": ago(2).isoformat(), "reason": "产能调整", "priority_class": "winning_bid",
    }
    # A report on a notice the ledger never saw: it opens the obligation and fulfils it, on time.
    report = {
        "record_kind": "distributor_report", "report_id": f"CQ-FB-{stamp}-01", "distributor_code": "D500001",
        "notice_id": f"CQ-{stamp}-02", "manufacturer": "某某药业（重庆）有限公司", "product_code": "XN02BEA015A001010100005",
        "product_name": "对乙酰氨基酚片", "kind": "interruption", "notified_on": ago(3).isoformat(),
        "submitted_at": datetime.combine(ago(1), time(15, 30)).isoformat(timespec="minutes"), "hospitals_notified": 12,
        "substitutes": "布洛芬片", "contact_name": "李明", "contact_phone": "023-00000000",
    }
    chongqing = {"records": [notice, report]}
    return {
        f"宁德国药_停产断供通知_{today:%Y-%m}.csv": ningde,
        f"福安医药_补录通知_{today:%Y-%m}.csv": fuan,
        "重庆医药_stoppage_notices.json": json.dumps(chongqing, ensure_ascii=False, indent=1).encode("utf-8"),
    }


def write_sample_inbox(folder: Path, calendar: Calendar, now: datetime) -> list[Path]:
    """Write the sample inbox into `folder` (created if needed); returns the files written.
    (The inbox's settle time keeps a poll from reading a file still being written.)"""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in sample_inbox_files(calendar, now).items():
        path = folder / name
        path.write_bytes(content)
        written.append(path)
    return written
