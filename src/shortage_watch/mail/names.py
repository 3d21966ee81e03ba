"""The names mail answers to: its languages and its templates (no jinja2 here, so the CLI's
argument declarations can name them without loading the renderer)."""

LANGUAGES = ("zh-CN", "en")

# Template names the escalation ladder writes (contract 3) plus the ones MAIL owns.
ALERT_TEMPLATES = (
    "receipt",
    "notice_opened",
    "reminder",
    "written_reminder",
    "overdue_alert",
    "interview_recommendation",
    "province_escalation",
    "late_report",
    "deadline_changed",
    "explanation_request",
    "regional_shortage",
    "regional_escalation",
    "false_shortage",
)
MAIL_TEMPLATES = ("digest", "monthly_summary", "operations_digest", "grouped", "test")
