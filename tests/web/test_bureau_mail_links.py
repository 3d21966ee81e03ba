"""Bureau mail links to the dashboard page of its item (web.public_url); the digest to the overdue list."""

from __future__ import annotations

import pytest

from shortage_watch.mail.render import Renderer
from shortage_watch.mail.samples import sample_alert_context, sample_digest_context, sample_monthly_context

URL = "https://sw.ybj.example.cn"


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_an_overdue_alert_to_a_bureau_links_to_the_obligations_page(lang: str) -> None:
    context = sample_alert_context("overdue_alert")
    context["recipient"] = {**context["recipient"], "role": "insurance"}
    number = int(context["case_number"].rsplit("-", 1)[1])
    mail = Renderer(portal_url=URL).render("overdue_alert", context, lang)
    link = f"{URL}/bureau/obligations/{number}"
    assert link in mail.text and f'href="{link}"' in mail.html


def test_case_mail_links_to_the_case_and_the_digest_and_monthly_summary_to_their_lists() -> None:
    renderer = Renderer(portal_url=URL)
    context = {**sample_alert_context("regional_shortage"), "case_number": "SW-C-000045"}
    context["recipient"] = {**context["recipient"], "role": "health"}
    assert f"{URL}/bureau/cases/45" in renderer.render("regional_shortage", context).text
    digest = sample_digest_context()
    assert f"{URL}/bureau/obligations?state=overdue" in renderer.render("digest", digest).text
    monthly = sample_monthly_context()
    year, month = monthly["month"].split("-")
    assert f"{URL}/bureau/compliance?due_from={year}-{month}-01&due_to=" in renderer.render("monthly_summary", monthly).text


def test_a_distributor_and_a_renderer_without_the_web_get_no_dashboard_link() -> None:
    context = sample_alert_context("overdue_alert")
    context["recipient"] = {**context["recipient"], "role": "distributor"}
    assert "/bureau/" not in Renderer(portal_url=URL).render("overdue_alert", context).text
    context["recipient"] = {**context["recipient"], "role": "insurance"}
    assert "/bureau/" not in Renderer().render("overdue_alert", context).text
