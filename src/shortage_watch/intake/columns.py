"""Column names: the headers a CSV/XLSX row or JSON object may use for each record field (the English key
or the Chinese column name of records.md, any case, spaces trimmed), and which record kind a header row describes."""

from __future__ import annotations

from shortage_watch.domain.labels import LABELS
from shortage_watch.domain.kinds import RECORD_KINDS
from shortage_watch.intake.cells import SPACES

KIND_LABELS = LABELS["record_kind"]["zh-CN"]

# key, Chinese column name, required (per kind; "described" = required when notice_id is absent)
FIELDS: dict[str, list[tuple[str, str, str]]] = {
    "stoppage_notice": [
        ("notice_id", "通知编号", "yes"),
        ("manufacturer", "生产企业", "yes"),
        ("product_code", "药品编码", "yes"),
        ("product_name", "药品名称", "yes"),
        ("specification", "规格", "no"),
        ("kind", "类型", "yes"),
        ("distributor_code", "配送企业编码", "yes"),
        ("distributor_name", "配送企业名称", "no"),
        ("notified_on", "通知日期", "yes"),
        ("region_code", "行政区划代码", "no"),
        ("expected_resume_on", "预计恢复日期", "no"),
        ("reason", "原因", "no"),
        ("priority_class", "药品类别", "no"),
    ],
    "distributor_report": [
        ("report_id", "反馈编号", "yes"),
        ("distributor_code", "配送企业编码", "yes"),
        ("notice_id", "通知编号", "no"),
        ("manufacturer", "生产企业", "described"),
        ("product_code", "药品编码", "described"),
        ("product_name", "药品名称", "described"),
        ("kind", "类型", "described"),
        ("notified_on", "通知日期", "described"),
        ("submitted_at", "提交时间", "yes"),
        ("hospitals_notified", "已通知医疗机构数", "no"),
        ("substitutes", "替代药品", "no"),
        ("contact_name", "联系人", "no"),
        ("contact_phone", "联系电话", "no"),
    ],
    "shortage_report": [
        ("report_id", "直报编号", "yes"),
        ("hospital_code", "医疗机构编码", "yes"),
        ("hospital_name", "医疗机构名称", "no"),
        ("region_code", "行政区划代码", "no"),
        ("product_code", "药品编码", "yes"),
        ("product_name", "药品名称", "yes"),
        ("reported_on", "上报日期", "yes"),
        ("supply_status", "供应状态", "yes"),
        ("stock_days", "库存可用天数", "no"),
        ("monthly_demand", "月需求量", "no"),
        ("demand_unit", "单位", "no"),
        ("distributor_code", "配送企业编码", "no"),
        ("substitute_in_use", "替代药品", "no"),
        ("cause", "原因分类", "no"),
    ],
}
RECORD_KIND_HEADERS = ("record_kind", "记录类型")


def clean_header(text: object) -> str:
    """A header cell as compared: trimmed of all spaces, lower-case."""
    return str(text).strip(SPACES).lower() if text is not None else ""


def _header_index(kind: str) -> dict[str, str]:
    index: dict[str, str] = {}
    for key, zh, _ in FIELDS[kind]:
        index[key] = key
        index[zh] = key
    for header in RECORD_KIND_HEADERS:
        index[header] = "record_kind"
    return index


HEADER_INDEX: dict[str, dict[str, str]] = {kind: _header_index(kind) for kind in RECORD_KINDS}
REQUIRED: dict[str, tuple[str, ...]] = {
    kind: tuple(key for key, _, req in FIELDS[kind] if req == "yes") for kind in RECORD_KINDS
}
ZH_NAME: dict[str, dict[str, str]] = {kind: {key: zh for key, zh, _ in FIELDS[kind]} for kind in RECORD_KINDS}
KNOWN_HEADERS: frozenset[str] = frozenset(h for index in HEADER_INDEX.values() for h in index)


def map_headers(kind: str, headers: list[str]) -> dict[str, str]:
    """Raw (cleaned) header -> our key for `kind`; unknown headers are left out."""
    index = HEADER_INDEX[kind]
    return {h: index[h] for h in headers if h in index}


def infer_kind(headers: list[str]) -> str | None:
    """The record kind a header row describes: the kind whose required keys are best covered."""
    best: tuple[float, int, str] | None = None
    for kind in RECORD_KINDS:
        keys = set(map_headers(kind, headers).values())
        required = REQUIRED[kind]
        score = (sum(k in keys for k in required) / len(required), len(keys), kind)
        # Distinctive keys break ties between kinds that share most columns.
        if best is None or score[:2] > best[:2]:
            best = score
    if best is None or best[0] < 0.5:
        return None
    return best[2]


def wrong_kind_for_headers(kind: str, headers: list[str]) -> str | None:
    """Why a header row does not fit `kind` when it plainly describes another kind (a wrong
    --kind): one reason for the whole file instead of a missing-field error on every row."""
    keys = set(map_headers(kind, headers).values())
    missing = [key for key in REQUIRED[kind] if key not in keys]
    described = infer_kind(headers)
    if not missing or described is None or described == kind:
        return None
    columns = "、".join(ZH_NAME[kind][key] for key in missing)
    return (
        f"文件的表头是{KIND_LABELS[described]}，不是{KIND_LABELS[kind]}（缺少 {columns} 列），请改用 --kind {described} 或 auto / "
        f"the headers describe {described}, not {kind} (no column {', '.join(missing)}): use --kind {described} or auto"
    )


def normalize_kind_name(value: object) -> str | None:
    """'stoppage_notice' / '停产断供通知' / 'Stoppage Notice' -> the record kind, else None."""
    text = clean_header(value).replace(" ", "_").replace("-", "_")
    if text in RECORD_KINDS:
        return text
    for kind, label in KIND_LABELS.items():
        if text == label:
            return kind
    return None
