"""Mail to a distributor links to the portal page of its obligation (web.public_url)."""

from __future__ import annotations

from shortage_watch.mail.render import Renderer
from shortage_watch.mail.samples import sample_alert_context


def test_a_distributors_receipt_links_to_its_obligation_in_the_portal():
    renderer = Renderer(portal_url="https://portal.ybj.example.cn")
    context = sample_alert_context("receipt")
    context["recipient"] = {**context["recipient"], "role": "distributor"}
    link = f"https://portal.ybj.example.cn/obligations/{context['case_number']}"
    for lang in ("zh-CN", "en"):
        mail = renderer.render("receipt", context, lang)
        assert link in mail.text and f'href="{link}"' in mail.html


def test_bureau_mail_and_a_disabled_portal_carry_no_portal_link():
    context = sample_alert_context("overdue_alert")
    context["recipient"] = {**context["recipient"], "role": "insurance"}
    # A bureau's mail links to the bureau dashboard instead (tests/web/test_bureau_mail_links.py).
    assert "https://portal.example.cn/obligations/" not in Renderer(portal_url="https://portal.example.cn").render("overdue_alert", context).text
    context["recipient"] = {**context["recipient"], "role": "distributor"}
    assert "/obligations/" not in Renderer().render("overdue_alert", context).text
