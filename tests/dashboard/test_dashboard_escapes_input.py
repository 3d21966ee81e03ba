"""The bureau dashboard escapes what it shows and checks what it is asked: record text with markup or formulas, forged query parameters."""

from __future__ import annotations

from datetime import date

import pytest

from tests.dashboard.conftest import _notice, _obligation
from tests.web.test_bureau_pages import bureau, login  # noqa: F401 (the dashboard on a real uvicorn, an officer's session)

SCRIPT = "<script>alert('x')</script>"


def test_markup_in_record_text_is_shown_as_text_on_every_page_chart_and_material(bureau) -> None:  # noqa: F811
    app, server, _ = bureau
    with app.sessions.begin() as session:
        notice = _notice(session, "EVIL", "D350901", "350902", date(2024, 10, 9), name=SCRIPT, manufacturer=f"{SCRIPT}\"'><svg onload=alert(1)>")
        evil = _obligation(session, notice, due=date(2024, 10, 16), state="open").id
    browser = login(server, "ningde")
    for path in ("/bureau/", "/bureau/obligations", "/bureau/notices", f"/bureau/obligations/{evil}", "/bureau/distributors/D350901",
                 "/bureau/distributors/D350901/interview", f"/bureau/obligations?drug={SCRIPT}"):
        text = browser.get(server.address + path, timeout=10).text
        assert SCRIPT not in text and "<svg onload" not in text, path
    assert "&lt;script&gt;" in browser.get(f"{server.address}/bureau/obligations/{evil}", timeout=10).text


@pytest.mark.parametrize("query, status", [
    ("page=999999", 200), ("page=-3", 200), ("page=abc", 200), ("sort=id;drop table obligations", 422), ("state=everything", 422),
    ("overdue_at=2024-10-10", 422), ("overdue_at=not-a-time", 422), ("due_to=2024-02-30", 422), ("format=pdf", 422),
    ("region=500103", 422), ("priority_class=' or 1=1 --", 422),
])
def test_forged_list_parameters_get_a_clear_answer_never_a_crash(bureau, query: str, status: int) -> None:  # noqa: F811
    _, server, _ = bureau
    answer = login(server, "ningde").get(f"{server.address}/bureau/obligations?{query}", timeout=10)
    assert answer.status_code == status
    assert "内部错误" not in answer.text and "Traceback" not in answer.text


def test_ids_that_are_not_numbers_or_outside_the_region_are_404_not_500(bureau) -> None:  # noqa: F811
    _, server, _ = bureau
    browser = login(server, "jiaocheng")
    for path in ("/bureau/obligations/abc", "/bureau/cases/99999999999999999999", "/bureau/distributors/%3Cscript%3E", "/bureau/cases/-1"):
        assert browser.get(server.address + path, timeout=10).status_code in (404, 422), path
