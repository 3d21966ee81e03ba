"""Logging set-up: one line per event, as text or JSON, with the matter's fields.

Callers add context with `extra=`, e.g.
`log.info("obligation overdue", extra={"obligation": 12, "source": "inbox"})`;
the known context keys (`CONTEXT_KEYS`) are printed as `key=value` (text) or as
JSON fields. Keys that could carry a secret or a mail body are never printed.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import IO, Any

# Fields a line may carry about what it concerns, in the order they are printed.
CONTEXT_KEYS = (
    "replica",
    "job",
    "source",
    "kind",
    "case",
    "obligation",
    "alert",
    "ladder",  # the escalation level's name ("level" is the log severity)
    "recipient",
    "count",
    "duration",
)
# Never logged even when passed in `extra=`: credentials and message bodies.
FORBIDDEN_KEYS = frozenset({"password", "token", "auth_token", "secret", "body", "html", "text", "content", "smtp_password"})
# Third-party loggers that narrate every routine step at INFO.
QUIET_LOGGERS = ("alembic", "apscheduler", "urllib3", "mail.log")


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: getattr(record, key)
        for key in CONTEXT_KEYS
        if key not in FORBIDDEN_KEYS and getattr(record, key, None) is not None
    }


class TextFormatter(logging.Formatter):
    """`2024-09-27T01:00:00Z INFO shortage_watch.daemon message key=value …` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        parts = [stamp[:-4] + "Z", record.levelname, record.name, record.getMessage()]
        parts += [f"{key}={value}" for key, value in _context(record).items()]
        if record.exc_info:
            parts.append(f"error={self.formatException(record.exc_info)}")
        return _one_line(" ".join(str(p) for p in parts))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, the context keys, error."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(_context(record))
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", fmt: str = "text", stream: IO[str] | None = None) -> logging.Handler:
    """Send every log line to `stream` (stderr) in `fmt` ("text" | "json"); returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler
