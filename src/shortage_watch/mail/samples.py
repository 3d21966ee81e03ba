"""Realistic sample contexts: `mail preview` data and the tests' alert rows.

`sample_alert_context` follows domain/alert_context.py (the escalation contract) exactly;
`sample_digest_context` and `sample_monthly_context` follow services/digest_contexts.py.
"""

from __future__ import annotations

import copy
from typing import Any

from shortage_watch.domain.alert_context import AlertContext

_RECIPIENTS: dict[str, dict[str, Any]] = {
    "distributor": {"role": "distributor", "region_code": "350902", "region_name": "蕉城区", "name": "宁德市华康医药有限公司", "email": "orders@huakang.example.com"},
    "county_insurance": {"role": "insurance", "region_code": "350902", "region_name": "蕉城区", "name": "宁德市蕉城区医疗保障局", "email": "ybj@jiaocheng.example.gov.cn"},
    "city_insurance": {"role": "insurance", "region_code": "350900", "region_name": "宁德市", "name": "宁德市医疗保障局", "email": "ybj@ningde.example.gov.cn"},
    "province_insurance": {"role": "insurance", "region_code": "350000", "region_name": "福建省", "name": "福建省医疗保障局", "email": "ybj@fujian.example.gov.cn"},
    "city_health": {"role": "health", "region_code": "350900", "region_name": "宁德市", "name": "宁德市卫生健康委员会", "email": "wjw@ningde.example.gov.cn"},
}

# Which recipient each template addresses, how urgent it is and whether it is about a case.
_SHAPES: dict[str, tuple[str, bool, str]] = {
    "receipt": ("distributor", False, "obligation"),
    "notice_opened": ("county_insurance", False, "obligation"),
    "reminder": ("distributor", False, "obligation"),
    "written_reminder": ("distributor", False, "obligation"),
    "overdue_alert": ("county_insurance", False, "obligation"),
    "interview_recommendation": ("city_insurance", True, "obligation"),
    "province_escalation": ("province_insurance", True, "obligation"),
    "late_report": ("county_insurance", False, "obligation"),
    "deadline_changed": ("distributor", False, "obligation"),
    "explanation_request": ("distributor", False, "case"),
    "regional_shortage": ("city_insurance", True, "case"),
    "regional_escalation": ("province_insurance", True, "case"),
    "false_shortage": ("city_health", False, "case"),
}


def _hospitals() -> list[dict[str, Any]]:
    return [
        {"code": "H350902001", "name": "宁德市医院", "region_code": "350902", "reported_on": "2024-10-08", "supply_status": "severe", "stock_days": 3.0, "monthly_demand": 1200.0, "demand_unit": "支", "substitute_in_use": "头孢呋辛钠注射液", "cause": "supply"},
        {"code": "H350902002", "name": "宁德市闽东医院", "region_code": "350902", "reported_on": "2024-10-09", "supply_status": "short", "stock_days": 7.5, "monthly_demand": 800.0, "demand_unit": "支", "substitute_in_use": None, "cause": "supply"},
        {"code": "H350921001", "name": "霞浦县医院", "region_code": "350921", "reported_on": "2024-10-10", "supply_status": "short", "stock_days": None, "monthly_demand": 300.0, "demand_unit": "支", "substitute_in_use": None, "cause": "procurement"},
    ]


def sample_alert_context(template: str = "written_reminder", *, product_name: str = "注射用头孢曲松钠") -> AlertContext:
    """A complete AlertContext for `template` (any of the escalation templates)."""
    role_key, urgent, about = _SHAPES.get(template, ("distributor", False, "obligation"))
    is_case = about == "case"
    context: dict[str, Any] = {
        "template": template,
        "level": template,
        "case_number": "SW-C-000045" if is_case else "SW-O-000123",
        "thread_key": "C45" if is_case else "O123",
        "urgent": urgent,
        "written_at": "2024-10-11T09:00:00+08:00",
        "region": {"code": "350900" if is_case else "350902", "name": "宁德市" if is_case else "蕉城区"},
        "recipient": copy.deepcopy(_RECIPIENTS[role_key]),
        "distributor": {"code": "D350902007", "name": "宁德市华康医药有限公司"},
        "manufacturer": "华北制药股份有限公司",
        "product": {"code": "XJ01DDT012B001010100445", "name": product_name, "specification": "1.0g/支"},
        "notice": {
            "notice_id": "HBZY-2024-0917",
            "kind": "stoppage",
            "notified_on": "2024-09-27",
            "reason": "原料药供应中断",
            "expected_resume_on": "2024-12-01",
            "priority_class": "winning_bid",
        },
        "deadline": {
            "received_on": "2024-09-27",
            "working_days": 5,
            "due_on": "2024-10-10",
            "due_at": "2024-10-10T17:30:00+08:00",
            "calendar": "official",
        },
        "overdue_working_days": 1 if template in ("written_reminder", "overdue_alert", "interview_recommendation", "province_escalation") else None,
        "report": None,
        "case": None,
    }
    if template == "receipt":
        context["overdue_working_days"] = None
    if template == "deadline_changed":
        # Received on 8 October 2024 while the year was estimated (no make-up days: due the 15th); the
        # published arrangement makes Saturday the 12th a working day, so it is due the 14th.
        context["notice"]["notified_on"] = "2024-10-08"
        context["deadline"] = {"received_on": "2024-10-08", "working_days": 5, "due_on": "2024-10-14", "due_at": "2024-10-14T17:30:00+08:00",
                               "calendar": "official"}
        context["previous_deadline"] = {"due_on": "2024-10-15", "due_at": "2024-10-15T17:30:00+08:00", "calendar": "estimated"}
    if template == "late_report":
        context["report"] = {"report_id": "HK-FB-2024-031", "submitted_at": "2024-10-14T10:12:00+08:00", "late_working_days": 2}
    if is_case:
        context["notice"] = None
        context["deadline"] = None if template != "explanation_request" else {
            "received_on": "2024-10-11", "working_days": 5, "due_on": "2024-10-18", "due_at": "2024-10-18T23:59:59+08:00", "calendar": "official"}
        context["case"] = {
            "city_code": "350900",
            "city_name": "宁德市",
            "state": "escalated" if template == "regional_escalation" else ("regional" if template in ("regional_shortage",) else "open"),
            "opened_at": "2024-10-08T10:20:00+08:00",
            "regional_at": "2024-10-10T15:00:00+08:00" if template in ("regional_shortage", "regional_escalation") else None,
            "hospitals": _hospitals(),
            "possible_false_shortages": 1,
            "linked_notices": [],
        }
        if template == "regional_escalation":
            context["overdue_working_days"] = 10
    return context  # type: ignore[return-value]


EXPLANATION_LADDER = ("reminder", "written_reminder", "overdue_alert", "interview_recommendation", "province_escalation")


def sample_explanation_context(template: str) -> AlertContext:
    """An explanation obligation's alert (the explanation ladder reuses the reminder templates):
    no stoppage notice, the shortage case instead."""
    context: dict[str, Any] = dict(sample_alert_context("explanation_request"))
    context.update(template=template, level=template, case_number="SW-O-000131", thread_key="O131",
                   overdue_working_days=None if template == "reminder" else 2)
    context["case"] = {**context["case"], "state": "open", "regional_at": None}
    context["recipient"] = copy.deepcopy(_RECIPIENTS[_SHAPES[template][0]])
    return context  # type: ignore[return-value]


def sample_test_context(to: str = "ops@example.com") -> dict[str, Any]:
    """The `test` template's context (what `mail test` sends)."""
    return {
        "template": "test",
        "case_number": None,
        "urgent": False,
        "written_at": "2024-10-11T09:00:00+08:00",
        "recipient": {"role": "operations", "region_code": None, "region_name": None, "name": None, "email": to},
        "transport": "smtp",
        "replica": "preview",
    }


def sample_digest_context() -> dict[str, Any]:
    """A daily digest for the Ningde city insurance bureau."""
    return {
        "template": "digest",
        "case_number": None,
        "urgent": False,
        "written_at": "2024-10-11T08:00:00+08:00",
        "digest_date": "2024-10-11",
        "since": "2024-10-10T08:00:00+08:00",
        "recipient": copy.deepcopy(_RECIPIENTS["city_insurance"]),
        "region": {"code": "350900", "name": "宁德市"},
        "new_stoppages": [
            {"case_number": "SW-O-000123", "product": "注射用头孢曲松钠 1.0g/支", "manufacturer": "华北制药股份有限公司", "distributor": "宁德市华康医药有限公司", "kind": "stoppage", "notified_on": "2024-09-27", "due_at": "2024-10-10T17:30:00+08:00", "region_name": "蕉城区"},
            {"case_number": "SW-O-000131", "product": "阿莫西林胶囊 0.25g×24粒", "manufacturer": "石药集团中诺药业", "distributor": "福建省医药集团宁德有限公司", "kind": "interruption", "notified_on": "2024-10-09", "due_at": "2024-10-16T23:59:59+08:00", "region_name": "福安市"},
        ],
        "overdue": [
            {"case_number": "SW-O-000118", "product": "硝酸甘油片 0.5mg×100片", "distributor": "宁德市华康医药有限公司", "due_at": "2024-10-09T23:59:59+08:00", "overdue_working_days": 2, "region_name": "蕉城区"},
        ],
        "late_reports": [
            {"case_number": "SW-O-000102", "product": "葡萄糖酸钙注射液", "distributor": "霞浦县康宁医药有限公司", "submitted_at": "2024-10-10T16:45:00+08:00", "late_working_days": 1, "region_name": "霞浦县"},
        ],
        "open_shortages": [
            {"case_number": "SW-C-000045", "product": "注射用头孢曲松钠", "state": "regional", "hospitals": 3, "opened_at": "2024-10-08T10:20:00+08:00", "city_name": "宁德市"},
        ],
        "covered_alerts": 4,
        "covered": [
            {"case_number": "SW-O-000123", "template": "notice_opened", "product": "注射用头孢曲松钠 1.0g/支", "distributor": "宁德市华康医药有限公司"},
            {"case_number": "SW-O-000131", "template": "notice_opened", "product": "阿莫西林胶囊 0.25g×24粒", "distributor": "福建省医药集团宁德有限公司"},
            {"case_number": "SW-O-000102", "template": "late_report", "product": "葡萄糖酸钙注射液", "distributor": "霞浦县康宁医药有限公司"},
            {"case_number": "SW-C-000045", "template": "false_shortage", "product": "注射用头孢曲松钠", "distributor": "宁德市华康医药有限公司"},
        ],
        "held": [
            {"case_number": "SW-O-000126", "template": "overdue_alert", "product": "注射用头孢曲松钠", "distributor": "宁德市华康医药有限公司", "silence_id": 3, "until": "2024-10-14T00:00:00+08:00", "reason": "国庆假期后统一处理"},
        ],
    }


def sample_monthly_context() -> dict[str, Any]:
    """A monthly summary for the Ningde city insurance bureau (September 2024)."""
    hospitals = _hospitals()
    return {
        "template": "monthly_summary",
        "case_number": None,
        "urgent": False,
        "written_at": "2024-10-08T09:00:00+08:00",
        "month": "2024-09",
        "recipient": copy.deepcopy(_RECIPIENTS["city_insurance"]),
        "region": {"code": "350900", "name": "宁德市"},
        "shortages": [
            {"case_number": "SW-C-000045", "product_code": "XJ01DDT012B001010100445", "product": "注射用头孢曲松钠", "hospital": h["name"], "region_name": "蕉城区",
             "reported_on": h["reported_on"], "supply_status": h["supply_status"], "monthly_demand": h["monthly_demand"], "demand_unit": h["demand_unit"],
             "stock_days": h["stock_days"], "substitute_in_use": h["substitute_in_use"], "cause": h["cause"], "case_state": "regional"}
            for h in hospitals
        ],
        "stoppages": [
            {"case_number": "SW-O-000123", "notice_id": "HBZY-2024-0917", "product_code": "XJ01DDT012B001010100445", "product": "注射用头孢曲松钠", "specification": "1.0g/支", "manufacturer": "华北制药股份有限公司",
             "distributor": "宁德市华康医药有限公司", "kind": "stoppage", "notified_on": "2024-09-27", "expected_resume_on": "2024-12-01", "priority_class": "winning_bid", "region_name": "蕉城区"},
        ],
        "compliance": [
            {"distributor_code": "D350902007", "distributor": "宁德市华康医药有限公司", "obligations": 3, "on_time": 1, "late": 1, "overdue": 1, "open": 0},
            {"distributor_code": "D350921002", "distributor": "霞浦县康宁医药有限公司", "obligations": 2, "on_time": 2, "late": 0, "overdue": 0, "open": 0},
        ],
        "totals": {"shortage_cases": 1, "hospital_reports": 3, "stoppages": 1, "obligations": 5, "on_time": 3, "late": 1, "overdue": 1},
    }


