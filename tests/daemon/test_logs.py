"""Logs: one line per event, text or JSON, with the matter's fields and never a secret."""

import io
import json
import logging

import pytest

from shortage_watch.logs import configure_logging


@pytest.fixture
def restore_root_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def emit(fmt: str, *args, **kwargs) -> str:
    stream = io.StringIO()
    configure_logging("DEBUG", fmt, stream)
    logging.getLogger("shortage_watch.test").info(*args, **kwargs)
    return stream.getvalue()


def test_json_line_carries_case_obligation_and_source(restore_root_logging) -> None:
    out = emit("json", "obligation %s overdue", 12, extra={"obligation": 12, "case": 3, "source": "inbox"})
    assert out.count("\n") == 1
    line = json.loads(out)
    assert line["message"] == "obligation 12 overdue"
    assert (line["obligation"], line["case"], line["source"], line["level"]) == (12, 3, "inbox", "INFO")


def test_text_line_has_key_value_fields(restore_root_logging) -> None:
    out = emit("text", "polled", extra={"source": "feed-a", "count": 4})
    assert out.count("\n") == 1
    assert " INFO shortage_watch.test polled source=feed-a count=4" in out


def test_secrets_and_bodies_passed_as_extra_are_not_printed(restore_root_logging) -> None:
    extra = {"password": "hunter2", "body": "尊敬的医保局", "auth_token": "tok-123", "source": "feed"}
    for fmt in ("text", "json"):
        out = emit(fmt, "sent", extra=extra)
        assert "hunter2" not in out and "尊敬的医保局" not in out and "tok-123" not in out
        assert "feed" in out


def test_multi_line_message_and_traceback_stay_on_one_line(restore_root_logging) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "text", stream)
    try:
        raise ValueError("bad\nrow")
    except ValueError:
        logging.getLogger("shortage_watch.test").exception("job failed\nbadly", extra={"job": "sweep"})
    out = stream.getvalue()
    assert out.count("\n") == 1
    assert "job=sweep" in out and "ValueError" in out


def test_json_level_is_the_severity_and_the_ladder_level_has_its_own_key(restore_root_logging) -> None:
    line = json.loads(emit("json", "escalated", extra={"obligation": 7, "ladder": "interview"}))
    assert (line["level"], line["ladder"], line["obligation"]) == ("INFO", "interview", 7)