def sample_operations_digest_context() -> dict[str, Any]:
    """An operations digest listing one reporter of each kind that went quiet."""
    return {
        "template": "operations_digest",
        "case_number": None,
        "urgent": False,
        "written_at": "2024-10-11T08:00:00+08:00",
        "digest_date": "2024-10-11",
        "recipient": {"role": "operations", "region_code": None, "region_name": None, "name": None, "email": "ops@sw.example.gov.cn"},
        "quiet": [
            {"kind": "source", "code": "platform-feed", "name": None, "since": "2024-09-30T16:02:00+08:00", "working_days": 5},
            {"kind": "distributor", "code": "D350902007", "name": "宁德市华康医药有限公司", "since": "2024-10-09T10:15:00+08:00", "working_days": 2},
            {"kind": "sentinel", "code": "H350902001", "name": "宁德市医院", "since": None, "working_days": None},
        ],
        "since": "2024-10-10T08:00:00+08:00",
        "unknown_parties": [
            {"source": "inbox", "name": "华康医药-停产断供通知-1010.xlsx", "received_at": "2024-10-10T15:20:00+08:00",
             "warnings": [{"row": 3, "field": "distributor_code", "reason": "配送企业 D350999 不在目录中，记录已接收 / "
                           "distributor D350999 is not in the directory: the record is kept"}]},
        ],
    }


_DRUGS = [
    ("注射用头孢曲松钠", "1.0g/支", "华北制药股份有限公司"), ("阿莫西林胶囊", "0.25g×24粒", "石药集团中诺药业"),
    ("硝酸甘油片", "0.5mg×100片", "北京益民药业"), ("葡萄糖酸钙注射液", "10ml:1g", "天津金耀药业"),
    ("盐酸肾上腺素注射液", "1ml:1mg", "远大医药（中国）"), ("甲硝唑氯化钠注射液", "100ml:0.5g", "四川科伦药业"),
]
_DISTRIBUTORS = [("D350902007", "宁德市华康医药有限公司"), ("D350921002", "霞浦县康宁医药有限公司"), ("D350981004", "福安市闽东医药有限公司")]


def sample_grouped_context(item_template: str = "overdue_alert", count: int = 8) -> dict[str, Any]:
    """A grouped message of `count` items of one template (as services/grouping.py builds it)."""
    role_key = _SHAPES.get(item_template, ("county_insurance", False, "obligation"))[0]
    urgent = item_template in ("overdue_alert", "written_reminder", "interview_recommendation", "province_escalation")
    late = urgent or item_template == "late_report"
    items = []
    for n in range(count):
        drug, spec, maker = _DRUGS[n % len(_DRUGS)]
        code, distributor = _DISTRIBUTORS[0] if role_key == "distributor" else _DISTRIBUTORS[n % len(_DISTRIBUTORS)]
        items.append({
            "case_number": f"SW-O-{123 + n:06d}", "product": f"{drug} {spec}", "distributor": distributor,
            "region": ("蕉城区", "霞浦县", "福安市")[n % 3], "due_at": f"2024-10-{10 + n % 3:02d}T23:59:59+08:00",
            "working_days_late": (n % 4) + 1 if late else None, "notice_id": f"TZ-2024-{917 + n:04d}", "kind": "stoppage",
            "manufacturer": maker, "hospitals": None, "link": f"https://sw.example.gov.cn/items/SW-O-{123 + n:06d}",
            "explanation": False,
        })
    return {
        "template": "grouped",
        "item_template": item_template,
        "case_number": None,
        "urgent": urgent,
        "written_at": "2024-10-11T09:00:00+08:00",
        "recipient": copy.deepcopy(_RECIPIENTS[role_key]),
        "items": items,
        "attached": count > 20,
        "with_links": role_key != "distributor",
    }


def sample_context(template: str) -> dict[str, Any]:
    """Sample data for any template name (escalation, digest, monthly_summary, test)."""
    if template == "digest":
        return sample_digest_context()
    if template == "monthly_summary":
        return sample_monthly_context()
    if template == "operations_digest":
        return sample_operations_digest_context()
    if template == "grouped":
        return sample_grouped_context()
    if template == "test":
        return sample_test_context()
    return dict(sample_alert_context(template))
